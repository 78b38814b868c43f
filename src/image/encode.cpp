// vit-infer: PNG writer over libpng. libpng reports fatal errors by longjmp: the state it
// touches after the jump lives outside the frame that calls setjmp (EncState), and the jump
// becomes a vit::Error once the write struct is destroyed. Rows: Image::rgb [h, w, 3] uint8.
#include "image/encode.h"

#include <png.h>

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace vit {

namespace {

struct EncState {
  std::vector<uint8_t> out;  // the PNG bytes written so far
  char msg[256] = {0};
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~EncState() {
    if (png) png_destroy_write_struct(&png, info ? &info : nullptr);
  }
};

void on_write(png_structp png, png_bytep data, size_t n) {
  auto* st = static_cast<EncState*>(png_get_io_ptr(png));
  st->out.insert(st->out.end(), data, data + n);
}

void on_flush(png_structp) {}

[[noreturn]] void on_error(png_structp png, png_const_charp msg) {
  auto* st = static_cast<EncState*>(png_get_error_ptr(png));
  std::snprintf(st->msg, sizeof(st->msg), "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}

// Returns false when libpng longjmp'ed out (message in st.msg). No C++ objects with
// destructors live in this frame, so the jump skips nothing.
bool encode_run(EncState& st, const Image& img) {
  png_structp png = st.png;
  png_infop info = st.info;
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_write_fn(png, &st, on_write, on_flush);
  png_set_IHDR(png, info, static_cast<png_uint_32>(img.w), static_cast<png_uint_32>(img.h), 8,
               PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t stride = static_cast<size_t>(img.w) * 3;
  for (int y = 0; y < img.h; ++y) {
    // libpng's API takes non-const rows but does not modify them when writing.
    png_write_row(png, const_cast<png_bytep>(img.rgb.data() + stride * static_cast<size_t>(y)));
  }
  png_write_end(png, info);
  return true;
}

}  // namespace

std::vector<uint8_t> encode_png(const Image& img) {
  if (img.w <= 0 || img.h <= 0) {
    fail(ErrorCode::kInvalidArgument, "encode_png: image is " + std::to_string(img.w) + "x" +
                                          std::to_string(img.h) + "; both sides must be positive");
  }
  // PNG's own limit is 2^31 - 1 per side; int already keeps us inside it.
  const size_t want = static_cast<size_t>(img.w) * static_cast<size_t>(img.h) * 3;
  if (img.rgb.size() != want) {
    fail(ErrorCode::kInvalidArgument, "encode_png: " + std::to_string(img.w) + "x" + std::to_string(img.h) +
                                          " image holds " + std::to_string(img.rgb.size()) +
                                          " bytes, expected " + std::to_string(want) + " (RGB8)");
  }
  EncState st;
  st.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &st, on_error, on_warning);
  if (!st.png) fail(ErrorCode::kOutOfMemory, "encode_png: png_create_write_struct failed");
  st.info = png_create_info_struct(st.png);
  if (!st.info) fail(ErrorCode::kOutOfMemory, "encode_png: png_create_info_struct failed");
  if (!encode_run(st, img)) fail(ErrorCode::kFormat, std::string("encode_png: libpng: ") + st.msg);
  return std::move(st.out);
}

void write_png(const std::string& path, const Image& img) {
  const std::vector<uint8_t> bytes = encode_png(img);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail(ErrorCode::kIo, "write_png: cannot open '" + path + "' for writing: " + std::strerror(errno));
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) fail(ErrorCode::kIo, "write_png: error writing '" + path + "': " + std::strerror(errno));
}

}  // namespace vit
