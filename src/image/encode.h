// vit-infer: PNG encoding (libpng) of interleaved RGB8 images, for attention-map pictures.
// Input layout: Image::rgb [h, w, 3] uint8, row-major (image/decode.h). Output: an 8-bit RGB,
// non-interlaced PNG. Errors are vit::Error naming the file / problem; nothing aborts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "image/decode.h"

namespace vit {

// PNG bytes of `img`. kInvalidArgument: a 0-sized image or rgb.size() != w * h * 3;
// kFormat: libpng refused (its message is included).
std::vector<uint8_t> encode_png(const Image& img);

// encode_png, then writes the file (replacing it). kIo when the file cannot be written.
void write_png(const std::string& path, const Image& img);

}  // namespace vit
