// vit-infer tests: hostile inputs through the shipped program, end to end. Each bad model
// (truncated, lying header length, overlapping / gapped offsets, wrong dtype or shape,
// missing / extra tensors, a head count that does not divide the width) and each bad input
// (.npy with a wrong dtype / shape / layout, 0x0, huge or truncated images) is built in a temp
// dir from a good model (test_api_fixture.h, or the real timm golden checkpoint) and fed to
// `vit-infer info` / `classify` (cli_runner.h). The contract: no crash (not signalled), no
// hang (a time limit), exit status 1, and a stderr line naming the file and the problem;
// the good inputs of the same run are still classified. NaN / Inf weights only warn.
#include <gtest/gtest.h>
#include <zlib.h>

#include <csignal>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cli_runner.h"
#include "io/npy.h"
#include "model/model.h"
#include "model_fixture.h"
#include "test_api_fixture.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vit::test::lines;
using vit::test::Proc;
using vit::test::run_cli;
using vit::test::write_npy_raw;

// ---- expectations -----------------------------------------------------------------------

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The program failed cleanly: exited (no signal, no timeout) with status 1, and one stderr
// line names `file` together with one of `phrases` (case-insensitive).
void expect_clean_failure(const Proc& p, const std::string& file, const std::vector<std::string>& phrases,
                          const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_FALSE(p.timed_out) << p.describe();
  EXPECT_FALSE(p.signaled) << p.describe();
  EXPECT_EQ(p.rc, 1) << p.describe();
  bool found = false;
  for (const std::string& l : lines(p.err)) {
    if (l.find(file) == std::string::npos) continue;
    for (const std::string& ph : phrases) found = found || lower(l).find(lower(ph)) != std::string::npos;
  }
  std::string want;
  for (const std::string& ph : phrases) want += (want.empty() ? "'" : " | '") + ph + "'";
  EXPECT_TRUE(found) << "no stderr line names " << file << " with " << want << ":\n" << p.err;
}

// `classify --json` output: one line per input, in the order of `want` (file, is an error):
// the line names the file and carries "error" for a refused input, "topk" for a classified one.
// The parsed lines go to *rows. Call through ASSERT_NO_FATAL_FAILURE: a count mismatch is fatal.
void expect_result_lines(const Proc& p, const std::vector<std::pair<std::string, bool>>& want,
                         std::vector<json>* rows = nullptr) {
  const auto ls = lines(p.out);
  ASSERT_EQ(ls.size(), want.size()) << p.out << "\n" << p.err;
  for (size_t i = 0; i < want.size(); ++i) {
    const json j = json::parse(ls[i]);
    EXPECT_EQ(j.at("file"), want[i].first) << ls[i];
    EXPECT_EQ(j.contains("error"), want[i].second) << ls[i];
    EXPECT_EQ(j.contains("topk"), !want[i].second) << ls[i];
    if (rows) rows->push_back(j);
  }
}

// ---- safetensors editing ----------------------------------------------------------------

struct StEntry {
  std::string dtype;
  json shape;
  std::vector<uint8_t> bytes;
};
using StMap = std::map<std::string, StEntry>;  // by name: also the data order we write

StMap read_st(const std::string& path) {
  const std::vector<uint8_t> f = vit::test::read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | f.at(i);
  const json h = json::parse(f.begin() + 8, f.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  StMap m;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const uint64_t b = it.value()["data_offsets"][0], e = it.value()["data_offsets"][1];
    const auto base = f.begin() + 8 + static_cast<std::ptrdiff_t>(n);
    m[it.key()] = {it.value()["dtype"], it.value()["shape"],
                   std::vector<uint8_t>(base + static_cast<std::ptrdiff_t>(b), base + static_cast<std::ptrdiff_t>(e))};
  }
  return m;
}

// File bytes: u64-LE length field, header text, data.
std::vector<uint8_t> st_bytes(uint64_t len_field, const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> f(8 + header.size() + data.size());
  for (int i = 0; i < 8; ++i) f[i] = static_cast<uint8_t>(len_field >> (8 * i));
  std::copy(header.begin(), header.end(), f.begin() + 8);
  std::copy(data.begin(), data.end(), f.begin() + 8 + static_cast<std::ptrdiff_t>(header.size()));
  return f;
}

