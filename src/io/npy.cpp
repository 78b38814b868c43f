// vit-infer: NumPy .npy images. Layout: "\x93NUMPY", major, minor, header length (u16 LE for
// 1.0, u32 LE for 2.0/3.0), then a Python dict literal
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces and '\n',
// then the raw C-order array data. numpy has no C API for this, so the dict literal is read
// by a small strict parser that accepts exactly what ast.literal_eval would for these keys.
#include "io/npy.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "io/mapped_file.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npy '<' and '=' are read as host order");

namespace vit {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;            // numpy ARRAY_ALIGN
constexpr size_t kGrowthAxisDigits = 21;  // numpy GROWTH_AXIS_MAX_DIGITS

// Strict reader of the header dict literal. Every failure is kFormat "malformed header".
class DictParser {
 public:
  DictParser(const char* s, size_t n, bool allow_long_suffix, const std::string& what)
      : s_(s), n_(n), allow_l_(allow_long_suffix), what_(what) {}

  void parse(NpyHeader& h) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    ws();
    expect('{');
    ws();
    while (!peek('}')) {
      const std::string key = string_lit();
      ws();
      expect(':');
      ws();
      if (key == "descr") {
        if (have_descr) malformed("duplicate key 'descr'");
        have_descr = true;
        // A list descr is a structured (record) dtype.
        if (peek('['))
          fail(ErrorCode::kUnsupported,
               what_ + ": structured npy dtypes are not supported (only float arrays)");
        if (!peek('\'') && !peek('"')) malformed("'descr' is not a string");
        h.descr = string_lit();
      } else if (key == "fortran_order") {
        if (have_fortran) malformed("duplicate key 'fortran_order'");
        have_fortran = true;
        if (word("True")) {
          h.fortran_order = true;
        } else if (word("False")) {
          h.fortran_order = false;
        } else {
          malformed("'fortran_order' is not True or False");
        }
      } else if (key == "shape") {
        if (have_shape) malformed("duplicate key 'shape'");
        have_shape = true;
        h.shape = shape_tuple();
      } else {
        malformed("unexpected key '" + key + "'");
      }
      ws();
      if (peek(',')) {
        ++i_;
        ws();
      } else if (!peek('}')) {
        malformed("expected ',' or '}'");
      }
    }
    ++i_;  // '}'
    ws();
    if (i_ != n_) malformed("unexpected text after the dict");
    if (!have_descr) malformed("missing key 'descr'");
    if (!have_fortran) malformed("missing key 'fortran_order'");
    if (!have_shape) malformed("missing key 'shape'");
  }

