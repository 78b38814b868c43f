// vit-infer: pool kernel (see pool.cuh): one thread per (b, j) column over the tokens
// (consecutive threads read consecutive j: coalesced), the sum in fp32.
#include "pool.cuh"

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

}  // namespace

void launch_pool(const PoolParams& p, cudaStream_t stream) {
  const char* L = "launch_pool";
  cuda::require(p.B > 0 && p.T > 0 && p.D > 0, L, "B, T, D must be positive");
  cuda::require(p.first >= 0 && p.first < p.T, L, "first row must be in [0, T)");
  cuda::require(p.x && p.out, L, "x and out must not be null");
  const int64_t total = static_cast<int64_t>(p.B) * p.D;
  VIT_DISPATCH_DTYPE(p.dtype, L, pool_kernel<T><<<kern::blocks_for(total, 256), 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("pool_kernel");
}

}  // namespace vit