// Writes the entries contiguously (name order); `tweak` may edit the header JSON afterwards.
void write_st(const std::string& path, const StMap& m, const std::function<void(json&)>& tweak = {}) {
  json h = json::object();
  std::vector<uint8_t> data;
  for (const auto& [name, e] : m) {
    h[name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {data.size(), data.size() + e.bytes.size()}}};
    data.insert(data.end(), e.bytes.begin(), e.bytes.end());
  }
  if (tweak) tweak(h);
  const std::string text = h.dump();
  vit::test::write_file(path, st_bytes(text.size(), text, data));
}

// ---- fixtures ---------------------------------------------------------------------------

// A good random timm model (width 32, 4 heads, depth 2, 10 classes, 32x32 input, patch 8)
// and good inputs: good1 [2, 3, 32, 32], good2 [3, 32, 32].
const vit::test::CliModelAndInputs& fx() {
  static const vit::test::CliModelAndInputs f = vit::test::make_cli_model_and_inputs(77);
  return f;
}

// A fresh model directory holding a copy of the good model's config.json; the caller writes
// its model.safetensors. Returns the weights path.
std::string bad_model_dir(const std::string& tag, const std::string& from = fx().model) {
  const std::string d = vit::test::temp_dir() + "/" + tag;
  fs::create_directories(d);
  fs::copy_file(from + "/config.json", d + "/config.json");
  return d + "/model.safetensors";
}

std::string dir_of(const std::string& weights) { return fs::path(weights).parent_path().string(); }

// `vit-infer info` on a fresh bad model `tag` whose weights are `m` (header edited by `tweak`).
struct BadRun {
  std::string w;  // the weights path, which the error messages must name
  Proc p;
};
BadRun info_on_bad_model(const std::string& tag, const StMap& m, const std::function<void(json&)>& tweak = {}) {
  BadRun r;
  r.w = bad_model_dir(tag);
  write_st(r.w, m, tweak);
  r.p = run_cli({"info", "--model", dir_of(r.w)});
  return r;
}

