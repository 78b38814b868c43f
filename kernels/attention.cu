// vit-infer: attention kernels (see attention.cuh).
// Tensor-core kernel (FlashAttention-2 style): a block of 4 warps owns 64 query rows of one
// (b, h), 16 rows per warp; Q fragments stay in registers; K/V tiles of BKV keys are staged in
// shared memory with cp.async (K and V in separate groups so S = QK^T starts while V lands);
// S lives in mma accumulators, is rescaled online (exp2 domain) and reused in registers as the
// A operand of P V (ldmatrix.trans on V). Shared rows are hd + 8 elements (16-byte aligned,
// conflict-free for ldmatrix). Keys / queries past T are zero-filled and masked to -inf.
// SIMT kernel: 16 query rows per block (4 per warp), K/V chunks of 32 keys in fp32 shared
// memory, one key per lane, online softmax with warp reductions; any hd <= 128.
#include "attention.cuh"

#include <cmath>
#include <string>

#include "cuda_check.h"
#include "device_common.cuh"

namespace vit {
namespace {

using kern::from_f;
using kern::to_f;

constexpr float kLog2e = 1.4426950408889634f;

template <typename T, int HD>
__global__ void __launch_bounds__(128) attn_tc_kernel(const AttentionParams p) {
  constexpr int BQ = 64, BKV = HD <= 96 ? 64 : 32, LD = HD + 8;
  constexpr int KS = HD / 16;   // k-steps of S = Q K^T
  constexpr int NS = BKV / 8;   // n-tiles of S
  constexpr int NO = HD / 8;    // n-tiles of O
  static_assert(HD % 16 == 0, "tensor-core attention needs hd % 16 == 0");
  __shared__ __align__(16) T Qs[BQ][LD];
  __shared__ __align__(16) T Ks[BKV][LD];
  __shared__ __align__(16) T Vs[BKV][LD];

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BQ;
  const int T_ = p.T;
  const int64_t base = static_cast<int64_t>(b) * p.stride_b + static_cast<int64_t>(h) * p.stride_h;
  const T* Q = static_cast<const T*>(p.q) + base;
  const T* K = static_cast<const T*>(p.k) + base;
  const T* V = static_cast<const T*>(p.v) + base;

  for (int c = tid; c < BQ * (HD / 8); c += 128) {
    const int r = c / (HD / 8), dc = (c % (HD / 8)) * 8;
    const bool ok = q0 + r < T_;
    kern::cp_async16(&Qs[r][dc], ok ? Q + static_cast<int64_t>(q0 + r) * p.stride_t + dc : Q, ok);
  }
  kern::cp_async_commit();
  kern::cp_async_wait<0>();
  __syncthreads();

  uint32_t qf[KS][4];
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) kern::ldmatrix_x4(qf[kk], &Qs[warp * 16 + (lane % 16)][kk * 16 + (lane / 16) * 8]);

