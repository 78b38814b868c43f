// vit-infer: reference-exact image preprocessing on the CPU: Pillow's 8-bit resampler
// (ImagingResample: horizontal pass then vertical pass, 22-bit fixed-point coefficients,
// clip to uint8 between passes), the timm (shorter side -> floor(size / crop_pct), centre
// crop) and HF (direct resize) sizing rules, then x/255, (x - mean) / std into CHW fp32.
// Images are [h, w, 3] uint8 RGB (image/decode.h); the model input is [3, H, W] fp32.
#pragma once

#include <cstdint>
#include <vector>

#include "core/resample.h"
#include "image/decode.h"
#include "model/config.h"

namespace vit {

// Pillow's PRECISION_BITS for 8-bit images (32 - 8 - 2): coefficients are weight * 2^22.
constexpr int kResamplePrecisionBits = 22;

// One axis of Pillow's 8-bit resampler, as the fixed-point table it actually runs with.
// Output o reads inputs [first[o], first[o] + count[o]) with weights k[o * ksize + t]:
//   acc = 1 << 21; acc += in[first + t] * k[o * ksize + t]; out = clamp(acc >> 22, 0, 255).
// Shared with the GPU preprocessing so both run the same table.
struct FixedResampleCoeffs {
  int in_size = 0, out_size = 0;
  int ksize = 0;               // taps stored per output
  std::vector<int32_t> first;  // [out]
  std::vector<int32_t> count;  // [out], <= ksize
  std::vector<int32_t> k;      // [out * ksize], zero-padded
};

// Pillow's normalize_coeffs_8bpc: round half away from zero of w * 2^22.
FixedResampleCoeffs to_fixed_point(const ResampleCoeffs& c);
// compute_resample_coeffs (Pillow precompute_coeffs) followed by to_fixed_point.
FixedResampleCoeffs fixed_resample_coeffs(int in_size, int out_size, ResampleFilter f);

// "bicubic" / "bilinear" / "nearest" / "box" / "hamming" / "lanczos" (PIL names, lower case, as
// timm's pretrained_cfg spells them); others -> kUnsupported naming the value.
ResampleFilter resample_filter_from_name(const std::string& name);

// Geometry of resize-then-crop. The output pixel (y, x) is pixel (crop_y + y, crop_x + x) of
// the image resized to resize_w x resize_h, or 0 (torchvision's CenterCrop zero padding)
// where that falls outside it. resize_x / resize_y false: the axis is copied, as Pillow
// skips a pass whose size does not change.
struct ResizeCropPlan {
  int src_w = 0, src_h = 0;
  int resize_w = 0, resize_h = 0;
  int crop_x = 0, crop_y = 0;  // may be negative (padding)
  int out_w = 0, out_h = 0;
  ResampleFilter filter = ResampleFilter::kBicubic;
  bool resize_x = false, resize_y = false;
};

// timm (kShortestThenCrop): square target: torchvision Resize(floor(size / crop_pct)) on the
// shorter side, the longer side int(s * long / short); non-square target: timm ResizeKeepRatio
// (round(side / ratio)); then CenterCrop (top = round-half-even((h - crop) / 2)).
// HF / JAX (kDirect): resize straight to input_w x input_h, or to resize_w x resize_h and then
// HF's centre crop; kShortestEdgeCrop: HF's shorter side (capped by longest_edge as transformers'
// get_size_with_aspect_ratio) and centre crop; kCropOnly: HF's centre crop alone.
ResizeCropPlan plan_resize_crop(int src_w, int src_h, const PreprocessConfig& cfg);
// Plain Pillow Image.resize((out_w, out_h), filter) geometry.
ResizeCropPlan plan_resize(int src_w, int src_h, int out_w, int out_h, ResampleFilter f);

// Pillow (>= the 13.0 the fixtures pin; libImaging/Resample.c ImagingResampleInner) runs the
// vertical pass first when the height shrinks by more than twice as many pixels as the width:
// the 8-bit clip between the passes makes the order matter.
bool vertical_pass_first(const ResizeCropPlan& p);
// That first pass alone, for the plan's output rows over every source column: the intermediate
// image, and in *rest the plan that finishes it (the horizontal pass and the crop; resize_y off).
// Shared with the GPU preprocessing, which runs `rest` on the device.
Image vertical_pass(const Image& img, const ResizeCropPlan& p, ResizeCropPlan* rest);

// Runs the plan on the CPU: [out_h, out_w, 3] uint8, bit-identical to Pillow (+ torchvision
// crop). Only the rows/columns that survive the crop are computed (each output sample of
// Pillow's passes depends only on its own coefficient row, so this changes no value).
Image resize_crop(const Image& img, const ResizeCropPlan& plan);
// Image.resize((w, h), filter) for an RGB image.
Image resize_image(const Image& img, int out_w, int out_h, ResampleFilter f);

// Per-channel lookup table uint8 -> normalised fp32, computed as torchvision does in fp32:
// (float(x) / 255 - mean) / std; other rescale factors as (x * rescale - mean) / std.
// [3 * 256] fp32.
std::vector<float> normalize_lut(const PreprocessConfig& cfg);

// transformers' convert_to_rgb for an image with transparency: Pillow's alpha_composite onto an
// opaque white background (libImaging/AlphaComposite.c, bit for bit), then the alpha plane is
// dropped. No-op for an opaque image (img->alpha empty).
void composite_on_white(Image* img);

// Full pipeline: transparency per cfg.alpha_on_white, resize/crop per cfg, rescale, normalise.
// out_chw: [3, input_h, input_w] fp32.
void preprocess_image(const Image& img, const PreprocessConfig& cfg, float* out_chw);

}  // namespace vit
