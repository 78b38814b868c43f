// vit-infer: GPU image preprocessing (see resize_normalize.cuh). Both kernels run the exact
// integer arithmetic of the CPU port (image/preprocess.cpp): the same fixed-point tables
// (built on the host by fixed_resample_coeffs and uploaded), int32 accumulators starting at
// 1 << 21, arithmetic shift by 22, clip to uint8 between the passes, horizontal pass first.
// One thread per output pixel (3 channels); grid-stride loops so any image size launches.
#include "resize_normalize.cuh"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_check.h"
#include "device_common.cuh"

namespace vit {
namespace {

using kern::from_f;

constexpr int kPrec = kGpuResamplePrecisionBits;

__device__ __forceinline__ uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrec;  // arithmetic shift = floor, as Pillow and the CPU port
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

__global__ void __launch_bounds__(256) resize_horizontal_kernel(const ResizeHorizontalParams p) {
  const int64_t n = static_cast<int64_t>(p.tmp_rows) * p.nx;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int r = static_cast<int>(i / p.nx), j = static_cast<int>(i % p.nx);
    const uint8_t* row = p.src + static_cast<int64_t>(p.sy0 + r) * p.src_w * 3;
    uint8_t* d = p.tmp + i * 3;  // tmp [tmp_rows, nx, 3]
    if (!p.resize_x) {
      const uint8_t* s = row + static_cast<int64_t>(p.rx0 + j) * 3;
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
      continue;
    }
    const int o = p.rx0 + j;
    const int32_t* k = p.k + static_cast<int64_t>(o) * p.ksize;
    const uint8_t* s = row + static_cast<int64_t>(__ldg(p.first + o)) * 3;
    const int cnt = __ldg(p.count + o);
    int32_t a0 = 1 << (kPrec - 1), a1 = a0, a2 = a0;
    for (int t = 0; t < cnt; ++t) {
      const int32_t w = __ldg(k + t);
      a0 += static_cast<int32_t>(s[3 * t]) * w;
      a1 += static_cast<int32_t>(s[3 * t + 1]) * w;
      a2 += static_cast<int32_t>(s[3 * t + 2]) * w;
    }
    d[0] = clip8(a0);
    d[1] = clip8(a1);
    d[2] = clip8(a2);
  }
}

template <typename T>
__global__ void __launch_bounds__(256) resize_vertical_normalize_kernel(const ResizeVerticalNormalizeParams p) {
  const int64_t hw = static_cast<int64_t>(p.out_h) * p.out_w;
  const int64_t tstride = static_cast<int64_t>(p.nx) * 3;
  T* dst = static_cast<T*>(p.dst);  // [3, out_h, out_w]
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < hw;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int y = static_cast<int>(i / p.out_w), x = static_cast<int>(i % p.out_w);
    int u0 = 0, u1 = 0, u2 = 0;  // zero = torchvision's CenterCrop pad fill (before Normalize)
    if (y >= p.y0 && y < p.y1 && x >= p.x0 && x < p.x1) {
      const int o = p.ry0 + (y - p.y0);  // resized row
      const int64_t col = static_cast<int64_t>(x - p.x0) * 3;
      if (!p.resize_y) {
        const uint8_t* s = p.tmp + static_cast<int64_t>(o - p.sy0) * tstride + col;
        u0 = s[0];
        u1 = s[1];
        u2 = s[2];
      } else {
        const int32_t* k = p.k + static_cast<int64_t>(o) * p.ksize;
        const uint8_t* s = p.tmp + static_cast<int64_t>(__ldg(p.first + o) - p.sy0) * tstride + col;
        const int cnt = __ldg(p.count + o);
        int32_t a0 = 1 << (kPrec - 1), a1 = a0, a2 = a0;
        for (int t = 0; t < cnt; ++t) {
          const int32_t w = __ldg(k + t);
          const uint8_t* st = s + t * tstride;
          a0 += static_cast<int32_t>(st[0]) * w;
          a1 += static_cast<int32_t>(st[1]) * w;
          a2 += static_cast<int32_t>(st[2]) * w;
        }
        u0 = clip8(a0);
        u1 = clip8(a1);
        u2 = clip8(a2);
      }
    }
    if (p.u8_out) {
      uint8_t* u = p.u8_out + i * 3;  // [out_h, out_w, 3]
      u[0] = static_cast<uint8_t>(u0);
      u[1] = static_cast<uint8_t>(u1);
      u[2] = static_cast<uint8_t>(u2);
    }
    // The host's table: the very fp32 values the CPU path produces, so fp32 output is exact.
    dst[i] = from_f<T>(__ldg(p.lut + u0));
    dst[hw + i] = from_f<T>(__ldg(p.lut + 256 + u1));
    dst[2 * hw + i] = from_f<T>(__ldg(p.lut + 512 + u2));
  }
}

