// vit-infer: the Hopper GEMM, y[M, N] = x[M, K] W[N, K]^T with the epilogues of gemm.cuh (bias,
// bias + GELU, bias + residual, QKV scatter), 16-bit storage (F16 / BF16), fp32 accumulation.
// wgmma.mma_async (m64nNk16, both operands from 128B-swizzled shared memory) fed by TMA over a
// 4-stage mbarrier pipeline; one producer warpgroup, two consumer warpgroups; 128 x 256 block
// tiles, any M / N / K (TMA zero-fills the tails, stores are predicated). Built for sm_90a only
// (CMake adds -gencode arch=compute_90a,code=sm_90a for gemm_sm90.cu); other targets compile an
// empty kernel, and gemm_sm90_available() is false there.
#pragma once

#include <cuda_runtime_api.h>

#include "gemm.cuh"

namespace vit {

// True when the current device can run the kernel: compute capability 9.0, the driver offers
// cuTensorMapEncodeTiled, and a probe kernel from the same translation unit reports that the
// sm_90a image is the one loaded. Cached per device; must not be called during stream capture
// (the first call per device allocates and synchronises).
bool gemm_sm90_available();
// True when launch_gemm_sm90 accepts p: F16 / BF16, lda and ldw multiples of 8 (16-byte TMA
// strides), x and W 16-byte aligned, ldc / QKV constraints as launch_gemm.
bool gemm_sm90_supports(const GemmParams& p);
// Validates like launch_gemm (throws vit::Error kInvalidArgument, or kUnsupported when
// !gemm_sm90_supports / !gemm_sm90_available) and launches on `stream`. p.kernel is ignored.
void launch_gemm_sm90(const GemmParams& p, cudaStream_t stream);

}  // namespace vit
