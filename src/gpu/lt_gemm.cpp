// vit-infer: cuBLASLt GEMM wrapper (see lt_gemm.h). Row-major y[M, N] = x W^T is computed as
// the column-major D[N, M] = op(A) B with A = W stored K x N (ld = ldw, op = T) and B = x stored
// K x M (ld = lda). Plans (descriptors + the heuristic's first algorithm) are cached per shape,
// leading dimensions, epilogue and pointer alignment.
#include "gpu/lt_gemm.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "cuda_check.h"
#include "activation.cuh"

namespace vit::gpu {

void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  const ErrorCode code = s == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::kOutOfMemory : ErrorCode::kDevice;
  throw Error(code, std::string(call) + " failed: " + cublasGetStatusString(s) + " at " + file + ":" +
                        std::to_string(line));
}

namespace {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: throw Error(ErrorCode::kInvalidArgument, "LtGemm: dtype must be F32, F16 or BF16");
  }
}

// Largest power of two <= 256 dividing the address (what cuBLASLt may assume about it).
int alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  int al = 256;
  while (al > 1 && (a % static_cast<uintptr_t>(al)) != 0) al /= 2;
  return al;
}

}  // namespace

LtGemm::LtGemm(bool allow_tf32) : tf32_(allow_tf32) {
  VIT_CUBLAS_CHECK(cublasLtCreate(&handle_));
  const cudaError_t e = cudaMalloc(&workspace_, workspace_bytes_);
  if (e != cudaSuccess) {
    cublasLtDestroy(handle_);
    handle_ = nullptr;
    workspace_ = nullptr;
    cuda::throw_cuda_error(e, "cudaMalloc(cuBLASLt workspace)", __FILE__, __LINE__);
  }
}

LtGemm::~LtGemm() {
  for (auto& kv : plans_) {
    Plan& p = kv.second;
    if (p.a) cublasLtMatrixLayoutDestroy(p.a);
    if (p.b) cublasLtMatrixLayoutDestroy(p.b);
    if (p.c) cublasLtMatrixLayoutDestroy(p.c);
    if (p.d) cublasLtMatrixLayoutDestroy(p.d);
    if (p.op) cublasLtMatmulDescDestroy(p.op);
  }
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

LtGemm::Plan& LtGemm::plan(const GemmParams& p) {
  const bool bias = p.bias != nullptr;
  const bool res = p.epilogue == GemmEpilogue::kResidual;
  const int al_c = res ? std::min(alignment_of(p.residual), alignment_of(p.c)) : alignment_of(p.c);
  const Key key{static_cast<int>(p.dtype), p.M, p.N, p.K, p.lda, p.ldw, p.ldc, res ? p.ldr : 0, bias, res,
                alignment_of(p.a), alignment_of(p.w), al_c, bias ? alignment_of(p.bias) : 0};
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan& pl = plans_[key];
  if (p.epilogue == GemmEpilogue::kQkv) return pl;  // not offered: ok = false

  const cudaDataType_t dt = cuda_type(p.dtype);
  const cublasComputeType_t ct =
      (p.dtype == DType::F32 && tf32_) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  VIT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&pl.op, ct, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  VIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  VIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  const cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  VIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
  if (bias) {
    VIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof(p.bias)));
  }
  VIT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl.a, dt, static_cast<uint64_t>(p.K), static_cast<uint64_t>(p.N), p.ldw));
  VIT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl.b, dt, static_cast<uint64_t>(p.K), static_cast<uint64_t>(p.M), p.lda));
  VIT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl.c, dt, static_cast<uint64_t>(p.N), static_cast<uint64_t>(p.M), res ? p.ldr : p.ldc));
  VIT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl.d, dt, static_cast<uint64_t>(p.N), static_cast<uint64_t>(p.M), p.ldc));

  cublasLtMatmulPreference_t pref = nullptr;
  VIT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                           &workspace_bytes_, sizeof(workspace_bytes_));
  const uint32_t aa = static_cast<uint32_t>(alignment_of(p.w)), ab = static_cast<uint32_t>(alignment_of(p.a)),
                 ac = static_cast<uint32_t>(al_c);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof(aa));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof(ab));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof(ac));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof(ac));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulAlgoGetHeuristic(handle_, pl.op, pl.a, pl.b, pl.c, pl.d, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  // "No algorithm" (NOT_SUPPORTED, or found == 0) means: use the custom kernel instead.
  if (st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
    pl.algo = result.algo;
    pl.ok = true;
  } else if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) {
    VIT_CUBLAS_CHECK(st);
  }
  return pl;
}

bool LtGemm::supports(const GemmParams& p) {
  // No QKV scatter and no periodic residual (C = residual needs one row per output row).
  if (p.epilogue == GemmEpilogue::kQkv || p.residual_period > 0 || p.M <= 0 || p.N <= 0 || p.K <= 0) return false;
  return plan(p).ok;
}

void LtGemm::run(const GemmParams& p, cudaStream_t stream) {
  Plan& pl = plan(p);
  if (!pl.ok) {
    throw Error(ErrorCode::kUnsupported, "LtGemm: no cuBLASLt algorithm for M=" + std::to_string(p.M) +
                                             " N=" + std::to_string(p.N) + " K=" + std::to_string(p.K));
  }
  if (p.bias) {
    VIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof(p.bias)));
  }
  const bool res = p.epilogue == GemmEpilogue::kResidual;
  const float alpha = 1.0f, beta = res ? 1.0f : 0.0f;
  const void* cptr = res ? p.residual : p.c;
  VIT_CUBLAS_CHECK(cublasLtMatmul(handle_, pl.op, &alpha, p.w, pl.a, p.a, pl.b, &beta, cptr, pl.c, p.c, pl.d, &pl.algo,
                                  workspace_, workspace_bytes_, stream));
  if (p.epilogue == GemmEpilogue::kAct) {
    ActivationParams g;
    g.dtype = p.dtype;
    g.x = p.c;
    g.rows = p.M;
    g.cols = p.N;
    g.ld = p.ldc;
    g.act = p.act;
    launch_activation(g, stream);
  }
}

}  // namespace vit::gpu
