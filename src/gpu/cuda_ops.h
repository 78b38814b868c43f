// vit-infer: the CUDA backend's op table, one row per graph op {op, profile kind, supports,
// run}: how a node of the shared graph (graph/graph.h) becomes a kernel launch, given where the
// bucket's tensors are (CudaRunCtx). The engine (cuda_engine.cpp) picks a row per node once at
// lowering and then only calls run(); adding an op is a kernel, a run function and its row here.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "attention.cuh"
#include "gpu/gemm_tuner.h"
#include "gpu/lowering.h"

namespace vit::gpu {

// Everything a node's launch reads: the lowered graph (shapes and params are the graph's), the
// bucket (batch, arena offsets, GEMM choice), the arena base, the GEMM launcher (which also knows
// the weights).
struct CudaRunCtx {
  const LoweredGraph& L;
  const Bucket& bk;
  char* arena;
  const GemmLauncher& gemm;

  DType dt() const { return gemm.dtype(); }
  char* t(int id) const { return arena + bk.plan.offsets[static_cast<size_t>(id)]; }
  const void* weight(int id) const { return gemm.wptr(L.woff[static_cast<size_t>(id)]); }
  int64_t rows(int id) const { return L.t(id).rows() * bk.batch; }
  // A linear node's operands in the arena.
  GemmOperands operands(const GemmNode& n) const {
    return GemmOperands{t(n.in), t(n.out), n.res >= 0 ? t(n.res) : nullptr, bk.batch * n.rows_per_image};
  }
  // Q / K / V of attention node `attn` (its input's producer, when that is a QKV GEMM with the
  // scatter epilogue not on cuBLASLt, wrote [3, B, H, T, hd]; else the input is [B, T, 3, H, hd]).
  AttentionParams attention_layout(const graph::Node& attn) const;
};

struct CudaOpRow {
  graph::Op op;
  const char* kind;  // NodeTiming::kind
  // Whether the row's kernels take node n of g: the limits that the graph can tell (shapes,
  // params); those that depend on the batch the launchers check per launch.
  bool (*supports)(const graph::Graph&, const graph::Node&);
  void (*run)(const CudaRunCtx&, const graph::Node&, size_t node, cudaStream_t);
  const char* limits;  // what supports() accepts, in words (for the refusal's message)
};

// The row that runs `n`, or null when no CUDA kernel does.
const CudaOpRow* cuda_op_row(const graph::Graph& g, const graph::Node& n);
// The row of every node of g in order; throws vit::Error(kUnsupported) prefixed `who` naming the
// first node no row takes and the limits of its op's rows.
std::vector<const CudaOpRow*> cuda_op_rows(const graph::Graph& g, const char* who);

}  // namespace vit::gpu
