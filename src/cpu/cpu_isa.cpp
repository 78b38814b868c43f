// vit-infer: CPU feature detection for the fast CPU engine (see cpu_isa.h). CPUID leaf 7 gives
// the AVX-512 / AMX feature bits; XGETBV(0) says whether the OS saves the ZMM and tile state; on
// Linux the AMX tile data must also be requested once per process (arch_prctl), or the first
// tile instruction faults.
#include "cpu/cpu_isa.h"

#include <cpuid.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "core/error.h"

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace vit {
namespace {

unsigned long long xgetbv0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}

// Linux 5.16+: tile data is off until the process asks for it.
bool request_amx_permission() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

CpuIsa detect() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return CpuIsa::kScalar;
  const bool osxsave = (c >> 27) & 1, fma = (c >> 12) & 1;
  if (!osxsave) return CpuIsa::kScalar;
  const unsigned long long xcr0 = xgetbv0();
  if ((xcr0 & 0x6) != 0x6) return CpuIsa::kScalar;  // XMM + YMM state
  unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0;
  __cpuid_count(7, 0, a7, b7, c7, d7);
  unsigned a71 = 0, b71 = 0, c71 = 0, d71 = 0;
  if (a7 >= 1) __cpuid_count(7, 1, a71, b71, c71, d71);
  const bool avx2 = (b7 >> 5) & 1;
  if (!avx2 || !fma) return CpuIsa::kScalar;
  const bool zmm_os = (xcr0 & 0xE0) == 0xE0;  // opmask + ZMM_Hi256 + Hi16_ZMM
  const bool avx512 = zmm_os && ((b7 >> 16) & 1) && ((b7 >> 17) & 1) && ((b7 >> 30) & 1) && ((b7 >> 31) & 1);
  if (!avx512) return CpuIsa::kAvx2;  // F, DQ, BW, VL: the set oneDNN's avx512_core needs
  const bool bf16 = (a71 >> 5) & 1;
  if (!bf16) return CpuIsa::kAvx512;
  const bool amx = ((d7 >> 24) & 1) && ((d7 >> 22) & 1);  // AMX-TILE + AMX-BF16
  const bool tile_os = (xcr0 & 0x60000) == 0x60000;        // XTILECFG + XTILEDATA
  if (amx && tile_os && request_amx_permission()) return CpuIsa::kAmx;
  return CpuIsa::kAvx512Bf16;
}

}  // namespace

CpuIsa detect_cpu_isa() noexcept {
  static const CpuIsa isa = detect();
  return isa;
}

const char* cpu_isa_name(CpuIsa isa) noexcept {
  switch (isa) {
    case CpuIsa::kScalar: return "scalar";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvx512: return "avx512";
    case CpuIsa::kAvx512Bf16: return "avx512_bf16";
    case CpuIsa::kAmx: return "amx";
  }
  return "?";
}

CpuIsa effective_cpu_isa() {
  static std::once_flag once;
  static CpuIsa isa = CpuIsa::kScalar;
  static std::string error;
  std::call_once(once, [] {
    const CpuIsa have = detect_cpu_isa();
    isa = have;
    const char* env = std::getenv("VIT_CPU_ISA");
    if (!env || !*env) return;
    for (CpuIsa c : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAvx512Bf16, CpuIsa::kAmx}) {
      if (std::strcmp(env, cpu_isa_name(c)) != 0) continue;
      if (static_cast<int>(c) > static_cast<int>(have)) {
        error = std::string("VIT_CPU_ISA=") + env + " asks for more than this CPU has (" + cpu_isa_name(have) + ")";
      } else {
        isa = c;
      }
      return;
    }
    error = std::string("VIT_CPU_ISA=") + env + " is not one of scalar, avx2, avx512, avx512_bf16, amx";
  });
  if (!error.empty()) fail(ErrorCode::kInvalidArgument, error);
  return isa;
}

}  // namespace vit
