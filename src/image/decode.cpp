// vit-infer: PNG (libpng) and JPEG (libjpeg-turbo) decoding to RGB8, Pillow-exact.
// Both libraries report fatal errors through longjmp: every decoder keeps the objects that
// must survive the jump (output Image, row buffers, the library handle's guard) declared
// before its setjmp, and turns the jump into a vit::Error after the library is torn down.
// Output layout: Image::rgb [h, w, 3] uint8; Image::alpha [h, w] u8 when the PNG has transparency.
#include "image/decode.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

// clang-format off
#include <jpeglib.h>
#include <jerror.h>
// clang-format on
#include <png.h>

#include "core/error.h"

namespace vit {

namespace {

// ---- shared -------------------------------------------------------------------------------

// Zero-size and bomb checks on the header's declared size, before any pixel allocation.
void check_dims(int64_t w, int64_t h, const std::string& what, const char* fmt, const DecodeLimits& lim) {
  const std::string dims = std::to_string(w) + "x" + std::to_string(h);
  if (w <= 0 || h <= 0) {
    fail(ErrorCode::kInvalidArgument, what + ": " + fmt + " declares an empty image (" + dims + ")");
  }
  if (lim.max_dim > 0 && (w > lim.max_dim || h > lim.max_dim)) {
    fail(ErrorCode::kInvalidArgument, what + ": " + fmt + " image " + dims + " exceeds the maximum side " +
                                          std::to_string(lim.max_dim) + " (decompression-bomb guard)");
  }
  if (lim.max_pixels > 0 && w * h > lim.max_pixels) {
    fail(ErrorCode::kInvalidArgument, what + ": " + fmt + " image " + dims + " has " + std::to_string(w * h) +
                                          " pixels, over the limit of " + std::to_string(lim.max_pixels) +
                                          " (decompression-bomb guard)");
  }
}

// ---- JPEG ---------------------------------------------------------------------------------

struct JpegErr {
  jpeg_error_mgr pub;
  std::jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
  int code;
};

[[noreturn]] void jpeg_on_error(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegErr*>(cinfo->err);
  e->code = cinfo->err->msg_code;
  (*cinfo->err->format_message)(cinfo, e->msg);
  std::longjmp(e->jb, 1);
}

// Warnings are ignored (Pillow ignores them: "extraneous bytes before marker" etc.), except
// premature end of data: libjpeg would pad the image with grey, Pillow raises
// "image file is truncated", so do we.
void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_on_error(cinfo);
}

// Pillow's MULDIV255 (libImaging/ImagingUtils.h): round(a * b / 255) without a division.
inline int muldiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

// All state the decoder touches lives here, outside the frame that calls setjmp, so nothing
// it reads after a longjmp is an indeterminate automatic variable.
struct JpegState {
  jpeg_decompress_struct cinfo;
  JpegErr jerr;
  Image img;
  std::vector<uint8_t> row;  // [w * components]
};

// Returns false when libjpeg longjmp'ed out (message in st.jerr).
bool jpeg_run(JpegState& st, const uint8_t* data, size_t size, const std::string& what,
              const DecodeLimits& lim) {
  jpeg_decompress_struct& cinfo = st.cinfo;
  if (setjmp(st.jerr.jb)) return false;
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  check_dims(cinfo.image_width, cinfo.image_height, what, "JPEG", lim);

  // Pillow: 1 component -> "L", 3 -> "RGB" (libjpeg converts YCbCr), 4 -> "CMYK;I" (libjpeg
  // converts YCCK to CMYK; Pillow assumes Adobe-inverted polarity). Default DCT (ISLOW)
  // and fancy upsampling, as Pillow outside draft mode.
  const int nc = cinfo.num_components;
  if (nc == 1) {
    cinfo.out_color_space = JCS_GRAYSCALE;
  } else if (nc == 3) {
    cinfo.out_color_space = JCS_RGB;
  } else if (nc == 4) {
    cinfo.out_color_space = JCS_CMYK;
  } else {
    fail(ErrorCode::kUnsupported, what + ": JPEG with " + std::to_string(nc) + " components is not supported");
  }
  jpeg_start_decompress(&cinfo);
  const int w = static_cast<int>(cinfo.output_width), h = static_cast<int>(cinfo.output_height);
  const int oc = cinfo.output_components;
  st.img.w = w;
  st.img.h = h;
  st.img.rgb.resize(static_cast<size_t>(w) * h * 3);
  st.row.resize(static_cast<size_t>(w) * oc);
  while (cinfo.output_scanline < cinfo.output_height) {
    const int y = static_cast<int>(cinfo.output_scanline);
    JSAMPROW rp = st.row.data();
    if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) {
      fail(ErrorCode::kFormat, what + ": JPEG decode failed: no scanline returned at row " + std::to_string(y));
    }
    const uint8_t* row = st.row.data();
    uint8_t* out = &st.img.rgb[static_cast<size_t>(y) * w * 3];
    if (oc == 1) {
      for (int x = 0; x < w; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = row[x];
    } else if (oc == 3) {
      std::memcpy(out, row, static_cast<size_t>(w) * 3);
    } else {
      // Pillow: unpack "CMYK;I" inverts every channel, then cmyk2rgb:
      // nk = 255 - K; R = clip(nk - MULDIV255(C, nk)). With the inversion nk = raw K.
      for (int x = 0; x < w; ++x) {
        const uint8_t* p = &row[4 * static_cast<size_t>(x)];
        const int nk = p[3];
        for (int c = 0; c < 3; ++c) {
          const int v = nk - muldiv255(255 - p[c], nk);
          out[3 * x + c] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
        }
      }
    }
  }
  jpeg_finish_decompress(&cinfo);
  return true;
}

Image decode_jpeg(const uint8_t* data, size_t size, const std::string& what, const DecodeLimits& lim) {
  JpegState st;
  st.cinfo.err = jpeg_std_error(&st.jerr.pub);
  st.jerr.pub.error_exit = jpeg_on_error;
  st.jerr.pub.emit_message = jpeg_on_message;
  st.jerr.msg[0] = '\0';
  st.jerr.code = 0;
  jpeg_create_decompress(&st.cinfo);
  struct Guard {
    jpeg_decompress_struct* c;
    ~Guard() { jpeg_destroy_decompress(c); }
  } guard{&st.cinfo};
  if (!jpeg_run(st, data, size, what, lim)) {
    // JERR_EMPTY_IMAGE: a SOF with zero width or height.
    const ErrorCode code = st.jerr.code == JERR_EMPTY_IMAGE ? ErrorCode::kInvalidArgument : ErrorCode::kFormat;
    fail(code, what + ": JPEG decode failed: " + st.jerr.msg);
  }
  return std::move(st.img);
}

// ---- PNG ----------------------------------------------------------------------------------

struct PngCtx {
  const uint8_t* data;
  size_t size;
  size_t pos;
  char msg[256];
};

void png_on_read(png_structp png, png_bytep out, size_t n) {
  auto* c = static_cast<PngCtx*>(png_get_io_ptr(png));
  if (n > c->size - c->pos) png_error(png, "unexpected end of file (truncated PNG)");
  std::memcpy(out, c->data + c->pos, n);
  c->pos += n;
}

[[noreturn]] void png_on_error(png_structp png, png_const_charp msg) {
  auto* c = static_cast<PngCtx*>(png_get_error_ptr(png));
  std::snprintf(c->msg, sizeof(c->msg), "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}  // Pillow ignores ancillary trouble too

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// Converts one raw PNG row (after png_set_packing: sub-byte samples one per byte; 16-bit
// samples big-endian) to RGB8 exactly as Pillow's PNG unpackers + convert("RGB") do.
void png_row_to_rgb(const uint8_t* in, uint8_t* out, int w, int color_type, int depth,
                    const png_color* pal, int npal) {
  const bool b16 = depth == 16;
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
      if (b16) {
        // Pillow opens 16-bit grey as "I;16"; I;16 -> RGB clips at 255 (not >> 8).
        for (int x = 0; x < w; ++x) {
          const uint8_t v = in[2 * x] ? 255 : in[2 * x + 1];
          out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
        }
      } else {
        // "1" -> 0/255, "L;2" -> v*0x55, "L;4" -> v*0x11 (Pillow's unpackers).
        const int mul = depth == 1 ? 255 : depth == 2 ? 0x55 : depth == 4 ? 0x11 : 1;
        for (int x = 0; x < w; ++x) {
          const uint8_t v = static_cast<uint8_t>(in[x] * mul);
          out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
        }
      }
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:  // "LA" / "LA;16B" (high byte); alpha dropped
      for (int x = 0; x < w; ++x) {
        const uint8_t v = in[(b16 ? 4 : 2) * x];
        out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
      }
      break;
    case PNG_COLOR_TYPE_RGB:  // "RGB" / "RGB;16B" (high byte)
    case PNG_COLOR_TYPE_RGB_ALPHA: {
      const int ch = color_type == PNG_COLOR_TYPE_RGB ? 3 : 4;
      const int step = b16 ? 2 : 1;
      for (int x = 0; x < w; ++x) {
        for (int c = 0; c < 3; ++c) out[3 * x + c] = in[(x * ch + c) * step];
      }
      break;
    }
    case PNG_COLOR_TYPE_PALETTE:
      // tRNS is ignored by convert("RGB"); an index past the palette reads as black
      // (Pillow's palette is zero-filled beyond PLTE).
      for (int x = 0; x < w; ++x) {
        const int i = in[x];
        if (i < npal) {
          out[3 * x] = pal[i].red;
          out[3 * x + 1] = pal[i].green;
          out[3 * x + 2] = pal[i].blue;
        } else {
          out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = 0;
        }
      }
      break;
    default:
      break;
  }
}

// The PNG's transparency as Pillow's convert("RGBA") reads it: an alpha channel (16-bit: its high
// byte, as Pillow's LA;16B / RGBA;16B unpackers), a palette tRNS (alpha per index, 255 past its end),
// or a grey / RGB tRNS colour key (alpha 0 where the sample equals the key). Row in, as
// png_row_to_rgb takes it; out [w] u8.
struct PngTransparency {
  bool any = false;
  const png_byte* pal_alpha = nullptr;
  int n_pal_alpha = 0;
  bool key = false;
  png_color_16 key_color{};
};

void png_row_alpha(const uint8_t* in, uint8_t* out, int w, int color_type, int depth, const PngTransparency& t) {
  const bool b16 = depth == 16;
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      for (int x = 0; x < w; ++x) out[x] = in[(b16 ? 4 : 2) * x + (b16 ? 2 : 1)];
      break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      for (int x = 0; x < w; ++x) out[x] = in[(b16 ? 8 : 4) * x + (b16 ? 6 : 3)];
      break;
    case PNG_COLOR_TYPE_PALETTE:
      for (int x = 0; x < w; ++x) out[x] = in[x] < t.n_pal_alpha ? t.pal_alpha[in[x]] : 255;
      break;
    case PNG_COLOR_TYPE_GRAY:
      for (int x = 0; x < w; ++x) {
        const unsigned v = b16 ? (unsigned(in[2 * x]) << 8 | in[2 * x + 1]) : in[x];
        out[x] = v == t.key_color.gray ? 0 : 255;
      }
      break;
    case PNG_COLOR_TYPE_RGB:
      for (int x = 0; x < w; ++x) {
        const uint8_t* p = in + (b16 ? 6 : 3) * x;
        auto sample = [&](int c) { return b16 ? (unsigned(p[2 * c]) << 8 | p[2 * c + 1]) : unsigned(p[c]); };
        out[x] = sample(0) == t.key_color.red && sample(1) == t.key_color.green && sample(2) == t.key_color.blue ? 0 : 255;
      }
      break;
    default:
      break;
  }
}

struct PngState {
  PngCtx ctx;
  png_structp png = nullptr;
  png_infop info = nullptr;
  Image img;
  std::vector<uint8_t> raw;  // [rows, rowbytes]: one row, or all rows if interlaced
  std::vector<png_bytep> rows;
  ~PngState() {
    if (png) png_destroy_read_struct(&png, &info, nullptr);
  }
};

// Returns false when libpng longjmp'ed out (message in st.ctx.msg).
bool png_run(PngState& st, const std::string& what, const DecodeLimits& lim) {
  png_structp png = st.png;
  png_infop info = st.info;
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, &st.ctx, png_on_read);
  // Our own limits are the guard; let libpng accept anything PNG allows up to them.
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_read_info(png, info);
  png_uint_32 w32 = 0, h32 = 0;
  int depth = 0, color_type = 0, interlace = 0;
  png_get_IHDR(png, info, &w32, &h32, &depth, &color_type, &interlace, nullptr, nullptr);
  check_dims(w32, h32, what, "PNG", lim);
  const int w = static_cast<int>(w32), h = static_cast<int>(h32);