std::string num(int64_t v) { return std::to_string(v); }

}  // namespace

void launch_resize_horizontal(const ResizeHorizontalParams& p, cudaStream_t stream) {
  const char* L = "launch_resize_horizontal";
  using cuda::require;
  require(p.tmp_rows >= 0 && p.nx >= 0, L, "tmp_rows and nx must be >= 0 (got " + num(p.tmp_rows) + ", " + num(p.nx) + ")");
  if (p.tmp_rows == 0 || p.nx == 0) return;  // the crop keeps nothing of the image
  require(p.src && p.tmp, L, "src and tmp must not be null");
  require(p.src_w > 0 && p.src_h > 0, L, "source size must be positive (got " + num(p.src_w) + "x" + num(p.src_h) + ")");
  require(p.sy0 >= 0 && p.sy0 + p.tmp_rows <= p.src_h, L,
          "source rows [" + num(p.sy0) + ", " + num(p.sy0 + p.tmp_rows) + ") outside the " + num(p.src_h) + "-row source");
  if (p.resize_x) {
    require(p.first && p.count && p.k, L, "resize_x needs the first / count / k tables");
    require(p.ksize > 0, L, "ksize must be positive (got " + num(p.ksize) + ")");
    require(p.rx0 >= 0 && p.rx0 + p.nx <= p.out_size, L,
            "columns [" + num(p.rx0) + ", " + num(p.rx0 + p.nx) + ") outside the " + num(p.out_size) + "-column table");
  } else {
    require(p.rx0 >= 0 && p.rx0 + p.nx <= p.src_w, L,
            "columns [" + num(p.rx0) + ", " + num(p.rx0 + p.nx) + ") outside the " + num(p.src_w) + "-column source");
  }
  const int64_t n = static_cast<int64_t>(p.tmp_rows) * p.nx;
  resize_horizontal_kernel<<<kern::blocks_for(n, 256), 256, 0, stream>>>(p);
  VIT_CHECK_LAUNCH("resize_horizontal_kernel");
}

void launch_resize_vertical_normalize(const ResizeVerticalNormalizeParams& p, cudaStream_t stream) {
  const char* L = "launch_resize_vertical_normalize";
  using cuda::require;
  require(p.dst && p.lut, L, "dst and lut must not be null");
  require(p.out_w > 0 && p.out_h > 0, L, "output size must be positive (got " + num(p.out_w) + "x" + num(p.out_h) + ")");
  require(0 <= p.x0 && p.x0 <= p.x1 && p.x1 <= p.out_w && 0 <= p.y0 && p.y0 <= p.y1 && p.y1 <= p.out_h, L,
          "window [" + num(p.x0) + ", " + num(p.x1) + ") x [" + num(p.y0) + ", " + num(p.y1) + ") outside the " +
              num(p.out_w) + "x" + num(p.out_h) + " output");
  const int ny = p.y1 - p.y0;
  if (p.x1 > p.x0 && ny > 0) {
    require(p.tmp != nullptr, L, "tmp must not be null");
    require(p.nx == p.x1 - p.x0, L, "nx (" + num(p.nx) + ") must equal the window width " + num(p.x1 - p.x0));
    require(p.ry0 >= 0, L, "ry0 must be >= 0 (got " + num(p.ry0) + ")");
    if (p.resize_y) {
      require(p.first && p.count && p.k, L, "resize_y needs the first / count / k tables");
      require(p.ksize > 0, L, "ksize must be positive (got " + num(p.ksize) + ")");
      require(p.ry0 + ny <= p.out_size, L,
              "rows [" + num(p.ry0) + ", " + num(p.ry0 + ny) + ") outside the " + num(p.out_size) + "-row table");
      require(p.sy0 >= 0 && p.tmp_rows > 0, L, "sy0 must be >= 0 and tmp_rows positive");
    } else {
      require(p.ry0 - p.sy0 >= 0 && p.ry0 - p.sy0 + ny <= p.tmp_rows, L,
              "rows [" + num(p.ry0) + ", " + num(p.ry0 + ny) + ") not all in tmp rows [" + num(p.sy0) + ", " +
                  num(p.sy0 + p.tmp_rows) + ")");
    }
  }
  const int64_t hw = static_cast<int64_t>(p.out_h) * p.out_w;
  const unsigned blocks = kern::blocks_for(hw, 256);
  VIT_DISPATCH_DTYPE(p.dtype, L, resize_vertical_normalize_kernel<T><<<blocks, 256, 0, stream>>>(p));
  VIT_CHECK_LAUNCH("resize_vertical_normalize_kernel");
}

}  // namespace vit
