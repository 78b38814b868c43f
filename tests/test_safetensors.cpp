// vit-infer tests: MappedFile and the safetensors reader/writer. Round-trips F32/F16/BF16,
// reads a file written by the official Python library, and feeds one broken file per check
// the reader makes (each must fail with its own message), plus truncations at every offset
// and hostile header values (huge lengths, offsets near 2^64, overflowing shapes).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "io_expect.h"
#include "test_util.h"

namespace vit {
namespace {

using test::expect_error;

// A safetensors image: u64-LE header length, header text (unpadded unless the caller pads),
// then `data_bytes` bytes of data (value = index, so reads are checkable).
std::vector<uint8_t> st_bytes(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> v;
  test::put_u64le(v, header.size());
  v.insert(v.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) v.push_back(static_cast<uint8_t>(i));
  return v;
}

std::string write_tmp(const std::vector<uint8_t>& bytes, const std::string& name = "t.safetensors") {
  const std::string p = test::temp_dir() + "/" + name;
  test::write_file(p, bytes);
  return p;
}

// Opening the file at `p` must fail with `code`, a message containing `fragment` and naming p.
void expect_bad_file(const std::string& p, const std::string& fragment, ErrorCode code = ErrorCode::kFormat) {
  expect_error([&] { SafetensorsFile f(p); }, code, fragment, p);
}

// Opens `header` + `data_bytes` of data and expects a kFormat error with `fragment`.
void expect_bad(const std::string& header, size_t data_bytes, const std::string& fragment,
                ErrorCode code = ErrorCode::kFormat) {
  SCOPED_TRACE(header);
  expect_bad_file(write_tmp(st_bytes(header, data_bytes)), fragment, code);
}

// ---- MappedFile ---------------------------------------------------------------------------

TEST(MappedFile, MapsContentAndEmptyFile) {
  const std::string dir = test::temp_dir();
  test::write_file(dir + "/a", {1, 2, 3, 250});
  MappedFile m(dir + "/a");
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m.data()[3], 250);
  EXPECT_EQ(m.path(), dir + "/a");

  test::write_file(dir + "/empty", {});
  MappedFile e(dir + "/empty");
  EXPECT_EQ(e.size(), 0u);
  EXPECT_EQ(e.data(), nullptr);
}

TEST(MappedFile, MissingFileAndDirectoryAreIoErrors) {
  const std::string dir = test::temp_dir();
  expect_error([&] { MappedFile m(dir + "/nope"); }, ErrorCode::kIo, "No such file", dir + "/nope");
  expect_error([&] { MappedFile m(dir); }, ErrorCode::kIo, "not a regular file", dir);
}

// ---- round trips --------------------------------------------------------------------------

TEST(Safetensors, RoundTripF32Exact) {
  const Tensor a = test::random_tensor({3, 5, 7});
  const Tensor b = test::random_tensor({11}, -100.0f, 100.0f);
  const std::string p = test::temp_dir() + "/rt.safetensors";
  write_safetensors(p, {{"blocks.0.w", &a}, {"bias", &b}}, DType::F32, {{"format", "pt"}});

  // Header padded with spaces to a multiple of 8 and the buffer tiles the rest exactly.
  const std::vector<uint8_t> bytes = test::read_file(p);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
  EXPECT_EQ(bytes.size(), 8 + n + 4 * (a.data.size() + b.data.size()));

  SafetensorsFile f(p);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"bias", "blocks.0.w"}));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.entry("blocks.0.w").dtype_str, "F32");
  const Tensor ra = f.read("blocks.0.w");
  const Tensor rb = f.read("bias");
  EXPECT_EQ(ra.shape, a.shape);
  EXPECT_EQ(rb.shape, b.shape);
  EXPECT_EQ(ra.data, a.data);  // F32 storage is bit-exact
  EXPECT_EQ(rb.data, b.data);
}

// Values of the form k / 2^s with few significant bits are exact in both F16 and BF16.
Tensor exact_values() {
  Tensor t({4, 33});
  for (int i = 0; i < 4 * 33; ++i) t.data[i] = static_cast<float>(i - 66) / 8.0f;
  t.data[0] = 256.0f;
  t.data[1] = -0.0078125f;  // 2^-7
  return t;
}

