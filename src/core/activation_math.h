// vit-infer: the activations' formulas (core/activation.h), in fp32, written once for the host and
// the device: the CPU reference (src/cpu/ref_ops.cpp), the CUDA kernels (kernels/, through
// device_common.cuh) and the CPU emulator, which compiles the kernels as host code, all evaluate
// exactly these. The fast CPU engine's vector kernels and oneDNN's post-ops are checked against
// them (tests/op_cases.h). A leaf header.
#pragma once

#include <cmath>

#include "core/activation.h"

#if defined(__CUDACC__)
#define VIT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define VIT_HOST_DEVICE inline
#endif

namespace vit::act {

VIT_HOST_DEVICE float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
// torch GELU(approximate='tanh'): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
VIT_HOST_DEVICE float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + tanhf(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
}
// timm / open_clip QuickGELU: x * sigmoid(1.702 x).
VIT_HOST_DEVICE float quick_gelu(float x) { return x / (1.0f + expf(-1.702f * x)); }
// torch SiLU: x * sigmoid(x).
VIT_HOST_DEVICE float silu(float x) { return x / (1.0f + expf(-x)); }

// The activation `a` of x. `a` is uniform over a kernel launch (a parameter): the branch costs no
// divergence.
VIT_HOST_DEVICE float apply(Activation a, float x) {
  switch (a) {
    case Activation::kGeluTanh: return gelu_tanh(x);
    case Activation::kQuickGelu: return quick_gelu(x);
    case Activation::kSilu: return silu(x);
    case Activation::kGeluErf: break;
  }
  return gelu_erf(x);
}

}  // namespace vit::act
