// vit-infer: host-side launch helpers shared by the kernel launchers (through device_common.cuh)
// and by the CPU emulator's stand-in for that header (tests/gpu_emu/device_common.cuh): the grid
// size of a grid-stride loop, and the dtype dispatch macro. `__half` / `__nv_bfloat16` are
// whatever the including header defines (CUDA's types, or the emulator's).
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/tensor.h"

namespace vit::kern {

// Blocks for n elements at `threads` per block, at least 1, at most `cap` (the loops stride).
inline unsigned blocks_for(int64_t n, int threads, int64_t cap = 65535LL * 16) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b < cap ? b : cap);
}

}  // namespace vit::kern

// Runs the statement with `T` bound to the storage type of `dt` (a vit::DType).
#define VIT_DISPATCH_DTYPE(dt, launcher, ...)                                                   \
  switch (dt) {                                                                                 \
    case ::vit::DType::F32: { using T = float; __VA_ARGS__; break; }                            \
    case ::vit::DType::F16: { using T = __half; __VA_ARGS__; break; }                           \
    case ::vit::DType::BF16: { using T = __nv_bfloat16; __VA_ARGS__; break; }                   \
    default:                                                                                    \
      throw ::vit::Error(::vit::ErrorCode::kInvalidArgument,                                    \
                         std::string(launcher) + ": dtype must be F32, F16 or BF16");           \
  }
