// vit-infer GPU emulator runtime (see emu.h): the fiber scheduler, barriers, cp.async groups and
// the mock CUDA runtime calls. Single-threaded and deterministic: fibers of a block run in
// thread order until they reach a scheduling point; barriers release when every live thread of
// their scope has arrived.
#include "emu.h"

#include "core/tensor.h"
#include "cuda.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#define VIT_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VIT_EMU_ASAN 1
#endif
#endif
#ifdef VIT_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
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

// One wgmma.mma_async of the calling thread: its accumulator registers (d, n / 2 floats) and
// the two matrix descriptors.
struct WgOp {
  float* d;
  int n;
  uint64_t da, db;
  bool bf16;
};

// The fiber switch. On x86-64 a stack-pointer swap (emu_switch below: the callee-saved registers,
// MXCSR and the x87 control word), not glibc's swapcontext, which makes two rt_sigprocmask system
// calls per switch (~30 % of an emulated run's CPU time went to them) and whose ASan interceptor
// clears the shadow of the whole 256 KiB target stack at every switch; ASan is told of each switch
// through its fiber interface instead. Elsewhere ucontext.
#if defined(__x86_64__)
struct Ctx {
  void* sp = nullptr;
};
extern "C" void vit_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .p2align 4
  .globl vit_emu_switch
  .hidden vit_emu_switch
  .type vit_emu_switch, @function
vit_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size vit_emu_switch, .-vit_emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");
#else
struct Ctx {
  ucontext_t uc{};
};
#endif

struct Fiber {
  Ctx ctx;
  std::unique_ptr<char[]> stack;
  int tid = 0;
  St st = St::kRun;
  std::vector<Copy> open;
  std::deque<std::vector<Copy>> groups;
  // wgmma: issued but uncommitted ops, committed groups, whether a wgmma.fence came after the
  // last wait (i.e. after the thread could have touched its accumulators), and per accumulator
  // array the number of ops in flight and the value being accumulated (the registers themselves
  // read NaN until the wait that completes their last op).
  std::vector<WgOp> wg_open;
  std::deque<std::vector<WgOp>> wg_groups;
  bool wg_fenced = false;
  std::map<float*, std::pair<int, std::vector<float>>> wg_shadow;
};

// An mbarrier object (PTX ISA 9.7.13.15.1): expected arrival count, pending arrivals of the
// current phase, transaction count, and the number of completed phases.
struct Bar {
  int expected = 0, pending = 0;
  int64_t tx = 0;
  uint32_t phases = 0;
  bool fenced = false;
};

// Tensor map as the emulated cuTensorMapEncodeTiled stores it in CUtensorMap's opaque bytes.
struct EmuMap {
  uint64_t magic;
  int elem;
  const char* base;
  uint64_t dim[2];
  uint64_t stride1;
  uint32_t box[2];
  int swizzle;  // CUtensorMapSwizzle
};
constexpr uint64_t kMapMagic = 0x766974746d6170ULL;
static_assert(sizeof(EmuMap) <= sizeof(CUtensorMap), "EmuMap must fit in CUtensorMap");

struct PendingTma {
  uint32_t dst;
  EmuMap map;
  int c0, c1;
  uint32_t bar;
};

constexpr size_t kStack = 256 * 1024;
Ctx g_sched;
#ifdef VIT_EMU_ASAN
const void* g_sched_stack = nullptr;  // the scheduler's stack, as ASan's fiber interface reports it
size_t g_sched_stack_size = 0;
#endif

