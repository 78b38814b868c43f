// vit-infer: the fast CPU kernels (fast_kernels.inc) compiled for the avx2 ISA level; the
// compile flags are set on this file in CMakeLists.txt. Chosen at run time by kernels_for().
#define VIT_KNS avx2
#include "cpu/fast_kernels.inc"
