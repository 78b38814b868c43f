// vit-infer tests: the benchmark programs on the CPU emulator of the CUDA runtime (gpu_emu/),
// so that their paths run before they first meet a GPU. vit-bench-emu (VIT_BENCH_EMU_BIN) and
// vit-soak-emu (VIT_SOAK_EMU_BIN) run as child processes (cli_runner.h) on the golden fixture
// model tests/data/golden/timm_token/model (32x32, patch 8, D 64, depth 2, 10 classes); their
// JSON results are checked for every promised field, for internal consistency and ordering
// (min <= median <= p90 <= p95 <= p99 <= max), and their exit codes (0 ok, 2 bad argument /
// model, 3 CUDA failure; vit-soak: 0 pass, 1 fail, 2 could not start). Emulator timings are
// meaningless: nothing here asserts a speed. EmuBenchUtil unit-tests bench_util (statistics,
// the device random fill) and random_model (the weights vit-bench times without a checkpoint).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "bench_util.h"
#include "cli_runner.h"
#include "core/error.h"
#include "cpu/cpu_engine.h"
#include "gpu/cuda_engine.h"
#include "model/config.h"
#include "model/model.h"
#include "random_model.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vit::test::Proc;
using vit::test::RunOptions;

// The emulator runs the fixture model at roughly 4 images/s: every run below is a few images.
constexpr double kRunLimitS = 120.0;

std::string fixture_model() { return vit::test::data_path("golden/timm_token/model"); }

Proc run_bench(const std::vector<std::string>& args, std::map<std::string, std::string> env = {}) {
  RunOptions o;
  o.timeout_s = kRunLimitS;
  o.set_env = std::move(env);
  o.unset_env = {"VIT_GIT_HASH", "VIT_EMU_CC", "VIT_EMU_CUBLASLT", "VIT_EMU_DEVICE_MEMORY"};  // set_env wins
  return vit::test::run_program(VIT_BENCH_EMU_BIN, args, o);
}

Proc run_soak(const std::vector<std::string>& args) {
  RunOptions o;
  o.timeout_s = kRunLimitS;
  o.unset_env = {"VIT_GIT_HASH", "VIT_INFER_MODEL", "VIT_EMU_CC", "VIT_EMU_CUBLASLT", "VIT_EMU_DEVICE_MEMORY"};
  return vit::test::run_program(VIT_SOAK_EMU_BIN, args, o);
}

json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) {
    ADD_FAILURE() << "no JSON written at " << path;
    return json::object();
  }
  try {
    return json::parse(f);
  } catch (const std::exception& e) {
    ADD_FAILURE() << path << " is not JSON: " << e.what();
    return json::object();
  }
}

// A latency summary (bench_util.h Stats): n samples, all finite and positive, ordered.
void expect_stats(const json& s, int n, const std::string& where) {
  SCOPED_TRACE(where + ": " + s.dump());
  ASSERT_TRUE(s.is_object());
  for (const char* k : {"n", "min", "mean", "median", "p90", "p95", "p99", "max"}) ASSERT_TRUE(s.contains(k)) << k;
  if (n > 0) {
    EXPECT_EQ(s["n"].get<int>(), n);
  } else {
    EXPECT_GE(s["n"].get<int>(), -n);  // at least -n samples
  }
  const double mn = s["min"], mean = s["mean"], med = s["median"], p90 = s["p90"], p95 = s["p95"], p99 = s["p99"],
               mx = s["max"];
  for (double v : {mn, mean, med, p90, p95, p99, mx}) EXPECT_TRUE(std::isfinite(v));
  EXPECT_GT(mn, 0.0);
  EXPECT_LE(mn, med);
  EXPECT_LE(med, p90);
  EXPECT_LE(p90, p95);
  EXPECT_LE(p95, p99);
  EXPECT_LE(p99, mx);
  EXPECT_LE(mn, mean);
  EXPECT_LE(mean, mx);
}

// Every "<n> on <impl>" count of the engine report's bucket lines (GEMM implementations).
std::vector<int> report_counts(const std::string& report, const std::string& impl) {
  std::vector<int> v;
  const std::regex re("(\\d+)(/\\d+ GEMMs)? on " + impl);
  for (auto it = std::sregex_iterator(report.begin(), report.end(), re); it != std::sregex_iterator(); ++it)
    v.push_back(std::stoi((*it)[1]));
  return v;
}

int64_t expected_input_sets(int64_t rotate_bytes, int batch) {
  const int64_t bytes = int64_t{3} * 32 * 32 * 4 * batch;  // fixture: [B, 3, 32, 32] fp32
  return std::clamp<int64_t>((rotate_bytes + bytes - 1) / bytes, 2, 256);
}

// The node kinds executor.h documents for profile_nodes.
const std::set<std::string> kNodeKinds = {"patchify", "gemm", "embed", "layernorm", "attention", "pool", "to_f32"};

