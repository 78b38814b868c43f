// vit-infer: glu kernel (see glu.cuh): grid-stride over y [rows, cols], act in fp32.
#include "glu.cuh"

#include "cuda_check.h"
#include "device_common.cuh"

namespace vit {
namespace {

using kern::from_f;
using kern::to_f;

template <typename T>
__global__ void glu_kernel(const GluParams p) {
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  const int64_t total = p.rows * p.cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / p.cols, c = i - r * p.cols;
    const T* row = x + r * 2 * p.cols;
    y[i] = from_f<T>(act::apply(p.act, to_f(row[c])) * to_f(row[p.cols + c]));
  }
}

}  // namespace

void launch_glu(const GluParams& p, cudaStream_t stream) {
  const char* L = "launch_glu";
  cuda::require(p.rows > 0 && p.cols > 0 && p.x && p.y, L, "bad shape or null x / y");
  const int64_t total = p.rows * p.cols;
  VIT_DISPATCH_DTYPE(p.dtype, L, glu_kernel<T><<<kern::blocks_for(total, 256), 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("glu_kernel");
}

}  // namespace vit