  png_colorp pal = nullptr;
  int npal = 0;
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    if (png_get_PLTE(png, info, &pal, &npal) == 0) png_error(png, "palette image without a PLTE chunk");
  }
  PngTransparency trns;
  trns.any = color_type == PNG_COLOR_TYPE_GRAY_ALPHA || color_type == PNG_COLOR_TYPE_RGB_ALPHA;
  if (png_get_valid(png, info, PNG_INFO_tRNS)) {
    png_bytep ta = nullptr;
    int nt = 0;
    png_color_16p tc = nullptr;
    png_get_tRNS(png, info, &ta, &nt, &tc);
    if (color_type == PNG_COLOR_TYPE_PALETTE && ta && nt > 0) {
      trns = PngTransparency{true, ta, nt, false, {}};
    } else if ((color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_RGB) && tc) {
      trns.any = trns.key = true;
      trns.key_color = *tc;
    }
  }
  if (depth < 8) png_set_packing(png);  // one sample per byte, values not rescaled
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const size_t rowbytes = png_get_rowbytes(png, info);

  st.img.w = w;
  st.img.h = h;
  st.img.rgb.resize(static_cast<size_t>(w) * h * 3);
  if (trns.any) st.img.alpha.resize(static_cast<size_t>(w) * h);
  auto convert_row = [&](const uint8_t* row, int y) {
    png_row_to_rgb(row, &st.img.rgb[static_cast<size_t>(y) * w * 3], w, color_type, depth, pal, npal);
    if (trns.any) png_row_alpha(row, &st.img.alpha[static_cast<size_t>(y) * w], w, color_type, depth, trns);
  };
  if (passes == 1) {
    st.raw.resize(rowbytes);
    for (int y = 0; y < h; ++y) {
      png_read_row(png, st.raw.data(), nullptr);
      convert_row(st.raw.data(), y);
    }
  } else {
    // Adam7: libpng needs the whole raw image to combine the passes.
    st.raw.resize(rowbytes * static_cast<size_t>(h));
    st.rows.resize(h);
    for (int y = 0; y < h; ++y) st.rows[y] = st.raw.data() + rowbytes * static_cast<size_t>(y);
    png_read_image(png, st.rows.data());
    for (int y = 0; y < h; ++y) convert_row(st.rows[y], y);
  }
  png_read_end(png, nullptr);
  return true;
}

