// vit-infer tests: .npy and .npz readers/writers. Round-trips through write_npy/write_npz,
// matches np.save byte for byte, reads a numpy-written deflated .npz with known values
// (tests/data/io, from tools/make_io_fixtures.py), and checks every header/dtype/size
// error, truncations at every offset, corrupted zips and lying member sizes.
#include <gtest/gtest.h>
#include <zip.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/npy.h"
#include "io/npz.h"
#include "io_expect.h"
#include "test_util.h"

namespace vit {
namespace {

using test::expect_error;

// A .npy image with the given version and header dict text (padded with spaces + '\n' to a
// 64-byte boundary like numpy), followed by `data`.
std::vector<uint8_t> npy_bytes(int major, const std::string& dict, const std::vector<uint8_t>& data) {
  const size_t prefix = major == 1 ? 10 : 12;
  std::string h = dict;
  const size_t hl = h.size() + 1;
  h.append(63 - (prefix + hl + 63) % 64, ' ');
  h += '\n';
  std::vector<uint8_t> v = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  for (size_t i = 0; i < prefix - 8; ++i) v.push_back(static_cast<uint8_t>(h.size() >> (8 * i)));
  v.insert(v.end(), h.begin(), h.end());
  v.insert(v.end(), data.begin(), data.end());
  return v;
}

template <class T>
std::vector<uint8_t> as_bytes(const std::vector<T>& x, bool big_endian = false) {
  std::vector<uint8_t> v(x.size() * sizeof(T));
  std::memcpy(v.data(), x.data(), v.size());
  if (big_endian)
    for (size_t i = 0; i < x.size(); ++i)
      std::reverse(v.begin() + i * sizeof(T), v.begin() + (i + 1) * sizeof(T));
  return v;
}

std::string dict(const std::string& descr, const std::string& shape, bool fortran = false) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
         ", 'shape': " + shape + ", }";
}

Tensor parse(const std::vector<uint8_t>& v) { return parse_npy(v.data(), v.size(), "mem.npy"); }

void expect_bad(const std::vector<uint8_t>& v, ErrorCode code, const std::string& fragment) {
  expect_error([&] { parse_npy(v.data(), v.size(), "mem.npy"); }, code, fragment, "mem.npy");
}

// ---- npy ---------------------------------------------------------------------------------

TEST(Npy, RoundTripAndAlignment) {
  const std::string dir = test::temp_dir();
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{7}, {3, 4, 5}, {1, 1, 1, 1, 2}, {0, 3}}) {
    SCOPED_TRACE(shape_str(shape));
    const Tensor t = test::random_tensor(shape);
    write_npy(dir + "/a.npy", t);
    const std::vector<uint8_t> bytes = test::read_file(dir + "/a.npy");
    const NpyHeader h = parse_npy_header(bytes.data(), bytes.size(), "a.npy");
    EXPECT_EQ(h.data_offset % 64, 0u);
    EXPECT_EQ(h.descr, "<f4");
    EXPECT_FALSE(h.fortran_order);
    EXPECT_EQ(h.shape, shape);
    const Tensor r = read_npy(dir + "/a.npy");
    EXPECT_EQ(r.shape, t.shape);
    EXPECT_EQ(r.data, t.data);
  }
}

TEST(Npy, EncodeMatchesNumpyByteForByte) {
  const std::vector<uint8_t> ref = test::read_file(test::data_path("io/numpy_f32.npy"));
  ASSERT_FALSE(ref.empty());
  const std::vector<float> vals = {1.0f, -2.0f, 0.25f, 4.0f, 5.5f, -6.0f};
  EXPECT_EQ(encode_npy(vals.data(), {2, 3}), ref);
  const Tensor r = read_npy(test::data_path("io/numpy_f32.npy"));
  EXPECT_EQ(r.data, vals);
}

