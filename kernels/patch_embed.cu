// vit-infer: patchify and embed_finish kernels (see patch_embed.cuh). Both are one thread per
// output element over a grid-stride loop with 64-bit indices (B*N*k_pad exceeds 2^31 for
// large batches); consecutive threads write consecutive outputs.
#include "patch_embed.cuh"

#include <string>

#include "cuda_check.h"
#include "device_common.cuh"

namespace vit {
namespace {

using kern::from_f;
using kern::to_f;

template <typename T>
__global__ void patchify_kernel(const PatchifyParams p) {
  const int gh = p.H / p.P, gw = p.W / p.P, N = gh * gw, PP = p.P * p.P, K = p.C * PP;
  const int64_t total = static_cast<int64_t>(p.B) * N * p.k_pad;
  T* out = static_cast<T*>(p.cols);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / p.k_pad;
    const int k = static_cast<int>(i - row * p.k_pad);
    float v = 0.0f;
    if (k < K) {
      const int b = static_cast<int>(row / N), n = static_cast<int>(row % N);
      const int gy = n / gw, gx = n % gw;
      const int c = k / PP, py = (k % PP) / p.P, px = k % p.P;
      v = p.images[((static_cast<int64_t>(b) * p.C + c) * p.H + gy * p.P + py) * p.W + gx * p.P + px];
      if (p.normalize) v = (v * p.scale - p.mean[c]) / p.std[c];
    }
    out[i] = from_f<T>(v);
  }
}

template <typename T>
__global__ void embed_finish_kernel(const EmbedParams p) {
  const int T_ = p.P + p.N;
  const int64_t total = static_cast<int64_t>(p.B) * T_ * p.D;
  const T* patches = static_cast<const T*>(p.patches);
  const T* bias = static_cast<const T*>(p.bias);
  const T* prefix = static_cast<const T*>(p.prefix);
  const T* pos = static_cast<const T*>(p.pos);
  T* tokens = static_cast<T*>(p.tokens);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t bt = i / p.D;
    const int j = static_cast<int>(i - bt * p.D);
    const int64_t b = bt / T_;
    const int t = static_cast<int>(bt - b * T_);
    if (t < p.P) {
      const T e = prefix[static_cast<int64_t>(t) * p.D + j];
      tokens[i] = p.pos_prefix ? from_f<T>(to_f(e) + to_f(pos[static_cast<int64_t>(t) * p.D + j])) : e;
      continue;
    }
    const int64_t src = (b * p.N + t - p.P) * p.D + j;
    if (p.patches_final) {
      tokens[i] = patches[src];  // a copy: no second rounding
      continue;
    }
    float v = to_f(patches[src]);
    if (bias) v += to_f(bias[j]);
    v += to_f(pos[static_cast<int64_t>(p.pos_prefix ? t : t - p.P) * p.D + j]);
    tokens[i] = from_f<T>(v);
  }
}

}  // namespace

void launch_patchify(const PatchifyParams& p, cudaStream_t stream) {
  const char* L = "launch_patchify";
  using cuda::require;
  require(p.B > 0 && p.C > 0 && p.H > 0 && p.W > 0 && p.P > 0, L, "B, C, H, W, P must be positive");
  // Any size: the grid is floor(H / P) x floor(W / P), the rest of the image is not read.
  require(p.H >= p.P && p.W >= p.P, L,
          "image " + std::to_string(p.H) + "x" + std::to_string(p.W) + " is smaller than patch " + std::to_string(p.P));
  require(p.k_pad >= p.C * p.P * p.P, L, "k_pad must be >= C*P*P");
  require(p.images && p.cols, L, "images and cols must not be null");
  require(!p.normalize || p.C <= 8, L, "fused normalisation supports at most 8 channels");
  const int64_t total = static_cast<int64_t>(p.B) * (p.H / p.P) * (p.W / p.P) * p.k_pad;
  VIT_DISPATCH_DTYPE(p.dtype, L, patchify_kernel<T><<<kern::blocks_for(total, 256), 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("patchify_kernel");
}

void launch_embed_finish(const EmbedParams& p, cudaStream_t stream) {
  const char* L = "launch_embed_finish";
  using cuda::require;
  require(p.B > 0 && p.N > 0 && p.D > 0 && p.P >= 0, L, "B, N, D must be positive and P >= 0");
  require(p.patches && (p.prefix || p.P == 0) && p.pos && p.tokens, L,
          "patches, pos, tokens (and prefix when P > 0) must be non-null");
  const int64_t total = static_cast<int64_t>(p.B) * (p.P + p.N) * p.D;
  VIT_DISPATCH_DTYPE(p.dtype, L, embed_finish_kernel<T><<<kern::blocks_for(total, 256), 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("embed_finish_kernel");
}

}  // namespace vit
