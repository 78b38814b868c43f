// vit-infer: the fast CPU kernels (fast_kernels.inc) compiled for the avx512_bf16 ISA level (AVX-512
// plus the bf16 dot products: the bf16 run's attention runs on them); the compile flags are set on
// this file in CMakeLists.txt. Chosen at run time by kernels_for() on AVX512-BF16 and AMX CPUs.
#define VIT_KNS avx512bf16
#include "cpu/fast_kernels.inc"