TEST(Npy, VersionsAndDtypes) {
  const std::vector<float> f = {1.5f, -2.0f, 3.25f, 1e-3f, -7.0f, 0.0f};
  // Version 2.0 and 3.0 headers (u32 length).
  for (int major : {2, 3}) {
    const Tensor t = parse(npy_bytes(major, dict("<f4", "(2, 3)"), as_bytes(f)));
    EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(t.data, f);
  }
  EXPECT_EQ(parse(npy_bytes(1, dict(">f4", "(6,)"), as_bytes(f, true))).data, f);
  EXPECT_EQ(parse(npy_bytes(1, dict("=f4", "(6,)"), as_bytes(f))).data, f);
  const std::vector<double> d = {1.5, -2.0, 3.25, 1e-3, -7.0, 1e300};
  const Tensor td = parse(npy_bytes(1, dict("<f8", "(3, 2)"), as_bytes(d)));
  EXPECT_EQ(td.data[3], static_cast<float>(1e-3));
  EXPECT_TRUE(std::isinf(td.data[5]));
  EXPECT_EQ(parse(npy_bytes(1, dict(">f8", "(6,)"), as_bytes(d, true))).data, td.data);
  // 0x3e00 = 1.5, 0xc000 = -2, 0x7bff = 65504, 0x0001 = 2^-24 (subnormal)
  const std::vector<uint16_t> h = {0x3e00, 0xc000, 0x7bff, 0x0001};
  const std::vector<float> hf = {1.5f, -2.0f, 65504.0f, std::ldexp(1.0f, -24)};
  EXPECT_EQ(parse(npy_bytes(1, dict("<f2", "(4,)"), as_bytes(h))).data, hf);
  EXPECT_EQ(parse(npy_bytes(1, dict(">f2", "(2, 2)"), as_bytes(h, true))).data, hf);
  // 0-d array -> shape [1]; double-quoted strings, no trailing comma, any key order.
  const std::vector<float> one = {42.0f};
  const Tensor s = parse(npy_bytes(
      1, "{\"shape\": (), \"fortran_order\": False, \"descr\": \"<f4\"}", as_bytes(one)));
  EXPECT_EQ(s.shape, (std::vector<int64_t>{1}));
  EXPECT_EQ(s.data, one);
  // Python 2 long suffix in versions 1.0/2.0; Fortran order is fine when layouts coincide.
  EXPECT_EQ(parse(npy_bytes(1, dict("<f4", "(2L, 3L)"), as_bytes(f))).data, f);
  EXPECT_EQ(parse(npy_bytes(1, dict("<f4", "(1, 6)", true), as_bytes(f))).data, f);
}

