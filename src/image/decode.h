// vit-infer: image decoding (PNG via libpng, JPEG via libjpeg-turbo) to interleaved RGB8,
// reproducing Pillow's `Image.open(path).convert("RGB")` pixel for pixel (alpha dropped
// without compositing, kept beside as Image::alpha for the frameworks that composite it; 16-bit
// reduced the way Pillow does, CMYK/YCCK JPEG via Pillow's Adobe-inverted CMYK -> RGB formula). Layout of Image::rgb: [h, w, 3] uint8, row-major.
// The format is detected from the magic bytes, never from the file name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vit {

struct Image {
  int w = 0, h = 0;
  std::vector<uint8_t> rgb;  // [h, w, 3] uint8 RGB (Pillow's convert("RGB"): transparency dropped)
  // [h, w] uint8, Pillow's convert("RGBA") alpha, when the file has transparency (a PNG alpha
  // channel or tRNS chunk); empty for an opaque image. Read only where the model's framework
  // composites it (transformers' convert_to_rgb: preprocess.h composite_on_white).
  std::vector<uint8_t> alpha;
};

// Decompression-bomb guard, checked from the file header before any pixel buffer is
// allocated. The default max_pixels is Pillow's Image.MAX_IMAGE_PIXELS (89,478,485 =
// 1024*1024*1024/4/3: a 256 MiB RGB buffer); Pillow only warns there and raises at twice
// that, we refuse at it. max_dim 65535 is JPEG's own limit. 0 disables a limit.
struct DecodeLimits {
  int64_t max_pixels = 89478485;
  int max_dim = 65535;
};

enum class ImageFormat { kUnknown, kPng, kJpeg, kGif, kBmp, kWebp, kTiff };

// Format from the leading bytes (PNG / JPEG decodable; GIF / BMP / WebP / TIFF recognised
// only so that the error can say what the file is).
ImageFormat detect_image_format(const uint8_t* data, size_t size) noexcept;
const char* image_format_name(ImageFormat f) noexcept;

// Errors (vit::Error; every message names `what` / the path):
//   kIo              the file cannot be opened or read
//   kFormat          empty, unrecognised, corrupt or truncated data (libpng/libjpeg message)
//   kUnsupported     a recognised format we do not decode (GIF, BMP, WebP, TIFF)
//   kInvalidArgument a 0-pixel image, or one over DecodeLimits (a decompression bomb)
Image decode_image_file(const std::string& path, const DecodeLimits& limits = DecodeLimits{});
Image decode_image_memory(const uint8_t* data, size_t size, const std::string& what,
                          const DecodeLimits& limits = DecodeLimits{});

}  // namespace vit
