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
  if (p.epilogue == GemmEpilogue::kAct) v = act::apply(p.act, v);
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

// The same epilogue resolved at compile time (EPI, BIAS: p.bias != nullptr), for kernels whose
// thread holds a few rows x column pairs 8 apart (the wgmma accumulator fragment): the rows'
// parts of the output / residual indices are computed once per row (row_part), the columns'
// parts and the bias once per column pair (cols), shared by the rows, and the QKV scatter's
// (which, head, d) of the pair advances by 8 columns without dividing. Same arithmetic, in the
// same order, as gemm_value / gemm_store2, so the results are bit-identical to theirs.
// The QKV output index splits as row part b*T*D + t*hd plus column part which*M*D + h*T*hd + d.
template <typename T, GemmEpilogue EPI, bool BIAS>
struct GemmTileEpilogue {
  struct Row {
    int64_t out = 0, res = 0;  // row parts of the output and residual indices
    bool live = false;         // row < M
  };
  struct Cols {
    int col = 0;                     // the pair's first column (< N)
    bool two = false;                // col + 1 < N
    int64_t out0 = 0, out1 = 0;      // column parts of the two output indices
    float b0 = 0.0f, b1 = 0.0f;      // their bias
  };
  const GemmParams& p;
  int D = 0, which = 0, h = 0, d = 0;  // kQkv: hidden size and (which, head, d) of the next pair

  __device__ __forceinline__ GemmTileEpilogue(const GemmParams& params, int first_col) : p(params) {
    if constexpr (EPI == GemmEpilogue::kQkv) {
      D = p.heads * p.head_dim;
      which = first_col / D;
      const int rem = first_col - which * D;
      h = rem / p.head_dim;
      d = rem - h * p.head_dim;
    }
  }

  __device__ __forceinline__ Row row_part(int row) const {
    Row r;
    r.live = row < p.M;
    if constexpr (EPI == GemmEpilogue::kQkv) {
      const int b = row / p.tokens, t = row - b * p.tokens;
      r.out = static_cast<int64_t>(b) * p.tokens * D + static_cast<int64_t>(t) * p.head_dim;
    } else {
      r.out = static_cast<int64_t>(row) * p.ldc;
    }
    if constexpr (EPI == GemmEpilogue::kResidual)
      r.res = static_cast<int64_t>(p.residual_period > 0 ? row % p.residual_period : row) * p.ldr;
    return r;
  }

  // The pair at column `col` (col < N); then steps the QKV state 8 columns on.
  __device__ __forceinline__ Cols cols(int col) {
    Cols c;
    c.col = col;
    c.two = col + 1 < p.N;
    if constexpr (EPI == GemmEpilogue::kQkv) {
      const int64_t MD = static_cast<int64_t>(p.M) * D, Thd = static_cast<int64_t>(p.tokens) * p.head_dim;
      c.out0 = which * MD + h * Thd + d;
      if (d + 1 < p.head_dim) {
        c.out1 = c.out0 + 1;
      } else {  // col + 1 starts the next head (odd head_dim only: col is even)
        const int h1 = h + 1 == p.heads ? 0 : h + 1, w1 = h + 1 == p.heads ? which + 1 : which;
        c.out1 = w1 * MD + h1 * Thd;
      }
      d += 8;
      while (d >= p.head_dim) {
        d -= p.head_dim;
        if (++h == p.heads) {
          h = 0;
          ++which;
        }
      }
    } else {
      c.out0 = col;
      c.out1 = col + 1;
    }
    if constexpr (BIAS) {
      const T* bias = static_cast<const T*>(p.bias);
      c.b0 = to_f(bias[col]);
      if (c.two) c.b1 = to_f(bias[col + 1]);
    }
    return c;
  }

  __device__ __forceinline__ float value(const Row& r, int col, float bias, float v) const {
    if constexpr (BIAS) v += bias;
    if constexpr (EPI == GemmEpilogue::kAct) v = act::apply(p.act, v);
    if constexpr (EPI == GemmEpilogue::kResidual) v += to_f(static_cast<const T*>(p.residual)[r.res + col]);
    return v;
  }

  __device__ __forceinline__ void store(const Row& r, const Cols& c, float v0, float v1) const {
    if (!r.live) return;
    T* out = static_cast<T*>(p.c);
    const int64_t i0 = r.out + c.out0;
    const float y0 = value(r, c.col, c.b0, v0);
    if (!c.two) {
      out[i0] = from_f<T>(y0);
      return;
    }
    const int64_t i1 = r.out + c.out1;
    const float y1 = value(r, c.col + 1, c.b1, v1);
    if constexpr (sizeof(T) == 2) {
      if (i1 == i0 + 1 && (reinterpret_cast<uintptr_t>(out + i0) & 3u) == 0) {
        *reinterpret_cast<uint32_t*>(out + i0) = pack2<T>(y0, y1);
        return;
      }
    }
    out[i0] = from_f<T>(y0);
    out[i1] = from_f<T>(y1);
  }
};

}  // namespace vit::kern
