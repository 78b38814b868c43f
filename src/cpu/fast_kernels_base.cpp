// vit-infer: the fast CPU kernels (fast_kernels.inc) compiled for the base ISA level; the
// compile flags are set on this file in CMakeLists.txt. Chosen at run time by kernels_for().
#define VIT_KNS base
#include "cpu/fast_kernels.inc"

namespace vit::fastcpu {
namespace avx2 { extern const Kernels kKernels; }
namespace avx512 { extern const Kernels kKernels; }
namespace avx512bf16 { extern const Kernels kKernels; }

const Kernels& kernels_for(CpuIsa isa) {
  if (static_cast<int>(isa) >= static_cast<int>(CpuIsa::kAvx512Bf16)) return avx512bf16::kKernels;
  if (isa == CpuIsa::kAvx512) return avx512::kKernels;
  if (isa == CpuIsa::kAvx2) return avx2::kKernels;
  return base::kKernels;
}

}  // namespace vit::fastcpu
