// vit-infer: the CUDA engine's GEMM candidates and their choice. GemmLauncher turns a lowered
// GEMM node (lowering.h) plus its operands into the launch of one implementation (mma.sync,
// wgmma, cuBLASLt); GemmTuner picks the implementation per node of a bucket (GemmChoice):
// every candidate is checked against the reference on a fresh random input of the node's shape
// before it may be selected, and kAuto times the ones that agree. The registry of candidates is
// GemmImpl; adding one is a case in GemmLauncher::launch and in GemmTuner::candidates.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "gemm.cuh"
#include "gpu/cuda_types.h"
#include "gpu/lowering.h"
#include "gpu/lt_gemm.h"

namespace vit::gpu {

// Where one launch of a GEMM node reads and writes (device pointers) and its row count.
struct GemmOperands {
  const void* a = nullptr;
  void* c = nullptr;
  const void* residual = nullptr;  // an activation residual (GemmNode::res >= 0)
  int M = 0;
};

class GemmLauncher {
 public:
  // dt: the run precision; weights: the packed weights (owned by the engine); lt: cuBLASLt (owned
  // by the engine). A QKV scatter's shape is its node's (GemmNode::heads, rows_per_image).
  GemmLauncher(DType dt, const WeightStore& weights, LtGemm* lt) : dt_(dt), weights_(weights), lt_(lt) {}
  // The node's GEMM on these operands as `impl` runs it: cuBLASLt writes the QKV output plain
  // [M, 3D] (attention reads it through strides), the custom kernels scatter it [3, B, H, T, hd].
  GemmParams params(const GemmNode& n, const GemmOperands& o, GemmImpl impl) const;
  void launch(const GemmParams& p, GemmImpl impl, cudaStream_t s) const;
  void run(const GemmNode& n, const GemmOperands& o, GemmImpl impl, cudaStream_t s) const {
    launch(params(n, o, impl), impl, s);
  }
  const void* wptr(int64_t off) const { return weights_.ptr(off); }
  LtGemm& lt() const { return *lt_; }
  DType dtype() const { return dt_; }

 private:
  DType dt_;
  const WeightStore& weights_;
  LtGemm* lt_;
};

struct GemmTunerOptions {
  GemmChoice choice = GemmChoice::kAuto;
  bool allow_tf32 = false;
  bool wgmma_ok = false;  // the Hopper kernel can run here (sm_90a image on a 9.0 device)
  int check_rows = 0;     // rows of the agreement check's input (0: 8192; CudaTestHooks)
  std::string corrupt, prefer;  // test hooks (CudaTestHooks::corrupt_gemm / prefer_gemm)
};

class GemmTuner {
 public:
  GemmTuner(const GemmLauncher& launcher, GemmTunerOptions opt, cudaStream_t stream)
      : gl_(launcher), opt_(std::move(opt)), s_(stream) {}

  // Picks bk.gemm_impl for every linear node of L, once per distinct shape (M, N, K, epilogue),
  // at the bucket's first use; `operands` gives a node's buffers in the bucket's arena (timing
  // runs there; nothing is captured yet).
  //  - kCublasLt: cuBLASLt wherever it has an algorithm, else the mma.sync kernel.
  //  - kCustom: the wgmma kernel where it runs (sm_90), else mma.sync; each is checked against
  //    cuBLASLt and a disagreeing one is passed over for the next custom one, but when no custom
  //    kernel agrees the preferred one is still used (forced): only a warning.
  //  - kAuto: every candidate (cuBLASLt, mma.sync, wgmma on sm_90) that agrees with the reference
  //    (check) is timed on the node's own arena buffers; the fastest wins. A candidate that
  //    disagrees is never selected (logged once per shape).
  void choose(const LoweredGraph& L, Bucket& bk, const std::function<GemmOperands(const GemmNode&)>& operands);
  GemmPickStats stats() const { return {agreement_checks_, timings_, warmed_}; }

 private:
  using Operands = std::function<GemmOperands(const GemmNode&)>;
  GemmImpl choose_one(const GemmNode& n, int batch, const Operands& operands);
  bool check(const GemmNode& n, int batch, GemmImpl cand, GemmImpl ref, bool reject);
  bool run_check(const GemmNode& n, int batch, int nb, GemmImpl cand, GemmImpl ref, bool reject);
  bool compare(const GemmNode& n, int batch, GemmImpl cand, GemmImpl ref, const std::vector<float>& want,
               std::vector<float>& got, bool reject);
  std::vector<float> download(const char* d, int64_t count) const;
  std::vector<float> time(const GemmNode& n, const GemmOperands& o, const std::vector<GemmImpl>& cands);
  void warm_up(const GemmNode& n, const GemmOperands& o, GemmImpl impl);
  std::string shape_text(const GemmNode& n, int batch) const;

  const GemmLauncher& gl_;
  GemmTunerOptions opt_;
  cudaStream_t s_;
  bool lt_warned_ = false, warmed_ = false;
  std::set<std::string> rejected_logged_;
  // (N, K, epilogue key, check M, candidate, reference) -> agreed (check).
  std::map<std::tuple<int, int, int, int, int, int>, bool> checked_;
  int agreement_checks_ = 0, timings_ = 0;
  uint32_t check_seq_ = 0;
};

}  // namespace vit::gpu