TEST(Npy, UnsupportedDtypes) {
  const std::vector<uint8_t> d8(8, 0);
  expect_bad(npy_bytes(1, dict("<i4", "(2,)"), d8), ErrorCode::kUnsupported,
             "'<i4' (signed integer) is not supported");
  expect_bad(npy_bytes(1, dict("<u8", "(1,)"), d8), ErrorCode::kUnsupported, "'<u8' (unsigned");
  expect_bad(npy_bytes(1, dict("|b1", "(8,)"), d8), ErrorCode::kUnsupported, "'|b1' (bool)");
  expect_bad(npy_bytes(1, dict("<c8", "(1,)"), d8), ErrorCode::kUnsupported, "'<c8' (complex)");
  expect_bad(npy_bytes(1, dict("|O", "(1,)"), d8), ErrorCode::kUnsupported, "'|O' (object)");
  expect_bad(npy_bytes(1, dict("<f16", "(1,)"), std::vector<uint8_t>(16)), ErrorCode::kUnsupported,
             "float dtype '<f16'");
  expect_bad(npy_bytes(1, dict("float32", "(2,)"), d8), ErrorCode::kUnsupported,
             "dtype 'float32' is not supported");
  expect_bad(npy_bytes(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", d8),
             ErrorCode::kUnsupported, "structured npy dtypes");
  expect_bad(npy_bytes(1, dict("|f4", "(2,)"), d8), ErrorCode::kFormat, "byte order '|'");
}

TEST(Npy, SizeErrors) {
  const std::vector<uint8_t> d(24, 0);
  expect_bad(npy_bytes(1, dict("<f4", "(7,)"), d), ErrorCode::kFormat,
             "npy data truncated: shape [7] '<f4' needs 28 bytes, 24 present");
  expect_bad(npy_bytes(1, dict("<f8", "(2,)"), d), ErrorCode::kFormat,
             "8 trailing bytes after the npy data");
  expect_bad(npy_bytes(1, dict("<f4", "(4294967296, 4294967296)"), d), ErrorCode::kFormat,
             "npy shape [4294967296, 4294967296] overflows");
  expect_bad(npy_bytes(1, dict("<f8", "(2305843009213693952,)"), d), ErrorCode::kFormat,
             "npy byte size of shape [2305843009213693952] overflows");
  expect_bad(npy_bytes(1, dict("<f4", "(99999999999999999999,)"), d), ErrorCode::kFormat,
             "does not fit in 64 bits");
}

TEST(Npy, PreambleErrors) {
  std::vector<uint8_t> v = npy_bytes(1, dict("<f4", "(1,)"), {0, 0, 0, 0});
  std::vector<uint8_t> bad = v;
  bad[1] = 'n';
  expect_bad(bad, ErrorCode::kFormat, "bad magic");
  expect_bad({}, ErrorCode::kFormat, "bad magic");
  expect_bad({'P', 'K', 3, 4}, ErrorCode::kFormat, "bad magic");
  bad = v;
  bad[6] = 4;
  expect_bad(bad, ErrorCode::kFormat, "unknown npy format version 4.0");
  bad = v;
  bad[7] = 1;
  expect_bad(bad, ErrorCode::kFormat, "unknown npy format version 1.1");
  bad = v;
  bad[8] = 0xff;
  bad[9] = 0xff;
  expect_bad(bad, ErrorCode::kFormat, "npy header truncated (declares 65535 bytes");
  // Every strict prefix is a format error (never a crash).
  for (size_t n = 0; n < v.size(); ++n) {
    const std::vector<uint8_t> cut(v.begin(), v.begin() + n);
    const char* frag = n == 0               ? "bad magic"
                       : n < 10             ? "npy preamble truncated"
                       : n < v.size() - 4   ? "npy header truncated"
                                            : "npy data truncated";
    SCOPED_TRACE(n);
    expect_bad(cut, ErrorCode::kFormat, frag);
  }
}

// Single-byte corruption anywhere in the header: a vit::Error or a clean parse, never a crash.
TEST(Npy, CorruptedHeaderBytesNeverCrash) {
  const std::vector<float> f = test::random_vec(6);
  const std::vector<uint8_t> v = encode_npy(f.data(), {2, 3});
  int failures = 0;
  for (size_t i = 0; i < v.size() - 24; ++i) {
    for (uint8_t x : {uint8_t{0x01}, uint8_t{0x08}, uint8_t{0x80}, uint8_t{0xff}}) {
      std::vector<uint8_t> c = v;
      c[i] ^= x;
      try {
        const Tensor t = parse(c);
        EXPECT_EQ(static_cast<int64_t>(t.data.size()), t.numel());
      } catch (const Error& e) {
        EXPECT_TRUE(e.code() == ErrorCode::kFormat || e.code() == ErrorCode::kUnsupported)
            << e.what();
        ++failures;
      }
    }
  }
  EXPECT_GT(failures, 0);
}

TEST(Npy, MalformedDict) {
  const std::vector<uint8_t> d(8, 0);
  const char* cases[][2] = {
      {"{'descr': '<f4', 'fortran_order': False}", "missing key 'shape'"},
      {"{'fortran_order': False, 'shape': (2,)}", "missing key 'descr'"},
      {"{'descr': '<f4', 'shape': (2,)}", "missing key 'fortran_order'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", "unexpected key 'x'"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
       "duplicate key 'descr'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2)}", "'shape' is not a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", "'shape' is not a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", "shape entry is not a non-negative integer"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,)}", "shape entry is not an integer"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (02,)}", "integer with leading zero"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,,)}", "shape entry is not a non-negative integer"},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", "'fortran_order' is not True or False"},
      {"{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,)}", "'fortran_order' is not True or False"},
      {"{'descr': 4, 'fortran_order': False, 'shape': (2,)}", "'descr' is not a string"},
      {"{'descr': '<f4 , 'fortran_order': False, 'shape': (2,)}", "expected ',' or '}'"},
      {"{'descr' '<f4', 'fortran_order': False, 'shape': (2,)}", "expected ':'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,) 'x'}", "expected ',' or '}'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x", "unexpected text after"},
      {"{descr: '<f4', 'fortran_order': False, 'shape': (2,)}", "expected a quoted string"},
      {"{'descr': '<\\f4', 'fortran_order': False, 'shape': (2,)}", "escape sequences"},
      {"('descr', '<f4')", "expected '{'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", "expected ',' or '}'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ", "expected a quoted string"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", "expected ',' or ')' in 'shape'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'descr\n': 1}", "unterminated string"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c[0]);
    expect_bad(npy_bytes(1, c[0], d), ErrorCode::kFormat, std::string("malformed npy header: ") + c[1]);
  }
  // The Python 2 'L' suffix is only valid before format 3.0.
  expect_bad(npy_bytes(3, dict("<f4", "(2L,)"), d), ErrorCode::kFormat, "shape entry is not an integer");
}

