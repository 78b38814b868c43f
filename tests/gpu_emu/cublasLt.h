// vit-infer GPU emulator: the cuBLASLt types that src/gpu/lt_gemm.h names, so that the CUDA
// engine compiles against the emulator. There is no emulated cuBLASLt: lt_gemm_stub.cpp makes
// LtGemm::supports() return false, so every GEMM takes the custom (emulated) kernels.
#pragma once

#include <cstdint>

typedef int cublasStatus_t;
constexpr cublasStatus_t CUBLAS_STATUS_SUCCESS = 0;
typedef struct cublasLtContext* cublasLtHandle_t;
typedef struct cublasLtMatmulDescOpaque_t* cublasLtMatmulDesc_t;
typedef struct cublasLtMatrixLayoutOpaque_t* cublasLtMatrixLayout_t;
typedef struct {
  uint64_t data[8];
} cublasLtMatmulAlgo_t;