  const float sl2 = p.scale * kLog2e;
  float m[2] = {-INFINITY, -INFINITY};  // running max (log2 domain) of rows lane/4 and lane/4+8
  float l[2] = {0.0f, 0.0f};            // this thread's partial row sums
  float o[NO][4];
#pragma unroll
  for (int i = 0; i < NO; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[i][e] = 0.0f;

  for (int j0 = 0; j0 < T_; j0 += BKV) {
    for (int c = tid; c < BKV * (HD / 8); c += 128) {
      const int r = c / (HD / 8), dc = (c % (HD / 8)) * 8;
      const bool ok = j0 + r < T_;
      kern::cp_async16(&Ks[r][dc], ok ? K + static_cast<int64_t>(j0 + r) * p.stride_t + dc : K, ok);
    }
    kern::cp_async_commit();
    for (int c = tid; c < BKV * (HD / 8); c += 128) {
      const int r = c / (HD / 8), dc = (c % (HD / 8)) * 8;
      const bool ok = j0 + r < T_;
      kern::cp_async16(&Vs[r][dc], ok ? V + static_cast<int64_t>(j0 + r) * p.stride_t + dc : V, ok);
    }
    kern::cp_async_commit();
    kern::cp_async_wait<1>();  // K landed
    __syncthreads();

    float s[NS][4];
#pragma unroll
    for (int i = 0; i < NS; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[i][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < KS; ++kk) {
#pragma unroll
      for (int nj = 0; nj < NS / 2; ++nj) {
        uint32_t r[4];
        kern::ldmatrix_x4(r, &Ks[nj * 16 + (lane / 16) * 8 + (lane % 8)][kk * 16 + ((lane / 8) % 2) * 8]);
        kern::mma16816<T>(s[2 * nj], qf[kk], r[0], r[1]);
        kern::mma16816<T>(s[2 * nj + 1], qf[kk], r[2], r[3]);
      }
    }

    // Scale into the log2 domain (+ log2 of the key's size: proportional attention), mask keys
    // >= T, online softmax update.
    float mx[2] = {-INFINITY, -INFINITY};
    const float* sz = p.size ? p.size + static_cast<int64_t>(b) * T_ : nullptr;
#pragma unroll
    for (int ni = 0; ni < NS; ++ni) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = j0 + ni * 8 + (lane % 4) * 2 + (e & 1);
        const float v = key < T_ ? s[ni][e] * sl2 + (sz ? log2f(sz[key]) : 0.0f) : -INFINITY;
        s[ni][e] = v;
        mx[e / 2] = fmaxf(mx[e / 2], v);
      }
    }
    float alpha[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float mn = fmaxf(m[r], mx[r]);  // finite: every tile holds at least one valid key
      alpha[r] = exp2f(m[r] - mn);          // 0 on the first tile (m = -inf)
      m[r] = mn;
      l[r] *= alpha[r];
    }
#pragma unroll
    for (int ni = 0; ni < NS; ++ni) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pv = exp2f(s[ni][e] - m[e / 2]);
        s[ni][e] = pv;
        l[e / 2] += pv;
      }
    }
#pragma unroll
    for (int i = 0; i < NO; ++i) {
      o[i][0] *= alpha[0];
      o[i][1] *= alpha[0];
      o[i][2] *= alpha[1];
      o[i][3] *= alpha[1];
    }

    kern::cp_async_wait<0>();  // V landed
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BKV / 16; ++kk) {
      uint32_t a[4];
      a[0] = kern::pack2<T>(s[2 * kk][0], s[2 * kk][1]);
      a[1] = kern::pack2<T>(s[2 * kk][2], s[2 * kk][3]);
      a[2] = kern::pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      a[3] = kern::pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int dj = 0; dj < NO / 2; ++dj) {
        uint32_t r[4];
        kern::ldmatrix_x4_trans(r, &Vs[kk * 16 + ((lane / 8) % 2) * 8 + (lane % 8)][dj * 16 + (lane / 16) * 8]);
        kern::mma16816<T>(o[2 * dj], a, r[0], r[1]);
        kern::mma16816<T>(o[2 * dj + 1], a, r[2], r[3]);
      }
    }
    __syncthreads();  // Ks / Vs are overwritten by the next tile's copies
  }

  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float t = l[r];
    t += __shfl_xor_sync(0xffffffffu, t, 1);
    t += __shfl_xor_sync(0xffffffffu, t, 2);
    inv[r] = 1.0f / t;
  }
  const int ld_o = p.H * HD;
  T* O = static_cast<T*>(p.o);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int t = q0 + warp * 16 + lane / 4 + r * 8;
    if (t >= T_) continue;
    T* orow = O + (static_cast<int64_t>(b) * T_ + t) * ld_o + h * HD;
