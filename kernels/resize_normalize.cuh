// vit-infer: image preprocessing on the GPU, bit-identical to the CPU path (image/preprocess.h):
// Pillow's 8-bit two-pass resampler run with the host's own fixed-point tables, the timm / HF
// resize-then-crop plan, then the host's normalisation lookup table into the model input.
// Buffers: source [src_h, src_w, 3] u8 RGB; horizontal-pass output [tmp_rows, nx, 3] u8 (only
// the rows and columns the crop keeps); model input [B, 3, H, W] fp32 / fp16 / bf16.
// The host side (plan, tables, staging, the launches) is GpuPreprocessor, src/gpu/gpu_preprocess.h.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/tensor.h"

namespace vit {

// Pillow's PRECISION_BITS for 8-bit images: the fixed-point scale of the resampling tables
// (the host builds them with image/preprocess.h; gpu/gpu_preprocess.cpp checks the two agree).
constexpr int kGpuResamplePrecisionBits = 22;

// Kernel 1: ImagingResampleHorizontal_8bpc over the source rows [sy0, sy0 + tmp_rows) and
// the resized columns [rx0, rx0 + nx). Without resize_x the columns are copied (Pillow skips a
// pass whose size does not change). Tables as FixedResampleCoeffs (src_w -> resize_w):
// output o reads src columns [first[o], first[o] + count[o]) with weights k[o * ksize + t],
// acc = 1 << 21, acc += px * k, clip8(acc >> 22).
struct ResizeHorizontalParams {
  const uint8_t* src = nullptr;  // [src_h, src_w, 3] u8
  int src_w = 0, src_h = 0;
  uint8_t* tmp = nullptr;        // [tmp_rows, nx, 3] u8
  int tmp_rows = 0, nx = 0;
  int sy0 = 0;                   // first source row used
  int rx0 = 0;                   // first resized column used
  bool resize_x = false;
  int out_size = 0;              // resize_w: entries in first / count
  int ksize = 0;                 // taps stored per output
  const int32_t* first = nullptr;  // [resize_w]
  const int32_t* count = nullptr;  // [resize_w]
  const int32_t* k = nullptr;      // [resize_w * ksize]
};

// Kernel 2: ImagingResampleVertical_8bpc for the resized rows [ry0, ry0 + (y1 - y0)), placed
// at output rows [y0, y1) and columns [x0, x1); every other output pixel is torchvision's zero
// padding. Each uint8 pixel u of channel c becomes lut[c * 256 + u] (normalize_lut), stored
// as dtype at dst [3, out_h, out_w]. Optional u8_out receives the uint8 image [out_h, out_w, 3]
// (the exact intermediate, for tests and debugging).
struct ResizeVerticalNormalizeParams {
  const uint8_t* tmp = nullptr;  // [tmp_rows, nx, 3] u8, from kernel 1
  int tmp_rows = 0, nx = 0;
  int sy0 = 0;                   // source row of tmp row 0
  int ry0 = 0;                   // first resized row used
  int x0 = 0, x1 = 0, y0 = 0, y1 = 0;  // output window that lies inside the resized image
  int out_w = 0, out_h = 0;
  bool resize_y = false;
  int out_size = 0;              // resize_h: entries in first / count
  int ksize = 0;
  const int32_t* first = nullptr;  // [resize_h]
  const int32_t* count = nullptr;  // [resize_h]
  const int32_t* k = nullptr;      // [resize_h * ksize]
  const float* lut = nullptr;    // [3 * 256] fp32
  DType dtype = DType::F32;      // F32, F16 or BF16
  void* dst = nullptr;           // [3, out_h, out_w] dtype (one batch slot)
  uint8_t* u8_out = nullptr;     // optional [out_h, out_w, 3] u8
};

void launch_resize_horizontal(const ResizeHorizontalParams& p, cudaStream_t stream);
void launch_resize_vertical_normalize(const ResizeVerticalNormalizeParams& p, cudaStream_t stream);

}  // namespace vit