void expect_nodes(const json& nodes, int depth, const std::string& where) {
  SCOPED_TRACE(where);
  ASSERT_TRUE(nodes.is_object()) << nodes.dump();
  ASSERT_TRUE(nodes["nodes"].is_array());
  ASSERT_FALSE(nodes["nodes"].empty());
  std::map<std::string, double> by_kind;
  std::map<std::string, int> count;
  double total = 0;
  for (const json& n : nodes["nodes"]) {
    const std::string name = n["name"], kind = n["kind"];
    const double ms = n["ms"];
    EXPECT_FALSE(name.empty());
    EXPECT_TRUE(kNodeKinds.count(kind)) << "unknown node kind '" << kind << "' (" << name << ")";
    EXPECT_TRUE(std::isfinite(ms) && ms >= 0.0) << name << " " << ms;
    by_kind[kind] += ms;
    ++count[kind];
    total += ms;
  }
  // The fixture model: per block 2 LayerNorms, QKV / proj / fc1 / fc2 GEMMs and an attention.
  EXPECT_GE(count["gemm"], 4 * depth);
  EXPECT_GE(count["layernorm"], 2 * depth);
  EXPECT_GE(count["attention"], depth);
  EXPECT_GE(count["patchify"], 1);
  // by_kind_ms is the per-kind sum of the node list and total_ms its sum (double sums in the
  // same order: equal up to rounding).
  ASSERT_TRUE(nodes["by_kind_ms"].is_object());
  EXPECT_EQ(nodes["by_kind_ms"].size(), by_kind.size());
  for (const auto& [k, v] : by_kind) {
    ASSERT_TRUE(nodes["by_kind_ms"].contains(k)) << k;
    EXPECT_NEAR(nodes["by_kind_ms"][k].get<double>(), v, 1e-9 * std::max(1.0, v)) << k;
  }
  EXPECT_NEAR(nodes["total_ms"].get<double>(), total, 1e-9 * std::max(1.0, total));
  EXPECT_GT(total, 0.0);
}

// ---- vit-bench --------------------------------------------------------------------------