TEST(Npy, ReadNpyFileErrorsNameThePath) {
  const std::string dir = test::temp_dir();
  expect_error([&] { read_npy(dir + "/missing.npy"); }, ErrorCode::kIo, "No such file",
               dir + "/missing.npy");
  test::write_file(dir + "/empty.npy", {});
  expect_error([&] { read_npy(dir + "/empty.npy"); }, ErrorCode::kFormat, "bad magic",
               dir + "/empty.npy");
}

// ---- npz ---------------------------------------------------------------------------------

TEST(Npz, RoundTripStored) {
  std::map<std::string, Tensor> in;
  in["embedding/kernel"] = test::random_tensor({4, 4, 3, 8});
  in["cls"] = test::random_tensor({1, 1, 8});
  in["Transformer/encoder_norm/scale"] = test::random_tensor({8});
  const std::string p = test::temp_dir() + "/rt.npz";
  write_npz(p, in);
  const std::map<std::string, Tensor> out = read_npz(p);
  ASSERT_EQ(out.size(), in.size());
  for (const auto& [k, t] : in) {
    SCOPED_TRACE(k);
    ASSERT_TRUE(out.count(k));
    EXPECT_EQ(out.at(k).shape, t.shape);
    EXPECT_EQ(out.at(k).data, t.data);
  }
  // Members are stored uncompressed and named "<key>.npy", as np.savez writes them.
  int err = 0;
  zip_t* za = zip_open(p.c_str(), ZIP_RDONLY, &err);
  ASSERT_NE(za, nullptr);
  ASSERT_EQ(zip_get_num_entries(za, 0), 3);
  for (zip_uint64_t i = 0; i < 3; ++i) {
    zip_stat_t st;
    ASSERT_EQ(zip_stat_index(za, i, 0, &st), 0);
    EXPECT_EQ(st.comp_method, ZIP_CM_STORE);
    EXPECT_TRUE(std::string(st.name).size() > 4 &&
                std::string(st.name).substr(std::string(st.name).size() - 4) == ".npy");
  }
  zip_discard(za);

  const std::string pe = test::temp_dir() + "/empty.npz";
  write_npz(pe, {});
  EXPECT_TRUE(read_npz(pe).empty());
}

