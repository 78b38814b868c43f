// vit-infer: Pillow-exact 8-bit resampling (libImaging/Resample.c, ImagingResampleInner with
// the *_8bpc passes), torchvision / timm / HF sizing, and normalisation into CHW fp32.
// Buffers: source [src_h, src_w, 3] u8; horizontal-pass output [rows used, crop cols, 3] u8;
// result [out_h, out_w, 3] u8; model input [3, out_h, out_w] fp32.
#include "image/preprocess.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace vit {

namespace {

// Python's round() on a double: half to even.
int64_t round_half_even(double v) {
  const double r = std::floor(v);
  const double d = v - r;
  int64_t i = static_cast<int64_t>(r);
  if (d > 0.5 || (d == 0.5 && (i % 2 != 0))) ++i;
  return i;
}

// Python's int(round(n / 2.0)) for an integer n (torchvision's centre-crop offset).
int half_round_even(int n) { return static_cast<int>(round_half_even(n / 2.0)); }

// A float config value as the double it was written as: timm computes floor(size / crop_pct)
// with the Python float (e.g. 0.9), and float(0.9f) != 0.9 can move the floor by one
// (252 / 0.9). The shortest decimal that round-trips the float recovers the original.
double float_as_written(float f) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf) - 1, f);
  *r.ptr = '\0';
  return std::strtod(buf, nullptr);
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kResamplePrecisionBits;  // arithmetic shift: floor, as Pillow
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

}  // namespace

FixedResampleCoeffs to_fixed_point(const ResampleCoeffs& c) {
  FixedResampleCoeffs f;
  f.in_size = c.in_size;
  f.out_size = c.out_size;
  f.ksize = c.ksize;
  f.first.assign(c.first.begin(), c.first.end());
  f.count.assign(c.count.begin(), c.count.end());
  f.k.resize(c.w.size());
  constexpr double scale = static_cast<double>(1 << kResamplePrecisionBits);
  for (size_t i = 0; i < c.w.size(); ++i) {
    // normalize_coeffs_8bpc: (int)(+-0.5 + w * 2^22), C truncation toward zero.
    const double v = c.w[i] * scale;
    f.k[i] = static_cast<int32_t>(c.w[i] < 0 ? -0.5 + v : 0.5 + v);
  }
  return f;
}

FixedResampleCoeffs fixed_resample_coeffs(int in_size, int out_size, ResampleFilter f) {
  return to_fixed_point(compute_resample_coeffs(in_size, out_size, f));
}

ResampleFilter resample_filter_from_name(const std::string& name) {
  for (ResampleFilter f : {ResampleFilter::kBicubic, ResampleFilter::kBilinear, ResampleFilter::kNearest,
                           ResampleFilter::kBox, ResampleFilter::kHamming, ResampleFilter::kLanczos}) {
    if (name == resample_filter_name(f)) return f;
  }
  fail(ErrorCode::kUnsupported, "preprocess: interpolation '" + name +
                                    "' is not supported (bicubic, bilinear, nearest, box, hamming, lanczos)");
}

ResizeCropPlan plan_resize(int src_w, int src_h, int out_w, int out_h, ResampleFilter f) {
  if (src_w <= 0 || src_h <= 0 || out_w <= 0 || out_h <= 0) {
    fail(ErrorCode::kInvalidArgument, "resize: sizes must be positive (source " + std::to_string(src_w) + "x" +
                                          std::to_string(src_h) + ", output " + std::to_string(out_w) + "x" +
                                          std::to_string(out_h) + ")");
  }
  ResizeCropPlan p;
  p.src_w = src_w;
  p.src_h = src_h;
  p.resize_w = p.out_w = out_w;
  p.resize_h = p.out_h = out_h;
  p.filter = f;
  p.resize_x = out_w != src_w;  // Pillow's need_horizontal / need_vertical (no box)
  p.resize_y = out_h != src_h;
  return p;
}

