// vit-infer: GEMM kernels (see gemm.cuh). Tensor-core path: block tile BM x BN x 32, warps
// arranged WM x WN, each warp a (BM/WM) x (BN/WN) tile of m16n8k16 mma.sync; shared tiles are
// [rows][32 + 8] 16-bit (80-byte rows: 16-byte aligned for cp.async and conflict-free for
// ldmatrix), two stages (cp.async double buffering). Out-of-range rows / k chunks are
// zero-filled, so any M, N and any K % 8 == 0 work. SIMT path: 64 x 64 x 16 tiles, 4 x 4 per
// thread, fp32 in shared memory, fully predicated.
#include "gemm.cuh"

#include <string>

#include "cuda_check.h"
#include "device_common.cuh"
#include "gemm_epilogue.cuh"
#include "gemm_sm90.cuh"

namespace vit {
namespace {

using kern::from_f;
using kern::to_f;

using kern::gemm_store;

template <typename T, int BM, int BN, int WM, int WN>
__global__ void __launch_bounds__(WM* WN * 32) gemm_tc_kernel(const GemmParams p) {
  constexpr int BK = 32, LDS = BK + 8;
  constexpr int THREADS = WM * WN * 32;
  constexpr int WTM = BM / WM, WTN = BN / WN;
  constexpr int MI = WTM / 16, NI = WTN / 8;
  static_assert(WTM % 16 == 0 && WTN % 16 == 0, "warp tile must be a multiple of 16");
  __shared__ __align__(16) T As[2][BM][LDS];  // x tile  [BM][BK]
  __shared__ __align__(16) T Bs[2][BN][LDS];  // W tile  [BN][BK]

  const T* A = static_cast<const T*>(p.a);
  const T* W = static_cast<const T*>(p.w);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wm = warp / WN, wn = warp % WN;
  const int bm0 = blockIdx.x * BM, bn0 = blockIdx.y * BN;
  const int M = p.M, N = p.N, K = p.K;

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  auto load_tile = [&](int kt, int s) {
    const int k0 = kt * BK;
    for (int c = tid; c < BM * (BK / 8); c += THREADS) {
      const int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
      const int gr = bm0 + r, gk = k0 + kc;
      const bool ok = gr < M && gk < K;  // K % 8 == 0: a chunk is wholly in or out
      kern::cp_async16(&As[s][r][kc], ok ? A + static_cast<int64_t>(gr) * p.lda + gk : A, ok);
    }
    for (int c = tid; c < BN * (BK / 8); c += THREADS) {
      const int r = c / (BK / 8), kc = (c % (BK / 8)) * 8;
      const int gr = bn0 + r, gk = k0 + kc;
      const bool ok = gr < N && gk < K;
      kern::cp_async16(&Bs[s][r][kc], ok ? W + static_cast<int64_t>(gr) * p.ldw + gk : W, ok);
    }
  };

  const int KT = (K + BK - 1) / BK;
  load_tile(0, 0);
  kern::cp_async_commit();
  for (int kt = 0; kt < KT; ++kt) {
    const int s = kt & 1;
    if (kt + 1 < KT) load_tile(kt + 1, s ^ 1);
    kern::cp_async_commit();  // possibly empty: keeps the group count uniform
    kern::cp_async_wait<1>();  // tile kt has landed (this thread's copies)
    __syncthreads();           // ... and everyone else's
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      uint32_t af[MI][4];
      uint32_t bf[NI][2];
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) {
        const int r = wm * WTM + mi * 16 + (lane % 16);
        const int k = kk * 16 + (lane / 16) * 8;
        kern::ldmatrix_x4(af[mi], &As[s][r][k]);
      }
#pragma unroll
      for (int nj = 0; nj < NI / 2; ++nj) {
        const int n = wn * WTN + nj * 16 + (lane / 16) * 8 + (lane % 8);
        const int k = kk * 16 + ((lane / 8) % 2) * 8;
        uint32_t r[4];
        kern::ldmatrix_x4(r, &Bs[s][n][k]);
        bf[2 * nj][0] = r[0];
        bf[2 * nj][1] = r[1];
        bf[2 * nj + 1][0] = r[2];
        bf[2 * nj + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) kern::mma16816<T>(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
    }
    __syncthreads();  // stage s is overwritten by the load issued in the next iteration
  }

#pragma unroll
  for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
    for (int ni = 0; ni < NI; ++ni) {
      const int r0 = bm0 + wm * WTM + mi * 16 + lane / 4;
      const int c0 = bn0 + wn * WTN + ni * 8 + (lane % 4) * 2;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = r0 + (e >= 2 ? 8 : 0), c = c0 + (e & 1);
        if (r < M && c < N) gemm_store<T>(p, r, c, acc[mi][ni][e]);
      }
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(256) gemm_simt_kernel(const GemmParams p) {
  constexpr int BM = 64, BN = 64, BK = 16;
  __shared__ float As[BK][BM + 4];
  __shared__ float Bs[BK][BN + 4];
  const T* A = static_cast<const T*>(p.a);
  const T* W = static_cast<const T*>(p.w);
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int bm0 = blockIdx.x * BM, bn0 = blockIdx.y * BN;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < p.K; k0 += BK) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int idx = tid + i * 256;
      const int r = idx / BK, kk = idx % BK;
      const int gk = k0 + kk;
      const int ga = bm0 + r, gw = bn0 + r;
      As[kk][r] = (ga < p.M && gk < p.K) ? to_f(A[static_cast<int64_t>(ga) * p.lda + gk]) : 0.0f;
      Bs[kk][r] = (gw < p.N && gk < p.K) ? to_f(W[static_cast<int64_t>(gw) * p.ldw + gk]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int r = bm0 + ty * 4 + i, c = bn0 + tx * 4 + j;
      if (r < p.M && c < p.N) gemm_store<T>(p, r, c, acc[i][j]);
    }
}

int sm_count() {
  int dev = 0, n = 0;
  VIT_CUDA_CHECK(cudaGetDevice(&dev));
  VIT_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n > 0 ? n : 1;
}

template <typename T, int BM, int BN, int WM, int WN>
void launch_tc(const GemmParams& p, cudaStream_t stream) {
  const dim3 grid((p.M + BM - 1) / BM, (p.N + BN - 1) / BN);
  gemm_tc_kernel<T, BM, BN, WM, WN><<<grid, WM * WN * 32, 0, stream>>>(p);
  VIT_CHECK_LAUNCH("gemm_tc_kernel");
}

}  // namespace

bool gemm_uses_tensor_cores(const GemmParams& p) {
  return p.kernel == GemmKernel::kAuto && (p.dtype == DType::F16 || p.dtype == DType::BF16) &&
         p.K % 8 == 0 && p.lda % 8 == 0 && p.ldw % 8 == 0 && cuda::aligned16(p.a) && cuda::aligned16(p.w);
}

void validate_gemm_params(const GemmParams& p, const char* L) {
  using cuda::require;
  require(p.M > 0 && p.N > 0 && p.K > 0, L,
          "M, N, K must be positive (got " + std::to_string(p.M) + ", " + std::to_string(p.N) + ", " +
              std::to_string(p.K) + ")");
  require(p.a && p.w && p.c, L, "x, W and y must not be null");
  require(p.lda >= p.K && p.ldw >= p.K, L, "lda and ldw must be >= K");
  require(p.M <= 65535LL * 64 * 1024, L, "M too large");
  require((p.N + 63) / 64 <= 65535, L, "N too large for the grid");
  if (p.epilogue == GemmEpilogue::kQkv) {
    require(p.tokens > 0 && p.heads > 0 && p.head_dim > 0, L, "kQkv needs tokens, heads, head_dim");
    require(p.M % p.tokens == 0, L, "kQkv: M must be a multiple of tokens");
    require(p.N == 3 * p.heads * p.head_dim, L, "kQkv: N must be 3 * heads * head_dim");
  } else {
    require(p.ldc >= p.N, L, "ldc must be >= N");
  }
  if (p.epilogue == GemmEpilogue::kResidual) {
    require(p.residual != nullptr && p.ldr >= p.N, L, "kResidual needs a residual with ldr >= N");
    require(p.residual_period >= 0, L, "residual_period must be >= 0");
    require(p.residual_period == 0 || p.residual != p.c, L,
            "a periodic residual (residual_period > 0) must not alias y");
  }
  if (p.epilogue == GemmEpilogue::kAct) require(p.bias != nullptr, L, "kAct expects a bias");

}

void launch_gemm(const GemmParams& p, cudaStream_t stream) {
  const char* L = "launch_gemm";
  validate_gemm_params(p, L);
  if (p.kernel == GemmKernel::kSm90) {
    launch_gemm_sm90(p, stream);
    return;
  }
  if (gemm_uses_tensor_cores(p)) {
    // 128 x 128 tiles when they fill the GPU; 64 x 64 otherwise (small batches).
    const int64_t big_tiles = static_cast<int64_t>((p.M + 127) / 128) * ((p.N + 127) / 128);
    const bool big = big_tiles >= sm_count();
    if (p.dtype == DType::F16) {
      if (big) launch_tc<__half, 128, 128, 2, 4>(p, stream);
      else launch_tc<__half, 64, 64, 2, 2>(p, stream);
    } else {
      if (big) launch_tc<__nv_bfloat16, 128, 128, 2, 4>(p, stream);
      else launch_tc<__nv_bfloat16, 64, 64, 2, 2>(p, stream);
    }
    return;
  }
  const dim3 grid((p.M + 63) / 64, (p.N + 63) / 64);
  VIT_DISPATCH_DTYPE(p.dtype, L, gemm_simt_kernel<T><<<grid, 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("gemm_simt_kernel");
}

}  // namespace vit