#pragma unroll
    for (int i = 0; i < NO; ++i) {
      const int d = i * 8 + (lane % 4) * 2;
      orow[d] = from_f<T>(o[i][2 * r] * inv[r]);
      orow[d + 1] = from_f<T>(o[i][2 * r + 1] * inv[r]);
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(128) attn_simt_kernel(const AttentionParams p) {
  constexpr int QR = 4, KC = 32, MAXD = 128;
  __shared__ float Qs[4 * QR][MAXD];
  __shared__ float Ks[KC][MAXD + 1];  // +1: lanes read different rows, same column
  __shared__ float Vs[KC][MAXD];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * (4 * QR);
  const int T_ = p.T, hd = p.head_dim;
  const int64_t base = static_cast<int64_t>(b) * p.stride_b + static_cast<int64_t>(h) * p.stride_h;
  const T* Q = static_cast<const T*>(p.q) + base;
  const T* K = static_cast<const T*>(p.k) + base;
  const T* V = static_cast<const T*>(p.v) + base;

  for (int i = tid; i < 4 * QR * hd; i += 128) {
    const int r = i / hd, d = i % hd;
    Qs[r][d] = q0 + r < T_ ? to_f(Q[static_cast<int64_t>(q0 + r) * p.stride_t + d]) : 0.0f;
  }
  float m[QR], l[QR], acc[QR][4];
#pragma unroll
  for (int i = 0; i < QR; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[i][c] = 0.0f;
  }

  for (int j0 = 0; j0 < T_; j0 += KC) {
    __syncthreads();  // Qs ready (first pass); previous chunk consumed
    for (int i = tid; i < KC * hd; i += 128) {
      const int r = i / hd, d = i % hd;
      const bool ok = j0 + r < T_;
      Ks[r][d] = ok ? to_f(K[static_cast<int64_t>(j0 + r) * p.stride_t + d]) : 0.0f;
      Vs[r][d] = ok ? to_f(V[static_cast<int64_t>(j0 + r) * p.stride_t + d]) : 0.0f;
    }
    __syncthreads();
    const bool valid = j0 + lane < T_;
#pragma unroll
    for (int i = 0; i < QR; ++i) {
      const float* q = Qs[warp * QR + i];
      float s = 0.0f;
      for (int d = 0; d < hd; ++d) s = fmaf(q[d], Ks[lane][d], s);
      s = valid ? s * p.scale + (p.size ? logf(p.size[static_cast<int64_t>(b) * T_ + j0 + lane]) : 0.0f) : -INFINITY;
      const float mn = fmaxf(m[i], kern::warp_max(s));  // finite: lane 0's key is always valid
      const float alpha = expf(m[i] - mn);
      const float pe = valid ? expf(s - mn) : 0.0f;
      l[i] = l[i] * alpha + kern::warp_sum(pe);
      m[i] = mn;
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[i][c] *= alpha;
      for (int jj = 0; jj < KC; ++jj) {
        const float pj = __shfl_sync(0xffffffffu, pe, jj);
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int d = lane + 32 * c;
          if (d < hd) acc[i][c] = fmaf(pj, Vs[jj][d], acc[i][c]);
        }
      }
    }
  }
  T* O = static_cast<T*>(p.o);
#pragma unroll
  for (int i = 0; i < QR; ++i) {
    const int t = q0 + warp * QR + i;
    if (t >= T_) continue;
    T* orow = O + (static_cast<int64_t>(b) * T_ + t) * (static_cast<int64_t>(p.H) * hd) + static_cast<int64_t>(h) * hd;
    const float inv = 1.0f / l[i];
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int d = lane + 32 * c;
      if (d < hd) orow[d] = from_f<T>(acc[i][c] * inv);
    }
  }
}

