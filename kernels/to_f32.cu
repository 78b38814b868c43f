// vit-infer: to_f32 kernel (see to_f32.cuh): a grid-stride elementwise conversion.
#include "to_f32.cuh"

#include "cuda_check.h"
#include "device_common.cuh"

namespace vit {
namespace {

using kern::to_f;

template <typename T>
__global__ void to_f32_kernel(const ToF32Params p) {
  const T* s = static_cast<const T*>(p.src);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p.dst[i] = to_f(s[i]);
}

}  // namespace

void launch_to_f32(const ToF32Params& p, cudaStream_t stream) {
  const char* L = "launch_to_f32";
  cuda::require(p.n > 0 && p.src && p.dst, L, "n must be positive and pointers non-null");
  VIT_DISPATCH_DTYPE(p.dtype, L, to_f32_kernel<T><<<kern::blocks_for(p.n, 256), 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("to_f32_kernel");
}

}  // namespace vit