// Fibers run without ASan's fake stacks (detect_stack_use_after_return): every fresh fiber would
// map a fake stack of its own and unmap it when it ends, one mmap + munmap per thread per block
// (the emulated op tests spent 30x their time in the kernel: 4.2 s of system time for one 197x48
// add). The flag is read by every instrumented function at entry, so clearing it for the span of
// a launch covers the fibers only; the host code around the launch keeps the check.
#ifdef VIT_EMU_ASAN
extern "C" int __asan_option_detect_stack_use_after_return;
struct NoFakeStacks {
  int saved = __asan_option_detect_stack_use_after_return;
  NoFakeStacks() { __asan_option_detect_stack_use_after_return = 0; }
  ~NoFakeStacks() { __asan_option_detect_stack_use_after_return = saved; }
  NoFakeStacks(const NoFakeStacks&) = delete;
  NoFakeStacks& operator=(const NoFakeStacks&) = delete;
};
#else
struct NoFakeStacks {};
#endif
std::vector<Fiber> g_fibers;
Fiber* g_cur = nullptr;
const std::function<void()>* g_body = nullptr;
std::vector<uint32_t> g_slots;  // [warps][32][16]
std::vector<char> g_dyn;
char* g_window = nullptr;    // shared address 0 (1024-aligned host address)
char* g_dyn_base = nullptr;  // dynamic shared memory = shared address 16
size_t g_dyn_size = 0;
std::map<uint32_t, Bar> g_bars;       // per block
std::deque<PendingTma> g_tma;         // per block: issued, not yet landed
uint64_t g_spins = 0;                 // failed mbarrier polls since the last phase completion
bool g_abort_waits = false;           // after a deadlock report: let the fibers run out
int g_cc_major = 9, g_cc_minor = 0;
std::map<const void*, int> g_max_dyn;  // cudaFuncSetAttribute(MaxDynamicSharedMemorySize)
cudaError_t g_err = cudaSuccess;
std::string g_msg;
uint64_t g_rng = 0x9e3779b97f4a7c15ULL;  // fixed seed: runs are reproducible

void land(const Copy& c) {
  if (c.valid) std::memcpy(c.dst, c.src, 16);
  else std::memset(c.dst, 0, 16);
}

// Switches from the running context (`from`: the scheduler or a fiber) to `to`, whose stack is
// [bottom, bottom + size) (ASan's bookkeeping; `last`: the running fiber never resumes).
void switch_to(Ctx& from, Ctx& to, const void* bottom, size_t size, bool last = false) {
#ifdef VIT_EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(last ? nullptr : &fake, bottom, size);
#else
  (void)bottom, (void)size, (void)last;
#endif
#if defined(__x86_64__)
  vit_emu_switch(&from.sp, to.sp);
#else
  swapcontext(&from.uc, &to.uc);
#endif
#ifdef VIT_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}
void to_scheduler(bool last = false) {
#ifdef VIT_EMU_ASAN
  switch_to(g_cur->ctx, g_sched, g_sched_stack, g_sched_stack_size, last);
#else
  switch_to(g_cur->ctx, g_sched, nullptr, 0, last);
#endif
}

// The first thing a fresh fiber does: completes, for ASan, the switch that started it. It must
// precede any call the compiler knows never returns (trampoline() ends in one): ASan's
// __asan_handle_no_return, inserted before such a call, unpoisons "the current stack", and before
// this it would take the fiber's stack for the scheduler's.
void fiber_started() {
#ifdef VIT_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &g_sched_stack, &g_sched_stack_size);
#endif
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
  if (!g_cur->wg_open.empty() || !g_cur->wg_groups.empty())
    error("thread exited with wgmma.mma_async operations it never waited for (wgmma.wait_group)");
  g_cur->st = St::kDone;
  to_scheduler(/*last=*/true);
  std::abort();  // unreachable: a finished fiber is never resumed
}

#if defined(__x86_64__)
extern "C" void vit_emu_fiber_entry() {
#else
void vit_emu_fiber_entry() {
#endif
  fiber_started();
  trampoline();
}

// A fresh context on `f`'s stack that starts in trampoline().
void make_fiber(Fiber& f) {
#ifdef VIT_EMU_ASAN
  // A reused stack still holds the redzones of the frames its last fiber never returned from
  // (a finished fiber is switched away from, not unwound): clear them, or the new fiber's first
  // uninstrumented write there (ASan's own sigaltstack call) reads as a stack-buffer-overflow.
  // Those frames lie between the fiber's last saved stack pointer and the top (frames below it
  // returned and cleared their own); clearing the whole 256 KiB would cost ASan an madvise per
  // fiber per block (its large-region path), minutes of system time over the suite.
  if (f.stack) {
    char* top = f.stack.get() + kStack;
#if defined(__x86_64__)
    char* low = f.ctx.sp ? static_cast<char*>(f.ctx.sp) : top;
    if (low < f.stack.get() || low > top) low = f.stack.get();
#else
    char* low = f.stack.get();
#endif
    ASAN_UNPOISON_MEMORY_REGION(low, static_cast<size_t>(top - low));
  }
#endif
#if defined(__x86_64__)
  // What vit_emu_switch pops: MXCSR + x87 control word, r15 r14 r13 r12 rbx rbp, then `ret` into
  // the entry with the stack as after a call (rsp = 8 mod 16 at entry: a null return address).
  uintptr_t top = reinterpret_cast<uintptr_t>(f.stack.get() + kStack) & ~static_cast<uintptr_t>(15);
  auto* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = 0;                                                // the entry's (null) return address
  *--sp = reinterpret_cast<uint64_t>(&vit_emu_fiber_entry);  // where vit_emu_switch's ret goes
  for (int i = 0; i < 6; ++i) *--sp = 0;                    // rbp rbx r12 r13 r14 r15
  uint32_t mxcsr = 0;
  uint16_t fpcw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpcw));
  *--sp = mxcsr | (static_cast<uint64_t>(fpcw) << 32);  // the running thread's floating-point modes
  f.ctx.sp = sp;
#else
  getcontext(&f.ctx.uc);
  f.ctx.uc.uc_stack.ss_sp = f.stack.get();
  f.ctx.uc.uc_stack.ss_size = kStack;
  f.ctx.uc.uc_link = nullptr;
  makecontext(&f.ctx.uc, vit_emu_fiber_entry, 0);
#endif
}