// One block of 128 threads per (query row, h, b); scores [T] in dynamic shared memory.
template <typename T>
__global__ void __launch_bounds__(128) attn_probs_kernel(const AttentionProbsParams p) {
  extern __shared__ float smem[];
  float* qrow = smem;              // [head_dim]
  float* sc = smem + p.head_dim;   // [T]
  __shared__ float red[4];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t base = static_cast<int64_t>(b) * p.stride_b + static_cast<int64_t>(h) * p.stride_h;
  const T* Q = static_cast<const T*>(p.q) + base + static_cast<int64_t>(t) * p.stride_t;
  const T* K = static_cast<const T*>(p.k) + base;
  for (int d = tid; d < p.head_dim; d += 128) qrow[d] = to_f(Q[d]);
  __syncthreads();
  float mx = -INFINITY;
  for (int j = tid; j < p.T; j += 128) {
    const T* kr = K + static_cast<int64_t>(j) * p.stride_t;
    float s = 0.0f;
    for (int d = 0; d < p.head_dim; ++d) s = fmaf(qrow[d], to_f(kr[d]), s);
    s *= p.scale;
    sc[j] = s;
    mx = fmaxf(mx, s);
  }
  mx = kern::warp_max(mx);
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  mx = fmaxf(fmaxf(red[0], red[1]), fmaxf(red[2], red[3]));
  __syncthreads();
  float sum = 0.0f;
  for (int j = tid; j < p.T; j += 128) {
    const float e = expf(sc[j] - mx);
    sc[j] = e;
    sum += e;
  }
  sum = kern::warp_sum(sum);
  if (lane == 0) red[warp] = sum;
  __syncthreads();
  const float inv = 1.0f / (red[0] + red[1] + red[2] + red[3]);
  float* out = p.probs + ((static_cast<int64_t>(b) * p.H + h) * p.query_rows + t) * p.T;
  for (int j = tid; j < p.T; j += 128) out[j] = sc[j] * inv;
}

// One thread per output element; the heads are summed in order, then scaled by 1/H.
__global__ void __launch_bounds__(256) attn_head_mean_kernel(const AttentionHeadMeanParams p) {
  const int64_t per = static_cast<int64_t>(p.R) * p.T;
  const int64_t total = per * p.B;
  const float inv = 1.0f / static_cast<float>(p.H);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / per, e = i % per;
    const float* src = p.probs + b * p.H * per + e;
    float s = src[0];
    for (int h = 1; h < p.H; ++h) s += src[h * per];
    p.out[b * p.out_stride_b + e] = s * inv;
  }
}

bool tc_head_dim(int hd) { return hd % 16 == 0 && hd >= 32 && hd <= 128; }

template <typename T, int HD>
void launch_tc(const AttentionParams& p, cudaStream_t stream) {
  const dim3 grid((p.T + 63) / 64, p.H, p.B);
  attn_tc_kernel<T, HD><<<grid, 128, 0, stream>>>(p);
  VIT_CHECK_LAUNCH("attn_tc_kernel");
}

template <typename T>
void dispatch_tc(const AttentionParams& p, cudaStream_t stream) {
  switch (p.head_dim) {
    case 32: launch_tc<T, 32>(p, stream); break;
    case 48: launch_tc<T, 48>(p, stream); break;
    case 64: launch_tc<T, 64>(p, stream); break;
    case 80: launch_tc<T, 80>(p, stream); break;
    case 96: launch_tc<T, 96>(p, stream); break;
    case 112: launch_tc<T, 112>(p, stream); break;
    case 128: launch_tc<T, 128>(p, stream); break;
    default: throw Error(ErrorCode::kInternal, "attention: no tensor-core instance for this head_dim");
  }
}

void check_layout(const char* L, const void* q, const void* k, int64_t sb, int64_t sh, int64_t st, int B, int H,
                  int T, int hd, float scale) {
  using cuda::require;
  require(B > 0 && H > 0 && T > 0, L, "B, H, T must be positive");
  require(hd >= 1 && hd <= 128, L, "head_dim " + std::to_string(hd) + " is not supported (1..128)");
  require(q && k, L, "q and k must not be null");
  require(st >= hd && sb >= 0 && sh >= 0, L, "strides must be non-negative and stride_t >= head_dim");
  require(std::isfinite(scale) && scale > 0.0f, L, "scale must be positive and finite");
  require(B <= 65535 && H <= 65535, L, "B and H must be <= 65535");
}

