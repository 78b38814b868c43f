// vit-infer GPU emulator runtime (see emu.h): the fiber scheduler, barriers, cp.async groups and
// the mock CUDA runtime calls. Single-threaded and deterministic: fibers of a block run in
// thread order until they reach a scheduling point; barriers release when every live thread of
// their scope has arrived.
#include "emu.h"

#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

EmuIdx threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace vit {
// Weak: the emulated-engine test links src/gpu/cuda_engine.cpp, which has the real definition
// (it asks the mock runtime, which reports one device).
__attribute__((weak)) bool cuda_device_available() noexcept { return true; }
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
struct CUstream_st {
  bool capturing = false;
  bool invalidated = false;  // an illegal call happened during the capture
  std::vector<std::function<void()>> ops;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point t{};
  bool recorded = false;
};
struct CUgraph_st {
  std::vector<std::function<void()>> ops;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> ops;
};

namespace emu {
namespace {

// One lock for the runtime's bookkeeping. Kernels themselves run single-threaded per launch (the
// fiber scheduler is global state), so launches from different host threads are serialised too.
std::recursive_mutex& rt_mutex() {
  static std::recursive_mutex m;
  return m;
}

struct MemState {
  size_t limit = 0, used = 0;
  std::map<void*, size_t> live;
  std::deque<std::pair<void*, size_t>> quarantine;
  size_t quarantined = 0;
  MemState() {
    limit = size_t{80} << 30;
    if (const char* e = std::getenv("VIT_EMU_DEVICE_MEMORY")) limit = static_cast<size_t>(std::strtoull(e, nullptr, 10));
  }
};
MemState& mem() {
  static MemState m;
  return m;
}
uint64_t g_launches = 0;

}  // namespace

void set_device_memory_limit(size_t bytes) {
  std::lock_guard<std::recursive_mutex> lk(rt_mutex());
  mem().limit = bytes;
}
size_t device_memory_used() {
  std::lock_guard<std::recursive_mutex> lk(rt_mutex());
  return mem().used;
}
uint64_t launches_run() { return g_launches; }

void submit(cudaStream_t s, std::function<void()> op) {
  std::lock_guard<std::recursive_mutex> lk(rt_mutex());
  if (s && s->capturing) {
    s->ops.push_back(std::move(op));
    return;
  }
  ++g_launches;
  op();
}

}  // namespace emu

namespace {
std::vector<CUstream_st*> g_capture_streams;
void invalidate_captures() {
  for (CUstream_st* s : g_capture_streams) s->invalidated = true;
}
// Sets the last error like the runtime does for a failing call, and returns it.
cudaError_t fail_call(cudaError_t e) {
  if (emu::g_err == cudaSuccess) emu::g_err = e;
  return e;
}
// A call that may not happen while a stream is captured (synchronisation, allocation, blocking
// copies) invalidates the capture and fails, as the driver does for ThreadLocal captures.
cudaError_t capture_guard() {
  if (!g_capture_streams.empty()) {
    invalidate_captures();
    return fail_call(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;
}
}  // namespace

#define EMU_LOCK std::lock_guard<std::recursive_mutex> emu_lock_(emu::rt_mutex())

cudaError_t cudaGetLastError() {
  const cudaError_t e = emu::g_err;
  emu::g_err = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return emu::g_err; }
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    default: return "emulated launch failure";
  }
}
cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : fail_call(cudaErrorInvalidValue); }
cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  *v = 8;  // small, so that modest test shapes already take the 128x128 GEMM tiles
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  EMU_LOCK;
  const auto& m = emu::mem();
  *total_bytes = m.limit;
  *free_bytes = m.limit > m.used ? m.limit - m.used : 0;
  return cudaSuccess;
}
cudaError_t cudaMalloc(void** p, size_t n) {
  EMU_LOCK;
  *p = nullptr;
  if (cudaError_t e = capture_guard()) return e;
  auto& m = emu::mem();
  const size_t sz = (std::max<size_t>(n, 1) + 255) / 256 * 256;
  if (m.used + sz > m.limit) return fail_call(cudaErrorMemoryAllocation);
  *p = std::aligned_alloc(256, sz);
  if (!*p) return fail_call(cudaErrorMemoryAllocation);
  m.used += sz;
  m.live[*p] = sz;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  EMU_LOCK;
  if (!p) return cudaSuccess;
  if (cudaError_t e = capture_guard()) return e;
  auto& m = emu::mem();
  auto it = m.live.find(p);
  if (it == m.live.end()) return fail_call(cudaErrorInvalidValue);
  const size_t sz = it->second;
  m.live.erase(it);
  m.used -= sz;
  // Poisoned and kept out of reuse for a while: a graph or kernel still holding the pointer
  // reads NaN (and a later allocation cannot land at the same address and hide the bug).
  std::memset(p, 0xFF, sz);
  m.quarantine.emplace_back(p, sz);
  m.quarantined += sz;
  while (m.quarantined > (size_t{256} << 20) && !m.quarantine.empty()) {
    std::free(m.quarantine.front().first);
    m.quarantined -= m.quarantine.front().second;
    m.quarantine.pop_front();
  }
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t n) {
  EMU_LOCK;
  if (cudaError_t e = capture_guard()) return e;
  *p = std::aligned_alloc(256, (std::max<size_t>(n, 1) + 255) / 256 * 256);
  return *p ? cudaSuccess : fail_call(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void* p) {
  EMU_LOCK;
  if (cudaError_t e = capture_guard()) return e;
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
  EMU_LOCK;
  if (cudaError_t e = capture_guard()) return e;
  std::memcpy(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int v, size_t n) {
  EMU_LOCK;
  if (cudaError_t e = capture_guard()) return e;
  std::memset(p, v, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind, cudaStream_t s) {
  emu::submit(s, [=] { std::memcpy(dst, src, n); });
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t s) {
  emu::submit(s, [=] { std::memset(p, v, n); });
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  EMU_LOCK;
  if (cudaError_t e = capture_guard()) return e;
  return cudaGetLastError();
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = new CUstream_st;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  EMU_LOCK;
  if (!s || s->capturing) return fail_call(cudaErrorInvalidResourceHandle);
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  EMU_LOCK;
  if (cudaError_t e = capture_guard()) return e;
  // Asynchronous faults surface at the next synchronisation, as on the device.
  return cudaGetLastError();
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t e, unsigned) {
  return e ? cudaSuccess : fail_call(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  *e = new CUevent_st;
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e) return fail_call(cudaErrorInvalidResourceHandle);
  emu::submit(s, [e] {
    e->t = std::chrono::steady_clock::now();
    e->recorded = true;
  });
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  EMU_LOCK;
  if (!e) return fail_call(cudaErrorInvalidResourceHandle);
  if (cudaError_t err = capture_guard()) return err;
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (!a || !b || !a->recorded || !b->recorded) return fail_call(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  EMU_LOCK;
  if (!s) return fail_call(cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot be captured
  if (s->capturing) return fail_call(cudaErrorInvalidValue);
  s->capturing = true;
  s->invalidated = false;
  s->ops.clear();
  g_capture_streams.push_back(s);
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  EMU_LOCK;
  *g = nullptr;
  if (!s || !s->capturing) return fail_call(cudaErrorInvalidValue);
  s->capturing = false;
  for (size_t i = 0; i < g_capture_streams.size(); ++i)
    if (g_capture_streams[i] == s) g_capture_streams.erase(g_capture_streams.begin() + static_cast<long>(i));
  if (s->invalidated) {
    s->ops.clear();
    return fail_call(cudaErrorStreamCaptureInvalidated);
  }
  *g = new CUgraph_st{std::move(s->ops)};
  s->ops.clear();
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long) {
  if (!g) return fail_call(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{g->ops};
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
  if (!e) return fail_call(cudaErrorInvalidResourceHandle);
  for (const auto& op : e->ops) emu::submit(s, op);
  return cudaSuccess;
}
