// vit-infer GPU emulator runtime (see emu.h): the fiber scheduler, barriers, cp.async groups and
// the mock CUDA runtime calls. Single-threaded and deterministic: fibers of a block run in
// thread order until they reach a scheduling point; barriers release when every live thread of
// their scope has arrived.
#include "emu.h"

#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

EmuIdx threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace vit {
bool cuda_device_available() noexcept { return true; }
}  // namespace vit

namespace emu {
namespace {

struct Copy {
  void* dst;
  const void* src;
  bool valid;
};

enum class St { kRun, kBlockWait, kWarpWait, kDone };

struct Fiber {
  ucontext_t ctx{};
  std::unique_ptr<char[]> stack;
  int tid = 0;
  St st = St::kRun;
  std::vector<Copy> open;
  std::deque<std::vector<Copy>> groups;
};

constexpr size_t kStack = 256 * 1024;
ucontext_t g_sched;
std::vector<Fiber> g_fibers;
Fiber* g_cur = nullptr;
const std::function<void()>* g_body = nullptr;
std::vector<uint32_t> g_slots;  // [warps][32][16]
std::vector<char> g_dyn;
cudaError_t g_err = cudaSuccess;
std::string g_msg;
uint64_t g_rng = 0x9e3779b97f4a7c15ULL;  // fixed seed: runs are reproducible

void land(const Copy& c) {
  if (c.valid) std::memcpy(c.dst, c.src, 16);
  else std::memset(c.dst, 0, 16);
}

void trampoline() {
  (*g_body)();
  bool pending = !g_cur->open.empty();
  for (const auto& grp : g_cur->groups) pending |= !grp.empty();
  if (pending) {
    // Not a hardware error, but a copy nobody waited for is never read: report it.
    error("thread exited with cp.async copies it never waited for");
    for (auto& grp : g_cur->groups)
      for (auto& c : grp) land(c);
    for (auto& c : g_cur->open) land(c);
  }
  g_cur->st = St::kDone;
  swapcontext(&g_cur->ctx, &g_sched);
}

void yield(St st) {
  g_cur->st = st;
  swapcontext(&g_cur->ctx, &g_sched);
}

void run_block(int nthreads) {
  for (int i = 0; i < nthreads; ++i) {
    Fiber& f = g_fibers[static_cast<size_t>(i)];
    if (!f.stack) f.stack.reset(new char[kStack]);
    f.tid = i;
    f.st = St::kRun;
    f.open.clear();
    f.groups.clear();
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.get();
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, trampoline, 0);
  }
  const int warps = (nthreads + 31) / 32;
  // Release the warp barrier of warp w if every lane has arrived (exited lanes are an error).
  auto try_release = [&](int w) {
    int waiting = 0, done = 0, n = 0;
    for (int l = 0; l < 32 && 32 * w + l < nthreads; ++l, ++n) {
      const St st = g_fibers[static_cast<size_t>(32 * w + l)].st;
      waiting += st == St::kWarpWait;
      done += st == St::kDone;
    }
    if (waiting == 0 || waiting + done != n) return false;
    if (done > 0 || n < 32) error("warp collective with exited or missing lanes");
    for (int l = 0; l < n; ++l) {
      Fiber& f = g_fibers[static_cast<size_t>(32 * w + l)];
      if (f.st == St::kWarpWait) f.st = St::kRun;
    }
    return true;
  };
  std::vector<int> runnable;
  for (;;) {
    // Warps advance independently between block barriers, in a pseudo-random order, so that a
    // warp can run several phases ahead of another: a missing __syncthreads (a stage reused
    // while another warp still reads it) then shows up as poisoned or stale data.
    runnable.clear();
    for (int w = 0; w < warps; ++w) {
      for (int l = 0; l < 32 && 32 * w + l < nthreads; ++l)
        if (g_fibers[static_cast<size_t>(32 * w + l)].st == St::kRun) {
          runnable.push_back(w);
          break;
        }
    }
    if (!runnable.empty()) {
      g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
      const int w = runnable[static_cast<size_t>((g_rng >> 33) % runnable.size())];
      for (int l = 0; l < 32 && 32 * w + l < nthreads; ++l) {
        const int i = 32 * w + l;
        Fiber& f = g_fibers[static_cast<size_t>(i)];
        if (f.st != St::kRun) continue;
        g_cur = &f;
        threadIdx.x = static_cast<unsigned>(i % blockDim.x);
        threadIdx.y = static_cast<unsigned>((i / blockDim.x) % blockDim.y);
        threadIdx.z = static_cast<unsigned>(i / (blockDim.x * blockDim.y));
        swapcontext(&g_sched, &f.ctx);
      }
      g_cur = nullptr;
      try_release(w);
      continue;
    }
    bool released = false, all_done = true, any_block_wait = false, block_complete = true;
    for (int w = 0; w < warps; ++w) released |= try_release(w);
    if (released) continue;
    for (int i = 0; i < nthreads; ++i) {
      const St st = g_fibers[static_cast<size_t>(i)].st;
      all_done &= st == St::kDone;
      any_block_wait |= st == St::kBlockWait;
      block_complete &= st == St::kBlockWait || st == St::kDone;
    }
    if (all_done) return;
    if (any_block_wait && block_complete) {
      for (int i = 0; i < nthreads; ++i)
        if (g_fibers[static_cast<size_t>(i)].st == St::kBlockWait) g_fibers[static_cast<size_t>(i)].st = St::kRun;
      continue;
    }
    error("deadlock: threads wait at barriers that cannot complete (divergent __syncthreads or warp op)");
    return;  // the fibers are abandoned; their stacks are reused by the next block
  }
}

}  // namespace

