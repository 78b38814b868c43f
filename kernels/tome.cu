// vit-infer: token merging kernels (see tome.cuh).
// Key mean: one thread per metric element (grid-stride), the heads summed in order in fp32.
// Merge: one block of 256 threads (8 warps) per image, everything in dynamic shared memory:
//   inv [T] double        1 / |metric row| (0 for a zero row: similarity 0 to everything)
//   best [nA] double      each A row's best similarity (-inf for the protected rows)
//   partner, rank, order [nA] int   its B partner; its place in the descending edge order; inverse
//   off [nB + 1], list [r] int      the merged A rows of each B row (most similar first)
//   osrc, olb, ole [T - r] int      per output row: its own input row and its list range
// The similarities are double (metric rows are fp32; a dot product in double is exact to ~1e-16, so
// the CPU reference and this kernel take the same decisions from the same metric). A warp scores
// one A row against every B row (a lane per B row), the lanes' bests meet in shared memory; the
// ranks are counts (nA^2 comparisons: 10^4 at ViT-B's 197 tokens), then each output element is
// its sources' size-weighted mean in fp32.
#include "tome.cuh"

#include <cmath>
#include <string>

#include "cuda_check.h"
#include "device_common.cuh"

namespace vit {
namespace {

using kern::from_f;
using kern::to_f;

constexpr int kMergeThreads = 256, kMergeWarps = kMergeThreads / 32;

template <typename T>
__global__ void __launch_bounds__(256) tome_key_mean_kernel(const TomeKeyMeanParams p) {
  const int64_t total = static_cast<int64_t>(p.B) * p.T * p.head_dim;
  const T* K = static_cast<const T*>(p.k);
  const float inv = 1.0f / static_cast<float>(p.H);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = i % p.head_dim, t = (i / p.head_dim) % p.T, b = i / (static_cast<int64_t>(p.head_dim) * p.T);
    const T* k = K + b * p.stride_b + t * p.stride_t + d;
    float s = 0.0f;
    for (int h = 0; h < p.H; ++h) s += to_f(k[h * p.stride_h]);
    p.metric[i] = s * inv;
  }
}

size_t merge_smem_bytes(int T, int r) {
  const int na = (T + 1) / 2, nb = T / 2, To = T - r;
  return sizeof(double) * (static_cast<size_t>(T) + na) +
         sizeof(int) * (3 * static_cast<size_t>(na) + nb + 1 + (r > 0 ? r : 1) + 3 * static_cast<size_t>(To));
}

template <typename T>
__global__ void __launch_bounds__(256) tome_merge_kernel(const TomeMergeParams p) {
  extern __shared__ float smem[];
  __shared__ double wbest[kMergeWarps][32];
  __shared__ int widx[kMergeWarps][32];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, b = blockIdx.x;
  const int Tn = p.T, hd = p.head_dim, D = p.D, r = p.r, P = p.prefix;
  const int na = (Tn + 1) / 2, nb = Tn / 2, pa = (P + 1) / 2, pb = P / 2, To = Tn - r;
  double* inv = reinterpret_cast<double*>(smem);  // the block's dynamic shared memory is 16-byte aligned
  double* best = inv + Tn;
  int* partner = reinterpret_cast<int*>(best + na);
  int* rank = partner + na;
  int* order = rank + na;
  int* off = order + na;
  int* list = off + nb + 1;
  int* osrc = list + (r > 0 ? r : 1);
  int* olb = osrc + To;
  int* ole = olb + To;
  const float* M = p.metric + static_cast<int64_t>(b) * Tn * hd;

  for (int t = tid; t < Tn; t += kMergeThreads) {
    const float* m = M + static_cast<int64_t>(t) * hd;
    double n2 = 0.0;
    for (int d = 0; d < hd; ++d) n2 += static_cast<double>(m[d]) * m[d];
    inv[t] = n2 > 0.0 ? 1.0 / sqrt(n2) : 0.0;
  }
  __syncthreads();
  // Edges: warp w scores A rows w, w + 8, ...; lane l the B rows pb + l, pb + l + 32, ... (its
  // first best kept on a tie), then lane 0 takes the best of the 32 (the lower B row on a tie).
  for (int a0 = 0; a0 < na; a0 += kMergeWarps) {
    const int a = a0 + warp;
    double bs = -INFINITY;
    int bi = 0x7fffffff;
    if (a < na && a >= pa) {
      const float* ma = M + static_cast<int64_t>(2 * a) * hd;
      for (int j = pb + lane; j < nb; j += 32) {
        const float* mb = M + static_cast<int64_t>(2 * j + 1) * hd;
        double s = 0.0;
        for (int d = 0; d < hd; ++d) s += static_cast<double>(ma[d]) * mb[d];
        s *= inv[2 * a] * inv[2 * j + 1];
        if (s > bs) {
          bs = s;
          bi = j;
        }
      }
    }
    wbest[warp][lane] = bs;
    widx[warp][lane] = bi;
    __syncthreads();
    if (lane == 0 && a < na) {
      double v = -INFINITY;
      int ix = 0;
      for (int l = 0; l < 32; ++l) {
        const double s = wbest[warp][l];
        const int j = widx[warp][l];
        if (s > v || (s == v && j < ix)) {
          v = s;
          ix = j;
        }
      }
      best[a] = v;
      partner[a] = ix;
    }
    __syncthreads();
  }
  // The descending edge order (ties: the lower A row first) as ranks, and its inverse.
  for (int a = tid; a < na; a += kMergeThreads) {
    const double v = best[a];
    int k = 0;
    for (int c = 0; c < na; ++c) {
      const double w = best[c];
      k += (w > v) || (w == v && c < a);
    }
    rank[a] = k;
    order[k] = a;
  }
  __syncthreads();
  // The unmerged A rows (rank >= r): position u among them (ascending rows with a prefix, else
  // edge order), then their output row; the B rows' lists of merged A rows.
  for (int a = tid; a < na; a += kMergeThreads) {
    if (rank[a] < r) continue;
    int u = rank[a] - r;
    if (P > 0) {
      u = 0;
      for (int c = 0; c < a; ++c) u += rank[c] >= r;
    }
    const int o = u < pa ? 2 * u : P + (u - pa);
    osrc[o] = 2 * a;
    olb[o] = ole[o] = 0;
  }
  for (int j = tid; j < nb; j += kMergeThreads) {
    int c = 0;
    for (int k = 0; k < r; ++k) c += partner[order[k]] == j;
    off[j] = c;
  }
  __syncthreads();
  if (tid == 0) {
    int s = 0;
    for (int j = 0; j < nb; ++j) {
      const int c = off[j];
      off[j] = s;
      s += c;
    }
    off[nb] = s;
  }
  __syncthreads();
  for (int j = tid; j < nb; j += kMergeThreads) {
    int n = off[j];
    for (int k = 0; k < r; ++k)
      if (partner[order[k]] == j) list[n++] = 2 * order[k];
    const int o = j < pb ? 2 * j + 1 : P + (na - r - pa) + (j - pb);
    osrc[o] = 2 * j + 1;
    olb[o] = off[j];
    ole[o] = off[j + 1];
  }
  __syncthreads();
  const T* X = static_cast<const T*>(p.x) + static_cast<int64_t>(b) * Tn * D;
  T* Y = static_cast<T*>(p.y) + static_cast<int64_t>(b) * To * D;
  const float* S = p.size ? p.size + static_cast<int64_t>(b) * Tn : nullptr;
  for (int idx = tid; idx < To * D; idx += kMergeThreads) {
    const int o = idx / D, d = idx % D;
    int s = osrc[o];
    float w = S ? S[s] : 1.0f;
    float total = w, acc = w * to_f(X[static_cast<int64_t>(s) * D + d]);
    for (int k = olb[o]; k < ole[o]; ++k) {
      s = list[k];
      w = S ? S[s] : 1.0f;
      total += w;
      acc += w * to_f(X[static_cast<int64_t>(s) * D + d]);
    }
    Y[idx] = from_f<T>(acc / total);
    if (d == 0) p.size_out[static_cast<int64_t>(b) * To + o] = total;
  }
}

}  // namespace