// bf16, CUDA graphs on, the custom GEMMs, batches 1 and 3 (3 is its own bucket: max_batch 3),
// default input rotation (2 x the emulated L2), per-node breakdown, $VIT_GIT_HASH recorded.
TEST(EmuBench, Bf16GraphsCustomGemmJsonIsComplete) {
  const std::string out = vit::test::temp_dir() + "/bench.json";
  const int warmup = 1, iters = 4;
  const Proc p = run_bench({"--model", fixture_model(), "--batch", "1,3", "--precision", "bf16", "--warmup",
                            std::to_string(warmup), "--iterations", std::to_string(iters), "--cuda-graphs", "on",
                            "--gemm", "custom", "--node-reps", "1", "--json", out},
                           {{"VIT_GIT_HASH", "0123456789ab-emu"}});
  ASSERT_EQ(p.rc, 0) << p.describe();
  // The printed summary: table, per-node section by kind.
  EXPECT_NE(p.out.find("img/s"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("per-node time by kind"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("git 0123456789ab-emu"), std::string::npos) << p.out;

  // One row per batch, in order, under the header.
  const size_t header = p.out.find("img/s"), row1 = p.out.find("\n     1 "), row3 = p.out.find("\n     3 ");
  EXPECT_TRUE(header < row1 && row1 < row3 && row3 != std::string::npos) << p.out;

  const json j = read_json(out);
  ASSERT_TRUE(j.is_object() && j.contains("results")) << j.dump();
  EXPECT_EQ(j["complete"], true);
  EXPECT_FALSE(fs::exists(out + ".partial"));  // written there, then renamed
  EXPECT_EQ(j["tool"], "vit-bench");
  EXPECT_EQ(j["git_hash"], "0123456789ab-emu");
  EXPECT_TRUE(std::regex_match(j["date_utc"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << j["date_utc"];

  const json& g = j["gpu"];
  EXPECT_NE(g["name"].get<std::string>().find("emulator"), std::string::npos) << g.dump();
  EXPECT_EQ(g["compute_capability"], "9.0");
  EXPECT_GT(g["sm_count"].get<int>(), 0);
  EXPECT_GT(g["l2_bytes"].get<int64_t>(), 0);
  EXPECT_GT(g["total_mem_bytes"].get<int64_t>(), 0);
  EXPECT_GT(g["driver_version"].get<int>(), 0);
  EXPECT_GT(g["runtime_version"].get<int>(), 0);

  const json& m = j["model"];
  EXPECT_EQ(m["image"], json::array({32, 32}));
  EXPECT_EQ(m["patch"], 8);
  EXPECT_EQ(m["hidden"], 64);
  EXPECT_EQ(m["depth"], 2);
  EXPECT_EQ(m["heads"], 4);
  EXPECT_EQ(m["num_classes"], 10);
  EXPECT_GT(m["params"].get<int64_t>(), 0);
  EXPECT_GT(m["flops_per_image"].get<double>(), 0.0);
  EXPECT_NE(m["source"].get<std::string>().find("timm_token"), std::string::npos);

  const json& o = j["options"];
  EXPECT_EQ(o["precision"], "bf16");
  EXPECT_EQ(o["gemm"], "custom");
  EXPECT_EQ(o["cuda_graphs"], true);
  EXPECT_EQ(o["warmup"], warmup);
  EXPECT_EQ(o["iterations"], iters);
  EXPECT_EQ(o["max_batch"], 3);
  const int64_t rotate = o["rotate_bytes"];
  EXPECT_EQ(rotate, 2 * g["l2_bytes"].get<int64_t>());  // default: 2 x L2

  EXPECT_EQ(j["engine"]["name"], "cuda");
  const std::string report = j["engine"]["report"];
  EXPECT_NE(report.find("precision BF16,"), std::string::npos) << report;
  EXPECT_NE(report.find("max_batch 3"), std::string::npos) << report;
  // --gemm custom: no bucket that chose its GEMMs has one on cuBLASLt (both buckets run did).
  const std::vector<int> lt = report_counts(report, "cuBLASLt");
  EXPECT_GE(lt.size(), 2u) << report;
  for (int c : lt) EXPECT_EQ(c, 0) << report;
  EXPECT_GE(j["engine"]["create_s"].get<double>(), 0.0);
  EXPECT_EQ(j["hooks"]["run_device"], true);
  EXPECT_EQ(j["hooks"]["profile_nodes"], true);

  // Memory: readings in order, and the engine's own bytes inside the measured peak.
  const json& mem = j["memory"];
  const int64_t before = mem["free_before_bytes"], after = mem["free_after_create_bytes"],
                min_free = mem["min_free_during_runs_bytes"], total = mem["total_bytes"];
  const int64_t weights = mem["weight_bytes"], arena = mem["arena_bytes"], session = mem["session_bytes"],
                peak = mem["peak_bytes"];
  EXPECT_GT(total, 0);
  EXPECT_EQ(total, g["total_mem_bytes"].get<int64_t>());
  EXPECT_LE(before, total);
  EXPECT_GE(before, after);
  EXPECT_GE(after, min_free);
  EXPECT_GT(weights, 0);
  EXPECT_GT(arena, 0);
  EXPECT_EQ(session, before - after);
  EXPECT_EQ(peak, before - min_free);
  EXPECT_GE(session, weights);  // the arena is allocated lazily, at the first run
  EXPECT_GE(peak, weights + arena);

  ASSERT_EQ(j["results"].size(), 2u);
  const int batches[2] = {1, 3};
  for (int i = 0; i < 2; ++i) {
    const json& r = j["results"][static_cast<size_t>(i)];
    const int b = batches[i];
    const std::string where = "batch " + std::to_string(b);
    SCOPED_TRACE(where);
    EXPECT_EQ(r["batch"], b);
    EXPECT_GE(r["bucket"].get<int>(), b);
    EXPECT_LE(r["bucket"].get<int>(), 3);
    EXPECT_EQ(r["graph"], true);

    const json& h = r["host"];
    expect_stats(h["latency_ms"], iters, where + " host latency");
    expect_stats(h["wall_ms"], iters, where + " host wall");  // timed runs only, not the warm-up
    const double mean = h["latency_ms"]["mean"];
    EXPECT_NEAR(h["throughput_img_s"].get<double>(), 1000.0 * b / mean, 1e-9 * 1000.0 * b / mean);
    EXPECT_EQ(h["input_sets"].get<int64_t>(), expected_input_sets(rotate, b));
    EXPECT_EQ(h["outputs_finite"], true);

    const json& d = r["device"];
    ASSERT_TRUE(d.is_object()) << r.dump();
    EXPECT_EQ(d["source"], "run_device hook");
    expect_stats(d["latency_ms"], iters, where + " device latency");
    EXPECT_GT(d["throughput_img_s"].get<double>(), 0.0);
    EXPECT_EQ(d["input_sets"].get<int64_t>(), expected_input_sets(rotate, b));
    EXPECT_EQ(d["outputs_finite"], true);

    EXPECT_EQ(r["gpu_compute_source"], "run_device median");
    const double gpu_ms = r["gpu_compute_ms"];
    EXPECT_DOUBLE_EQ(gpu_ms, d["latency_ms"]["median"].get<double>());
    const double tflops = m["flops_per_image"].get<double>() * b / (gpu_ms * 1e-3) / 1e12;
    EXPECT_NEAR(r["gpu_flops_tflop_s"].get<double>(), tflops, 1e-9 * tflops);

    for (const char* k : {"host_copy", "h2d", "d2h"}) {
      const double v = r["copies_ms"][k];
      EXPECT_TRUE(std::isfinite(v) && v >= 0.0) << k << " " << v;
    }
    expect_nodes(r["nodes"], 2, where + " nodes");
  }
}

// fp32, CUDA graphs off, --gemm auto (the emulator has no cuBLASLt: auto keeps the custom
// kernels), duration mode (at least 10 timed runs), no warm-up, an explicit input rotation,
// no per-node breakdown.
TEST(EmuBench, Fp32GraphsOffDurationModeNoNodes) {
  const std::string out = vit::test::temp_dir() + "/bench.json";
  const Proc p = run_bench({"--model", fixture_model(), "--batch", "2", "--precision", "fp32", "--warmup", "0",
                            "--duration", "0.2", "--cuda-graphs", "off", "--gemm", "auto", "--rotate-bytes", "100000",
                            "--no-nodes", "--json", out});
  ASSERT_EQ(p.rc, 0) << p.describe();
  EXPECT_NE(p.out.find("graphs off"), std::string::npos) << p.out;
  const json j = read_json(out);
  ASSERT_TRUE(j.contains("results")) << j.dump();
  EXPECT_EQ(j["git_hash"], VIT_EMU_GIT_HASH);  // the configure-time hash without $VIT_GIT_HASH
  EXPECT_EQ(j["options"]["precision"], "fp32");
  EXPECT_EQ(j["options"]["cuda_graphs"], false);
  EXPECT_EQ(j["options"]["gemm"], "auto");
  EXPECT_DOUBLE_EQ(j["options"]["duration_s"].get<double>(), 0.2);
  EXPECT_EQ(j["options"]["rotate_bytes"], 100000);
  EXPECT_NE(j["engine"]["report"].get<std::string>().find("precision F32,"), std::string::npos);
  ASSERT_EQ(j["results"].size(), 1u);
  const json& r = j["results"][0];
  EXPECT_EQ(r["batch"], 2);
  EXPECT_EQ(r["bucket"], 2);
  EXPECT_EQ(r["graph"], false);
  expect_stats(r["host"]["latency_ms"], -10, "host latency");
  const int n = r["host"]["latency_ms"]["n"];
  expect_stats(r["host"]["wall_ms"], n, "host wall");
  EXPECT_EQ(r["host"]["input_sets"].get<int64_t>(), expected_input_sets(100000, 2));
  EXPECT_EQ(r["host"]["outputs_finite"], true);
  expect_stats(r["device"]["latency_ms"], -10, "device latency");
  EXPECT_EQ(r["device"]["outputs_finite"], true);
  EXPECT_TRUE(r["nodes"].is_null()) << r["nodes"].dump();
  EXPECT_GT(j["memory"]["arena_bytes"].get<int64_t>(), 0);
}

// fp16 on an emulated sm_80 (VIT_EMU_CC=80): no wgmma, so every custom GEMM is mma.sync.
TEST(EmuBench, Fp16OnEmulatedAmpere) {
  const std::string out = vit::test::temp_dir() + "/bench.json";
  const Proc p = run_bench({"--model", fixture_model(), "--batch", "1", "--precision", "fp16", "--warmup", "1",
                            "--iterations", "2", "--node-reps", "1", "--json", out},
                           {{"VIT_EMU_CC", "80"}});
  ASSERT_EQ(p.rc, 0) << p.describe();
  const json j = read_json(out);
  ASSERT_TRUE(j.contains("results")) << j.dump();
  EXPECT_EQ(j["gpu"]["compute_capability"], "8.0");
  const std::string report = j["engine"]["report"];
  EXPECT_NE(report.find("precision F16,"), std::string::npos) << report;
  const std::vector<int> wg = report_counts(report, "wgmma"), mma = report_counts(report, "mma.sync");
  ASSERT_FALSE(wg.empty()) << report;
  for (int c : wg) EXPECT_EQ(c, 0) << report;
  ASSERT_FALSE(mma.empty()) << report;
  for (int c : mma) EXPECT_GT(c, 0) << report;
  ASSERT_EQ(j["results"].size(), 1u);
  expect_stats(j["results"][0]["host"]["latency_ms"], 2, "host latency");
  EXPECT_EQ(j["results"][0]["host"]["outputs_finite"], true);
  expect_nodes(j["results"][0]["nodes"], 2, "nodes");
}

// Bad arguments and a missing model exit 2 (without writing results), a CUDA failure 3.
TEST(EmuBench, ExitCodes) {
  const std::string dir = vit::test::temp_dir();
  const std::string out = dir + "/never.json";
  const std::vector<std::string> base = {"--model", fixture_model(), "--warmup", "0", "--iterations", "1", "--json", out};
  struct Case {
    std::vector<std::string> args;
    int rc;
    std::string in_stderr;
  };
  const std::vector<Case> cases = {
      {{"--batch", "0"}, 2, "--batch"},
      {{"--batch", "1,x"}, 2, "--batch"},
      {{"--batch", ","}, 2, "--batch"},
      {{"--precision", "fp8"}, 2, "--precision"},
      {{"--gemm", "fastest"}, 2, "--gemm"},
      {{"--cuda-graphs", "maybe"}, 2, "--cuda-graphs"},  // CLI11 validation (was CLI11's 105)
      {{"--warmup", "-1"}, 2, "--warmup"},
      {{"--node-reps", "0"}, 2, "--node-reps"},
      {{"--no-such-flag"}, 2, "--no-such-flag"},  // was CLI11's 109
      {{"--device", "1"}, 3, "cudaSetDevice"},    // the emulator has one device
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = base;
    args.insert(args.end(), c.args.begin(), c.args.end());
    const Proc p = run_bench(args);
    SCOPED_TRACE(c.args.front() + (c.args.size() > 1 ? " " + c.args[1] : ""));
    EXPECT_EQ(p.rc, c.rc) << p.describe();
    EXPECT_NE(p.err.find(c.in_stderr), std::string::npos) << p.err;
    EXPECT_FALSE(fs::exists(out));
  }
  // Missing model file, and an unknown architecture for random weights.
  const std::string missing = dir + "/no-such-model.safetensors";
  Proc p = run_bench({"--model", missing, "--iterations", "1", "--json", out});
  EXPECT_EQ(p.rc, 2) << p.describe();
  EXPECT_NE(p.err.find("no-such-model.safetensors"), std::string::npos) << p.err;
  EXPECT_FALSE(fs::exists(out));
  p = run_bench({"--arch", "vit_enormous_patch3_7", "--iterations", "1", "--json", out});
  EXPECT_EQ(p.rc, 2) << p.describe();
  EXPECT_NE(p.err.find("vit_enormous_patch3_7"), std::string::npos) << p.err;
  // An unwritable --json path: the run happens, the write fails, exit 2.
  p = run_bench({"--model", fixture_model(), "--batch", "1", "--warmup", "0", "--iterations", "1", "--no-nodes",
                 "--json", dir + "/no/such/dir/out.json"});
  EXPECT_EQ(p.rc, 2) << p.describe();
  EXPECT_NE(p.err.find("--json"), std::string::npos) << p.err;
  // Out of device memory (the emulated budget is below the weights) is a CUDA failure: 3.
  p = run_bench({"--model", fixture_model(), "--batch", "1", "--iterations", "1", "--json", out},
                {{"VIT_EMU_DEVICE_MEMORY", "100000"}});
  EXPECT_EQ(p.rc, 3) << p.describe();
  EXPECT_NE(p.err.find("out of memory"), std::string::npos) << p.err;
  EXPECT_FALSE(fs::exists(out));
  // --help is not an error.
  p = run_bench({"--help"});
  EXPECT_EQ(p.rc, 0) << p.describe();
  EXPECT_NE(p.out.find("--precision"), std::string::npos);
}

// Results are kept as they are measured: when a later batch fails (here batch 4096 runs out of
// the emulated device memory), the run exits 3 but its JSON holds the batches before it
// (complete false) and stdout their rows.
TEST(EmuBench, RowsAndJsonWrittenAsEachBatchEnds) {
  const std::string out = vit::test::temp_dir() + "/bench.json";
  const Proc p = run_bench({"--model", fixture_model(), "--batch", "1,4096", "--warmup", "0", "--iterations", "1",
                            "--no-nodes", "--json", out},
                           {{"VIT_EMU_DEVICE_MEMORY", std::to_string(64 << 20)}});
  EXPECT_EQ(p.rc, 3) << p.describe();
  EXPECT_NE(p.err.find("out of memory"), std::string::npos) << p.err;
  EXPECT_NE(p.out.find("\n     1 "), std::string::npos) << "the batch-1 row\n" << p.out;
  const json j = read_json(out);
  ASSERT_TRUE(j.contains("results")) << j.dump();
  EXPECT_EQ(j["complete"], false);
  ASSERT_EQ(j["results"].size(), 1u) << j.dump();
  EXPECT_EQ(j["results"][0]["batch"], 1);
  expect_stats(j["results"][0]["host"]["latency_ms"], 1, "host latency");
  EXPECT_GT(j["memory"]["weight_bytes"].get<int64_t>(), 0);
}

// ---- vit-soak --device cuda ---------------------------------------------------------------

// The fixture model for a few seconds: every run succeeds, outputs stay bit-identical, and the
// device memory in use (sampled by vit-soak from the same emulated device as the session's) is
// non-zero and flat.
TEST(EmuSoak, CudaFixtureModelPasses) {
  const std::string out = vit::test::temp_dir() + "/soak.json";
  const Proc p = run_soak({"--device", "cuda", "--model", fixture_model(), "--precision", "bf16", "--minutes", "0.1",
                           "--max-batch", "3", "--ref-batch", "2", "--ref-images", "2", "--check-every", "2",
                           "--sample-s", "0.5", "--min-side", "16", "--max-side", "48", "--quiet", "--json", out});
  ASSERT_EQ(p.rc, 0) << p.describe() << p.out;
  EXPECT_NE(p.out.find("PASS"), std::string::npos) << p.out;
  const json j = read_json(out);
  ASSERT_TRUE(j.contains("pass")) << j.dump();
  EXPECT_EQ(j["tool"], "vit-soak");
  EXPECT_EQ(j["commit"], VIT_EMU_GIT_HASH);
  EXPECT_EQ(j["pass"], true) << j["fail_reasons"].dump();
  EXPECT_TRUE(j["fail_reasons"].empty());
  EXPECT_EQ(j["errors"], 0) << j["first_error"];
  EXPECT_EQ(j["nonfinite_outputs"], 0);
  EXPECT_GE(j["determinism"]["reference_checks"].get<int>(), 2);
  EXPECT_EQ(j["determinism"]["mismatches"], 0);
  EXPECT_EQ(j["config"]["device"], "cuda");
  EXPECT_EQ(j["config"]["precision"], "bf16");
  EXPECT_EQ(j["model_info"]["hidden"], 64);
  EXPECT_EQ(j["model_info"]["depth"], 2);
  EXPECT_EQ(j["model_info"]["classes"], 10);
  ASSERT_TRUE(j["machine"]["gpus"].is_array() && j["machine"]["gpus"].size() == 1u) << j["machine"].dump();
  EXPECT_NE(j["machine"]["gpus"][0]["name"].get<std::string>().find("emulator"), std::string::npos);
  EXPECT_EQ(j["machine"]["gpus"][0]["sm"], 90);

  const long iterations = j["iterations"];
  EXPECT_GE(iterations, 1);
  EXPECT_EQ(j["tensor_runs"].get<long>() + j["image_runs"].get<long>(), iterations);
  long hist = 0;
  for (const auto& [b, v] : j["batch_histogram"].items()) hist += v["run"].get<long>() + v["run_images"].get<long>();
  EXPECT_EQ(hist, iterations);
  EXPECT_EQ(j["batch_histogram"].size(), 3u);

  const json& dm = j["device_memory"];
  ASSERT_TRUE(dm.is_object()) << j.dump();
  EXPECT_EQ(dm["ok"], true);
  EXPECT_GT(dm["after_warmup_min"].get<int64_t>(), 0);  // the session's weights at least
  EXPECT_GE(dm["after_warmup_max"].get<int64_t>(), dm["after_warmup_min"].get<int64_t>());
  EXPECT_EQ(dm["drift"].get<int64_t>(), dm["after_warmup_max"].get<int64_t>() - dm["after_warmup_min"].get<int64_t>());
  ASSERT_GE(j["samples"].size(), 2u);
  for (const json& s : j["samples"]) EXPECT_GT(s["device_used"].get<int64_t>(), 0) << s.dump();
  EXPECT_EQ(j["host_rss"]["ok"], true);
}

// The CPU smoke test's random-weights run (benchmarks/CMakeLists.txt vit_soak_smoke_random) on
// the emulated device, fp32 and without CUDA graphs.
TEST(EmuSoak, CudaRandomArchNoGraphsPasses) {
  const std::string out = vit::test::temp_dir() + "/soak.json";
  const Proc p = run_soak({"--device", "cuda", "--minutes", "0.05", "--arch", "vit_tiny_patch16_224", "--depth", "1",
                           "--image-size", "32", "--max-batch", "4", "--check-every", "3", "--sample-s", "0.5",
                           "--max-side", "64", "--cuda-graphs", "0", "--quiet", "--json", out});
  ASSERT_EQ(p.rc, 0) << p.describe() << p.out;
  const json j = read_json(out);
  ASSERT_TRUE(j.contains("pass")) << j.dump();
  EXPECT_EQ(j["pass"], true) << j["fail_reasons"].dump();
  EXPECT_EQ(j["errors"], 0) << j["first_error"];
  EXPECT_GE(j["determinism"]["reference_checks"].get<int>(), 2);
  EXPECT_EQ(j["determinism"]["mismatches"], 0);
  EXPECT_EQ(j["model_info"]["hidden"], 192);
  EXPECT_EQ(j["model_info"]["depth"], 1);
  EXPECT_EQ(j["model_info"]["image"], json::array({32, 32}));
  EXPECT_EQ(j["config"]["arch"], "vit_tiny_patch16_224");
  EXPECT_GT(j["device_memory"]["after_warmup_min"].get<int64_t>(), 0);
}

// The fail path: a device-memory drift limit below zero cannot be met, so the run must FAIL
// (exit 1) and say why: the device-memory check is evaluated, not skipped.
TEST(EmuSoak, DeviceDriftLimitFails) {
  const std::string out = vit::test::temp_dir() + "/soak.json";
  const Proc p = run_soak({"--device", "cuda", "--model", fixture_model(), "--minutes", "0.03", "--max-batch", "2",
                           "--ref-batch", "1", "--ref-images", "1", "--sample-s", "0.3", "--max-side", "32",
                           "--max-device-drift-mib", "-1", "--quiet", "--json", out});
  EXPECT_EQ(p.rc, 1) << p.describe() << p.out;
  EXPECT_NE(p.out.find("FAIL"), std::string::npos) << p.out;
  const json j = read_json(out);
  ASSERT_TRUE(j.contains("pass")) << j.dump();
  EXPECT_EQ(j["pass"], false);
  EXPECT_EQ(j["errors"], 0) << j["first_error"];
  EXPECT_EQ(j["device_memory"]["ok"], false);
  bool named = false;
  for (const json& w : j["fail_reasons"]) named |= w.get<std::string>().find("device memory drift") != std::string::npos;
  EXPECT_TRUE(named) << j["fail_reasons"].dump();
}

TEST(EmuSoak, CouldNotStartExits2) {
  const std::string dir = vit::test::temp_dir();
  const std::vector<std::vector<std::string>> cases = {
      {"--device", "tpu"},
      {"--device", "cuda", "--model", dir + "/missing-model"},
      {"--device", "cuda", "--device-id", "3", "--model", fixture_model()},
      {"--device", "cuda", "--max-batch", "0"},
      {"--device", "cuda", "--no-such-flag"},  // was CLI11's 109
      {"--device", "cuda", "--min-side", "64", "--max-side", "16"},
      {"--device", "cuda", "--precision", "fp8", "--model", fixture_model()},
  };
  for (const auto& args : cases) {
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--minutes", "0.01", "--json", dir + "/never.json"});
    const Proc p = run_soak(a);
    EXPECT_EQ(p.rc, 2) << args[args.size() - 2] << " " << args.back() << ": " << p.describe();
    EXPECT_FALSE(p.err.empty());
    EXPECT_FALSE(fs::exists(dir + "/never.json"));
  }
}

// ---- bench_util / random_model on the emulated device ----------------------------------------

TEST(EmuBenchUtil, StatsAreNearestRank) {
  std::vector<double> v(100);
  std::iota(v.begin(), v.end(), 1.0);  // 1..100
  std::shuffle(v.begin(), v.end(), std::mt19937(7));
  const vit::bench::Stats s = vit::bench::stats_of(v);
  EXPECT_EQ(s.n, 100);
  EXPECT_EQ(s.min, 1.0);
  EXPECT_EQ(s.max, 100.0);
  EXPECT_DOUBLE_EQ(s.mean, 50.5);
  EXPECT_DOUBLE_EQ(s.median, 50.5);
  EXPECT_EQ(s.p90, 90.0);
  EXPECT_EQ(s.p95, 95.0);
  EXPECT_EQ(s.p99, 99.0);
  const vit::bench::Stats one = vit::bench::stats_of({3.5});
  EXPECT_EQ(one.n, 1);
  for (double x : {one.min, one.mean, one.median, one.p90, one.p95, one.p99, one.max}) EXPECT_EQ(x, 3.5);
  const vit::bench::Stats odd = vit::bench::stats_of({5, 1, 4, 2, 3});
  EXPECT_EQ(odd.median, 3.0);
  EXPECT_EQ(odd.p90, 5.0);  // ceil(0.9 * 5) = 5th
  const vit::bench::Stats none = vit::bench::stats_of({});
  EXPECT_EQ(none.n, 0);
  EXPECT_EQ(none.max, 0.0);
  const json j = vit::bench::to_json(s);
  EXPECT_EQ(j["p95"], 95.0);
  EXPECT_EQ(j["n"], 100);
}

// The device random fill: every element written (the buffer is NaN-poisoned first), within
// [lo, hi] (hi itself only by rounding to 16 bits), about uniform, and a function of the seed.
TEST(EmuBenchUtil, FillUniformCoversRangeAndIsReproducible) {
  const int64_t n = 3001;  // not a multiple of the 256-thread block
  const float lo = -2.0f, hi = 3.0f;
  for (vit::DType dt : {vit::DType::F32, vit::DType::F16, vit::DType::BF16}) {
    SCOPED_TRACE(vit::dtype_name(dt));
    const size_t es = vit::dtype_size(dt);
    vit::bench::DeviceMem a(static_cast<size_t>(n) * es), b(static_cast<size_t>(n) * es);
    auto fetch = [&](const vit::bench::DeviceMem& m) {
      std::vector<uint8_t> raw(m.bytes);
      EXPECT_EQ(cudaMemcpy(raw.data(), m.p, m.bytes, cudaMemcpyDeviceToHost), cudaSuccess);
      std::vector<float> f(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t* q = raw.data() + i * es;
        uint16_t h = 0;
        if (dt == vit::DType::F32) {
          std::memcpy(&f[static_cast<size_t>(i)], q, 4);
          continue;
        }
        std::memcpy(&h, q, 2);
        f[static_cast<size_t>(i)] = dt == vit::DType::F16 ? vit::half_to_float(h) : vit::bf16_to_float(h);
      }
      return f;
    };
    ASSERT_EQ(cudaMemset(a.p, 0xFF, a.bytes), cudaSuccess);
    ASSERT_EQ(cudaMemset(b.p, 0xFF, b.bytes), cudaSuccess);
    vit::bench::fill_uniform(a.p, dt, n, lo, hi, 42, nullptr);
    vit::bench::fill_uniform(b.p, dt, n, lo, hi, 42, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<float> fa = fetch(a), fb = fetch(b);
    double sum = 0;
    for (float v : fa) {
      ASSERT_TRUE(std::isfinite(v));
      ASSERT_GE(v, lo);
      ASSERT_LE(v, hi);
      sum += v;
    }
    // U(-2, 3): mean 0.5, sd 5/sqrt(12) = 1.44; the mean of 3001 has sd 0.026 (0.15 = 5.7 sd).
    EXPECT_NEAR(sum / n, 0.5, 0.15);
    EXPECT_EQ(fa, fb);
    vit::bench::fill_uniform(b.p, dt, n, lo, hi, 43, nullptr);
    const std::vector<float> fc = fetch(b);
    int same = 0;
    for (int64_t i = 0; i < n; ++i) same += fa[static_cast<size_t>(i)] == fc[static_cast<size_t>(i)];
    EXPECT_LT(same, n / 20) << "another seed must give other values";
  }
  EXPECT_THROW(vit::bench::fill_uniform(nullptr, vit::DType::F32, 4, 0, 1, 1, nullptr), vit::Error);
  EXPECT_THROW(vit::bench::fill_uniform(reinterpret_cast<void*>(256), vit::DType::F64, 4, 0, 1, 1, nullptr), vit::Error);
}

// random_vit (vit-bench's model without --model): every tensor the config asks for, in its
// documented range and never all zeros, and a model both engines run to finite, input-dependent
// logits that agree (fp32 on both: summation order only).
TEST(EmuBenchUtil, RandomVitRunsOnBothEngines) {
  vit::ViTConfig cfg;
  ASSERT_TRUE(vit::config_from_arch_name("vit_tiny_patch16_224", &cfg));
  cfg.depth = 1;
  cfg.image_h = cfg.image_w = 32;
  cfg.num_classes = 7;
  cfg.ckpt_grid_h = cfg.grid_h();
  cfg.ckpt_grid_w = cfg.grid_w();
  const auto model = vit::bench::random_vit(cfg, 5);
  const vit::ViTWeights& w = model->w;
  ASSERT_EQ(w.blocks.size(), 1u);
  EXPECT_EQ(w.pos.shape, (std::vector<int64_t>{cfg.tokens(), cfg.hidden}));
  EXPECT_EQ(w.patch_w.shape, (std::vector<int64_t>{cfg.hidden, 3LL * cfg.patch * cfg.patch}));
  EXPECT_EQ(w.blocks[0].qkv_w.shape, (std::vector<int64_t>{3LL * cfg.hidden, cfg.hidden}));
  EXPECT_EQ(w.blocks[0].fc1_w.shape, (std::vector<int64_t>{cfg.mlp_hidden, cfg.hidden}));
  EXPECT_EQ(w.head_w.shape, (std::vector<int64_t>{7, cfg.hidden}));
  for (float v : w.blocks[0].ln1_w.data) ASSERT_TRUE(v >= 0.8f && v <= 1.2f) << v;
  const float a = std::sqrt(3.0f / static_cast<float>(cfg.hidden));
  for (float v : w.blocks[0].fc1_w.data) ASSERT_TRUE(std::abs(v) <= a) << v;
  EXPECT_GT(vit::test::max_abs(w.blocks[0].fc2_w.data.data(), w.blocks[0].fc2_w.data.size()), 0.0f);
  // Same seed, same weights; another seed, others.
  EXPECT_EQ(vit::bench::random_vit(cfg, 5)->w.blocks[0].proj_w.data, w.blocks[0].proj_w.data);
  EXPECT_NE(vit::bench::random_vit(cfg, 6)->w.blocks[0].proj_w.data, w.blocks[0].proj_w.data);

  const int B = 2;
  const std::vector<float> x = vit::test::random_vec(static_cast<size_t>(B) * 3 * 32 * 32, -2.5f, 2.5f);
  std::vector<float> ref(static_cast<size_t>(B) * 7, NAN), got(static_cast<size_t>(B) * 7, NAN);
  vit::RunOutputs ro;
  ro.logits = ref.data();
  vit::make_cpu_engine(model, 1)->run(x.data(), B, ro);
  vit::CudaEngineOptions eo;
  eo.precision = vit::Precision::kFP32;
  eo.max_batch = B;
  ro.logits = got.data();
  vit::make_cuda_engine(model, eo)->run(x.data(), B, ro);
  for (float v : ref) ASSERT_TRUE(std::isfinite(v));
  for (float v : got) ASSERT_TRUE(std::isfinite(v));
  EXPECT_NE(std::vector<float>(ref.begin(), ref.begin() + 7), std::vector<float>(ref.begin() + 7, ref.end()))
      << "two random images gave the same logits";
  // fp32 both ways, D 192, one block: the engines differ by summation order (~1e-6 relative).
  const float scale = std::max(1.0f, vit::test::max_abs(ref.data(), ref.size()));
  EXPECT_LE(vit::test::max_abs_diff(ref.data(), got.data(), ref.size()), 1e-4f * scale);
}

}  // namespace
