// vit-infer: which vector / matrix ISA the fast CPU engine runs on. Detected once from CPUID and
// XCR0 (the OS must save the AVX-512 and AMX state), optionally lowered by VIT_CPU_ISA so that
// the non-AMX paths are testable on an AMX machine. Ordered: a higher value implies every lower.
#pragma once

namespace vit {

enum class CpuIsa { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3, kAmx = 4 };

// The best ISA this CPU and OS support (for AMX: also granted the tile state by the kernel).
CpuIsa detect_cpu_isa() noexcept;

// detect_cpu_isa(), lowered to VIT_CPU_ISA (scalar | avx2 | avx512 | avx512_bf16 | amx) when that
// is set. Asking for more than the CPU has, or an unknown name, throws kInvalidArgument (a forced
// test path must never silently run another one). Read once per process: oneDNN's ISA ceiling
// can be set only before its first primitive.
CpuIsa effective_cpu_isa();

const char* cpu_isa_name(CpuIsa isa) noexcept;

}  // namespace vit