void yield(St st) {
  g_cur->st = st;
  to_scheduler();
}

void run_block(int nthreads) {
  g_bars.clear();
  g_tma.clear();
  g_spins = 0;
  g_abort_waits = false;
  for (int i = 0; i < nthreads; ++i) {
    Fiber& f = g_fibers[static_cast<size_t>(i)];
    if (!f.stack) f.stack.reset(new char[kStack]);
    f.tid = i;
    f.st = St::kRun;
    f.open.clear();
    f.groups.clear();
    f.wg_open.clear();
    f.wg_groups.clear();
    f.wg_fenced = false;
    f.wg_shadow.clear();
    make_fiber(f);
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
        switch_to(g_sched, f.ctx, f.stack.get(), kStack);
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
    if (all_done) {
      if (!g_tma.empty()) error("block finished with TMA copies whose mbarrier nobody waited on");
      return;
    }
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

void run_grid(dim3 grid, dim3 block, size_t dyn_smem, const std::function<void()>& body, const void* kernel) {
  const int64_t nthreads = int64_t{block.x} * block.y * block.z;
  if (nthreads <= 0 || nthreads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
      grid.z > 65535) {
    error("invalid launch configuration");
    return;
  }
  {
    size_t limit = 48 * 1024;
    auto it = kernel ? g_max_dyn.find(kernel) : g_max_dyn.end();
    if (it != g_max_dyn.end()) limit = static_cast<size_t>(it->second);
    if (dyn_smem > limit) {
      error(dyn_smem > 48 * 1024 ? "dynamic shared memory above the kernel's cudaFuncSetAttribute limit (48 KB unless raised)"
                                 : "dynamic shared memory above 48 KB");
      return;
    }
  }
  if (g_fibers.size() < static_cast<size_t>(nthreads)) g_fibers.resize(static_cast<size_t>(nthreads));
  g_slots.assign(static_cast<size_t>((nthreads + 31) / 32) * 32 * 16, 0);
  g_dyn.assign(dyn_smem + 2048, static_cast<char>(0xFF));
  g_window = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(g_dyn.data()) + 1023) & ~uintptr_t{1023});
  g_dyn_base = g_window + 16;
  g_dyn_size = dyn_smem;
  g_body = &body;
  blockDim = block;
  gridDim = grid;
  [[maybe_unused]] const NoFakeStacks no_fake_stacks;
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
void* dyn_smem_ptr() { return g_dyn_base; }

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

// --- shared window -----------------------------------------------------------------------------
uint32_t smem_addr(const void* p) {
  const char* c = static_cast<const char*>(p);
  if (!g_dyn_base || c < g_dyn_base || c > g_dyn_base + g_dyn_size) {
    error("shared address of a pointer outside the block's dynamic shared memory");
    return 0;
  }
  return static_cast<uint32_t>(c - g_window);
}
void* smem_ptr(uint32_t a, size_t n) {
  if (!g_window || a < 16 || a + n > 16 + g_dyn_size) {
    error("shared address " + std::to_string(a) + " (+" + std::to_string(n) + " bytes) outside the dynamic shared memory");
    static std::vector<char> dummy(1 << 18, 0);
    return dummy.data();
  }
  return g_window + a;
}
void set_compute_capability(int major, int minor) {
  g_cc_major = major;
  g_cc_minor = minor;
}

// --- mbarrier (PTX ISA 9.7.13.15) ------------------------------------------------------------
// State: expected count, pending arrivals of the current phase, tx-count. A phase completes when
// the pending arrivals reach 0 and the tx-count is 0; then the pending count is reset to the
// expected count. try_wait.parity(P) is true when the phase with parity P has completed: the
// current (incomplete) phase has parity phases % 2, so P == the other parity means "done" (for a
// fresh barrier, waiting on parity 1 returns at once).
namespace {
Bar* bar_at(uint32_t a, const char* what) {
  auto it = g_bars.find(a);
  if (it == g_bars.end()) {
    error(std::string(what) + ": mbarrier at shared address " + std::to_string(a) + " was never initialised");
    return nullptr;
  }
  return &it->second;
}
void bar_check(Bar& b) {
  if (b.pending < 0) {
    error("mbarrier: more arrivals than its expected count in one phase");
    b.pending = 0;
  }
  if (b.pending == 0 && b.tx == 0) {
    ++b.phases;
    b.pending = b.expected;
    g_spins = 0;
  }
}
void land_tma(const PendingTma& t) {
  const EmuMap& m = t.map;
  const uint32_t row_bytes = m.box[0] * static_cast<uint32_t>(m.elem);
  const uint32_t total = row_bytes * m.box[1];
  char* base = static_cast<char*>(smem_ptr(t.dst, total)) - t.dst;  // host address of shared 0
  for (uint32_t i1 = 0; i1 < m.box[1]; ++i1) {
    for (uint32_t i0 = 0; i0 < m.box[0]; ++i0) {
      const int64_t g0 = int64_t{t.c0} + i0, g1 = int64_t{t.c1} + i1;
      uint32_t a = t.dst + (i1 * m.box[0] + i0) * static_cast<uint32_t>(m.elem);
      // CU_TENSOR_MAP_SWIZZLE_128B: 16-byte chunk index (address bits 4-6) XOR the 128-byte row
      // index within the 1024-byte pattern (bits 7-9) (cuda.h: "Swizzle 16B chunks within 128B
      // span"; the PTX ISA's tensor swizzle modes; Swizzle<3,4,3>).
      if (m.swizzle == CU_TENSOR_MAP_SWIZZLE_128B) a ^= ((a >> 7) & 7u) << 4;
      char* dst = base + a;
      if (g0 >= 0 && g1 >= 0 && static_cast<uint64_t>(g0) < m.dim[0] && static_cast<uint64_t>(g1) < m.dim[1])
        std::memcpy(dst, m.base + static_cast<uint64_t>(g1) * m.stride1 + static_cast<uint64_t>(g0) * m.elem,
                    static_cast<size_t>(m.elem));
      else
        std::memset(dst, 0, static_cast<size_t>(m.elem));  // out of bounds: zero fill
    }
  }
  if (Bar* b = bar_at(t.bar, "cp.async.bulk.tensor")) {
    b->tx -= total;  // mbarrier::complete_tx::bytes: the whole box, out-of-bounds part included
    bar_check(*b);
  }
}
}  // namespace

void mbar_init(uint32_t a, uint32_t count) {
  if (a % 8 != 0) error("mbarrier.init: object not 8-byte aligned");
  if (count == 0 || count > (1u << 20) - 1) error("mbarrier.init: count out of range");
  Bar b;
  b.expected = b.pending = static_cast<int>(count);
  g_bars[a] = b;
}
void mbar_fence_init() {
  for (auto& kv : g_bars) kv.second.fenced = true;
}
void mbar_arrive(uint32_t a, uint32_t expect_tx) {
  Bar* b = bar_at(a, "mbarrier.arrive");
  if (!b) return;
  b->tx += expect_tx;  // .expect_tx happens before the arrive
  b->pending -= 1;
  bar_check(*b);
}
bool mbar_try_wait(uint32_t a, uint32_t parity) {
  if (g_abort_waits) return true;
  // Copies complete at the latest when someone waits for them (the destination was poisoned at
  // issue, so a reader that does not wait sees NaN).
  for (size_t i = 0; i < g_tma.size();) {
    if (g_tma[i].bar == a) {
      const PendingTma t = g_tma[i];
      g_tma.erase(g_tma.begin() + static_cast<long>(i));
      land_tma(t);
    } else {
      ++i;
    }
  }
  Bar* b = bar_at(a, "mbarrier.try_wait");
  if (!b) return true;
  if ((b->phases & 1u) != (parity & 1u)) return true;
  if (++g_spins > 20000000ULL) {
    error("deadlock: an mbarrier wait never completes");
    g_abort_waits = true;
    return true;
  }
  yield(St::kRun);  // spin: let the other warps run
  return false;
}

// --- TMA (cp.async.bulk.tensor.2d ... .tile.mbarrier::complete_tx::bytes) ----------------------
void tma_load_2d(uint32_t dst, const void* tensor_map, int c0, int c1, uint32_t bar) {
  EmuMap m;
  std::memcpy(&m, tensor_map, sizeof(m));
  if (m.magic != kMapMagic) {
    error("cp.async.bulk.tensor: the tensor map was not made by cuTensorMapEncodeTiled");
    return;
  }
  Bar* b = bar_at(bar, "cp.async.bulk.tensor");
  if (!b) return;
  if (!b->fenced) error("cp.async.bulk.tensor: mbarrier used before fence.mbarrier_init / fence.proxy.async");
  const uint32_t align = m.swizzle == CU_TENSOR_MAP_SWIZZLE_128B ? 1024u : 128u;
  if (dst % align != 0) {
    error("cp.async.bulk.tensor: shared destination not " + std::to_string(align) + "-byte aligned");
    return;
  }
  const uint32_t total = m.box[0] * m.box[1] * static_cast<uint32_t>(m.elem);
  std::memset(smem_ptr(dst, total), 0xFF, total);  // in flight: undefined until the barrier says so
  g_tma.push_back({dst, m, c0, c1, bar});
}

// --- wgmma (PTX ISA 9.7.15) ------------------------------------------------------------------
namespace {
// Shared address of element (row, k) of a K-major operand described by `desc` (9.7.15.5.1.2):
// descriptor bits 0-13 start >> 4, 16-29 LBO >> 4, 32-45 SBO >> 4, 49-51 base offset,
// 62-63 swizzle (1 = 128B). Canonical K-major 128B layout ((8,m),(T,2k)):((8T,SBO),(1,T)) with
// T = 8 16-bit elements per 16 bytes: rows r % 8 are 8T elements = 128 bytes apart, groups of 8
// rows SBO bytes apart, k contiguous; then Swizzle<3,4,3> on the byte address (base offset 0:
// the pattern starts on a 1024-byte boundary). LBO is not used by swizzled K-major layouts.
uint32_t desc_elem_addr(uint64_t desc, int row, int k) {
  const uint32_t start = static_cast<uint32_t>(desc & 0x3FFFu) << 4;
  const uint32_t sbo = static_cast<uint32_t>((desc >> 32) & 0x3FFFu) << 4;
  const int base_off = static_cast<int>((desc >> 49) & 7u);
  const int mode = static_cast<int>((desc >> 62) & 3u);
  if (mode != 1 || base_off != 0) {
    error("wgmma: only K-major operands with the 128-byte swizzle and base offset 0 are emulated");
    return 16;
  }
  uint32_t a = start + static_cast<uint32_t>(row % 8) * 128u + static_cast<uint32_t>(row / 8) * sbo +
               static_cast<uint32_t>(k) * 2u;
  a ^= ((a >> 7) & 7u) << 4;
  return a;
}
float load16(uint32_t a, bool bf16) {
  uint16_t h;
  std::memcpy(&h, smem_ptr(a, 2), 2);
  return bf16 ? vit::bf16_to_float(h) : vit::half_to_float(h);
}
// Runs one op for the calling thread: its part of D (m64nNk16 fragment, 9.7.15.5.1.1.1 Figure
// 149: register i of lane l in warp w of the warpgroup is row 16w + 8*((i % 4) / 2) + l / 4,
// column 8*(i / 4) + 2*(l % 4) + i % 2) += A[64 x 16] B[n x 16]^T, reading shared memory now.
void wgmma_exec(Fiber& f, const WgOp& op) {
  auto& sh = f.wg_shadow[op.d];
  float* acc = sh.second.data();
  const int lt = f.tid % 128, w = lt / 32, l = lt % 32;
  float a[2][16];
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 16; ++k) a[h][k] = load16(desc_elem_addr(op.da, 16 * w + 8 * h + l / 4, k), op.bf16);
  for (int i = 0; i < op.n / 2; ++i) {
    if (i % 4 >= 2) continue;  // done with its column partner below
    const int col = 8 * (i / 4) + 2 * (l % 4) + i % 2;
    float b[16];
    for (int k = 0; k < 16; ++k) b[k] = load16(desc_elem_addr(op.db, col, k), op.bf16);
    for (int h = 0; h < 2; ++h) {  // register i + 2h: same column, row + 8h
      float s = acc[i + 2 * h];
      for (int k = 0; k < 16; ++k) s = std::fma(a[h][k], b[k], s);
      acc[i + 2 * h] = s;
    }
  }
  if (--sh.first == 0) {
    std::memcpy(op.d, acc, sizeof(float) * static_cast<size_t>(op.n / 2));
    f.wg_shadow.erase(op.d);
  }
}
}  // namespace