// Cross-attention (attention.cuh): one block of 128 threads per (query row, head, image). The
// scaled query row sits in shared fp32; keys are taken in chunks of kCrossChunk: thread j
// scores key j of the chunk, the chunk's max and exp-sum are block-reduced and the running
// state rescaled (online softmax over chunks), then thread d < head_dim accumulates output
// dimension d over the chunk (lanes read consecutive v columns: coalesced).
constexpr int kCrossChunk = 256;

template <typename T>
__global__ void __launch_bounds__(128) cross_attn_kernel(const CrossAttentionParams p) {
  __shared__ float qs[128];
  __shared__ float ps[kCrossChunk];
  __shared__ float red[4];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int l = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int hd = p.head_dim, D = p.H * hd;
  const int64_t ld = 2 * static_cast<int64_t>(D);
  const T* Q = static_cast<const T*>(p.q) + b * p.q_stride_b + static_cast<int64_t>(l) * D + h * hd;
  const T* K = static_cast<const T*>(p.kv) + (static_cast<int64_t>(b) * p.T + p.first) * ld + h * hd;
  const T* V = K + D;
  for (int d = tid; d < hd; d += 128) qs[d] = to_f(Q[d]) * p.scale;
  __syncthreads();
  const int n = p.T - p.first;
  float m = -INFINITY, sum = 0.0f, acc = 0.0f;  // acc: output dimension tid (tid < hd)
  for (int c0 = 0; c0 < n; c0 += kCrossChunk) {
    const int cn = n - c0 < kCrossChunk ? n - c0 : kCrossChunk;
    float cmax = -INFINITY;
    for (int j = tid; j < cn; j += 128) {
      const T* kr = K + static_cast<int64_t>(c0 + j) * ld;
      float s = 0.0f;
      for (int d = 0; d < hd; ++d) s = fmaf(qs[d], to_f(kr[d]), s);
      ps[j] = s;
      cmax = fmaxf(cmax, s);
    }
    cmax = kern::warp_max(cmax);
    if (lane == 0) red[warp] = cmax;
    __syncthreads();
    const float mnew = fmaxf(m, fmaxf(fmaxf(red[0], red[1]), fmaxf(red[2], red[3])));
    __syncthreads();  // red is rewritten below
    float csum = 0.0f;
    for (int j = tid; j < cn; j += 128) {
      const float e = expf(ps[j] - mnew);
      ps[j] = e;
      csum += e;
    }
    csum = kern::warp_sum(csum);
    if (lane == 0) red[warp] = csum;
    __syncthreads();  // publishes ps and red
    const float corr = expf(m - mnew);  // the first chunk: exp(-inf) = 0
    sum = sum * corr + ((red[0] + red[1]) + (red[2] + red[3]));
    if (tid < hd) {
      float a = acc * corr;
      for (int j = 0; j < cn; ++j) a = fmaf(ps[j], to_f(V[static_cast<int64_t>(c0 + j) * ld + tid]), a);
      acc = a;
    }
    m = mnew;
    __syncthreads();  // ps and red are rewritten by the next chunk
  }
  if (tid < hd) {
    T* O = static_cast<T*>(p.o) + (static_cast<int64_t>(b) * p.L + l) * D + h * hd;
    O[tid] = from_f<T>(acc / sum);
  }
}

}  // namespace

