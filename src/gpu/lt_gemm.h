// vit-infer: cuBLASLt implementation of the executor's GEMMs, y[M, N] = x[M, K] W[N, K]^T
// (+ bias via CUBLASLT_EPILOGUE_BIAS) (+ residual via beta = 1, C = residual). GELU nodes run
// the bias epilogue and then launch_activation with the node's activation: cuBLASLt's GELU epilogue is the
// tanh approximation, not the erf form timm / HF compute (nor quick-GELU). The QKV scatter layout is not offered;
// the executor reads a plain [M, 3D] output through attention strides instead.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <map>
#include <tuple>

#include "gemm.cuh"

#define VIT_CUBLAS_CHECK(call) ::vit::gpu::check_cublas((call), #call, __FILE__, __LINE__)

namespace vit::gpu {

void check_cublas(cublasStatus_t s, const char* call, const char* file, int line);

class LtGemm {
 public:
  explicit LtGemm(bool allow_tf32);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // True when cuBLASLt offers an algorithm for p (epilogues kNone / kAct / kResidual).
  bool supports(const GemmParams& p);
  // Runs p on `stream`; throws vit::Error(kUnsupported) when !supports(p).
  void run(const GemmParams& p, cudaStream_t stream);

 private:
  using Key = std::tuple<int, int, int, int, int64_t, int64_t, int64_t, int64_t, bool, bool, int, int, int, int>;
  struct Plan {
    bool ok = false;
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  Plan& plan(const GemmParams& p);

  bool tf32_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 32u << 20;
  std::map<Key, Plan> plans_;
};

}  // namespace vit::gpu