void wgmma_fence() { g_cur->wg_fenced = true; }
void wgmma_issue(float* d, int n, uint64_t da, uint64_t db, bool bf16) {
  Fiber& f = *g_cur;
  if (blockDim.x * blockDim.y * blockDim.z % 128 != 0) error("wgmma: the block is not made of whole warpgroups");
  if (!f.wg_fenced) error("wgmma.mma_async without a wgmma.fence after the accumulators were last accessed");
  auto& sh = f.wg_shadow[d];
  if (sh.first == 0) {
    sh.second.assign(d, d + n / 2);
    std::fill(d, d + n / 2, std::numeric_limits<float>::quiet_NaN());  // undefined until the wait
  }
  ++sh.first;
  f.wg_open.push_back({d, n, da, db, bf16});
}
void wgmma_commit() {
  g_cur->wg_groups.push_back(std::move(g_cur->wg_open));
  g_cur->wg_open.clear();
}
void wgmma_wait(int pending) {
  Fiber& f = *g_cur;
  while (static_cast<int>(f.wg_groups.size()) > pending) {
    for (const WgOp& op : f.wg_groups.front()) wgmma_exec(f, op);
    f.wg_groups.pop_front();
  }
  f.wg_fenced = false;  // the thread may now touch its accumulators: the next wgmma needs a fence
}
void setmaxnreg(int regs) {
  if (regs < 24 || regs > 256 || regs % 8 != 0) error("setmaxnreg: count must be a multiple of 8 in 24..256");
}

}  // namespace emu