ResizeCropPlan plan_resize_crop(int src_w, int src_h, const PreprocessConfig& cfg) {
  const ResampleFilter f = resample_filter_from_name(cfg.interpolation);
  if (cfg.input_w <= 0 || cfg.input_h <= 0) {
    fail(ErrorCode::kInvalidArgument, "preprocess: input size must be positive (" + std::to_string(cfg.input_w) +
                                          "x" + std::to_string(cfg.input_h) + ")");
  }
  if (src_w <= 0 || src_h <= 0) {
    fail(ErrorCode::kInvalidArgument, "preprocess: empty image (" + std::to_string(src_w) + "x" +
                                          std::to_string(src_h) + ")");
  }
  // HF image_transforms.center_crop: offset (side - crop) // 2; a larger crop centres the image
  // in zeros with the odd pixel on the top / left (ceil).
  auto hf_crop = [&](ResizeCropPlan p) {
    p.out_w = cfg.input_w;
    p.out_h = cfg.input_h;
    p.crop_x = p.out_w > p.resize_w ? -((p.out_w - p.resize_w + 1) / 2) : (p.resize_w - p.out_w) / 2;
    p.crop_y = p.out_h > p.resize_h ? -((p.out_h - p.resize_h + 1) / 2) : (p.resize_h - p.out_h) / 2;
    return p;
  };
  if (cfg.resize == PreprocessConfig::Resize::kDirect) {
    if (cfg.resize_h > 0 && cfg.resize_w > 0 && (cfg.resize_h != cfg.input_h || cfg.resize_w != cfg.input_w))
      return hf_crop(plan_resize(src_w, src_h, cfg.resize_w, cfg.resize_h, f));  // DeiT: 256, crop 224
    return plan_resize(src_w, src_h, cfg.input_w, cfg.input_h, f);
  }
  if (cfg.resize == PreprocessConfig::Resize::kCropOnly) return hf_crop(plan_resize(src_w, src_h, src_w, src_h, f));
  // torchvision Resize(int) and HF get_resize_output_image_size(default_to_square=False): the
  // shorter side -> s, the longer -> int(s * long / short).
  int rw = 0, rh = 0;
  auto shorter_side_to = [&](int s) {
    const bool w_short = src_w <= src_h;
    const int64_t shrt = w_short ? src_w : src_h, lng = w_short ? src_h : src_w;
    const int new_long = static_cast<int>(static_cast<double>(int64_t{s} * lng) / static_cast<double>(shrt));
    rw = w_short ? s : new_long;
    rh = w_short ? new_long : s;
  };
  const bool hf = cfg.resize == PreprocessConfig::Resize::kShortestEdgeCrop;
  if (hf) {
    if (cfg.shortest_edge <= 0) {
      fail(ErrorCode::kInvalidArgument,
           "preprocess: shortest_edge must be positive (got " + std::to_string(cfg.shortest_edge) + ")");
    }
    if (cfg.longest_edge > 0) {
      // transformers get_size_with_aspect_ratio((h, w), shortest_edge, longest_edge).
      int size = cfg.shortest_edge;
      const double mn = std::min(src_w, src_h), mx = std::max(src_w, src_h);
      double raw = 0.0;
      const bool capped = mx / mn * size > cfg.longest_edge;
      if (capped) {
        raw = cfg.longest_edge * mn / mx;
        size = static_cast<int>(round_half_even(raw));
      }
      if ((src_h <= src_w && src_h == size) || (src_w <= src_h && src_w == size)) {
        rw = src_w;
        rh = src_h;
      } else if (src_w < src_h) {
        rw = size;
        rh = static_cast<int>(capped ? raw * src_h / src_w : static_cast<double>(int64_t{size} * src_h) / src_w);
      } else {
        rh = size;
        rw = static_cast<int>(capped ? raw * src_w / src_h : static_cast<double>(int64_t{size} * src_w) / src_h);
      }
    } else {
      shorter_side_to(cfg.shortest_edge);
    }
  } else {
    if (!(cfg.crop_pct > 0.0f)) {
      fail(ErrorCode::kInvalidArgument, "preprocess: crop_pct must be positive (got " +
                                            std::to_string(cfg.crop_pct) + ")");
    }
    const double crop_pct = float_as_written(cfg.crop_pct);
    const int scale_h = static_cast<int>(std::floor(cfg.input_h / crop_pct));
    const int scale_w = static_cast<int>(std::floor(cfg.input_w / crop_pct));
    if (scale_h == scale_w) {
      shorter_side_to(scale_h);
    } else {
      // timm ResizeKeepRatio(longest=0): ratio = min(h / th, w / tw); side = round(side / ratio).
      const double ratio = std::min(static_cast<double>(src_h) / scale_h, static_cast<double>(src_w) / scale_w);
      rh = static_cast<int>(round_half_even(src_h / ratio));
      rw = static_cast<int>(round_half_even(src_w / ratio));
    }
  }
  if (rw <= 0 || rh <= 0) {
    fail(ErrorCode::kInvalidArgument, "preprocess: image " + std::to_string(src_w) + "x" + std::to_string(src_h) +
                                          " resizes to an empty image");
  }
  ResizeCropPlan p = plan_resize(src_w, src_h, rw, rh, f);
  if (hf) return hf_crop(p);
  p.out_w = cfg.input_w;
  p.out_h = cfg.input_h;
  // torchvision CenterCrop: if the crop is larger, pad (left = (cw - w) // 2) with zeros and
  // crop at 0 along that axis; otherwise offset = int(round((size - crop) / 2.0)).
  p.crop_x = p.out_w > rw ? -((p.out_w - rw) / 2) : half_round_even(rw - p.out_w);
  p.crop_y = p.out_h > rh ? -((p.out_h - rh) / 2) : half_round_even(rh - p.out_h);
  // (An axis that is not short keeps the ordinary centred offset after the other is padded.)
  return p;
}

