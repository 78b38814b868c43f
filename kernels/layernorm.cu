// vit-infer: LayerNorm kernel (see layernorm.cuh). One warp per row, 8 rows per block; each
// lane strides over D, so any D works. Pass 1 (optionally adding the residual and storing
// the rounded sum) accumulates the mean, pass 2 the variance from the stored values, pass 3
// writes y. Every element is read and written by the same lane, so in-place use is safe.
#include "layernorm.cuh"

#include <string>

#include "cuda_check.h"
#include "device_common.cuh"

namespace vit {
namespace {

using kern::from_f;
using kern::to_f;

template <typename T>
__global__ void __launch_bounds__(256) layernorm_kernel(const LayerNormParams p) {
  const int row = blockIdx.x * 8 + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= p.rows) return;
  const int D = p.D;
  const T* x = static_cast<const T*>(p.x) + static_cast<int64_t>(row) * p.x_stride;
  const T* src = x;  // where the normalised input lives after pass 1
  float sum = 0.0f;
  if (p.residual) {
    const T* r = static_cast<const T*>(p.residual) + static_cast<int64_t>(row) * p.x_stride;
    T* xo = static_cast<T*>(p.x_out) + static_cast<int64_t>(row) * p.x_stride;
    for (int i = lane; i < D; i += 32) {
      const T v = from_f<T>(to_f(x[i]) + to_f(r[i]));  // the residual stream keeps storage precision
      xo[i] = v;
      sum += to_f(v);
    }
    src = xo;
  } else {
    for (int i = lane; i < D; i += 32) sum += to_f(x[i]);
  }
  const float mean = p.rms ? 0.0f : kern::warp_sum(sum) / static_cast<float>(D);
  float sq = 0.0f;
  for (int i = lane; i < D; i += 32) {
    const float d = to_f(src[i]) - mean;
    sq += d * d;
  }
  const float var = kern::warp_sum(sq) / static_cast<float>(D);
  const float rstd = rsqrtf(var + p.eps);
  const T* g = static_cast<const T*>(p.gamma);
  const T* b = static_cast<const T*>(p.beta);
  T* y = static_cast<T*>(p.y) + static_cast<int64_t>(row) * p.y_stride;
  for (int i = lane; i < D; i += 32) {
    y[i] = from_f<T>((to_f(src[i]) - mean) * rstd * to_f(g[i]) + to_f(b[i]));
  }
}

}  // namespace

void launch_layernorm(const LayerNormParams& p, cudaStream_t stream) {
  const char* L = "launch_layernorm";
  using cuda::require;
  require(p.rows > 0 && p.D > 0, L,
          "rows and D must be positive (got " + std::to_string(p.rows) + ", " + std::to_string(p.D) + ")");
  require(p.x && p.y && p.gamma && p.beta, L, "x, y, gamma and beta must not be null");
  require(p.x_stride >= p.D && p.y_stride >= p.D, L, "x_stride and y_stride must be >= D");
  require(!p.residual || p.x_out, L, "a residual add needs x_out");
  require(p.eps >= 0.0f, L, "eps must be >= 0");
  const unsigned blocks = static_cast<unsigned>((p.rows + 7) / 8);
  VIT_DISPATCH_DTYPE(p.dtype, L, layernorm_kernel<T><<<blocks, 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("layernorm_kernel");
}

}  // namespace vit