// --- mock runtime -------------------------------------------------------------------------
struct CUstream_st {
  bool nonblocking = false;  // cudaStreamNonBlocking: not ordered after the legacy stream's work
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
  // Freed blocks still in quarantine are released at exit so that the sanitizer build's leak
  // check reports only device memory that was never cudaFree'd (a real leak).
  ~MemState() {
    for (auto& q : quarantine) std::free(q.first);
  }
};
MemState& mem() {
  static MemState m;
  return m;
}
uint64_t g_launches = 0;

// Unordered legacy-stream writes (the race check). A pageable cudaMemcpy to the device, a
// device-to-device cudaMemcpy and a cudaMemset run on the legacy stream and may still be in
// flight when they return; work on a cudaStreamNonBlocking stream is not ordered after them.
// Each such write marks its whole allocation until something orders it: cudaDeviceSynchronize,
// cudaStreamSynchronize(0), cudaFree (an implicit device synchronisation), a device-to-host
// cudaMemcpy (synchronous with the legacy stream), and, for the writes before it, the next
// host-to-device cudaMemcpy (the runtime synchronises the legacy stream before staging it).
// Work submitted to a non-blocking stream whose parameters hold a pointer into a marked
// allocation is a race: reported as a launch error at the next synchronisation, as a fault is.
struct Pending {
  uintptr_t lo, hi;
  const char* what;
};
std::vector<Pending> g_pending;
std::map<void*, size_t> g_pinned;  // cudaMallocHost blocks: copies from them are synchronous
uint64_t g_races = 0;