Image decode_png(const uint8_t* data, size_t size, const std::string& what, const DecodeLimits& lim) {
  // IHDR must be the first chunk; check its declared size before libpng (which rejects a
  // zero width as a generic error) and before any allocation.
  if (size >= 24 && std::memcmp(data + 12, "IHDR", 4) == 0) {
    check_dims(be32(data + 16), be32(data + 20), what, "PNG", lim);
  }
  PngState st;
  st.ctx = PngCtx{data, size, 0, {0}};
  st.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st.ctx, png_on_error, png_on_warning);
  if (!st.png) fail(ErrorCode::kOutOfMemory, what + ": png_create_read_struct failed");
  st.info = png_create_info_struct(st.png);
  if (!st.info) fail(ErrorCode::kOutOfMemory, what + ": png_create_info_struct failed");
  if (!png_run(st, what, lim)) fail(ErrorCode::kFormat, what + ": PNG decode failed: " + st.ctx.msg);
  return std::move(st.img);
}

}  // namespace

ImageFormat detect_image_format(const uint8_t* d, size_t n) noexcept {
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (n >= 8 && std::memcmp(d, kPng, 8) == 0) return ImageFormat::kPng;
  if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) return ImageFormat::kJpeg;
  if (n >= 6 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0)) return ImageFormat::kGif;
  if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) return ImageFormat::kWebp;
  if (n >= 4 && (std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0)) return ImageFormat::kTiff;
  if (n >= 14 && d[0] == 'B' && d[1] == 'M') return ImageFormat::kBmp;
  return ImageFormat::kUnknown;
}