void launch_tome_key_mean(const TomeKeyMeanParams& p, cudaStream_t stream) {
  const char* L = "launch_tome_key_mean";
  using cuda::require;
  require(p.k && p.metric, L, "k and metric must not be null");
  require(p.B > 0 && p.H > 0 && p.T > 0 && p.head_dim > 0, L, "B, H, T, head_dim must be positive");
  require(p.stride_t >= p.head_dim && p.stride_b >= 0 && p.stride_h >= 0, L, "strides must be non-negative, stride_t >= head_dim");
  const int64_t total = static_cast<int64_t>(p.B) * p.T * p.head_dim;
  VIT_DISPATCH_DTYPE(p.dtype, L, tome_key_mean_kernel<T><<<kern::blocks_for(total, 256), 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("tome_key_mean_kernel");
}

void launch_tome_merge(const TomeMergeParams& p, cudaStream_t stream) {
  const char* L = "launch_tome_merge";
  using cuda::require;
  require(p.x && p.metric && p.y && p.size_out, L, "x, metric, y and size_out must not be null");
  require(p.B > 0 && p.T > 0 && p.D > 0 && p.head_dim > 0, L, "B, T, D, head_dim must be positive");
  require(p.prefix >= 0 && p.prefix <= p.T, L, "prefix must be in 0..T");
  require(p.r > 0 && p.r <= (p.T - p.prefix) / 2, L,
          "r " + std::to_string(p.r) + " must be in 1..(T - prefix) / 2 = " + std::to_string((p.T - p.prefix) / 2));
  require(p.B <= 2147483647, L, "B must fit the grid");
  const size_t smem = merge_smem_bytes(p.T, p.r);
  require(smem <= 227 * 1024, L, "T " + std::to_string(p.T) + " needs " + std::to_string(smem) +
                                     " bytes of shared memory (at most 227 KB: T <= ~6800)");
  VIT_DISPATCH_DTYPE(p.dtype, L, {
    if (smem > 48 * 1024)
      VIT_CUDA_CHECK(cudaFuncSetAttribute(tome_merge_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
    tome_merge_kernel<T><<<p.B, kMergeThreads, smem, stream>>>(p);
  });
  VIT_CHECK_LAUNCH("tome_merge_kernel");
}

}  // namespace vit