 private:
  [[noreturn]] void malformed(const std::string& why) {
    fail(ErrorCode::kFormat,
         what_ + ": malformed npy header: " + why + " at header byte " + std::to_string(i_));
  }
  bool peek(char c) const { return i_ < n_ && s_[i_] == c; }
  void expect(char c) {
    if (!peek(c)) malformed(std::string("expected '") + c + "'");
    ++i_;
  }
  void ws() {
    while (i_ < n_ && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool word(const char* w) {
    const size_t len = std::strlen(w);
    if (n_ - i_ < len || std::memcmp(s_ + i_, w, len) != 0) return false;
    // "Trueish" is a name, not True.
    if (i_ + len < n_ && (std::isalnum(static_cast<unsigned char>(s_[i_ + len])) ||
                          s_[i_ + len] == '_'))
      return false;
    i_ += len;
    return true;
  }
  std::string string_lit() {
    if (!peek('\'') && !peek('"')) malformed("expected a quoted string");
    const char q = s_[i_++];
    std::string out;
    while (i_ < n_ && s_[i_] != q) {
      if (s_[i_] == '\\') malformed("escape sequences are not supported in strings");
      if (s_[i_] == '\n') malformed("unterminated string");
      out += s_[i_++];
    }
    if (i_ == n_) malformed("unterminated string");
    ++i_;
    return out;
  }
  int64_t int_lit() {
    if (i_ >= n_ || !std::isdigit(static_cast<unsigned char>(s_[i_])))
      malformed("shape entry is not a non-negative integer");
    // Python forbids leading zeros in decimal literals other than 0 itself.
    if (s_[i_] == '0' && i_ + 1 < n_ && std::isdigit(static_cast<unsigned char>(s_[i_ + 1])))
      malformed("integer with leading zero");
    uint64_t v = 0;
    while (i_ < n_ && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
      const uint64_t d = static_cast<uint64_t>(s_[i_] - '0');
      if (v > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - d) / 10)
        fail(ErrorCode::kFormat, what_ + ": npy shape dimension does not fit in 64 bits");
      v = v * 10 + d;
      ++i_;
    }
    // Python 2 wrote longs as "3L"; numpy strips them for format versions 1.0 and 2.0.
    if (allow_l_ && peek('L')) ++i_;
    if (i_ < n_ && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_' ||
                    s_[i_] == '.'))
      malformed("shape entry is not an integer");
    return static_cast<int64_t>(v);
  }
  std::vector<int64_t> shape_tuple() {
    if (!peek('(')) malformed("'shape' is not a tuple");
    ++i_;
    ws();
    std::vector<int64_t> dims;
    bool trailing_comma = false;
    while (!peek(')')) {
      dims.push_back(int_lit());
      ws();
      trailing_comma = false;
      if (peek(',')) {
        ++i_;
        ws();
        trailing_comma = true;
      } else if (!peek(')')) {
        malformed("expected ',' or ')' in 'shape'");
      }
    }
    ++i_;
    // "(3)" is a parenthesised int in Python, not a tuple.
    if (dims.size() == 1 && !trailing_comma) malformed("'shape' is not a tuple");
    return dims;
  }

  const char* s_;
  size_t n_;
  bool allow_l_;
  const std::string& what_;
  size_t i_ = 0;
};

struct FloatKind {
  size_t itemsize = 0;
  bool big_endian = false;
};

const char* kind_name(char k) {
  switch (k) {
    case 'b': return "bool";
    case 'i': return "signed integer";
    case 'u': return "unsigned integer";
    case 'c': return "complex";
    case 'O': return "object";
    case 'S': case 'a': return "bytes";
    case 'U': return "unicode string";
    case 'V': return "void/structured";
    case 'M': return "datetime";
    case 'm': return "timedelta";
    case 'f': return "float";
    default: return nullptr;
  }
}

FloatKind decode_descr(const std::string& descr, const std::string& what) {
  size_t i = 0;
  char order = '=';  // no byte-order char: native, as np.dtype('f4')
  if (!descr.empty() && std::strchr("<>=|", descr[0]) != nullptr) order = descr[i++];
  const char kind = i < descr.size() ? descr[i++] : '\0';
  const std::string digits = descr.substr(std::min(i, descr.size()));
  bool digits_ok = !digits.empty() && digits.size() <= 4;
  for (char c : digits) digits_ok = digits_ok && std::isdigit(static_cast<unsigned char>(c));
  const char* kname = kind_name(kind);
  if (kname == nullptr || (!digits.empty() && !digits_ok))
    fail(ErrorCode::kUnsupported, what + ": npy dtype '" + descr + "' is not supported");
  if (kind != 'f')
    fail(ErrorCode::kUnsupported, what + ": npy dtype '" + descr + "' (" + kname +
                                      ") is not supported; only float16/32/64 arrays are");
  const int size = digits_ok ? std::stoi(digits) : 0;
  if (size != 2 && size != 4 && size != 8)
    fail(ErrorCode::kUnsupported, what + ": npy float dtype '" + descr +
                                      "' is not supported; only float16/32/64 are");
  // '|' means "byte order not applicable", which only makes sense for 1-byte types.
  if (order == '|')
    fail(ErrorCode::kFormat,
         what + ": npy dtype '" + descr + "' has byte order '|' on a multi-byte type");
  return FloatKind{static_cast<size_t>(size), order == '>'};
}