TEST(Npz, ReadsNumpyDeflatedFixture) {
  const std::map<std::string, Tensor> m = read_npz(test::data_path("io/deflated.npz"));
  ASSERT_EQ(m.size(), 5u);
  const Tensor& w = m.at("layer/weight");  // arange(12).reshape(3, 4) * 0.5 - 1
  EXPECT_EQ(w.shape, (std::vector<int64_t>{3, 4}));
  for (int i = 0; i < 12; ++i) EXPECT_EQ(w.data[i], i * 0.5f - 1.0f);
  EXPECT_EQ(m.at("bias").data, (std::vector<float>{1.5f, -2.25f, static_cast<float>(0.001)}));
  EXPECT_EQ(m.at("half").data, (std::vector<float>{0.5f, -3.0f, 65504.0f}));
  EXPECT_EQ(m.at("big").data, (std::vector<float>{1.0f, 2.5f}));
  const Tensor& z = m.at("zeros");
  EXPECT_EQ(z.shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(z.data, std::vector<float>(64 * 64, 0.0f));
}

// numpy saves any F-contiguous, non-C-contiguous array with fortran_order=True (np.load returns
// the same logical array): read back in C order. Fixtures from tools/make_io_fixtures.py.
TEST(Npy, FortranOrderReadsInCOrder) {
  const Tensor a = read_npy(test::data_path("io/fortran.npy"));  // arange(60) * 0.25, (3, 4, 5)
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 4, 5}));
  ASSERT_EQ(a.data.size(), 60u);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(a.data[i], i * 0.25f) << i;

  const std::map<std::string, Tensor> m = read_npz(test::data_path("io/fortran.npz"));
  const Tensor& k = m.at("kernel");  // arange(12).reshape(3, 4).T: k[i][j] = 4 j + i
  EXPECT_EQ(k.shape, (std::vector<int64_t>{4, 3}));
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(k.data[i * 3 + j], 4.0f * j + i) << i << "," << j;
  EXPECT_EQ(m.at("c").data, (std::vector<float>{0, 1, 2, 3, 4, 5}));

  // In memory, with singleton dims between the big ones: file order is first-index-fastest.
  // shape (2, 1, 3): file holds v[0,0,0], v[1,0,0], v[0,0,1], v[1,0,1], v[0,0,2], v[1,0,2].
  const std::vector<float> file = {0, 3, 1, 4, 2, 5};
  const Tensor t = parse(npy_bytes(1, dict("<f4", "(2, 1, 3)", true), as_bytes(file)));
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 1, 3}));
  EXPECT_EQ(t.data, (std::vector<float>{0, 1, 2, 3, 4, 5}));
  // Truncated Fortran data is still an error, before any reordering.
  expect_bad(npy_bytes(1, dict("<f4", "(2, 1, 3)", true), std::vector<uint8_t>(20)),
             ErrorCode::kFormat, "truncated");
}

TEST(Npz, TruncatedOrCorruptArchive) {
  const std::vector<uint8_t> bytes = test::read_file(test::data_path("io/deflated.npz"));
  const std::string dir = test::temp_dir();
  for (size_t n = 1; n < bytes.size(); n += 7) {
    SCOPED_TRACE(n);
    const std::string p = dir + "/cut" + std::to_string(n) + ".npz";
    test::write_file(p, std::vector<uint8_t>(bytes.begin(), bytes.begin() + n));
    expect_error([&] { read_npz(p); }, ErrorCode::kFormat, p, p);
  }
  const std::string pe = dir + "/empty.npz";
  test::write_file(pe, {});
  expect_error([&] { read_npz(pe); }, ErrorCode::kFormat, "empty file, not a zip archive", pe);
  const std::string pt = dir + "/text.npz";
  test::write_file(pt, std::vector<uint8_t>(100, 'x'));
  expect_error([&] { read_npz(pt); }, ErrorCode::kFormat, "Not a zip archive", pt);
  expect_error([&] { read_npz(dir + "/none.npz"); }, ErrorCode::kIo, "No such file",
               dir + "/none.npz");
}

// Offsets of the first local header / central directory entry for the named member.
size_t find_sig(const std::vector<uint8_t>& v, const char* sig, const std::string& name) {
  for (size_t i = 0; i + 46 + name.size() <= v.size(); ++i) {
    if (std::memcmp(&v[i], sig, 4) != 0) continue;
    const size_t name_at = sig[2] == 1 ? i + 46 : i + 30;
    if (std::memcmp(&v[name_at], name.data(), name.size()) == 0) return i;
  }
  return std::string::npos;
}

