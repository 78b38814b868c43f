// vit-infer: safetensors reader/writer. File layout: u64-LE header length N, N bytes of
// UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__"?: {str: str}},
// then the data buffer (offsets are relative to file byte 8+N). The reader maps the file
// and makes every check huggingface/safetensors (safetensors/src/tensor.rs) makes, each with
// its own message, plus duplicate-key rejection; tensors are widened to fp32 on read().
#include "io/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/mapped_file.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; the reader copies it as host order");

namespace vit {

namespace {

using json = nlohmann::json;

// Same cap as the official reader (MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderSize = 100000000;
// serde_json's recursion limit; a real header is 3 levels deep.
constexpr int kMaxJsonDepth = 128;

struct DTypeInfo {
  const char* name;
  unsigned bits;  // element size in bits (F4 / F6 are sub-byte)
  bool is_float32able;
  DType dtype;
};

// The safetensors Dtype set (including the newer sub-byte float formats).
constexpr DTypeInfo kDTypes[] = {
    {"BOOL", 8, false, DType::F32},    {"U8", 8, false, DType::F32},
    {"I8", 8, false, DType::F32},      {"F8_E5M2", 8, false, DType::F32},
    {"F8_E4M3", 8, false, DType::F32}, {"F8_E8M0", 8, false, DType::F32},
    {"I16", 16, false, DType::F32},    {"U16", 16, false, DType::F32},
    {"F16", 16, true, DType::F16},     {"BF16", 16, true, DType::BF16},
    {"I32", 32, false, DType::F32},    {"U32", 32, false, DType::F32},
    {"F32", 32, true, DType::F32},     {"F64", 64, true, DType::F64},
    {"I64", 64, false, DType::F32},    {"U64", 64, false, DType::F32},
    {"C64", 64, false, DType::F32},    {"F4", 4, false, DType::F32},
    {"F6_E2M3", 6, false, DType::F32}, {"F6_E3M2", 6, false, DType::F32},
};

const DTypeInfo* find_dtype(const std::string& s) {
  for (const auto& d : kDTypes)
    if (s == d.name) return &d;
  return nullptr;
}

// Strict UTF-8 check as Rust's str::from_utf8: no overlongs, no surrogates, <= U+10FFFF.
// Returns the offset of the first bad byte, or n when valid.
size_t utf8_invalid_at(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;  // overlong
      if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;  // overlong
      if (c == 0xf4) hi = 0x8f;  // > U+10FFFF
    } else {
      return i;
    }
    if (n - i < len) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if ((s[i + k] & 0xc0) != 0x80) return i;
    i += len;
  }
  return n;
}

bool is_nonneg_integer(const json& v) {
  if (v.is_number_unsigned()) return true;
  return v.is_number_integer() && v.get<int64_t>() >= 0;
}