bool is_pinned(const void* p) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  auto it = g_pinned.upper_bound(const_cast<void*>(p));
  if (it == g_pinned.begin()) return false;
  --it;
  return u < reinterpret_cast<uintptr_t>(it->first) + it->second;
}
// The live device allocation holding p, or {0, 0}.
std::pair<uintptr_t, uintptr_t> allocation_of(const void* p) {
  const auto& live = mem().live;
  auto it = live.upper_bound(const_cast<void*>(p));
  if (it == live.begin()) return {0, 0};
  --it;
  const auto lo = reinterpret_cast<uintptr_t>(it->first), u = reinterpret_cast<uintptr_t>(p);
  return u < lo + it->second ? std::make_pair(lo, lo + it->second) : std::make_pair(uintptr_t{0}, uintptr_t{0});
}
void note_legacy_write(const void* dst, const char* what) {
  const auto a = allocation_of(dst);
  if (a.first) g_pending.push_back({a.first, a.second, what});
}
void race(const std::string& what) {
  ++g_races;
  if (g_err == cudaSuccess) {
    g_err = cudaErrorLaunchFailure;
    g_msg = what;
  }
  std::fprintf(stderr, "[gpu-emu] race: %s\n", what.c_str());
}

}  // namespace

void check_unordered(cudaStream_t s, const void* params, size_t bytes, const char* what) {
  std::lock_guard<std::recursive_mutex> lk(rt_mutex());
  if (!s || !s->nonblocking || g_pending.empty()) return;
  const auto* b = static_cast<const unsigned char*>(params);
  for (size_t off = 0; off + sizeof(uintptr_t) <= bytes; off += alignof(void*)) {
    uintptr_t w;
    std::memcpy(&w, b + off, sizeof w);
    for (const Pending& p : g_pending)
      if (w >= p.lo && w < p.hi) {
        race(std::string(what) + " on a non-blocking stream uses device memory that a " + p.what +
             " wrote with nothing ordering the two (use cudaMemcpyAsync / cudaMemsetAsync on that stream, or "
             "synchronise first)");
        return;
      }
  }
}
uint64_t races_found() { return g_races; }

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
    case cudaErrorInvalidDevice: return "invalid device ordinal";
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
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  switch (a) {
    case cudaDevAttrComputeCapabilityMajor:
      if (const char* e = std::getenv("VIT_EMU_CC")) {  // e.g. 80: run the suite as a non-Hopper device
        const int cc = std::atoi(e);
        emu::set_compute_capability(cc / 10, cc % 10);
      }
      *v = emu::g_cc_major;
      break;
    case cudaDevAttrComputeCapabilityMinor: *v = emu::g_cc_minor; break;
    default: *v = 8;  // SMs: small, so that modest test shapes already take the 128x128 GEMM tiles
  }
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  EMU_LOCK;
  if (!prop) return fail_call(cudaErrorInvalidValue);
  if (device != 0) return fail_call(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "%s", "vit-infer GPU emulator (CPU)");
  prop->totalGlobalMem = emu::mem().limit;
  cudaDeviceGetAttribute(&prop->major, cudaDevAttrComputeCapabilityMajor, device);  // honours VIT_EMU_CC
  cudaDeviceGetAttribute(&prop->minor, cudaDevAttrComputeCapabilityMinor, device);
  cudaDeviceGetAttribute(&prop->multiProcessorCount, cudaDevAttrMultiProcessorCount, device);
  prop->l2CacheSize = 1 << 20;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* version) {
  if (!version) return fail_call(cudaErrorInvalidValue);
  *version = 13000;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* version) {
  if (!version) return fail_call(cudaErrorInvalidValue);
  *version = 13000;
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
  emu::g_pending.clear();  // cudaFree synchronises the device
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
  const size_t sz = (std::max<size_t>(n, 1) + 255) / 256 * 256;
  *p = std::aligned_alloc(256, sz);
  if (*p) emu::g_pinned[*p] = sz;
  return *p ? cudaSuccess : fail_call(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void* p) {
  EMU_LOCK;
  if (cudaError_t e = capture_guard()) return e;
  emu::g_pinned.erase(p);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
  EMU_LOCK;
  if (cudaError_t e = capture_guard()) return e;
  // The kind is inferred from the pointers (as cudaMemcpyDefault would be).
  const bool dst_dev = emu::allocation_of(dst).first != 0, src_dev = emu::allocation_of(src).first != 0;
  if (dst_dev && !src_dev) {
    emu::g_pending.clear();  // the legacy stream is synchronised before the copy is staged
    if (!emu::is_pinned(src)) emu::note_legacy_write(dst, "pageable host-to-device cudaMemcpy");
  } else if (dst_dev) {
    emu::note_legacy_write(dst, "device-to-device cudaMemcpy");
  } else if (src_dev) {
    emu::g_pending.clear();  // device-to-host: returns once the legacy stream's work is done
  }
  std::memcpy(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int v, size_t n) {
  EMU_LOCK;
  if (cudaError_t e = capture_guard()) return e;
  emu::note_legacy_write(p, "cudaMemset");
  std::memset(p, v, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind, cudaStream_t s) {
  const void* ptrs[2] = {dst, src};
  emu::check_unordered(s, ptrs, sizeof ptrs, "cudaMemcpyAsync");
  emu::submit(s, [=] { std::memcpy(dst, src, n); });
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t s) {
  emu::check_unordered(s, &p, sizeof p, "cudaMemsetAsync");
  emu::submit(s, [=] { std::memset(p, v, n); });
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  EMU_LOCK;
  if (cudaError_t e = capture_guard()) return e;
  emu::g_pending.clear();
  return cudaGetLastError();
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  *s = new CUstream_st;
  (*s)->nonblocking = (flags & cudaStreamNonBlocking) != 0;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  EMU_LOCK;
  if (!s || s->capturing) return fail_call(cudaErrorInvalidResourceHandle);
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  EMU_LOCK;
  if (cudaError_t e = capture_guard()) return e;
  if (!s) emu::g_pending.clear();  // the legacy stream
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

// --- driver entry points and kernel attributes ------------------------------------------------
namespace {
size_t elem_size(CUtensorMapDataType t) {
  switch (t) {
    case CU_TENSOR_MAP_DATA_TYPE_UINT8: return 1;
    case CU_TENSOR_MAP_DATA_TYPE_UINT16:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT16:
    case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16: return 2;
    case CU_TENSOR_MAP_DATA_TYPE_UINT32:
    case CU_TENSOR_MAP_DATA_TYPE_INT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32: return 4;
    default: return 8;
  }
}
// cuTensorMapEncodeTiled, rank 2, with the requirements cuda.h states for it (alignment of the
// map and the address, strides multiple of 16, box <= 256 and a multiple of 16 bytes inner,
// inner box <= the swizzle span). Element strides other than 1 and interleave are not emulated.
CUresult emu_encode_tiled(CUtensorMap* map, CUtensorMapDataType dt, cuuint32_t rank, void* addr,
                          const cuuint64_t* dims, const cuuint64_t* strides, const cuuint32_t* box,
                          const cuuint32_t* estr, CUtensorMapInterleave il, CUtensorMapSwizzle sw,
                          CUtensorMapL2promotion, CUtensorMapFloatOOBfill oob) {
  const size_t e = elem_size(dt);
  const uint32_t span = sw == CU_TENSOR_MAP_SWIZZLE_128B ? 128 : sw == CU_TENSOR_MAP_SWIZZLE_64B ? 64 : sw == CU_TENSOR_MAP_SWIZZLE_32B ? 32 : 0;
  const bool ok = map && reinterpret_cast<uintptr_t>(map) % 64 == 0 && rank == 2 && addr &&
                  reinterpret_cast<uintptr_t>(addr) % 16 == 0 && dims[0] >= 1 && dims[1] >= 1 &&
                  dims[0] <= (1ULL << 32) && dims[1] <= (1ULL << 32) && strides[0] % 16 == 0 &&
                  strides[0] < (1ULL << 40) && strides[0] >= dims[0] * e && box[0] >= 1 && box[0] <= 256 &&
                  box[1] >= 1 && box[1] <= 256 && (box[0] * e) % 16 == 0 && estr[0] == 1 && estr[1] == 1 &&
                  il == CU_TENSOR_MAP_INTERLEAVE_NONE && (span == 0 || box[0] * e <= span) &&
                  oob == CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE;
  if (!ok) return CUDA_ERROR_INVALID_VALUE;
  if (sw != CU_TENSOR_MAP_SWIZZLE_NONE && sw != CU_TENSOR_MAP_SWIZZLE_128B) return CUDA_ERROR_INVALID_VALUE;  // not emulated
  emu::EmuMap m{};
  m.magic = emu::kMapMagic;
  m.elem = static_cast<int>(e);
  m.base = static_cast<const char*>(addr);
  m.dim[0] = dims[0];
  m.dim[1] = dims[1];
  m.stride1 = strides[0];
  m.box[0] = box[0];
  m.box[1] = box[1];
  m.swizzle = sw;
  std::memset(map, 0, sizeof(*map));
  std::memcpy(map, &m, sizeof(m));
  return CUDA_SUCCESS;
}
}  // namespace

cudaError_t cudaGetDriverEntryPointByVersion(const char* symbol, void** fn, unsigned int, unsigned long long,
                                             cudaDriverEntryPointQueryResult* status) {
  const bool found = symbol && std::strcmp(symbol, "cuTensorMapEncodeTiled") == 0;
  *fn = found ? reinterpret_cast<void*>(&emu_encode_tiled) : nullptr;
  if (status) *status = found ? cudaDriverEntryPointSuccess : cudaDriverEntryPointSymbolNotFound;
  return cudaSuccess;
}

cudaError_t emuFuncSetMaxDynamicSharedMemory(const void* kernel, int bytes) {
  EMU_LOCK;
  if (bytes < 0 || bytes > 232448) return fail_call(cudaErrorInvalidValue);  // sm_90: 227 KB per block
  emu::g_max_dyn[kernel] = bytes;
  return cudaSuccess;
}