void error(const std::string& what) {
  if (g_err == cudaSuccess) {
    g_err = cudaErrorLaunchFailure;
    g_msg = what;
    std::fprintf(stderr, "[gpu-emu] error in block (%u,%u,%u) thread %u: %s\n", blockIdx.x, blockIdx.y, blockIdx.z,
                 g_cur ? static_cast<unsigned>(g_cur->tid) : 0u, what.c_str());
  }
}

void run_grid(dim3 grid, dim3 block, size_t dyn_smem, const std::function<void()>& body) {
  const int64_t nthreads = int64_t{block.x} * block.y * block.z;
  if (nthreads <= 0 || nthreads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
      grid.z > 65535) {
    error("invalid launch configuration");
    return;
  }
  if (dyn_smem > 48 * 1024) {
    error("dynamic shared memory above 48 KB without cudaFuncSetAttribute");
    return;
  }
  if (g_fibers.size() < static_cast<size_t>(nthreads)) g_fibers.resize(static_cast<size_t>(nthreads));
  g_slots.assign(static_cast<size_t>((nthreads + 31) / 32) * 32 * 16, 0);
  g_dyn.assign(dyn_smem + 16, static_cast<char>(0xFF));
  g_body = &body;
  blockDim = block;
  gridDim = grid;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        blockIdx.x = x;
        blockIdx.y = y;
        blockIdx.z = z;
        run_block(static_cast<int>(nthreads));
        if (g_err != cudaSuccess && g_msg.rfind("deadlock", 0) == 0) return;
      }
}

void syncthreads() { yield(St::kBlockWait); }
void warp_barrier() { yield(St::kWarpWait); }
int lane() { return g_cur->tid % 32; }
uint32_t* warp_slot(int l) { return &g_slots[(static_cast<size_t>(g_cur->tid / 32) * 32 + static_cast<size_t>(l)) * 16]; }
void* dyn_smem_ptr() {
  const uintptr_t p = reinterpret_cast<uintptr_t>(g_dyn.data());
  return reinterpret_cast<void*>((p + 15) & ~uintptr_t{15});
}

void cp_async16(void* dst, const void* src, bool valid) {
  if ((reinterpret_cast<uintptr_t>(dst) & 15u) != 0) error("cp.async: shared destination not 16-byte aligned");
  if (valid && (reinterpret_cast<uintptr_t>(src) & 15u) != 0) error("cp.async: global source not 16-byte aligned");
  std::memset(dst, 0xFF, 16);  // in flight: contents undefined until the wait
  g_cur->open.push_back({dst, src, valid});
}
void cp_async_commit() {
  g_cur->groups.push_back(std::move(g_cur->open));
  g_cur->open.clear();
}
void cp_async_wait(int n) {
  while (static_cast<int>(g_cur->groups.size()) > n) {
    for (const Copy& c : g_cur->groups.front()) land(c);
    g_cur->groups.pop_front();
  }
}

}  // namespace emu

// --- mock runtime -------------------------------------------------------------------------
cudaError_t cudaGetLastError() {
  const cudaError_t e = emu::g_err;
  emu::g_err = cudaSuccess;
  return e;
}
const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : e == cudaErrorMemoryAllocation ? "out of memory" : "emulated launch failure";
}
cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  *v = 8;  // small, so that modest test shapes already take the 128x128 GEMM tiles
  return cudaSuccess;
}
cudaError_t cudaMalloc(void** p, size_t n) {
  *p = std::aligned_alloc(256, (n + 255) / 256 * 256);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
  std::memcpy(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int v, size_t n) {
  std::memset(p, v, n);
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaGetLastError(); }
