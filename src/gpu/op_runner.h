// vit-infer: a plain executor of any graph on the CUDA backend at one batch: the graph lowered
// (lowering.h), its weights uploaded, one arena, each node's op-table row (cuda_ops.h) launched in
// order on the runner's stream, one chosen GEMM implementation for every linear node. No buckets,
// tuning or CUDA graphs (the engine, cuda_engine.cpp, adds those): the declarative op tests
// (tests/test_ops.cpp: one-node graphs, every backend against the CPU reference) and the per-op
// rows of vit-kernels-bench run on it. Activation inputs are TensorKind::kInput tensors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gpu/cuda_ops.h"
#include "gpu/cuda_raii.h"
#include "gpu/gemm_tuner.h"
#include "gpu/lowering.h"
#include "gpu/lt_gemm.h"
#include "graph/graph.h"

namespace vit::gpu {

class OpRunner {
 public:
  // g in its storage types (the activations in dt); batch: images per run. Throws
  // kUnsupported naming a node no CUDA row runs.
  OpRunner(graph::Graph g, DType dt, int batch, GemmImpl gemm = GemmImpl::kMmaSync);
  OpRunner(const OpRunner&) = delete;
  OpRunner& operator=(const OpRunner&) = delete;

  const graph::Graph& graph() const { return L_.graph; }
  // Empty when every linear node can run on the chosen GEMM implementation here (cuBLASLt has an
  // algorithm for it, the wgmma kernel takes its shape on this device), else why not.
  std::string gemm_unsupported() const;
  // Copies [batch, shape] host fp32 values of kInput tensor `t` into the arena, converted to its type.
  void set_input(int t, const std::vector<float>& host);
  // Fills the arena with 0xFF bytes (NaN in fp32 / fp16 / bf16), inputs included: call it first.
  void poison();
  // Launches every node and waits for them.
  void run();
  // Mean ms per run over `reps` runs after one warm-up run (CUDA events).
  double time_ms(int reps);
  // Tensor t of the last run, [batch, shape], widened to fp32 (rows stored at a padded pitch, as
  // the patch columns are for the tensor-core GEMM, come back unpadded).
  std::vector<float> output(int t) const;

 private:
  DType dt_;
  WeightStore weights_;
  LoweredGraph L_;
  std::vector<const CudaOpRow*> rows_;
  Bucket bk_;
  StreamHolder stream_;
  DeviceBuffer arena_;
  std::unique_ptr<LtGemm> lt_;
  std::unique_ptr<GemmLauncher> gemm_;
  CudaRunCtx ctx() const { return CudaRunCtx{L_, bk_, arena_.c(), *gemm_}; }
};

}  // namespace vit::gpu