const char* image_format_name(ImageFormat f) noexcept {
  switch (f) {
    case ImageFormat::kPng: return "PNG";
    case ImageFormat::kJpeg: return "JPEG";
    case ImageFormat::kGif: return "GIF";
    case ImageFormat::kBmp: return "BMP";
    case ImageFormat::kWebp: return "WebP";
    case ImageFormat::kTiff: return "TIFF";
    default: return "unknown";
  }
}

Image decode_image_memory(const uint8_t* data, size_t size, const std::string& what, const DecodeLimits& limits) {
  if (size == 0 || data == nullptr) fail(ErrorCode::kFormat, what + ": empty file, not an image");
  const ImageFormat f = detect_image_format(data, size);
  switch (f) {
    case ImageFormat::kPng: return decode_png(data, size, what, limits);
    case ImageFormat::kJpeg: return decode_jpeg(data, size, what, limits);
    case ImageFormat::kUnknown:
      fail(ErrorCode::kFormat, what + ": not a PNG or JPEG image (unrecognised signature)");
    default:
      fail(ErrorCode::kUnsupported,
           what + ": " + image_format_name(f) + " images are not supported (convert to PNG or JPEG)");
  }
}

Image decode_image_file(const std::string& path, const DecodeLimits& limits) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::kIo, path + ": cannot open image file: " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) fail(ErrorCode::kIo, path + ": read error");
  return decode_image_memory(bytes.data(), bytes.size(), path, limits);
}

}  // namespace vit