// The runner itself: what the tests below rely on to tell a crash or a hang from a clean
// failure. A shell stands in for the program.
TEST(CliRunner, ReportsExitSignalTimeoutAndDrainsBothStreams) {
  Proc p = vit::test::run_program("/bin/sh", {"-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(p.rc, 3);
  EXPECT_FALSE(p.signaled || p.timed_out);
  EXPECT_EQ(p.out, "out\n");
  EXPECT_EQ(p.err, "err\n");
  p = vit::test::run_program("/bin/sh", {"-c", "kill -SEGV $$"});
  EXPECT_TRUE(p.signaled);
  EXPECT_EQ(p.signal, SIGSEGV);
  EXPECT_EQ(p.rc, -1);
  p = vit::test::run_program("/bin/sh", {"-c", "exec sleep 30"}, 0.5);
  EXPECT_TRUE(p.timed_out);
  EXPECT_LT(p.seconds, 10.0);
  // 1 MB on each stream, more than a pipe holds: neither may block the other.
  p = vit::test::run_program("/bin/sh", {"-c", "head -c 1000000 /dev/zero >&2; head -c 1000000 /dev/zero"});
  EXPECT_EQ(p.rc, 0) << p.describe();
  EXPECT_EQ(p.out.size(), 1000000u);
  EXPECT_EQ(p.err.size(), 1000000u);
}

// RunOptions reach the child (coreutils `env` and `pwd`, run directly) and leave the parent's
// environment alone; a working directory that does not exist is a spawn failure naming it.
TEST(CliRunner, OptionsReachTheChild) {
  const std::string env_bin = vit::test::find_in_path("env"), pwd_bin = vit::test::find_in_path("pwd");
  if (env_bin.empty() || pwd_bin.empty()) GTEST_SKIP() << "no coreutils env / pwd";
  ASSERT_EQ(setenv("VIT_RUNNER_PROBE", "parent", 1), 0);
  auto has_line = [](const Proc& p, const std::string& l) {
    const auto ls = lines(p.out);
    return std::find(ls.begin(), ls.end(), l) != ls.end();
  };
  Proc p = vit::test::run_program(env_bin, {});
  ASSERT_EQ(p.rc, 0) << p.describe();
  EXPECT_TRUE(has_line(p, "VIT_RUNNER_PROBE=parent")) << p.out;  // inherited by default

  vit::test::RunOptions o;
  o.unset_env = {"VIT_RUNNER_PROBE"};
  o.set_env["VIT_RUNNER_OTHER"] = "x y=z";
  p = vit::test::run_program(env_bin, {}, o);
  ASSERT_EQ(p.rc, 0) << p.describe();
  EXPECT_EQ(p.out.find("VIT_RUNNER_PROBE"), std::string::npos) << p.out;
  EXPECT_TRUE(has_line(p, "VIT_RUNNER_OTHER=x y=z")) << p.out;
  o.set_env["VIT_RUNNER_PROBE"] = "child";  // set wins over unset
  p = vit::test::run_program(env_bin, {}, o);
  EXPECT_TRUE(has_line(p, "VIT_RUNNER_PROBE=child")) << p.out;
  EXPECT_FALSE(has_line(p, "VIT_RUNNER_PROBE=parent")) << p.out;
  EXPECT_STREQ(std::getenv("VIT_RUNNER_PROBE"), "parent");

  const std::string dir = vit::test::temp_dir();
  vit::test::RunOptions in_dir;
  in_dir.cwd = dir;
  p = vit::test::run_program(pwd_bin, {"-P"}, in_dir);
  ASSERT_EQ(p.rc, 0) << p.describe();
  EXPECT_EQ(p.out, std::filesystem::canonical(dir).string() + "\n");
  in_dir.cwd = dir + "/missing";
  p = vit::test::run_program(pwd_bin, {}, in_dir);
  EXPECT_EQ(p.rc, -1);
  EXPECT_NE(p.err.find(dir + "/missing"), std::string::npos) << p.err;
  unsetenv("VIT_RUNNER_PROBE");
}

// The good model loads: every bad variant below differs from it only in what the test changed.
TEST(HostileModel, GoodModelLoads) {
  Proc p = run_cli({"info", "--model", fx().model});
  ASSERT_EQ(p.rc, 0) << p.describe();
  const std::string w = bad_model_dir("rewritten");
  write_st(w, read_st(fx().weights));  // our rewriter alone changes nothing that matters
  p = run_cli({"info", "--model", dir_of(w)});
  ASSERT_EQ(p.rc, 0) << p.describe();
}

// ---- models -----------------------------------------------------------------------------

// A real timm checkpoint cut at ~50 offsets spread over the length field, the header and
// the data. `info` loads every tensor, so each cut must be caught by the reader.
TEST(HostileModel, TruncatedRealCheckpointAtManyOffsets) {
  const std::string src = vit::test::data_path("golden/timm_token/model");
  if (!fs::exists(src + "/model.safetensors")) GTEST_SKIP() << "no golden timm checkpoint at " << src;
  const std::vector<uint8_t> full = vit::test::read_file(src + "/model.safetensors");
  ASSERT_GT(full.size(), 1000u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | full[i];
  const size_t data0 = 8 + n;  // first data byte
  ASSERT_LT(data0, full.size());

  std::vector<size_t> cuts = {0, 1, 4, 7, 8, 9, data0 - 1, data0, data0 + 1, full.size() - 1};
  for (int i = 1; i <= 12; ++i) cuts.push_back(8 + (n * i) / 13);  // inside the header
  for (int i = 1; i <= 28; ++i) cuts.push_back(data0 + ((full.size() - data0) * i) / 29);  // inside the data
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  ASSERT_GE(cuts.size(), 45u);

  const std::string w = bad_model_dir("truncated", src);
  double total = 0.0;
  for (size_t cut : cuts) {
    vit::test::write_file(w, std::vector<uint8_t>(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut)));
    Proc p = run_cli({"info", "--model", dir_of(w)}, 30.0);
    total += p.seconds;
    // Cut in the length field: "shorter than 8 bytes"; in the header: the length "runs past
    // end of file"; in the data: "file truncated".
    expect_clean_failure(p, w, {"shorter than 8 bytes", "past end of file", "truncated"},
                         "cut at byte " + std::to_string(cut) + " of " + std::to_string(full.size()));
    EXPECT_TRUE(p.out.empty()) << "cut at " << cut << ": stdout " << p.out;
  }
  // Control: the whole file loads (so the failures above are the cuts' doing).
  vit::test::write_file(w, full);
  Proc p = run_cli({"info", "--model", dir_of(w)});
  EXPECT_EQ(p.rc, 0) << p.describe();
  EXPECT_LT(total, 60.0) << "truncation sweep too slow";
}

TEST(HostileModel, HeaderLengthPastEndOfFileOrOverTheCap) {
  const std::vector<uint8_t> good = vit::test::read_file(fx().weights);
  auto with_length = [&](uint64_t len) {
    std::vector<uint8_t> f = good;
    for (int i = 0; i < 8; ++i) f[i] = static_cast<uint8_t>(len >> (8 * i));
    return f;
  };
  struct Case {
    const char* tag;
    uint64_t len;
    std::vector<std::string> phrases;
  };
  const std::vector<Case> cases = {
      {"len_file_size", good.size(), {"header length", "past end of file"}},
      {"len_just_past", good.size() - 7, {"header length", "past end of file"}},
      {"len_over_cap", 100000001ull, {"header too large"}},
      {"len_u64_max", std::numeric_limits<uint64_t>::max(), {"header too large"}},
  };
  for (const Case& c : cases) {
    const std::string w = bad_model_dir(c.tag);
    vit::test::write_file(w, with_length(c.len));
    Proc p = run_cli({"info", "--model", dir_of(w)});
    expect_clean_failure(p, w, c.phrases, c.tag);
    // The same through classify, which must not run anything.
    p = run_cli({"classify", "--model", dir_of(w), fx().good2});
    expect_clean_failure(p, w, c.phrases, std::string("classify ") + c.tag);
    EXPECT_TRUE(p.out.empty()) << p.out;
  }
}

TEST(HostileModel, OverlappingAndGappedOffsets) {
  const StMap m = read_st(fx().weights);
  // blocks.0.attn.proj.bias [32] F32 (128 bytes) comes right before blocks.0.attn.proj.weight.
  const std::string t = "blocks.0.attn.proj.weight";
  ASSERT_TRUE(m.count(t) && m.count("blocks.0.attn.proj.bias"));
  auto shift = [&](int64_t by) {
    return [=](json& h) {
      const int64_t b = h[t]["data_offsets"][0], e = h[t]["data_offsets"][1];
      h[t]["data_offsets"] = {b + by, e + by};
    };
  };
  BadRun b = info_on_bad_model("overlap", m, shift(-4));
  expect_clean_failure(b.p, b.w, {"overlaps"}, "overlap");
  EXPECT_NE(b.p.err.find(t), std::string::npos) << b.p.err;

  b = info_on_bad_model("gap", m, shift(+4));
  expect_clean_failure(b.p, b.w, {"gap"}, "gap");
  EXPECT_NE(b.p.err.find(t), std::string::npos) << b.p.err;

  // Two tensors claiming the same bytes (one region, two names). The hole this leaves where
  // the tensor used to be is the first thing the offset walk meets, so either is reported.
  b = info_on_bad_model("alias", m,
                        [&](json& h) { h[t]["data_offsets"] = h["blocks.0.attn.qkv.weight"]["data_offsets"]; });
  expect_clean_failure(b.p, b.w, {"overlaps", "gap"}, "aliased offsets");
}

TEST(HostileModel, WrongDtype) {
  const std::string t = "blocks.0.norm1.weight";
  StMap m = read_st(fx().weights);
  ASSERT_TRUE(m.count(t));
  // I32 has F32's size, so the header is self-consistent: only the loader can object.
  m[t].dtype = "I32";
  BadRun b = info_on_bad_model("dtype_i32", m);
  expect_clean_failure(b.p, b.w, {"dtype I32"}, "I32 tensor");
  EXPECT_NE(b.p.err.find(t), std::string::npos) << b.p.err;

  m[t].dtype = "Q4_K";  // not a safetensors dtype at all
  b = info_on_bad_model("dtype_unknown", m);
  expect_clean_failure(b.p, b.w, {"unknown dtype"}, "unknown dtype");
  EXPECT_NE(b.p.err.find(t), std::string::npos) << b.p.err;

  m[t].dtype = "F16";  // half the bytes the offsets span
  b = info_on_bad_model("dtype_f16_size", m);
  expect_clean_failure(b.p, b.w, {"dtype F16 needs"}, "F16 with F32-sized data");
}

// A tensor whose shape disagrees with the configuration resolved from the checkpoint
// (config.json + defining tensors). Byte counts are kept so only the shape is wrong.
TEST(HostileModel, ShapesThatDisagreeWithTheConfig) {
  struct Case {
    const char* tag;
    std::string tensor;
    json shape;
    std::vector<std::string> phrases;
  };
  const std::vector<Case> cases = {
      {"fc1_transposed", "blocks.1.mlp.fc1.weight", {32, 64}, {"has shape [32, 64], expected [64, 32]"}},
      {"qkv_transposed", "blocks.0.attn.qkv.weight", {32, 96}, {"has shape [32, 96], expected [96, 32]"}},
      {"fc1_flat", "blocks.0.mlp.fc1.weight", {2048}, {"expected rank 2"}},
      {"pos_flat", "pos_embed", {17, 32}, {"expected rank 3"}},
      {"head_bias", "head.bias", {2, 5}, {"has shape [2, 5], expected [10]"}},
  };
  const StMap good = read_st(fx().weights);
  for (const Case& c : cases) {
    StMap m = good;
    ASSERT_TRUE(m.count(c.tensor)) << c.tensor;
    m[c.tensor].shape = c.shape;
    BadRun b = info_on_bad_model(c.tag, m);
    expect_clean_failure(b.p, b.w, c.phrases, c.tag);
    EXPECT_NE(b.p.err.find(c.tensor), std::string::npos) << b.p.err;
  }
}

TEST(HostileModel, MissingAndUnexpectedTensors) {
  const StMap good = read_st(fx().weights);
  StMap m = good;
  ASSERT_EQ(m.erase("blocks.1.norm2.bias"), 1u);
  BadRun b = info_on_bad_model("missing", m);
  expect_clean_failure(b.p, b.w, {"missing 1 tensor(s) (timm layout): blocks.1.norm2.bias"}, "missing block tensor");
  // classify: the model does not load, so nothing is classified and nothing printed.
  b.p = run_cli({"classify", "--model", dir_of(b.w), fx().good1});
  expect_clean_failure(b.p, b.w, {"missing"}, "classify, missing tensor");
  EXPECT_TRUE(b.p.out.empty()) << b.p.out;

  m = good;
  ASSERT_EQ(m.erase("patch_embed.proj.weight"), 1u);  // a tensor the config is read from
  b = info_on_bad_model("missing_patch", m);
  expect_clean_failure(b.p, b.w, {"missing tensor 'patch_embed.proj.weight'"}, "missing defining tensor");

  m = good;
  m["blocks.0.attn.extra.weight"] = good.at("blocks.0.attn.proj.bias");
  b = info_on_bad_model("extra", m);
  expect_clean_failure(b.p, b.w, {"unexpected 1 tensor(s) (timm layout): blocks.0.attn.extra.weight"}, "extra tensor");

  // A third block's worth of one tensor: the depth becomes 3 and block 2 is incomplete.
  m = good;
  m["blocks.2.norm1.weight"] = good.at("blocks.0.norm1.weight");
  b = info_on_bad_model("partial_block", m);
  expect_clean_failure(b.p, b.w, {"missing"}, "partial extra block");
  EXPECT_NE(b.p.err.find("blocks.2."), std::string::npos) << b.p.err;
}

TEST(HostileModel, HeadCountThatDoesNotDivideTheWidth) {
  // config.json says 5 heads for width 32.
  const std::string w = bad_model_dir("heads5");
  fs::copy_file(fx().weights, w);
  json cfg = json::parse(std::ifstream(fx().model + "/config.json"));
  cfg["model_args"]["num_heads"] = 5;
  std::ofstream(dir_of(w) + "/config.json") << cfg.dump(2);
  Proc p = run_cli({"info", "--model", dir_of(w)});
  expect_clean_failure(p, w, {"head count 5 does not divide the width 32"}, "config heads 5");

  // The same from the command line on the good model.
  p = run_cli({"info", "--model", fx().model, "--heads", "3"});
  expect_clean_failure(p, fx().weights, {"head count 3 does not divide the width 32"}, "--heads 3");
  p = run_cli({"classify", "--model", fx().model, "--heads", "3", fx().good2});
  expect_clean_failure(p, fx().weights, {"does not divide"}, "classify --heads 3");
  EXPECT_TRUE(p.out.empty()) << p.out;
}

// Not an error: a NaN or Inf weight loads, with a warning naming the tensor on stderr (and in
// info's output). The first element of fc1 is NaN, the last of head.bias +Inf.
TEST(HostileModel, NanAndInfWeightsWarnNamingTheTensor) {
  StMap m = read_st(fx().weights);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  ASSERT_EQ(m.at("blocks.0.mlp.fc1.weight").dtype, "F32");
  std::memcpy(m.at("blocks.0.mlp.fc1.weight").bytes.data(), &nan, 4);
  std::vector<uint8_t>& hb = m.at("head.bias").bytes;
  std::memcpy(hb.data() + hb.size() - 4, &inf, 4);
  const std::string w = bad_model_dir("nan");
  write_st(w, m);

  Proc p = run_cli({"info", "--model", dir_of(w)});
  ASSERT_FALSE(p.signaled || p.timed_out) << p.describe();
  ASSERT_EQ(p.rc, 0) << p.describe();
  bool fc1 = false, head = false;
  for (const std::string& l : lines(p.err)) {
    if (l.find("warning") == std::string::npos) continue;
    fc1 = fc1 || (l.find("blocks.0.mlp.fc1.weight") != std::string::npos && l.find("NaN") != std::string::npos);
    head = head || l.find("head.bias") != std::string::npos;
  }
  EXPECT_TRUE(fc1) << "no stderr warning names blocks.0.mlp.fc1.weight:\n" << p.err;
  EXPECT_TRUE(head) << "no stderr warning names head.bias:\n" << p.err;
  EXPECT_NE(p.out.find("warnings: 2"), std::string::npos) << p.out;

  p = run_cli({"info", "--model", dir_of(w), "--json"});
  ASSERT_EQ(p.rc, 0) << p.describe();
  const json j = json::parse(p.out);  // stdout stays pure JSON
  ASSERT_EQ(j.at("warnings").size(), 2u) << j.dump();
  EXPECT_NE(j.at("warnings").dump().find("blocks.0.mlp.fc1.weight"), std::string::npos);
  EXPECT_NE(p.err.find("blocks.0.mlp.fc1.weight"), std::string::npos) << p.err;

  // The good model warns about nothing.
  p = run_cli({"info", "--model", fx().model});
  ASSERT_EQ(p.rc, 0) << p.describe();
  EXPECT_EQ(p.err.find("warning"), std::string::npos) << p.err;
}

// ---- .npy inputs ------------------------------------------------------------------------

std::vector<uint8_t> f32_bytes(const std::vector<float>& v, bool big_endian) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  if (big_endian)
    for (size_t i = 0; i < b.size(); i += 4) std::reverse(b.begin() + i, b.begin() + i + 4);
  return b;
}

// Bad arrays between two good ones: each bad one is an error line naming it, the good rows
// are still classified, in input order, with the logits a clean run gives.
TEST(HostileNpy, BadArraysReportedAndGoodOnesClassified) {
  const std::string d = vit::test::temp_dir();
  const std::vector<float> x(3 * 32 * 32, 0.25f);
  struct Bad {
    std::string file;
    std::vector<std::string> phrases;
  };
  std::vector<Bad> bad;
  bad.push_back({d + "/int32.npy", {"dtype '<i4'"}});
  write_npy_raw(bad.back().file, "<i4", false, {1, 3, 32, 32}, std::vector<uint8_t>(3 * 32 * 32 * 4));
  bad.push_back({d + "/height33.npy", {"does not match the model input"}});
  {
    std::vector<float> y(3 * 33 * 32, 0.5f);
    vit::write_npy(bad.back().file, y.data(), {3, 33, 32});
  }
  bad.push_back({d + "/matrix.npy", {"not an image batch"}});
  vit::write_npy(bad.back().file, x.data(), {2, 3});
  bad.push_back({d + "/short.npy", {"truncated"}});
  write_npy_raw(bad.back().file, "<f4", false, {1, 3, 32, 32}, std::vector<uint8_t>(1000));
  bad.push_back({d + "/f16.npy", {"does not match the model input"}});  // f16 is fine, the shape is not
  write_npy_raw(bad.back().file, "<f2", false, {1, 3, 16, 16}, std::vector<uint8_t>(3 * 16 * 16 * 2));

  std::vector<std::string> args = {"classify", "--model", fx().model, "--json", "-k", "1",
                                   "--logits-out", d + "/logits.npy", fx().good1};
  for (const Bad& b : bad) args.push_back(b.file);
  args.push_back(fx().good2);
  Proc p = run_cli(args);
  for (const Bad& b : bad) expect_clean_failure(p, b.file, b.phrases, b.file);

  // JSON lines in input order: 2 rows of good1, one error per bad file, 1 row of good2.
  std::vector<std::pair<std::string, bool>> want = {{fx().good1, false}, {fx().good1, false}};
  for (const Bad& b : bad) want.emplace_back(b.file, true);
  want.emplace_back(fx().good2, false);
  ASSERT_NO_FATAL_FAILURE(expect_result_lines(p, want));
  // Nothing is lost: the good rows' logits equal a run on the good files alone. Same rows,
  // same batch of 3, same engine: identical up to fp32 reduction order, far below 1e-5 on
  // O(1) logits (bit-identical in practice).
  Proc clean = run_cli({"classify", "--model", fx().model, "--logits-out", d + "/clean.npy", fx().good1, fx().good2});
  ASSERT_EQ(clean.rc, 0) << clean.describe();
  const vit::Tensor got = vit::read_npy(d + "/logits.npy"), ref = vit::read_npy(d + "/clean.npy");
  ASSERT_EQ(got.shape, (std::vector<int64_t>{3, 10}));
  ASSERT_EQ(got.shape, ref.shape);
  EXPECT_LT(vit::test::max_abs_diff(got.ptr(), ref.ptr(), ref.data.size()), 1e-5f);
  EXPECT_GT(vit::test::max_abs(ref.ptr(), ref.data.size()), 0.0f);
}

// '>f4' is a valid float32 array in the other byte order, and a Fortran-order file (numpy writes
// one for any F-contiguous array, e.g. np.asfortranarray(x)) the same array in the other layout:
// both must classify exactly like the little-endian C-order file holding the same values.
TEST(HostileNpy, BigEndianAndFortranClassifyIdentically) {
  const std::string d = vit::test::temp_dir();
  const std::vector<float> x = vit::test::random_vec(2 * 3 * 32 * 32);
  write_npy_raw(d + "/le.npy", "<f4", false, {2, 3, 32, 32}, f32_bytes(x, false));
  write_npy_raw(d + "/be.npy", ">f4", false, {2, 3, 32, 32}, f32_bytes(x, true));
  // Fortran layout of x[b][c][h][w]: offset b + 2 * (c + 3 * (h + 32 * w)).
  std::vector<float> xf(x.size());
  for (int b = 0; b < 2; ++b)
    for (int c = 0; c < 3; ++c)
      for (int h = 0; h < 32; ++h)
        for (int w = 0; w < 32; ++w) xf[b + 2 * (c + 3 * (h + 32 * w))] = x[((b * 3 + c) * 32 + h) * 32 + w];
  write_npy_raw(d + "/fo.npy", "<f4", true, {2, 3, 32, 32}, f32_bytes(xf, false));
  Proc f = run_cli({"classify", "--model", fx().model, "--threads", "2", "--logits-out", d + "/fo_logits.npy",
                    d + "/fo.npy"});
  ASSERT_EQ(f.rc, 0) << f.describe();
  Proc a = run_cli({"classify", "--model", fx().model, "--threads", "2", "--logits-out", d + "/le_logits.npy",
                    d + "/le.npy"});
  Proc b = run_cli({"classify", "--model", fx().model, "--threads", "2", "--logits-out", d + "/be_logits.npy",
                    d + "/be.npy"});
  ASSERT_EQ(a.rc, 0) << a.describe();
  ASSERT_EQ(b.rc, 0) << b.describe();
  const vit::Tensor la = vit::read_npy(d + "/le_logits.npy"), lb = vit::read_npy(d + "/be_logits.npy");
  ASSERT_EQ(la.shape, (std::vector<int64_t>{2, 10}));
  ASSERT_EQ(lb.shape, la.shape);
  // Same values, same engine, same batch: bit-identical.
  EXPECT_EQ(0, std::memcmp(la.ptr(), lb.ptr(), la.data.size() * sizeof(float)))
      << "max |diff| " << vit::test::max_abs_diff(la.ptr(), lb.ptr(), la.data.size());
  const vit::Tensor lf = vit::read_npy(d + "/fo_logits.npy");
  ASSERT_EQ(lf.shape, la.shape);
  EXPECT_EQ(0, std::memcmp(la.ptr(), lf.ptr(), la.data.size() * sizeof(float)))
      << "max |diff| " << vit::test::max_abs_diff(la.ptr(), lf.ptr(), la.data.size());
  EXPECT_GT(vit::test::max_abs(la.ptr(), la.data.size()), 0.0f);
  // The table rows name the file and agree too (probabilities printed from the same logits).
  const auto ra = lines(a.out), rb = lines(b.out);
  ASSERT_EQ(ra.size(), rb.size());
  for (size_t i = 1; i < ra.size(); ++i) {
    std::string sa = ra[i], sb = rb[i];
    ASSERT_EQ(sa.rfind(d + "/le.npy\t", 0), 0u) << sa;
    ASSERT_EQ(sb.rfind(d + "/be.npy\t", 0), 0u) << sb;
    EXPECT_EQ(sa.substr(sa.find('\t')), sb.substr(sb.find('\t')));
  }
}

// ---- images -----------------------------------------------------------------------------

void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

void png_chunk(std::vector<uint8_t>& f, const char* type, const std::vector<uint8_t>& data) {
  put_be32(f, static_cast<uint32_t>(data.size()));
  std::vector<uint8_t> td(type, type + 4);
  td.insert(td.end(), data.begin(), data.end());
  f.insert(f.end(), td.begin(), td.end());
  put_be32(f, static_cast<uint32_t>(crc32(0L, td.data(), static_cast<uInt>(td.size()))));
}

// A well-formed PNG header declaring w x h RGB8, with a valid CRC on every chunk and one
// small IDAT (a few filtered rows' worth): valid up to the point a decoder allocates pixels.
std::vector<uint8_t> png_declaring(uint32_t w, uint32_t h) {
  std::vector<uint8_t> f = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, w);
  put_be32(ihdr, h);
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit RGB, deflate, adaptive filter, no interlace
  png_chunk(f, "IHDR", ihdr);
  std::vector<uint8_t> raw(1024, 0);
  uLongf zlen = compressBound(raw.size());
  std::vector<uint8_t> z(zlen);
  EXPECT_EQ(compress(z.data(), &zlen, raw.data(), raw.size()), Z_OK);
  z.resize(zlen);
  png_chunk(f, "IDAT", z);
  png_chunk(f, "IEND", {});
  return f;
}

