// vit-infer: binary kernel (see binary.cuh): grid-stride over [rows, cols], computed in fp32.
#include "binary.cuh"

#include "cuda_check.h"
#include "device_common.cuh"

namespace vit {
namespace {

using kern::from_f;
using kern::to_f;

template <typename T>
__global__ void binary_kernel(const BinaryParams p) {
  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  T* y = static_cast<T*>(p.y);
  const int64_t total = p.rows * p.cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = p.op == BinaryOp::kAdd    ? to_f(a[i]) + to_f(b[i])
                    : p.op == BinaryOp::kMean ? (to_f(a[i]) + to_f(b[i])) * 0.5f
                                              : to_f(a[i]) * to_f(b[i % p.cols]);
    y[i] = from_f<T>(v);
  }
}

}  // namespace

void launch_binary(const BinaryParams& p, cudaStream_t stream) {
  const char* L = "launch_binary";
  cuda::require(p.rows > 0 && p.cols > 0, L, "rows and cols must be positive");
  cuda::require(p.a && p.b && p.y, L, "a, b and y must not be null");
  const int64_t total = p.rows * p.cols;
  VIT_DISPATCH_DTYPE(p.dtype, L, binary_kernel<T><<<kern::blocks_for(total, 256), 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("binary_kernel");
}

}  // namespace vit
