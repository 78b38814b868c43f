// vit-infer benchmarks: the row softmax of the unfused attention baseline (softmax.h). One
// warp per row: max, then sum of exp, then the normalised write, each a pass of 32-wide
// coalesced loads (a 197-wide row stays in L1 between passes). Not used by the engine.
#include "softmax.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>

#include "core/error.h"
#include "cuda_check.h"

namespace vit::bench {
namespace {

template <typename T> __device__ __forceinline__ float ld(const T* p);
template <> __device__ __forceinline__ float ld<float>(const float* p) { return *p; }
template <> __device__ __forceinline__ float ld<__half>(const __half* p) { return __half2float(*p); }
template <> __device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16* p) { return __bfloat162float(*p); }
template <typename T> __device__ __forceinline__ T st(float v);
template <> __device__ __forceinline__ float st<float>(float v) { return v; }
template <> __device__ __forceinline__ __half st<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 st<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ float wmax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float wsum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
__global__ void softmax_rows_kernel(const T* x, T* y, int64_t rows, int cols) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* xr = x + row * cols;
  T* yr = y + row * cols;
  float m = -FLT_MAX;
  for (int i = lane; i < cols; i += 32) m = fmaxf(m, ld<T>(xr + i));
  m = wmax(m);
  float s = 0.0f;
  for (int i = lane; i < cols; i += 32) s += __expf(ld<T>(xr + i) - m);
  const float inv = 1.0f / wsum(s);
  for (int i = lane; i < cols; i += 32) yr[i] = st<T>(__expf(ld<T>(xr + i) - m) * inv);
}

}  // namespace

void launch_softmax_rows(const void* x, void* y, DType dt, int64_t rows, int cols, cudaStream_t s) {
  cuda::require(x && y && rows > 0 && cols > 0, "launch_softmax_rows", "null buffer or empty shape");
  constexpr int kWarps = 8;
  const int64_t blocks = (rows + kWarps - 1) / kWarps;
  cuda::require(blocks <= 0x7fffffff, "launch_softmax_rows", "too many rows");
  const dim3 grid(static_cast<unsigned>(blocks)), block(32 * kWarps);
  switch (dt) {
    case DType::F32:
      softmax_rows_kernel<<<grid, block, 0, s>>>(static_cast<const float*>(x), static_cast<float*>(y), rows, cols);
      break;
    case DType::F16:
      softmax_rows_kernel<<<grid, block, 0, s>>>(static_cast<const __half*>(x), static_cast<__half*>(y), rows, cols);
      break;
    case DType::BF16:
      softmax_rows_kernel<<<grid, block, 0, s>>>(static_cast<const __nv_bfloat16*>(x),
                                                 static_cast<__nv_bfloat16*>(y), rows, cols);
      break;
    default: fail(ErrorCode::kInvalidArgument, std::string("launch_softmax_rows: unsupported dtype ") + dtype_name(dt));
  }
  VIT_CHECK_LAUNCH("softmax_rows_kernel");
}

}  // namespace vit::bench