// numpy's repr of a shape tuple: (), (3,), (2, 3).
std::string shape_repr(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

// numpy writes fortran_order=True for any F-contiguous array that is not also C-contiguous (a
// transposed kernel, np.asfortranarray); np.load hands back the same logical array. Element
// (i0, ..., in-1) sits at file offset i0 + d0 * (i1 + d1 * (...)), first index fastest; this
// returns the values in C order (last index fastest), as every reader here expects.
std::vector<float> fortran_to_c_order(const std::vector<float>& f, const std::vector<int64_t>& shape) {
  int big = 0;
  for (int64_t d : shape) big += d > 1;
  if (big <= 1) return f;  // the two layouts coincide
  const size_t nd = shape.size();
  std::vector<int64_t> fstride(nd);  // Fortran strides, in elements
  int64_t s = 1;
  for (size_t k = 0; k < nd; ++k) {
    fstride[k] = s;
    s *= shape[k];
  }
  std::vector<float> c(f.size());
  std::vector<int64_t> idx(nd, 0);  // C-order odometer over the logical index
  int64_t off = 0;                  // its Fortran offset
  for (size_t i = 0; i < c.size(); ++i) {
    c[i] = f[static_cast<size_t>(off)];
    for (size_t k = nd; k-- > 0;) {
      if (++idx[k] < shape[k]) {
        off += fstride[k];
        break;
      }
      off -= fstride[k] * (shape[k] - 1);
      idx[k] = 0;
    }
  }
  return c;
}

}  // namespace

NpyHeader parse_npy_header(const uint8_t* data, size_t size, const std::string& what) {
  const size_t m = std::min(size, kMagicLen);
  if (size == 0 || std::memcmp(data, kMagic, m) != 0)
    fail(ErrorCode::kFormat, what + ": bad magic, not a .npy file");
  if (size < kMagicLen + 2) fail(ErrorCode::kFormat, what + ": npy preamble truncated");
  const int major = data[6], minor = data[7];
  if (minor != 0 || major < 1 || major > 3)
    fail(ErrorCode::kFormat, what + ": unknown npy format version " + std::to_string(major) +
                                 "." + std::to_string(minor) + " (expected 1.0, 2.0 or 3.0)");
  const size_t len_bytes = major == 1 ? 2 : 4;
  const size_t prefix = kMagicLen + 2 + len_bytes;
  if (size < prefix) fail(ErrorCode::kFormat, what + ": npy preamble truncated");
  uint64_t hlen = 0;
  for (size_t i = 0; i < len_bytes; ++i) hlen |= static_cast<uint64_t>(data[8 + i]) << (8 * i);
  if (hlen > size - prefix)
    fail(ErrorCode::kFormat, what + ": npy header truncated (declares " + std::to_string(hlen) +
                                 " bytes, " + std::to_string(size - prefix) + " present)");

  NpyHeader h;
  DictParser(reinterpret_cast<const char*>(data + prefix), static_cast<size_t>(hlen), major <= 2,
             what)
      .parse(h);
  h.data_offset = prefix + static_cast<size_t>(hlen);
  return h;
}

