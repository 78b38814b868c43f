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
// Runs `body` as every thread of every block of the grid. `kernel` identifies the kernel for its
// dynamic shared-memory limit (48 KB unless raised by cudaFuncSetAttribute; at most 227 KB).
void run_grid(dim3 grid, dim3 block, size_t dyn_smem, const std::function<void()>& body,
              const void* kernel = nullptr);

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

// Shared window: the running block's dynamic shared memory has shared-space addresses
// 16 .. 16 + size (so a 1024-byte aligned shared address is 1024-aligned on the host too);
// smem_addr of any other pointer is a launch error.
uint32_t smem_addr(const void* p);
void* smem_ptr(uint32_t addr, size_t bytes);
// Compute capability that cudaDeviceGetAttribute reports (default 9.0, as the H200).
void set_compute_capability(int major, int minor);

// sm_90 asynchronous operations (semantics from the PTX ISA, see emu.cpp). Addresses are
// shared-space addresses.
void mbar_init(uint32_t bar, uint32_t count);
void mbar_fence_init();
void mbar_arrive(uint32_t bar, uint32_t expect_tx_bytes);  // arrive (.expect_tx when bytes > 0)
bool mbar_try_wait(uint32_t bar, uint32_t parity);         // a scheduling point when false
void tma_load_2d(uint32_t dst, const void* tensor_map, int c0, int c1, uint32_t bar);
void wgmma_fence();
void wgmma_issue(float* d, int n, uint64_t desc_a, uint64_t desc_b, bool bf16);
void wgmma_commit();
void wgmma_wait(int pending);
void setmaxnreg(int regs);

// Stream work: runs `op` now, or records it into the graph when `s` is being captured.
void submit(cudaStream_t s, std::function<void()> op);
// Device-memory budget of the mock cudaMalloc (bytes; default 80 GiB or $VIT_EMU_DEVICE_MEMORY).
void set_device_memory_limit(size_t bytes);
size_t device_memory_used();
// The race check (emu.cpp, "unordered legacy-stream writes"): work about to be submitted to
// stream `s` whose parameter bytes (scanned for pointers) reach device memory that a legacy-stream
// write (pageable cudaMemcpy, cudaMemset) left unordered is reported as a launch error.
void check_unordered(cudaStream_t s, const void* params, size_t bytes, const char* what);
// Races reported so far (tests).
uint64_t races_found();
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
    auto tup = std::make_tuple(args...);
    check_unordered(stream, &tup, sizeof tup, "a kernel launch");
    submit(stream, [fn, g, b, sm, tup = std::move(tup)] {
      run_grid(g, b, sm, [&] { std::apply(fn, tup); }, reinterpret_cast<const void*>(fn));
    });
  }
};

}  // namespace emu
