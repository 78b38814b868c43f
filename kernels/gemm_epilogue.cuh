// vit-infer: the fused GEMM epilogue shared by the mma.sync kernels (gemm.cu) and the Hopper
// wgmma kernel (gemm_sm90.cu): one fp32 accumulator value -> (+ bias) (GELU | + residual) ->
// storage type, stored at y[row, col] (rows ldc apart) or, for kQkv, scattered to
// [3, B, heads, tokens, head_dim]. Included by .cu files only (device code).
#pragma once

#include <cstdint>

// Angle brackets: the CPU emulator shadows device_common.cuh through its include path.
#include <device_common.cuh>
#include "gemm.cuh"

namespace vit::kern {

// Element index of output (row, col) in p.c: [M, N] rows ldc apart, or the QKV scatter layout.
__device__ __forceinline__ int64_t gemm_out_index(const GemmParams& p, int row, int col) {
  if (p.epilogue == GemmEpilogue::kQkv) {
    const int D = p.heads * p.head_dim;
    const int which = col / D, rem = col - which * D;
    const int h = rem / p.head_dim, d = rem - h * p.head_dim;
    const int b = row / p.tokens, t = row - b * p.tokens;
    const int64_t B = p.M / p.tokens;
    return (((static_cast<int64_t>(which) * B + b) * p.heads + h) * p.tokens + t) * p.head_dim + d;
  }
  return static_cast<int64_t>(row) * p.ldc + col;
}

// Bias, then GELU or the residual (read before the store: in-place x += ... is safe because the
// same thread reads, then writes, each element).
template <typename T>
__device__ __forceinline__ float gemm_value(const GemmParams& p, int row, int col, float v) {
  if (p.bias) v += to_f(static_cast<const T*>(p.bias)[col]);
  if (p.epilogue == GemmEpilogue::kGelu) v = gelu_erf(v);
  else if (p.epilogue == GemmEpilogue::kResidual) {
    const int rr = p.residual_period > 0 ? row % p.residual_period : row;
    v += to_f(static_cast<const T*>(p.residual)[static_cast<int64_t>(rr) * p.ldr + col]);
  }
  return v;
}

template <typename T>
__device__ __forceinline__ void gemm_store(const GemmParams& p, int row, int col, float v) {
  static_cast<T*>(p.c)[gemm_out_index(p, row, col)] = from_f<T>(gemm_value<T>(p, row, col, v));
}

// Columns col and col + 1 of one row (col + 1 may be past N). 16-bit types store the pair as one
// 32-bit word when both land next to each other at a 4-byte aligned address.
template <typename T>
__device__ __forceinline__ void gemm_store2(const GemmParams& p, int row, int col, float v0, float v1) {
  if (col + 1 >= p.N) {
    if (col < p.N) gemm_store<T>(p, row, col, v0);
    return;
  }
  const int64_t i0 = gemm_out_index(p, row, col), i1 = gemm_out_index(p, row, col + 1);
  T* c = static_cast<T*>(p.c);
  if constexpr (sizeof(T) == 2) {
    if (i1 == i0 + 1 && (reinterpret_cast<uintptr_t>(c + i0) & 3u) == 0) {
      *reinterpret_cast<uint32_t*>(c + i0) =
          pack2<T>(gemm_value<T>(p, row, col, v0), gemm_value<T>(p, row, col + 1, v1));
      return;
    }
  }
  c[i0] = from_f<T>(gemm_value<T>(p, row, col, v0));
  c[i1] = from_f<T>(gemm_value<T>(p, row, col + 1, v1));
}

}  // namespace vit::kern