std::string dims_str(const std::vector<int64_t>& shape) { return shape_str(shape); }

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(std::make_unique<MappedFile>(path)) {
  const uint8_t* p = file_->data();
  const uint64_t fsize = file_->size();
  const std::string& f = path;
  auto bad = [&](const std::string& msg) { fail(ErrorCode::kFormat, f + ": " + msg); };
  auto bad_t = [&](const std::string& name, const std::string& msg) {
    fail(ErrorCode::kFormat, f + ": tensor '" + name + "': " + msg);
  };

  if (fsize < 8)
    bad("file is " + std::to_string(fsize) +
        " bytes, shorter than 8 bytes (the header length field)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | p[i];
  if (n > kMaxHeaderSize)
    bad("header too large: length field says " + std::to_string(n) + " bytes (limit " +
        std::to_string(kMaxHeaderSize) + ")");
  // n <= 1e8, so 8 + n cannot overflow.
  if (8 + n > fsize)
    bad("header length " + std::to_string(n) + " runs past end of file (" +
        std::to_string(fsize) + " bytes)");

  const uint8_t* hdr = p + 8;
  const size_t hlen = static_cast<size_t>(n);
  const size_t bad_utf8 = utf8_invalid_at(hdr, hlen);
  if (bad_utf8 != hlen) bad("header is not valid UTF-8 (byte " + std::to_string(bad_utf8) + ")");
  size_t first = 0;
  while (first < hlen && (hdr[first] == ' ' || hdr[first] == '\t' || hdr[first] == '\n' ||
                          hdr[first] == '\r'))
    ++first;
  if (first == hlen || hdr[first] != '{') bad("header does not start with '{'");

  // nlohmann stops at a NUL byte as if the input ended there; JSON allows none anywhere.
  const void* nul = std::memchr(hdr, 0, hlen);
  if (nul != nullptr)
    bad("header is not valid JSON: NUL byte at header offset " +
        std::to_string(static_cast<const uint8_t*>(nul) - hdr));

  // Parse, rejecting duplicate keys at any depth (nlohmann keeps the last one silently).
  std::vector<std::set<std::string>> key_stack;
  json root;
  try {
    root = json::parse(
        hdr, hdr + hlen,
        [&](int depth, json::parse_event_t ev, json& parsed) -> bool {
          if (depth > kMaxJsonDepth) bad("header JSON nested too deeply");
          switch (ev) {
            case json::parse_event_t::object_start: key_stack.emplace_back(); break;
            case json::parse_event_t::object_end:
              if (!key_stack.empty()) key_stack.pop_back();
              break;
            case json::parse_event_t::key: {
              const std::string& k = parsed.get_ref<const std::string&>();
              if (!key_stack.empty() && !key_stack.back().insert(k).second) {
                if (key_stack.size() == 1)
                  bad("duplicate tensor name '" + k + "' in header");
                bad("duplicate key '" + k + "' in header");
              }
              break;
            }
            default: break;
          }
          return true;
        },
        /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    bad(std::string("header is not valid JSON: ") + e.what());
  }
  if (!root.is_object()) bad("header is not a JSON object");

  std::vector<SafetensorsEntry> list;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) bad("__metadata__ is not a JSON object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          bad("__metadata__ value for key '" + m.key() + "' is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) bad_t(name, "entry is not a JSON object");
    SafetensorsEntry e;
    e.name = name;

    auto dt = v.find("dtype");
    if (dt == v.end()) bad_t(name, "missing 'dtype'");
    if (!dt->is_string()) bad_t(name, "'dtype' is not a string");
    e.dtype_str = dt->get<std::string>();
    const DTypeInfo* info = find_dtype(e.dtype_str);
    if (info == nullptr) bad_t(name, "unknown dtype '" + e.dtype_str + "'");
    e.dtype_known = info->is_float32able;
    e.dtype = info->dtype;

    auto sh = v.find("shape");
    if (sh == v.end()) bad_t(name, "missing 'shape'");
    if (!sh->is_array()) bad_t(name, "'shape' is not an array");
    for (size_t i = 0; i < sh->size(); ++i) {
      const json& d = (*sh)[i];
      if (!is_nonneg_integer(d))
        bad_t(name, "shape dimension " + std::to_string(i) + " (" + d.dump() +
                        ") is not a non-negative integer");
      const uint64_t du = d.get<uint64_t>();
      if (du > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        bad_t(name, "shape dimension " + std::to_string(i) + " (" + std::to_string(du) +
                        ") is too large");
      e.shape.push_back(static_cast<int64_t>(du));
    }

    auto off = v.find("data_offsets");
    if (off == v.end()) bad_t(name, "missing 'data_offsets'");
    if (!off->is_array() || off->size() != 2 || !is_nonneg_integer((*off)[0]) ||
        !is_nonneg_integer((*off)[1]))
      bad_t(name, "'data_offsets' must be an array of 2 non-negative integers, got " +
                      off->dump());
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.begin > e.end)
      bad_t(name, "data_offsets begin " + std::to_string(e.begin) + " > end " +
                      std::to_string(e.end));
    list.push_back(std::move(e));
  }

  // The official reader sorts by offsets and requires them to tile [0, buffer_end).
  std::sort(list.begin(), list.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  uint64_t pos = 0;
  const SafetensorsEntry* prev = nullptr;
  for (const auto& e : list) {
    if (e.begin > pos)
      bad_t(e.name, "data_offsets begin " + std::to_string(e.begin) + " leaves a gap after byte " +
                        std::to_string(pos) + (prev ? " (end of '" + prev->name + "')" : ""));
    if (e.begin < pos)
      bad_t(e.name, "data_offsets begin " + std::to_string(e.begin) + " overlaps '" +
                        (prev ? prev->name : std::string()) + "' which ends at " +
                        std::to_string(pos));
    pos = e.end;
    // Element count and size with overflow checks, folded left to right like the
    // official reader (so [2^40, 2^40, 0] is an overflow, not an empty tensor).
    // The running product must also fit int64 (Tensor::numel folds the same way in int64):
    // [2^62, 2, 0] passes a u64 fold but its numel() would overflow.
    uint64_t count = 1;
    for (int64_t d : e.shape) {
      if (__builtin_mul_overflow(count, static_cast<uint64_t>(d), &count) ||
          count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        bad_t(e.name, "element count of shape " + dims_str(e.shape) + " overflows");
    }
    const unsigned bits = find_dtype(e.dtype_str)->bits;
    uint64_t nbits;
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(bits), &nbits))
      bad_t(e.name, "byte size of shape " + dims_str(e.shape) + " x " + e.dtype_str +
                        " overflows");
    if (nbits % 8 != 0)
      bad_t(e.name, "shape " + dims_str(e.shape) + " of sub-byte dtype " + e.dtype_str +
                        " does not fill whole bytes");
    const uint64_t nbytes = nbits / 8;
    if (e.end - e.begin != nbytes)
      bad_t(e.name, "shape " + dims_str(e.shape) + " x dtype " + e.dtype_str + " needs " +
                        std::to_string(nbytes) + " bytes but data_offsets span " +
                        std::to_string(e.end - e.begin));
    prev = &e;
  }
  const uint64_t avail = fsize - 8 - n;
  if (pos > avail)
    bad("data buffer needs " + std::to_string(pos) + " bytes but only " + std::to_string(avail) +
        " follow the header: file truncated");
  if (pos < avail)
    bad(std::to_string(avail - pos) + " trailing bytes after the data buffer (buffer is " +
        std::to_string(pos) + " bytes)");

  buffer_ = p + 8 + n;
  for (auto& e : list) {
    std::string name = e.name;
    entries_.emplace(std::move(name), std::move(e));
  }
}

