// vit-infer GPU emulator: host stand-in for kernels/gemm_sm90_ptx.cuh. Every wrapper forwards to
// the emulator runtime (emu.cpp), whose semantics were written from the PTX ISA text, not from
// the kernel: mbarrier phases / arrival counts / transaction bytes (9.7.13.15), TMA tile loads
// with zero-filled out-of-bounds elements and the 128-byte swizzle (5.5, cuda.h's
// cuTensorMapEncodeTiled requirements), wgmma.mma_async with matrix-descriptor decoding, the
// canonical K-major SWIZZLE_128B layout and the m64nNk16 accumulator fragment (9.7.15.5.1),
// wgmma.fence / commit_group / wait_group (accumulators undefined until the wait).
#pragma once

#include <cuda.h>

#include <cstdint>

#include "device_common.cuh"
#include "emu.h"

namespace vit::kern::sm90 {

inline uint32_t smem_u32(const void* p) { return emu::smem_addr(p); }

inline void mbar_init(uint64_t* bar, uint32_t count) { emu::mbar_init(smem_u32(bar), count); }
inline void fence_barrier_init() { emu::mbar_fence_init(); }
inline void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) { emu::mbar_arrive(smem_u32(bar), bytes); }
inline void mbar_arrive(uint64_t* bar) { emu::mbar_arrive(smem_u32(bar), 0); }
inline bool mbar_try_wait(uint64_t* bar, uint32_t parity) { return emu::mbar_try_wait(smem_u32(bar), parity); }

inline void tma_load_2d(void* dst, const CUtensorMap* map, int c0, int c1, uint64_t* bar) {
  emu::tma_load_2d(smem_u32(dst), map, c0, c1, smem_u32(bar));
}

inline void wgmma_fence() { emu::wgmma_fence(); }
inline void wgmma_commit() { emu::wgmma_commit(); }
template <int N> inline void wgmma_wait() { emu::wgmma_wait(N); }

template <int R> inline void setmaxnreg_inc() { emu::setmaxnreg(R); }
template <int R> inline void setmaxnreg_dec() { emu::setmaxnreg(R); }

template <typename T, int N>
inline void wgmma_m64k16(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b) {
  static_assert(N % 8 == 0 && N >= 8 && N <= 256, "wgmma n must be a multiple of 8 in 8..256");
  emu::wgmma_issue(d, N, desc_a, desc_b, sizeof(T) == 2 && std::is_same<T, __nv_bfloat16>::value);
}

}  // namespace vit::kern::sm90