TEST(Safetensors, RoundTripF16AndBF16Exact) {
  const Tensor t = exact_values();
  for (DType dt : {DType::F16, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dt));
    const std::string p = test::temp_dir() + "/h.safetensors";
    write_safetensors(p, {{"x", &t}}, dt);
    SafetensorsFile f(p);
    EXPECT_EQ(f.entry("x").dtype_str, dtype_name(dt));
    EXPECT_TRUE(f.entry("x").dtype_known);
    EXPECT_EQ(f.entry("x").end - f.entry("x").begin, t.data.size() * 2);
    const Tensor r = f.read("x");
    EXPECT_EQ(r.shape, t.shape);
    EXPECT_EQ(r.data, t.data);
  }
}

TEST(Safetensors, NarrowingRoundsToNearestEven) {
  Tensor t({6});
  // F16 has 10 fraction bits, BF16 7. Ties go to even, above-half rounds up.
  t.data = {1.0f + std::ldexp(1.0f, -11), 1.0f + 3 * std::ldexp(1.0f, -12),
            1.0f + std::ldexp(1.0f, -8), 1.0f + 3 * std::ldexp(1.0f, -9), 70000.0f, 0.1f};
  const std::string p16 = test::temp_dir() + "/r16.safetensors";
  const std::string pbf = test::temp_dir() + "/rbf.safetensors";
  write_safetensors(p16, {{"x", &t}}, DType::F16);
  write_safetensors(pbf, {{"x", &t}}, DType::BF16);
  const Tensor h = SafetensorsFile(p16).read("x");
  const Tensor b = SafetensorsFile(pbf).read("x");
  EXPECT_EQ(h.data[0], 1.0f);                               // tie -> even
  EXPECT_EQ(h.data[1], 1.0f + std::ldexp(1.0f, -10));       // above half -> up
  EXPECT_TRUE(std::isinf(h.data[4]));                        // beyond F16 max
  EXPECT_EQ(h.data[5], 0.0999755859375f);                    // nearest F16 to 0.1
  EXPECT_EQ(b.data[2], 1.0f);                                // tie -> even
  EXPECT_EQ(b.data[3], 1.0f + std::ldexp(1.0f, -7));        // above half -> up
  EXPECT_EQ(b.data[5], 0.10009765625f);                      // nearest BF16 to 0.1
  // Random values: within half an ulp (relative 2^-11 for F16, 2^-8 for BF16).
  const Tensor r = test::random_tensor({257}, -4.0f, 4.0f);
  write_safetensors(p16, {{"r", &r}}, DType::F16);
  write_safetensors(pbf, {{"r", &r}}, DType::BF16);
  const Tensor rh = SafetensorsFile(p16).read("r");
  const Tensor rb = SafetensorsFile(pbf).read("r");
  for (size_t i = 0; i < r.data.size(); ++i) {
    const float ax = std::fabs(r.data[i]);
    EXPECT_LE(std::fabs(rh.data[i] - r.data[i]), std::max(ax * std::ldexp(1.0f, -11), 3e-8f));
    EXPECT_LE(std::fabs(rb.data[i] - r.data[i]), ax * std::ldexp(1.0f, -8));
  }
}

TEST(Safetensors, ReadsOfficialLibraryFile) {
  const std::string p = test::data_path("io/official.safetensors");
  SafetensorsFile f(p);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a.f32", "b.f16", "c.bf16", "d.i64"}));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const Tensor a = f.read("a.f32");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a.data, (std::vector<float>{1.0f, -2.0f, 0.5f, 3.25f}));
  EXPECT_EQ(f.read("b.f16").data, (std::vector<float>{0.5f, -1.5f, 2048.0f}));
  EXPECT_EQ(f.read("c.bf16").data, (std::vector<float>{1.0f, -0.15625f, 256.0f, 0.0f}));
  EXPECT_EQ(f.entry("d.i64").dtype_str, "I64");
  EXPECT_FALSE(f.entry("d.i64").dtype_known);
  int64_t raw[2];
  std::memcpy(raw, f.raw("d.i64"), 16);
  EXPECT_EQ(raw[0], 7);
  EXPECT_EQ(raw[1], -8);
  expect_error([&] { f.read("d.i64"); }, ErrorCode::kUnsupported, "dtype I64", "d.i64");
  expect_error([&] { f.entry("zzz"); }, ErrorCode::kFormat, "no tensor named 'zzz'", p);
}