SafetensorsFile::~SafetensorsFile() = default;

const std::string& SafetensorsFile::path() const noexcept { return file_->path(); }

bool SafetensorsFile::has(const std::string& name) const { return entries_.count(name) != 0; }

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    fail(ErrorCode::kFormat, path() + ": no tensor named '" + name + "'");
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& kv : entries_) out.push_back(kv.first);
  return out;  // std::map iterates sorted
}

const uint8_t* SafetensorsFile::raw(const std::string& name) const {
  return buffer_ + entry(name).begin;
}

Tensor SafetensorsFile::read(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  if (!e.dtype_known)
    fail(ErrorCode::kUnsupported, path() + ": tensor '" + name + "': dtype " + e.dtype_str +
                                      " cannot be read as fp32 (only F32, F16, BF16, F64)");
  Tensor t;
  // A 0-d tensor has one element; an empty shape means "absent" in Tensor, so use [1].
  t.shape = e.shape.empty() ? std::vector<int64_t>{1} : e.shape;
  const size_t count = static_cast<size_t>((e.end - e.begin) / dtype_size(e.dtype));
  t.data.resize(count);
  const uint8_t* src = buffer_ + e.begin;  // unaligned in general: memcpy only
  switch (e.dtype) {
    case DType::F32:
      if (count > 0) std::memcpy(t.data.data(), src, count * 4);
      break;
    case DType::F16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        t.data[i] = half_to_float(h);
      }
      break;
    case DType::BF16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        t.data[i] = bf16_to_float(h);
      }
      break;
    case DType::F64:
      for (size_t i = 0; i < count; ++i) {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        t.data[i] = static_cast<float>(d);
      }
      break;
  }
  return t;
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                       DType storage, const std::map<std::string, std::string>& metadata) {
  auto arg_fail = [&](const std::string& msg) {
    fail(ErrorCode::kInvalidArgument, "write_safetensors " + path + ": " + msg);
  };
  // The official writer orders by dtype alignment, then name; one storage dtype -> by name.
  std::vector<std::pair<std::string, const Tensor*>> sorted = tensors;
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto& [name, t] = sorted[i];
    if (t == nullptr) arg_fail("tensor '" + name + "' is null");
    if (name == "__metadata__") arg_fail("'__metadata__' is reserved");
    if (i > 0 && sorted[i - 1].first == name) arg_fail("duplicate tensor name '" + name + "'");
    if (t->shape.empty()) arg_fail("tensor '" + name + "' has an empty shape (absent tensor)");
    for (int64_t d : t->shape)
      if (d < 0) arg_fail("tensor '" + name + "' has negative shape " + shape_str(t->shape));
    if (static_cast<int64_t>(t->data.size()) != t->numel())
      arg_fail("tensor '" + name + "' has " + std::to_string(t->data.size()) +
               " values for shape " + shape_str(t->shape));
  }

  const size_t esize = dtype_size(storage);
  std::string header = "{";
  bool comma = false;
  if (!metadata.empty()) {
    header += "\"__metadata__\":" + json(metadata).dump();
    comma = true;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : sorted) {
    const uint64_t nbytes = t->data.size() * esize;
    json shape = json::array();
    for (int64_t d : t->shape) shape.push_back(d);
    if (comma) header += ",";
    comma = true;
    header += json(name).dump() + ":{\"dtype\":\"" + dtype_name(storage) + "\",\"shape\":" +
              shape.dump() + ",\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + nbytes) + "]}";
    offset += nbytes;
  }
  header += "}";
  // Pad with spaces so the data buffer starts 8-byte aligned, as the official writer does.
  header.append((8 - header.size() % 8) % 8, ' ');

  FILE* fp = std::fopen(path.c_str(), "wb");
  if (fp == nullptr) fail(ErrorCode::kIo, path + ": cannot create: " + std::strerror(errno));
  bool ok = true;
  uint8_t len_le[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len_le[i] = static_cast<uint8_t>(n >> (8 * i));
  ok = ok && std::fwrite(len_le, 1, 8, fp) == 8;
  ok = ok && std::fwrite(header.data(), 1, header.size(), fp) == header.size();
  std::vector<uint8_t> chunk;
  for (const auto& [name, t] : sorted) {
    if (!ok) break;
    const size_t count = t->data.size();
    chunk.resize(count * esize);
    for (size_t i = 0; i < count; ++i) {
      const float v = t->data[i];
      switch (storage) {
        case DType::F32: std::memcpy(&chunk[4 * i], &v, 4); break;
        case DType::F16: {
          const uint16_t h = float_to_half(v);
          std::memcpy(&chunk[2 * i], &h, 2);
          break;
        }
        case DType::BF16: {
          const uint16_t h = float_to_bf16(v);
          std::memcpy(&chunk[2 * i], &h, 2);
          break;
        }
        case DType::F64: {
          const double d = v;
          std::memcpy(&chunk[8 * i], &d, 8);
          break;
        }
      }
    }
    ok = std::fwrite(chunk.data(), 1, chunk.size(), fp) == chunk.size();
  }
  const int err = errno;
  if (std::fclose(fp) != 0 && ok) ok = false;
  if (!ok) {
    std::remove(path.c_str());
    fail(ErrorCode::kIo, path + ": write failed: " + std::strerror(err ? err : EIO));
  }
}

}  // namespace vit
