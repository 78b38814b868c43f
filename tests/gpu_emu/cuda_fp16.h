// vit-infer GPU emulator: a stand-in for <cuda_fp16.h>. __half itself is defined by the
// emulator's device_common.cuh (a 16-bit storage struct); these are the conversion intrinsics
// host-side code of benchmarks/*.cu uses, with the device's rounding (round to nearest even,
// vit::float_to_half).
#pragma once

#include "device_common.cuh"

inline __half __float2half_rn(float v) { return __half{vit::float_to_half(v)}; }
inline float __half2float(__half h) { return vit::half_to_float(h.x); }