TEST(Safetensors, UnalignedF64ScalarAndEmptyTensors) {
  // Header of odd length: the data buffer starts at an odd file offset.
  const std::string h =
      R"({"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},)"
      R"("s":{"dtype":"F32","shape":[],"data_offsets":[16,20]},)"
      R"("z":{"dtype":"F32","shape":[0,3],"data_offsets":[20,20]}} )";
  ASSERT_EQ(h.size() % 2, 1u);
  std::vector<uint8_t> v;
  test::put_u64le(v, h.size());
  v.insert(v.end(), h.begin(), h.end());
  const double d[2] = {-1.25, 1e-3};
  const float s = 42.5f;
  v.insert(v.end(), reinterpret_cast<const uint8_t*>(d), reinterpret_cast<const uint8_t*>(d) + 16);
  v.insert(v.end(), reinterpret_cast<const uint8_t*>(&s), reinterpret_cast<const uint8_t*>(&s) + 4);
  SafetensorsFile f(write_tmp(v));
  EXPECT_EQ(f.read("d").data, (std::vector<float>{-1.25f, static_cast<float>(1e-3)}));
  const Tensor ts = f.read("s");
  EXPECT_EQ(ts.shape, (std::vector<int64_t>{1}));
  EXPECT_EQ(ts.data, (std::vector<float>{42.5f}));
  EXPECT_EQ(f.read("z").data.size(), 0u);
  EXPECT_EQ(f.entry("z").shape, (std::vector<int64_t>{0, 3}));
}

TEST(Safetensors, EmptyHeaderIsValid) {
  SafetensorsFile f(write_tmp(st_bytes("{}      ", 0)));
  EXPECT_TRUE(f.names().empty());
  // Leading and trailing whitespace around the JSON is allowed.
  SafetensorsFile g(write_tmp(st_bytes("  \n{}\t  ", 0)));
  EXPECT_TRUE(g.names().empty());
}

TEST(Safetensors, AllSafetensorsDtypesParse) {
  const char* names[] = {"BOOL", "U8",  "I8",  "F8_E5M2", "F8_E4M3", "I16", "U16", "F16",
                         "BF16", "I32", "U32", "F32",     "F64",     "I64", "U64"};
  const int sizes[] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};
  for (int i = 0; i < 15; ++i) {
    const std::string h = std::string(R"({"t":{"dtype":")") + names[i] +
                          R"(","shape":[3],"data_offsets":[0,)" + std::to_string(3 * sizes[i]) +
                          "]}}";
    SafetensorsFile f(write_tmp(st_bytes(h, 3 * sizes[i])));
    EXPECT_EQ(f.entry("t").dtype_str, names[i]);
  }
}

// ---- one broken file per check ------------------------------------------------------------

TEST(SafetensorsErrors, ShortFileAndHeaderLength) {
  for (size_t n = 0; n < 8; ++n) expect_bad_file(write_tmp(std::vector<uint8_t>(n, 0)), "shorter than 8 bytes");
  // A header length field followed by only "{}": too large to accept at all, or past the end.
  auto length_then_braces = [](uint64_t n) {
    std::vector<uint8_t> v;
    test::put_u64le(v, n);
    v.insert(v.end(), {'{', '}'});
    return write_tmp(v);
  };
  for (uint64_t n : {uint64_t{100000001}, ~uint64_t{0}, uint64_t{1} << 63})
    expect_bad_file(length_then_braces(n), "header too large");
  expect_bad_file(length_then_braces(100), "runs past end of file");
}

TEST(SafetensorsErrors, HeaderText) {
  expect_bad("{\"a\xff\":1}", 0, "not valid UTF-8");
  expect_bad("{\"\xed\xa0\x80\":1}", 0, "not valid UTF-8");  // encoded surrogate
  expect_bad("{\"\xc0\xaf\":1}", 0, "not valid UTF-8");      // overlong '/'
  expect_bad("[]", 0, "does not start with '{'");
  expect_bad("        ", 0, "does not start with '{'");
  expect_bad(" x{}", 0, "does not start with '{'");
  expect_bad("{\"a\":", 0, "not valid JSON");
  expect_bad("{} x", 0, "not valid JSON");
  expect_bad(std::string("{}\0\0", 4), 0, "not valid JSON");
  expect_bad("{/*c*/}", 0, "not valid JSON");
  std::string deep = "{\"a\":";
  for (int i = 0; i < 200; ++i) deep += "[";
  expect_bad(deep, 0, "nested too deeply");
}