bool vertical_pass_first(const ResizeCropPlan& p) {
  const int dh = p.src_h - p.resize_h, dw = p.src_w - p.resize_w;
  return p.resize_x && p.resize_y && dh > 0 && dh > dw * 2;
}

Image vertical_pass(const Image& img, const ResizeCropPlan& p, ResizeCropPlan* rest) {
  // The output rows [y0, y1) that fall inside the resized image, over every source column.
  const int y0 = std::max(0, -p.crop_y), y1 = std::min(p.out_h, p.resize_h - p.crop_y);
  const int ny = std::max(0, y1 - y0);
  Image tmp;
  tmp.w = img.w;
  tmp.h = std::max(ny, 1);
  tmp.rgb.assign(static_cast<size_t>(tmp.w) * tmp.h * 3, 0);
  const FixedResampleCoeffs cv = fixed_resample_coeffs(p.src_h, p.resize_h, p.filter);
  const size_t stride = static_cast<size_t>(img.w) * 3;
  for (int i = 0; i < ny; ++i) {  // ImagingResampleVertical_8bpc
    const int o = p.crop_y + y0 + i;
    const int32_t* k = &cv.k[static_cast<size_t>(o) * cv.ksize];
    const uint8_t* s = &img.rgb[static_cast<size_t>(cv.first[o]) * stride];
    uint8_t* d = &tmp.rgb[static_cast<size_t>(i) * stride];
    const int n = cv.count[o];
    for (size_t e = 0; e < stride; ++e) {
      int32_t a = 1 << (kResamplePrecisionBits - 1);
      for (int t = 0; t < n; ++t) a += s[t * stride + e] * k[t];
      d[e] = clip8(a);
    }
  }
  *rest = p;
  rest->src_h = rest->resize_h = tmp.h;
  rest->resize_y = false;
  rest->crop_y = -y0;  // output row y0 + i is tmp row i
  if (ny == 0) rest->crop_y = -p.out_h;  // no output row inside the image: all padding
  return tmp;
}

