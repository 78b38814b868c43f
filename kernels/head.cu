// vit-infer: head kernels (see head.cuh). pool: one thread per (b, j) column sum over tokens
// (consecutive threads read consecutive j: coalesced).
#include "head.cuh"

#include <string>

#include "cuda_check.h"
#include "device_common.cuh"

namespace vit {
namespace {

using kern::from_f;
using kern::to_f;

template <typename T>
__global__ void pool_kernel(const PoolParams p) {
  const int64_t total = static_cast<int64_t>(p.B) * p.D;
  const T* x = static_cast<const T*>(p.x);
  T* out = static_cast<T*>(p.out);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / p.D;
    const int j = static_cast<int>(i - b * p.D);
    const T* base = x + b * p.T * p.D + j;
    if (p.mode == PoolMode::kRow) {
      out[i] = base[static_cast<int64_t>(p.first) * p.D];  // a copy: no rounding
      continue;
    }
    float s = 0.0f, mx = -INFINITY;
    for (int t = p.first; t < p.T; ++t) {
      const float v = to_f(base[static_cast<int64_t>(t) * p.D]);
      s += v;
      mx = fmaxf(mx, v);
    }
    const float mean = s / static_cast<float>(p.T - p.first);
    out[i] = from_f<T>(p.mode == PoolMode::kMean ? mean : p.mode == PoolMode::kMax ? mx : 0.5f * (mean + mx));
  }
}

template <typename T>
__global__ void to_f32_kernel(const ToF32Params p) {
  const T* s = static_cast<const T*>(p.src);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p.dst[i] = to_f(s[i]);
}

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

void launch_pool(const PoolParams& p, cudaStream_t stream) {
  const char* L = "launch_pool";
  cuda::require(p.B > 0 && p.T > 0 && p.D > 0, L, "B, T, D must be positive");
  cuda::require(p.first >= 0 && p.first < p.T, L, "first row must be in [0, T)");
  cuda::require(p.x && p.out, L, "x and out must not be null");
  const int64_t total = static_cast<int64_t>(p.B) * p.D;
  VIT_DISPATCH_DTYPE(p.dtype, L, pool_kernel<T><<<kern::blocks_for(total, 256), 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("pool_kernel");
}

void launch_to_f32(const ToF32Params& p, cudaStream_t stream) {
  const char* L = "launch_to_f32";
  cuda::require(p.n > 0 && p.src && p.dst, L, "n must be positive and pointers non-null");
  VIT_DISPATCH_DTYPE(p.dtype, L, to_f32_kernel<T><<<kern::blocks_for(p.n, 256), 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("to_f32_kernel");
}

void launch_activation(const ActivationParams& p, cudaStream_t stream) {
  const char* L = "launch_activation";
  cuda::require(p.rows > 0 && p.cols > 0 && p.ld >= p.cols && p.x, L, "bad shape or null x");
  const int64_t total = p.rows * p.cols;
  VIT_DISPATCH_DTYPE(p.dtype, L, activation_kernel<T><<<kern::blocks_for(total, 256), 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("activation_kernel");
}

void launch_glu(const GluParams& p, cudaStream_t stream) {
  const char* L = "launch_glu";
  cuda::require(p.rows > 0 && p.cols > 0 && p.x && p.y, L, "bad shape or null x / y");
  const int64_t total = p.rows * p.cols;
  VIT_DISPATCH_DTYPE(p.dtype, L, glu_kernel<T><<<kern::blocks_for(total, 256), 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("glu_kernel");
}

}  // namespace vit
