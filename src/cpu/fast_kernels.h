// vit-infer: the non-GEMM kernels of the fast CPU engine (fast_engine.cpp): LayerNorm, fused
// flash-style attention and fp32 -> bf16 conversion. All activations are row-major; bf16 is
// stored as uint16_t (the upper half of an fp32, rounded to nearest even). Statistics (LayerNorm
// mean / variance, softmax max / sum) are always fp32. The same source (fast_kernels.inc) is
// compiled once per ISA level (baseline, AVX2+FMA, AVX-512, AVX-512 + AVX512-BF16) and picked at run time by CpuIsa, so
// the AVX2 path runs (and is tested) on an AVX-512 machine when VIT_CPU_ISA forces it.
#pragma once

#include <cstdint>

#include "cpu/cpu_isa.h"

namespace vit::fastcpu {

// Rounds to nearest even; NaN stays NaN (quiet), inf stays inf.
inline uint16_t to_bf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float from_bf16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

struct Kernels {
  // y = LN(x) * g + b per row; x [rows, D] fp32, y [rows, D] fp32 or bf16. With a residual r
  // [rows, D] (and sum non-null): sum = x + r is written too and y = LN(sum) (the fused
  // residual add + LayerNorm of the graph). rms: RMSNorm, x * rsqrt(mean(x^2) + eps) * g + b.
  void (*layer_norm)(const float* x, const float* r, float* sum, void* y, bool y_bf16, int64_t rows, int64_t D,
                     const float* g, const float* b, float eps, bool rms, int nt);
  // Multi-head self-attention without a T x T matrix: per (image, head, block of query rows),
  // key blocks stream through an online softmax (running max m and sum l in fp32), so only a
  // [query block, key block] score tile exists at a time (32 x 64 on the AVX2 / baseline levels;
  // 4 rows x up to 512 keys on the AVX-512 ones, a whole row of ViT at 224).
  //   qkv: [B, T, 3D] fp32, per token q | k | v, each head-major (head h = columns h*hd .. +hd-1)
  //   out: [B, T, D] fp32 or bf16, heads concatenated head-major
  //   size: [B, T] token sizes or null: proportional attention (ToMe), key j's logit + log size[j]
  //         (added to the scaled scores before the softmax's max, as ToMeAttention adds it)
  // With a bf16 output on the AVX512-BF16 level, q, k, v and the probabilities go through the bf16
  // dot-product unit (fp32 accumulation and softmax statistics); otherwise everything is fp32.
  void (*attention)(const float* qkv, void* out, bool out_bf16, int64_t B, int64_t T, int64_t H, int64_t hd, int nt,
                    const float* size);
  // dst[i] = bf16(src[i]), i < n.
  void (*to_bf16)(const float* src, uint16_t* dst, int64_t n, int nt);
  // The SwiGLU middle: y[r, j] = silu(x[r, j]) * x[r, I + j], x [rows, 2I] fp32 (gate | value),
  // y [rows, I] fp32 or bf16.
  void (*glu_silu)(const float* x, void* y, bool y_bf16, int64_t rows, int64_t I, int nt);
  // The int8 run's GEMM inputs (cpu/int8.h), x [rows, K] fp32 or bf16 -> q [rows, K] u8, rounded to
  // nearest even and saturated to 0..255. Static (one scale per tensor, SmoothQuant's per-channel
  // divisor folded in): q = round(x[r, k] * mul[k]) + zp.
  void (*quantize_u8)(const void* x, bool x_bf16, uint8_t* q, int64_t rows, int64_t K, const float* mul, int32_t zp,
                      int nt);
  // Dynamic, per row (token): x' = x * inv_smooth[k] (null: x), the row's range [lo, hi] with 0 in it
  // gives scale[r] = (hi - lo) / 255 (1 for a row of zeros) and zp[r] = round(-lo / scale[r]); q =
  // round(x' / scale[r]) + zp[r]. x' = scale[r] * (q - zp[r]) to within half a step.
  void (*quantize_u8_rows)(const void* x, bool x_bf16, uint8_t* q, float* scale, float* zp, int64_t rows, int64_t K,
                           const float* inv_smooth, int nt);
  // The dynamic int8 GEMM's epilogue: acc [rows, N] = w_scale[n] * sum_k q[r, k] wq[n, k] (oneDNN's
  // output), y[r, n] = (accumulate ? y[r, n] : 0) + scale[r] * (acc[r, n] - zp[r] * colsum[n]) + bias[n]
  // (colsum[n] = w_scale[n] * sum_k wq[n, k]; bias may be null).
  void (*dequant_rows)(const float* acc, float* y, int64_t rows, int64_t N, const float* scale, const float* zp,
                       const float* colsum, const float* bias, bool accumulate, int nt);
};

// The kernel set compiled for `isa` (AMX and AVX512-BF16 share one: AVX-512 plus the bf16 dot
// products, on which the bf16 run's attention runs; the AMX tiles are the GEMMs').
const Kernels& kernels_for(CpuIsa isa);

}  // namespace vit::fastcpu