Image resize_crop(const Image& img, const ResizeCropPlan& p) {
  if (vertical_pass_first(p) && img.w == p.src_w && img.h == p.src_h &&
      img.rgb.size() == static_cast<size_t>(img.w) * static_cast<size_t>(img.h) * 3) {
    ResizeCropPlan rest;
    const Image tmp = vertical_pass(img, p, &rest);
    return resize_crop(tmp, rest);
  }
  if (img.w != p.src_w || img.h != p.src_h ||
      img.rgb.size() != static_cast<size_t>(img.w) * static_cast<size_t>(img.h) * 3) {
    fail(ErrorCode::kInvalidArgument, "resize: image is " + std::to_string(img.w) + "x" + std::to_string(img.h) +
                                          " (" + std::to_string(img.rgb.size()) + " bytes) but the plan is for " +
                                          std::to_string(p.src_w) + "x" + std::to_string(p.src_h));
  }
  Image out;
  out.w = p.out_w;
  out.h = p.out_h;
  out.rgb.assign(static_cast<size_t>(out.w) * out.h * 3, 0);  // zero = torchvision's pad fill
  // Output columns [x0, x1) and rows [y0, y1) fall inside the resized image.
  const int x0 = std::max(0, -p.crop_x), x1 = std::min(p.out_w, p.resize_w - p.crop_x);
  const int y0 = std::max(0, -p.crop_y), y1 = std::min(p.out_h, p.resize_h - p.crop_y);
  if (x0 >= x1 || y0 >= y1) return out;
  const int nx = x1 - x0, ny = y1 - y0;
  const int rx0 = p.crop_x + x0, ry0 = p.crop_y + y0;  // first resized column / row used

  FixedResampleCoeffs ch, cv;
  if (p.resize_x) ch = fixed_resample_coeffs(p.src_w, p.resize_w, p.filter);
  if (p.resize_y) cv = fixed_resample_coeffs(p.src_h, p.resize_h, p.filter);

  // Source rows the vertical pass reads (Pillow's ybox_first / ybox_last, for our rows only).
  int sy0 = ry0, sy1 = ry0 + ny;
  if (p.resize_y) {
    sy0 = p.src_h;
    sy1 = 0;
    for (int r = ry0; r < ry0 + ny; ++r) {
      sy0 = std::min(sy0, cv.first[r]);
      sy1 = std::max(sy1, cv.first[r] + cv.count[r]);
    }
  }
  const int tmp_rows = sy1 - sy0;

  // Horizontal pass (ImagingResampleHorizontal_8bpc): tmp [tmp_rows, nx, 3] u8.
  std::vector<uint8_t> tmp(static_cast<size_t>(tmp_rows) * nx * 3);
  const int sw = p.src_w;
  for (int r = 0; r < tmp_rows; ++r) {
    const uint8_t* src = &img.rgb[static_cast<size_t>(sy0 + r) * sw * 3];
    uint8_t* dst = &tmp[static_cast<size_t>(r) * nx * 3];
    if (!p.resize_x) {
      std::copy(src + static_cast<size_t>(rx0) * 3, src + static_cast<size_t>(rx0 + nx) * 3, dst);
      continue;
    }
    for (int j = 0; j < nx; ++j) {
      const int o = rx0 + j;
      const int32_t* k = &ch.k[static_cast<size_t>(o) * ch.ksize];
      const uint8_t* s = src + static_cast<size_t>(ch.first[o]) * 3;
      int32_t a0 = 1 << (kResamplePrecisionBits - 1), a1 = a0, a2 = a0;
      for (int t = 0, n = ch.count[o]; t < n; ++t) {
        a0 += s[3 * t] * k[t];
        a1 += s[3 * t + 1] * k[t];
        a2 += s[3 * t + 2] * k[t];
      }
      dst[3 * j] = clip8(a0);
      dst[3 * j + 1] = clip8(a1);
      dst[3 * j + 2] = clip8(a2);
    }
  }

  // Vertical pass (ImagingResampleVertical_8bpc) into the output window.
  const size_t tstride = static_cast<size_t>(nx) * 3;
  for (int i = 0; i < ny; ++i) {
    const int o = ry0 + i;
    uint8_t* dst = &out.rgb[(static_cast<size_t>(y0 + i) * out.w + x0) * 3];
    if (!p.resize_y) {
      const uint8_t* s = &tmp[static_cast<size_t>(o - sy0) * tstride];
      std::copy(s, s + tstride, dst);
      continue;
    }
    const int32_t* k = &cv.k[static_cast<size_t>(o) * cv.ksize];
    const uint8_t* s = &tmp[static_cast<size_t>(cv.first[o] - sy0) * tstride];
    const int n = cv.count[o];
    for (size_t e = 0; e < tstride; ++e) {
      int32_t a = 1 << (kResamplePrecisionBits - 1);
      for (int t = 0; t < n; ++t) a += s[t * tstride + e] * k[t];
      dst[e] = clip8(a);
    }
  }
  return out;
}