TEST(HostileImage, EmptyHugeAndTruncatedImages) {
  const std::string d = vit::test::temp_dir();
  const std::string good_png = vit::test::data_path("images/rgb_37x53.png");
  const std::string jpg = vit::test::data_path("images/photo_300x200.jpg");
  if (!fs::exists(good_png) || !fs::exists(jpg)) GTEST_SKIP() << "no test images under tests/data/images";

  struct Bad {
    std::string file;
    std::vector<std::string> phrases;
  };
  std::vector<Bad> bad;
  bad.push_back({d + "/zero.png", {"empty image (0x0)"}});
  vit::test::write_file(bad.back().file, png_declaring(0, 0));
  bad.push_back({d + "/zero_w.png", {"empty image (0x7)"}});
  vit::test::write_file(bad.back().file, png_declaring(0, 7));
  bad.push_back({d + "/huge.png", {"100000x100000", "decompression-bomb"}});
  vit::test::write_file(bad.back().file, png_declaring(100000, 100000));
  bad.push_back({d + "/many_pixels.png", {"pixels, over the limit"}});  // 20000^2 = 4e8 > the pixel cap
  vit::test::write_file(bad.back().file, png_declaring(20000, 20000));
  bad.push_back({d + "/truncated.jpg", {"premature end", "truncated"}});
  {
    const std::vector<uint8_t> full = vit::test::read_file(jpg);
    vit::test::write_file(bad.back().file, std::vector<uint8_t>(full.begin(), full.begin() + full.size() / 2));
  }
  bad.push_back({d + "/empty.png", {"empty file"}});
  vit::test::write_file(bad.back().file, {});

  std::vector<std::string> args = {"classify", "--model", fx().model, "--json", "-k", "1", good_png};
  for (const Bad& b : bad) args.push_back(b.file);
  args.push_back(fx().good2);
  Proc p = run_cli(args);
  for (const Bad& b : bad) expect_clean_failure(p, b.file, b.phrases, b.file);
  // The bombs were refused from their headers: the program never held anything near
  // 100000 x 100000 x 3 bytes (30 GB), nor 20000^2 x 3 (1.2 GB). 1 GB of peak RSS is far
  // above what a 32x32 model and a few small images need.
  EXPECT_LT(p.max_rss_kb, 1L << 20) << "peak RSS " << p.max_rss_kb << " KB";

  std::vector<std::pair<std::string, bool>> want = {{good_png, false}};
  for (const Bad& b : bad) want.emplace_back(b.file, true);
  want.emplace_back(fx().good2, false);
  std::vector<json> rows;
  ASSERT_NO_FATAL_FAILURE(expect_result_lines(p, want, &rows));
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i].second) continue;
    const double prob = rows[i].at("topk")[0].at("prob").get<double>();
    EXPECT_TRUE(prob > 0.0 && prob <= 1.0) << rows[i];
  }

  // The bomb alone is refused quickly: a header check, not a decode.
  Proc q = run_cli({"classify", "--model", fx().model, d + "/huge.png"}, 20.0);
  expect_clean_failure(q, d + "/huge.png", {"decompression-bomb"}, "bomb alone");
  EXPECT_LT(q.seconds, 10.0);
  EXPECT_LE(lines(q.out).size(), 1u) << "a result row for a refused image:\n" << q.out;  // the table header at most
}

}  // namespace
