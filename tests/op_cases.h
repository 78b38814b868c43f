// vit-infer: the declarative op table (issue "One graph for every backend"), in the manner of
// ggml's test-backend-ops: each case is a small graph (one node, or a pattern such as the QKV GEMM
// feeding attention) over random weights and kInput activations, with its shapes and params. The
// op tests (tests/test_ops.cpp) run every case on every backend present (the fast CPU engine's rows
// in fp32 and bf16, CUDA or its emulator in fp32 / fp16 / bf16 with each GEMM implementation)
// against the CPU reference rows; vit-kernels-bench times the perf cases (ViT-B/16 shapes at batch
// 256) on the CUDA rows. Adding an op's coverage is rows here, not a test of its own.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "graph/graph.h"

namespace vit::test {

// Builds a graph the way the cases write it: inputs are kInput tensors in the activation type
// (or one given), weights random host fp32 tensors owned by the graph (Graph::derived), and every
// node's outputs kept to the end (the tests read them).
class OpGraph {
 public:
  OpGraph(DType act, uint32_t seed);
  DType act() const { return g_.act_dtype; }
  int input(const std::string& name, std::vector<int64_t> shape, DType dt);
  int input(const std::string& name, std::vector<int64_t> shape) { return input(name, std::move(shape), act()); }
  // A weight of `shape` with values U(lo, hi).
  int weight(const std::string& name, std::vector<int64_t> shape, float lo = -0.5f, float hi = 0.5f);
  // One node; returns its first output (out_shapes[k] per output, all of type `dt`, -1: act()).
  int node(graph::Op op, const std::string& name, std::vector<int> in, std::vector<std::vector<int64_t>> out_shapes,
           graph::OpParams p = {}, int dt = -1);
  // One more output of the last node, of type dt (e.g. ToMe's fp32 metric and sizes).
  int output(const std::string& name, std::vector<int64_t> shape, DType dt);
  graph::Graph take() { return std::move(g_); }

 private:
  graph::Graph g_;
  uint32_t seed_;
};

struct OpCase {
  std::string name;  // "<op>/<what>", e.g. "linear/gelu_tanh_197x64x96_b3"
  int batch = 1;
  float input_spread = 1.0f;  // inputs are U(-spread, spread) (attention: peaked softmax rows)
  // Inputs holding token sizes (ToMe): whole numbers 1..8 instead.
  std::vector<std::string> size_inputs;
  // The case's graph with activations in `act` (F32 for the reference), weights from `seed`.
  std::function<graph::Graph(DType act, uint32_t seed)> build;
  // Names of the tensors the fast CPU engine stores bf16 in its bf16 variant of this case (as its
  // annotation does: a GEMM's input, a LayerNorm / attention / GLU / patchify output); empty: no
  // CPU bf16 variant.
  std::vector<std::string> cpu_bf16;
  // Run by the CUDA emulator too (false: tens of emulated seconds; a GPU and the CPU rows run it,
  // a smaller case of the same op stands in for it in the emulator).
  bool emulated = true;
};

// The check set: every op of graph::Op, awkward shapes (197 / 50 / 577 tokens, head dims 24 /
// 40 / 64 / 80, batches 1 and 3, a patch grid that leaves pixels unread), every epilogue and form.
const std::vector<OpCase>& op_cases();
// The perf set: ViT-B/16 at batch 256 (the GEMMs with their fused epilogues, attention, LayerNorm).
const std::vector<OpCase>& perf_cases();

// The graph of `c` in `act` with the tensors named in c.cpu_bf16 stored bf16 (the rest as built).
graph::Graph case_graph(const OpCase& c, DType act, uint32_t seed, bool cpu_bf16 = false);

// Every op of graph::Op that some case of op_cases() runs.
std::vector<graph::Op> ops_covered();

}  // namespace vit::test
