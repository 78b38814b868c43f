// vit-infer: activation kernel (see activation.cuh): grid-stride over [rows, cols], rows ld apart,
// act::apply (core/activation.h) in fp32.
#include "activation.cuh"

#include "cuda_check.h"
#include "device_common.cuh"

namespace vit {
namespace {

using kern::from_f;
using kern::to_f;

template <typename T>
__global__ void activation_kernel(const ActivationParams p) {
  T* x = static_cast<T*>(p.x);
  const int64_t total = p.rows * p.cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / p.cols, c = i - r * p.cols;
    T* e = x + r * p.ld + c;
    *e = from_f<T>(act::apply(p.act, to_f(*e)));
  }
}

}  // namespace

void launch_activation(const ActivationParams& p, cudaStream_t stream) {
  const char* L = "launch_activation";
  cuda::require(p.rows > 0 && p.cols > 0 && p.ld >= p.cols && p.x, L, "bad shape or null x");
  const int64_t total = p.rows * p.cols;
  VIT_DISPATCH_DTYPE(p.dtype, L, activation_kernel<T><<<kern::blocks_for(total, 256), 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("activation_kernel");
}

}  // namespace vit