Tensor parse_npy(const uint8_t* data, size_t size, const std::string& what) {
  const NpyHeader h = parse_npy_header(data, size, what);
  const FloatKind fk = decode_descr(h.descr, what);
  int64_t count = 1;
  for (int64_t d : h.shape)
    if (__builtin_mul_overflow(count, d, &count))
      fail(ErrorCode::kFormat, what + ": npy shape " + shape_str(h.shape) + " overflows");
  int64_t nbytes;
  if (__builtin_mul_overflow(count, static_cast<int64_t>(fk.itemsize), &nbytes))
    fail(ErrorCode::kFormat, what + ": npy byte size of shape " + shape_str(h.shape) +
                                 " overflows");
  const uint64_t avail = size - h.data_offset;
  if (avail < static_cast<uint64_t>(nbytes))
    fail(ErrorCode::kFormat, what + ": npy data truncated: shape " + shape_str(h.shape) + " '" +
                                 h.descr + "' needs " + std::to_string(nbytes) + " bytes, " +
                                 std::to_string(avail) + " present");
  if (avail > static_cast<uint64_t>(nbytes))
    fail(ErrorCode::kFormat, what + ": " + std::to_string(avail - nbytes) +
                                 " trailing bytes after the npy data");

  Tensor t;
  t.shape = h.shape.empty() ? std::vector<int64_t>{1} : h.shape;
  const size_t n = static_cast<size_t>(count);
  t.data.resize(n);
  const uint8_t* src = data + h.data_offset;
  uint8_t buf[8];
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* e = src + i * fk.itemsize;
    for (size_t b = 0; b < fk.itemsize; ++b)
      buf[b] = fk.big_endian ? e[fk.itemsize - 1 - b] : e[b];
    if (fk.itemsize == 4) {
      std::memcpy(&t.data[i], buf, 4);
    } else if (fk.itemsize == 2) {
      uint16_t hv;
      std::memcpy(&hv, buf, 2);
      t.data[i] = half_to_float(hv);
    } else {
      double d;
      std::memcpy(&d, buf, 8);
      t.data[i] = static_cast<float>(d);
    }
  }
  if (h.fortran_order) t.data = fortran_to_c_order(t.data, h.shape);
  return t;
}

Tensor read_npy(const std::string& path) {
  MappedFile f(path);
  return parse_npy(f.data(), f.size(), path);
}

std::vector<uint8_t> encode_npy(const float* data, const std::vector<int64_t>& shape) {
  // The byte-size bound applies to the final count only: a zero-element shape such as
  // (4283333, 1342, 32342, 32331, 0, 3) is valid (parse_npy reads it) and must round-trip.
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(count, d, &count))
      fail(ErrorCode::kInvalidArgument, "encode_npy: invalid shape " + shape_str(shape));
  }
  if (count > std::numeric_limits<int64_t>::max() / 4)
    fail(ErrorCode::kInvalidArgument, "encode_npy: shape " + shape_str(shape) + " is too large");
  if (count > 0 && data == nullptr)
    fail(ErrorCode::kInvalidArgument, "encode_npy: null data for shape " + shape_str(shape));
  // Byte-identical to np.save of a C-contiguous float32 array: sorted keys, growth-axis
  // spare spaces, then space padding + '\n' to a 64-byte boundary.
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_repr(shape) + ", }";
  if (!shape.empty()) header.append(kGrowthAxisDigits - std::to_string(shape[0]).size(), ' ');
  int major = 1;
  size_t hlen = header.size() + 1;
  size_t pad = kAlign - (kMagicLen + 2 + 2 + hlen) % kAlign;
  if (hlen + pad > 0xffff) {
    major = 2;
    pad = kAlign - (kMagicLen + 2 + 4 + hlen) % kAlign;
  }
  header.append(pad, ' ');
  header += '\n';
  std::vector<uint8_t> out(kMagic, kMagic + kMagicLen);
  out.push_back(static_cast<uint8_t>(major));
  out.push_back(0);
  const uint32_t total = static_cast<uint32_t>(header.size());
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i) out.push_back(static_cast<uint8_t>(total >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  const size_t off = out.size();
  out.resize(off + static_cast<size_t>(count) * 4);
  if (count > 0) std::memcpy(out.data() + off, data, static_cast<size_t>(count) * 4);
  return out;
}

void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  const std::vector<uint8_t> bytes = encode_npy(data, shape);
  FILE* fp = std::fopen(path.c_str(), "wb");
  if (fp == nullptr) fail(ErrorCode::kIo, path + ": cannot create: " + std::strerror(errno));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), fp) == bytes.size();
  int err = errno;
  if (std::fclose(fp) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    std::remove(path.c_str());
    fail(ErrorCode::kIo, path + ": write failed: " + std::strerror(err ? err : EIO));
  }
}

}  // namespace vit