Image resize_image(const Image& img, int out_w, int out_h, ResampleFilter f) {
  return resize_crop(img, plan_resize(img.w, img.h, out_w, out_h, f));
}

std::vector<float> normalize_lut(const PreprocessConfig& cfg) {
  std::vector<float> lut(3 * 256);
  // torchvision ToTensor divides by 255 in fp32; HF's rescale multiplies by its factor in fp64 and
  // rounds to fp32 (image_transforms.rescale), which for 1/255 gives the same fp32 value at every
  // level. Any other factor: as HF.
  const bool div255 = cfg.rescale == 1.0 / 255.0;
  for (int c = 0; c < 3; ++c) {
    if (!(cfg.std[c] != 0.0f) || !std::isfinite(cfg.std[c])) {
      fail(ErrorCode::kInvalidArgument, "preprocess: std[" + std::to_string(c) + "] must be finite and non-zero");
    }
    for (int x = 0; x < 256; ++x) {
      const float v = div255 ? static_cast<float>(x) / 255.0f : static_cast<float>(x * cfg.rescale);
      lut[c * 256 + x] = (v - cfg.mean[c]) / cfg.std[c];
    }
  }
  return lut;
}

void composite_on_white(Image* img) {
  if (img->alpha.empty()) return;
  const size_t n = static_cast<size_t>(img->w) * img->h;
  if (img->alpha.size() != n || img->rgb.size() != n * 3)
    fail(ErrorCode::kInvalidArgument, "composite_on_white: alpha plane of " + std::to_string(img->alpha.size()) +
                                          " bytes for a " + std::to_string(img->w) + "x" + std::to_string(img->h) +
                                          " image");
  for (size_t i = 0; i < n; ++i) {
    const uint32_t a = img->alpha[i];
    uint8_t* px = &img->rgb[3 * i];
    if (a == 0) {
      px[0] = px[1] = px[2] = 255;  // Pillow copies the background pixel
      continue;
    }
    // libImaging/AlphaComposite.c with dst = opaque white: outa255 = 255 * 255, so
    // coef1 = a * 128 and coef2 = (255 - a) * 128 (PRECISION_BITS 7).
    const uint32_t blend = 255u * (255u - a);
    const uint32_t outa255 = a * 255u + blend;
    const uint32_t coef1 = a * 255u * 255u * 128u / outa255;
    const uint32_t coef2 = 255u * 128u - coef1;
    for (int c = 0; c < 3; ++c) {
      const uint32_t t = px[c] * coef1 + 255u * coef2 + (0x80u << 7);
      px[c] = static_cast<uint8_t>((((t >> 8) + t) >> 8) >> 7);
    }
  }
  img->alpha.clear();
}

void preprocess_image(const Image& img_in, const PreprocessConfig& cfg, float* out_chw) {
  const ResizeCropPlan plan = plan_resize_crop(img_in.w, img_in.h, cfg);
  const std::vector<float> lut = normalize_lut(cfg);
  Image flat;
  const bool composite = cfg.alpha_on_white && !img_in.alpha.empty();
  if (composite) {
    flat = img_in;
    composite_on_white(&flat);
  }
  const Image r = resize_crop(composite ? flat : img_in, plan);
  const size_t hw = static_cast<size_t>(r.w) * r.h;
  for (int c = 0; c < 3; ++c) {
    const float* l = &lut[c * 256];
    float* o = out_chw + c * hw;  // [3, H, W]
    for (size_t i = 0; i < hw; ++i) o[i] = l[r.rgb[3 * i + c]];
  }
}

}  // namespace vit