void put_u32(std::vector<uint8_t>& v, size_t at, uint32_t x) {
  for (int i = 0; i < 4; ++i) v[at + i] = static_cast<uint8_t>(x >> (8 * i));
}

TEST(Npz, CorruptMemberDataFailsCrc) {
  std::map<std::string, Tensor> in;
  in["a"] = test::random_tensor({16});
  const std::string p = test::temp_dir() + "/crc.npz";
  write_npz(p, in);
  std::vector<uint8_t> v = test::read_file(p);
  const size_t lh = find_sig(v, "PK\3\4", "a.npy");
  ASSERT_NE(lh, std::string::npos);
  v[lh + 30 + 5 + 128 + 3] ^= 0x40;  // a byte inside the array data
  test::write_file(p, v);
  expect_error([&] { read_npz(p); }, ErrorCode::kFormat, "member 'a.npy': read failed: CRC error", p);
}

TEST(Npz, LyingDeclaredSizes) {
  const std::vector<uint8_t> orig = test::read_file(test::data_path("io/deflated.npz"));
  const std::string name = "zeros.npy";
  const size_t lh = find_sig(orig, "PK\3\4", name);
  const size_t cd = find_sig(orig, "PK\1\2", name);
  ASSERT_NE(lh, std::string::npos);
  ASSERT_NE(cd, std::string::npos);
  const std::string dir = test::temp_dir();
  auto with_size = [&](uint32_t size) {
    std::vector<uint8_t> v = orig;
    put_u32(v, lh + 22, size);  // uncompressed size, local header
    put_u32(v, cd + 24, size);  // uncompressed size, central directory
    const std::string p = dir + "/lie" + std::to_string(size) + ".npz";
    test::write_file(p, v);
    return p;
  };
  // ~4 GB declared from 115 deflated bytes: refused before allocating.
  std::string p = with_size(0xfffffff0u);
  expect_error([&] { read_npz(p); }, ErrorCode::kFormat, "(decompression bomb?)", p);
  expect_error([&] { read_npz(p); }, ErrorCode::kFormat, "member 'zeros.npy'", p);
  // Declares less than it inflates to.
  p = with_size(1000);
  expect_error([&] { read_npz(p); }, ErrorCode::kFormat,
               "member 'zeros.npy': member holds more than its declared 1000 bytes", p);
  // Declares more than it inflates to.
  p = with_size(16600);
  expect_error([&] { read_npz(p); }, ErrorCode::kFormat,
               "member 'zeros.npy': read 16512 bytes but the archive declares 16600", p);
}

TEST(Npz, BadMembersAreNamed) {
  const std::string p = test::temp_dir() + "/bad.npz";
  int err = 0;
  zip_t* za = zip_open(p.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(za, nullptr);
  static const char text[] = "not an npy file";
  zip_source_t* src = zip_source_buffer(za, text, sizeof text, 0);
  ASSERT_GE(zip_file_add(za, "notes.txt", src, 0), 0);
  ASSERT_EQ(zip_close(za), 0);
  expect_error([&] { read_npz(p); }, ErrorCode::kFormat, "member 'notes.txt': bad magic", p);

  // An int array member: unsupported, naming archive and member.
  const std::vector<uint8_t> ints = npy_bytes(1, dict("<i8", "(2,)"), std::vector<uint8_t>(16));
  za = zip_open(p.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(za, nullptr);
  src = zip_source_buffer(za, ints.data(), ints.size(), 0);
  ASSERT_GE(zip_file_add(za, "labels.npy", src, 0), 0);
  ASSERT_EQ(zip_close(za), 0);
  expect_error([&] { read_npz(p); }, ErrorCode::kUnsupported, "member 'labels.npy': npy dtype '<i8'",
               p);
}

}  // namespace
}  // namespace vit
