// vit-infer GPU emulator: the host stand-in for kernels/device_common.cuh. Same names and
// semantics; the inline PTX (cp.async, ldmatrix[.trans], mma.sync m16n8k16.row.col) is
// implemented from the PTX ISA's fragment tables, independently of how the kernels use it:
//   A (16x16, row): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B (16x8, col):  b0 = (k 2t..2t+1, n g), b1 = (k 2t+8..2t+9, n g)
//   C/D (16x8):     d0, d1 = (g, 2t..2t+1), d2, d3 = (g+8, 2t..2t+1)      g = lane/4, t = lane%4
//   ldmatrix x4: lanes 8j..8j+7 address the rows of matrix j; lane receives row lane/4, cols
//   2*(lane%4), +1 (.trans: rows 2*(lane%4), +1 of column lane/4), low half = lower column/row.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "core/tensor.h"
#include <launch_common.h>  // kernels/: blocks_for, VIT_DISPATCH_DTYPE
#include "emu.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__

#include "core/activation_math.h"  // the activations, compiled here as host code

// Shared-space address of a pointer into the block's dynamic shared memory (the emulated shared
// window; static __shared__ arrays are host statics and have no shared address here).
inline size_t __cvta_generic_to_shared(const void* p) { return emu::smem_addr(p); }

struct __half {
  uint16_t x;
};
struct __nv_bfloat16 {
  uint16_t x;
};

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

inline float __shfl_xor_sync(unsigned mask, float v, int o) {
  if (mask != 0xffffffffu) emu::error("__shfl_xor_sync: only full masks are emulated");
  const int l = emu::lane();
  uint32_t b;
  std::memcpy(&b, &v, 4);
  emu::warp_slot(l)[0] = b;
  emu::warp_barrier();
  b = emu::warp_slot(l ^ o)[0];
  emu::warp_barrier();
  float r;
  std::memcpy(&r, &b, 4);
  return r;
}
inline int __shfl_xor_sync(unsigned mask, int v, int o) {
  if (mask != 0xffffffffu) emu::error("__shfl_xor_sync: only full masks are emulated");
  const int l = emu::lane();
  emu::warp_slot(l)[0] = static_cast<uint32_t>(v);
  emu::warp_barrier();
  const int r = static_cast<int>(emu::warp_slot(l ^ o)[0]);
  emu::warp_barrier();
  return r;
}
inline float __shfl_sync(unsigned mask, float v, int src) {
  if (mask != 0xffffffffu) emu::error("__shfl_sync: only full masks are emulated");
  const int l = emu::lane();
  uint32_t b;
  std::memcpy(&b, &v, 4);
  emu::warp_slot(l)[0] = b;
  emu::warp_barrier();
  b = emu::warp_slot(src & 31)[0];
  emu::warp_barrier();
  float r;
  std::memcpy(&r, &b, 4);
  return r;
}
inline void __syncthreads() { emu::syncthreads(); }

namespace vit::kern {

template <typename T> inline float to_f(T v);
template <> inline float to_f<float>(float v) { return v; }
template <> inline float to_f<__half>(__half v) { return half_to_float(v.x); }
template <> inline float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return bf16_to_float(v.x); }

template <typename T> inline T from_f(float v);
template <> inline float from_f<float>(float v) { return v; }
template <> inline __half from_f<__half>(float v) { return __half{float_to_half(v)}; }
template <> inline __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __nv_bfloat16{float_to_bf16(v)}; }

template <typename T> inline uint32_t pack2(float a, float b) {
  return static_cast<uint32_t>(from_f<T>(a).x) | (static_cast<uint32_t>(from_f<T>(b).x) << 16);
}

inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}


inline void cp_async16(void* smem, const void* gmem, bool valid) { emu::cp_async16(smem, gmem, valid); }
inline void cp_async_commit() { emu::cp_async_commit(); }
template <int N> inline void cp_async_wait() { emu::cp_async_wait(N); }

namespace detail {
inline void ldmatrix(uint32_t (&r)[4], const void* smem, bool trans) {
  const int l = emu::lane();
  if ((reinterpret_cast<uintptr_t>(smem) & 15u) != 0) emu::error("ldmatrix: row address not 16-byte aligned");
  uint64_t a = reinterpret_cast<uintptr_t>(smem);
  emu::warp_slot(l)[0] = static_cast<uint32_t>(a);
  emu::warp_slot(l)[1] = static_cast<uint32_t>(a >> 32);
  emu::warp_barrier();
  auto row = [](int lane) {
    const uint32_t* s = emu::warp_slot(lane);
    return reinterpret_cast<const uint16_t*>(static_cast<uintptr_t>(s[0] | (static_cast<uint64_t>(s[1]) << 32)));
  };
  for (int j = 0; j < 4; ++j) {
    uint16_t lo, hi;
    if (!trans) {
      const uint16_t* p = row(8 * j + l / 4);
      lo = p[2 * (l % 4)];
      hi = p[2 * (l % 4) + 1];
    } else {
      lo = row(8 * j + 2 * (l % 4))[l / 4];
      hi = row(8 * j + 2 * (l % 4) + 1)[l / 4];
    }
    r[j] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  }
  emu::warp_barrier();
}
}  // namespace detail

inline void ldmatrix_x4(uint32_t (&r)[4], const void* smem) { detail::ldmatrix(r, smem, false); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) { detail::ldmatrix(r, smem, true); }

template <typename T>
inline void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  const int l = emu::lane();
  uint32_t* s = emu::warp_slot(l);
  for (int i = 0; i < 4; ++i) s[i] = a[i];
  s[4] = b0;
  s[5] = b1;
  emu::warp_barrier();
  auto half_of = [](uint32_t w, int hi) {
    T v;
    v.x = static_cast<uint16_t>(hi ? (w >> 16) : (w & 0xffffu));
    return to_f<T>(v);
  };
  auto A = [&](int r, int k) {  // element (r, k) of the 16x16 A tile
    const int lane = (r % 8) * 4 + (k % 8) / 2;
    const int reg = (r >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
    return half_of(emu::warp_slot(lane)[reg], k % 2);
  };
  auto B = [&](int k, int n) {  // element (k, n) of the 16x8 B tile
    const int lane = n * 4 + (k % 8) / 2;
    return half_of(emu::warp_slot(lane)[4 + (k >= 8 ? 1 : 0)], k % 2);
  };
  const int g = l / 4, t = l % 4;
  float out[4];
  for (int e = 0; e < 4; ++e) {
    const int r = g + (e >= 2 ? 8 : 0), c = 2 * t + (e & 1);
    float acc = d[e];
    for (int k = 0; k < 16; ++k) acc = std::fma(A(r, k), B(k, c), acc);
    out[e] = acc;
  }
  emu::warp_barrier();
  for (int e = 0; e < 4; ++e) d[e] = out[e];
}

}  // namespace vit::kern

// Read-only cache loads are plain loads on the host.
template <typename T> inline T __ldg(const T* p) { return *p; }