void launch_cross_attention(const CrossAttentionParams& p, cudaStream_t stream) {
  const char* L = "launch_cross_attention";
  using cuda::require;
  require(p.q && p.kv && p.o, L, "q, kv and o must not be null");
  require(p.B > 0 && p.L > 0 && p.H > 0 && p.head_dim > 0, L, "B, L, H, head_dim must be positive");
  require(p.head_dim <= 128, L, "head_dim " + std::to_string(p.head_dim) + " > 128");
  require(p.first >= 0 && p.first < p.T, L, "first must be in 0..T-1 (at least one key row)");
  require(p.q_stride_b >= 0, L, "q_stride_b must not be negative");
  require(std::isfinite(p.scale) && p.scale > 0.0f, L, "scale must be positive");
  require(p.L <= 65535 && p.H <= 65535 && p.B <= 65535, L, "L, H, B must be <= 65535 (grid limits)");
  const dim3 grid(p.L, p.H, p.B);
  VIT_DISPATCH_DTYPE(p.dtype, L, cross_attn_kernel<T><<<grid, 128, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("cross_attn_kernel");
}

bool attention_uses_tensor_cores(const AttentionParams& p) {
  const bool al = cuda::aligned16(p.q) && cuda::aligned16(p.k) && cuda::aligned16(p.v) && p.stride_b % 8 == 0 &&
                  p.stride_h % 8 == 0 && p.stride_t % 8 == 0;
  return p.kernel == AttentionKernel::kAuto && (p.dtype == DType::F16 || p.dtype == DType::BF16) &&
         tc_head_dim(p.head_dim) && al;
}

void launch_attention(const AttentionParams& p, cudaStream_t stream) {
  const char* L = "launch_attention";
  check_layout(L, p.q, p.k, p.stride_b, p.stride_h, p.stride_t, p.B, p.H, p.T, p.head_dim, p.scale);
  cuda::require(p.v && p.o, L, "v and o must not be null");
  if (attention_uses_tensor_cores(p)) {
    if (p.dtype == DType::F16) dispatch_tc<__half>(p, stream);
    else dispatch_tc<__nv_bfloat16>(p, stream);
    return;
  }
  const dim3 grid((p.T + 15) / 16, p.H, p.B);
  VIT_DISPATCH_DTYPE(p.dtype, L, attn_simt_kernel<T><<<grid, 128, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("attn_simt_kernel");
}

void launch_attention_probs(const AttentionProbsParams& p, cudaStream_t stream) {
  const char* L = "launch_attention_probs";
  check_layout(L, p.q, p.k, p.stride_b, p.stride_h, p.stride_t, p.B, p.H, p.T, p.head_dim, p.scale);
  cuda::require(p.probs != nullptr, L, "probs must not be null");
  cuda::require(p.query_rows >= 1 && p.query_rows <= p.T, L, "query_rows must be in 1..T");
  const size_t smem = (static_cast<size_t>(p.head_dim) + p.T) * sizeof(float);
  cuda::require(smem <= 48 * 1024, L, "T too large for the probabilities kernel (T + head_dim <= 12288)");
  const dim3 grid(p.query_rows, p.H, p.B);
  VIT_DISPATCH_DTYPE(p.dtype, L, attn_probs_kernel<T><<<grid, 128, smem, stream>>>(p));
  VIT_CHECK_LAUNCH("attn_probs_kernel");
}

void launch_attention_head_mean(const AttentionHeadMeanParams& p, cudaStream_t stream) {
  const char* L = "launch_attention_head_mean";
  using cuda::require;
  require(p.probs && p.out, L, "probs and out must not be null");
  require(p.B > 0 && p.H > 0 && p.R > 0 && p.T > 0, L, "B, H, R, T must be positive");
  require(p.out_stride_b >= static_cast<int64_t>(p.R) * p.T, L, "out_stride_b must be >= R * T");
  const int64_t total = static_cast<int64_t>(p.B) * p.R * p.T;
  attn_head_mean_kernel<<<kern::blocks_for(total, 256), 256, 0, stream>>>(p);
  VIT_CHECK_LAUNCH("attn_head_mean_kernel");
}

}  // namespace vit
