// vit-infer GPU emulator: a stand-in for <cuda_bf16.h>. __nv_bfloat16 itself is defined by the
// emulator's device_common.cuh (a 16-bit storage struct); these are the conversion intrinsics
// host-side code of benchmarks/*.cu uses, with the device's rounding (round to nearest even,
// vit::float_to_bf16).
#pragma once

#include "device_common.cuh"

inline __nv_bfloat16 __float2bfloat16_rn(float v) { return __nv_bfloat16{vit::float_to_bf16(v)}; }
inline float __bfloat162float(__nv_bfloat16 h) { return vit::bf16_to_float(h.x); }
