// vit-infer GPU emulator: runs CUDA kernels written for kernels/*.cu on the CPU, one block at a
// time, each CUDA thread a cooperative fiber (ucontext). __syncthreads and every warp-collective
// (shuffles, ldmatrix, mma.sync) are scheduling points; a barrier that can never complete
// (divergent __syncthreads, a full-mask warp op with exited lanes) is reported as a launch error.
// cp.async copies land only at the cp.async.wait_group that covers them, and their shared
// destination is poisoned (0xFF) at issue, so reading a stage before waiting shows up as NaN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <utility>

#include "cuda_runtime_api.h"

struct EmuIdx {
  unsigned x = 0, y = 0, z = 0;
};
extern EmuIdx threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

namespace emu {

// Records a launch error (first one wins; reported by cudaGetLastError / cudaDeviceSynchronize).
void error(const std::string& what);
// Runs `body` as every thread of every block of the grid.
void run_grid(dim3 grid, dim3 block, size_t dyn_smem, const std::function<void()>& body);

void syncthreads();
void warp_barrier();
int lane();
// 16 words per lane, shared by the 32 lanes of the calling thread's warp.
uint32_t* warp_slot(int lane);
void* dyn_smem_ptr();
template <typename T> T* dyn_smem() { return static_cast<T*>(dyn_smem_ptr()); }

// cp.async state of the calling thread.
void cp_async16(void* dst, const void* src, bool valid);
void cp_async_commit();
void cp_async_wait(int n);

// Stream work: runs `op` now, or records it into the graph when `s` is being captured.
void submit(cudaStream_t s, std::function<void()> op);
// Device-memory budget of the mock cudaMalloc (bytes; default 80 GiB or $VIT_EMU_DEVICE_MEMORY).
void set_device_memory_limit(size_t bytes);
size_t device_memory_used();
// Number of kernel launches actually executed (graph replays included), for tests.
uint64_t launches_run();

template <class... A>
struct Launcher {
  void (*f)(A...);
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  Launcher(void (*fn)(A...), dim3 g, dim3 b, size_t s, cudaStream_t st)
      : f(fn), grid(g), block(b), smem(s), stream(st) {}
  Launcher(void (*fn)(A...), dim3 g, dim3 b, size_t s) : Launcher(fn, g, b, s, nullptr) {}
  Launcher(void (*fn)(A...), dim3 g, dim3 b) : Launcher(fn, g, b, 0, nullptr) {}
  void operator()(A... args) const {
    // The arguments are copied (as the driver copies kernel parameters at launch / capture).
    auto fn = f;
    const dim3 g = grid, b = block;
    const size_t sm = smem;
    submit(stream, [fn, g, b, sm, tup = std::make_tuple(args...)] {
      run_grid(g, b, sm, [&] { std::apply(fn, tup); });
    });
  }
};

}  // namespace emu
