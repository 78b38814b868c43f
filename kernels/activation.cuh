// vit-infer: the MLP activations as device code, in fp32: exact-erf GELU (timm / HF), tanh GELU
// (torch approximate='tanh', SigLIP), quick-GELU x * sigmoid(1.702 x) (OpenAI CLIP), SiLU
// x * sigmoid(x) (SwiGLU's gate). The same
// formulas as the CPU reference (src/cpu/ref_ops.cpp). Included by kernels/device_common.cuh
// and by the CPU emulator's stand-in for it (which defines __device__ / __forceinline__ first),
// so the emulated kernels compute exactly these.
#pragma once

#include "core/op_forms.h"

namespace vit::kern {

__device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
__device__ __forceinline__ float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + tanhf(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
}
__device__ __forceinline__ float quick_gelu(float x) { return x / (1.0f + expf(-1.702f * x)); }
__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

// The form is uniform over a launch (a kernel parameter): the branch costs no divergence.
__device__ __forceinline__ float gelu(ActForm form, float x) {
  return form == ActForm::kTanh    ? gelu_tanh(x)
         : form == ActForm::kQuick ? quick_gelu(x)
         : form == ActForm::kSilu  ? silu(x)
                                   : gelu_erf(x);
}

}  // namespace vit::kern