TEST(SafetensorsErrors, DuplicateKeys) {
  expect_bad(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
             R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
             8, "duplicate tensor name 'w'");
  expect_bad(R"({"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", 4,
             "duplicate key 'dtype'");
  expect_bad(R"({"__metadata__":{"a":"1","a":"2"}})", 0, "duplicate key 'a'");
}

TEST(SafetensorsErrors, Metadata) {
  expect_bad(R"({"__metadata__":["a"]})", 0, "__metadata__ is not a JSON object");
  expect_bad(R"({"__metadata__":null})", 0, "__metadata__ is not a JSON object");
  expect_bad(R"({"__metadata__":{"k":1}})", 0, "__metadata__ value for key 'k' is not a string");
  expect_bad(R"({"__metadata__":{"k":{"x":"y"}}})", 0, "value for key 'k' is not a string");
}

TEST(SafetensorsErrors, EntryFields) {
  expect_bad(R"({"w":[1,2]})", 0, "tensor 'w': entry is not a JSON object");
  expect_bad(R"({"w":"F32"})", 0, "tensor 'w': entry is not a JSON object");
  expect_bad(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4, "tensor 'w': missing 'dtype'");
  expect_bad(R"({"w":{"dtype":5,"shape":[1],"data_offsets":[0,4]}})", 4,
             "tensor 'w': 'dtype' is not a string");
  expect_bad(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", 4,
             "tensor 'w': unknown dtype 'F33'");
  expect_bad(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", 4, "unknown dtype 'f32'");
  expect_bad(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4, "tensor 'w': missing 'shape'");
  expect_bad(R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,4]}})", 4,
             "tensor 'w': 'shape' is not an array");
  expect_bad(R"({"w":{"dtype":"F32","shape":[1,-2],"data_offsets":[0,4]}})", 4,
             "shape dimension 1 (-2) is not a non-negative integer");
  expect_bad(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4,
             "shape dimension 0 (1.5) is not a non-negative integer");
  expect_bad(R"({"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", 4,
             "is not a non-negative integer");
  expect_bad(R"({"w":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}})", 4,
             "is not a non-negative integer");  // > u64: nlohmann reads it as a float
  expect_bad(R"({"w":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,4]}})", 4,
             "shape dimension 0 (9223372036854775808) is too large");
  expect_bad(R"({"w":{"dtype":"F32","shape":[1]}})", 4, "tensor 'w': missing 'data_offsets'");
  for (const char* off : {"[0,4,8]", "[0]", "4", "[0,-4]", "[-1,4]", "[0,4.0]", "[\"0\",4]",
                          "[0,18446744073709551616]"}) {
    expect_bad(std::string(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":)") + off + "}}", 4,
               "tensor 'w': 'data_offsets' must be an array of 2 non-negative integers");
  }
  expect_bad(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8,
             "tensor 'w': data_offsets begin 8 > end 4");
}

TEST(SafetensorsErrors, OffsetsGapsAndOverlaps) {
  // Gap at the start, gap between tensors, overlap; the message names the tensor at fault.
  expect_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8,
             "tensor 'a': data_offsets begin 4 leaves a gap after byte 0");
  expect_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
             12, "tensor 'b': data_offsets begin 8 leaves a gap after byte 4");
  expect_bad(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
             8, "tensor 'b': data_offsets begin 4 overlaps 'a'");
  // Same begin twice: the shorter sorts first, the other overlaps it.
  expect_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
             8, "tensor 'b': data_offsets begin 0 overlaps 'a'");
  // Listed out of order in JSON: sorted by offsets, this is valid.
  SafetensorsFile f(write_tmp(st_bytes(R"({"z":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                       R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                       8)));
  EXPECT_EQ(f.entry("a").begin, 4u);
}

TEST(SafetensorsErrors, SizeChecks) {
  expect_bad(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16,
             "tensor 'w': shape [3] x dtype F32 needs 12 bytes but data_offsets span 16");
  expect_bad(R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,4]}})", 4,
             "tensor 'w': shape [2, 2] x dtype BF16 needs 8 bytes but data_offsets span 4");
  expect_bad(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4,
             "tensor 'w': element count of shape [4294967296, 4294967296] overflows");
  // Overflow before a zero dim is still an overflow, as in the official reader.
  expect_bad(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", 0,
             "element count of shape");
  expect_bad(R"({"w":{"dtype":"F32","shape":[1152921504606846976],"data_offsets":[0,4]}})", 4,
             "tensor 'w': byte size of shape [1152921504606846976] x F32 overflows");
  expect_bad(R"({"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", 2,
             "tensor 'w': shape [3] of sub-byte dtype F4 does not fill whole bytes");
}

TEST(SafetensorsErrors, BufferMustEndAtEndOfFile) {
  const std::string h = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  expect_bad(h, 7, "data buffer needs 8 bytes but only 7 follow the header: file truncated");
  expect_bad(h, 0, "file truncated");
  expect_bad(h, 9, "1 trailing bytes after the data buffer");
  expect_bad("{}", 3, "3 trailing bytes after the data buffer");
}

TEST(SafetensorsErrors, HostileOffsets) {
  const std::string max = std::to_string(std::numeric_limits<uint64_t>::max());
  const std::string near = std::to_string(std::numeric_limits<uint64_t>::max() - 3);
  expect_bad(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,)" + max + "]}}", 4,
             "needs 4 bytes but data_offsets span " + max);
  expect_bad(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[)" + near + "," + max + "]}}", 4,
             "leaves a gap after byte 0");
  // Shape, dtype and offsets agree on a 2^63-byte tensor: only the buffer check can catch it.
  expect_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
             R"("b":{"dtype":"U8","shape":[2305843009213693951],)"
             R"("data_offsets":[4,2305843009213693955]}})",
             4, "data buffer needs 2305843009213693955 bytes but only 4 follow");
}

// Every truncation of a valid file must be a clean kFormat error, never a crash.
TEST(SafetensorsErrors, TruncatedAtEveryOffset) {
  const Tensor a = test::random_tensor({3, 4});
  const Tensor b = test::random_tensor({5});
  const std::string full = test::temp_dir() + "/full.safetensors";
  write_safetensors(full, {{"a", &a}, {"b", &b}}, DType::BF16, {{"k", "v"}});
  const std::vector<uint8_t> bytes = test::read_file(full);
  ASSERT_GT(bytes.size(), 40u);
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  const std::string dir = test::temp_dir();
  for (size_t n = 0; n < bytes.size(); ++n) {
    SCOPED_TRACE(n);
    const std::string p = dir + "/cut" + std::to_string(n) + ".safetensors";
    test::write_file(p, std::vector<uint8_t>(bytes.begin(), bytes.begin() + n));
    const char* frag = n < 8              ? "shorter than 8 bytes"
                       : n < 8 + hlen ? "runs past end of file"
                                      : "file truncated";
    expect_bad_file(p, frag);
  }
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  const std::string p = dir + "/long.safetensors";
  test::write_file(p, longer);
  expect_bad_file(p, "1 trailing bytes");
}

// Random single-byte corruption of the header: any outcome but a crash or a non-vit error.
TEST(SafetensorsErrors, CorruptedHeaderBytesNeverCrash) {
  const Tensor a = test::random_tensor({2, 3});
  const std::string full = test::temp_dir() + "/c.safetensors";
  write_safetensors(full, {{"a", &a}}, DType::F32);
  const std::vector<uint8_t> bytes = test::read_file(full);
  const std::string dir = test::temp_dir();
  int failures = 0;
  for (size_t i = 0; i < bytes.size() - 24; ++i) {
    for (uint8_t x : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      std::vector<uint8_t> v = bytes;
      v[i] ^= x;
      const std::string p = dir + "/c.safetensors";
      test::write_file(p, v);
      try {
        SafetensorsFile f(p);
        for (const auto& name : f.names()) f.read(name);
      } catch (const Error& e) {
        EXPECT_TRUE(e.code() == ErrorCode::kFormat || e.code() == ErrorCode::kUnsupported)
            << e.what();
        ++failures;
      }
    }
  }
  EXPECT_GT(failures, 0);
}

}  // namespace
}  // namespace vit
