// vit-bench: end-to-end timing of the CUDA engine, shaped like trtexec. Per batch size it
// reports throughput, latency percentiles (CUDA events around every run), GPU compute time
// against end-to-end time with host->device copies, device memory, and a per-node breakdown
// when the executor offers one. Inputs are host fp32 [B, C, H, W], random, rotated among
// enough buffers that their total is at least twice the GPU's L2 (no run re-reads a warm input).
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "core/error.h"
#include "cuda_check.h"
#include "gpu/cuda_engine.h"
#include "gpu/executor.h"
#include "model/config.h"
#include "model/model.h"
#include "random_model.h"

namespace vit::bench {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string model;  // checkpoint path; empty: random weights for `arch`
  std::string arch;   // timm architecture name (random model, or an override for `model`)
  std::vector<int> batches{1, 8, 32, 64, 128, 256};
  std::string precision = "bf16";
  int warmup = 20;
  int iterations = 200;
  double duration_s = 0.0;  // > 0: run each batch for this long instead of `iterations`
  bool graphs = true;
  std::string gemm = "auto";
  std::string json_path;
  int device = 0;
  uint64_t seed = 1;
  int64_t rotate_bytes = 0;  // total input bytes to rotate over; 0: 2 x L2
  bool nodes = true;         // per-node breakdown (when the executor offers it)
  int node_reps = 10;
};

// --- hooks the executor may offer (detected at compile time, see docs/PERF.md "open items") ---
// run_device(const float* d_images, int batch, float* d_logits): device-resident run on the
// engine's stream, no host copies or synchronisation.
template <class E, class = void> struct HasRunDevice : std::false_type {};
template <class E>
struct HasRunDevice<E, std::void_t<decltype(std::declval<E&>().run_device(std::declval<const float*>(), 1,
                                                                          std::declval<float*>()))>>
    : std::true_type {};
// profile_nodes(int batch, int reps) -> range of {name, kind, ms}: non-graphed run with an event
// pair around each node, mean ms per node in graph order.
template <class E, class = void> struct HasProfileNodes : std::false_type {};
template <class E>
struct HasProfileNodes<E, std::void_t<decltype(std::declval<E&>().profile_nodes(1, 1))>> : std::true_type {};

Precision parse_precision(const std::string& s) {
  if (const PrecisionInfo* p = find_precision(s)) return p->precision;
  fail(ErrorCode::kInvalidArgument, "--precision must be " + precision_names(", ") + ", got '" + s + "'");
}

GemmChoice parse_gemm(const std::string& s) {
  if (s == "auto") return GemmChoice::kAuto;
  if (s == "custom") return GemmChoice::kCustom;
  if (s == "cublaslt") return GemmChoice::kCublasLt;
  fail(ErrorCode::kInvalidArgument, "--gemm must be auto, custom or cublaslt, got '" + s + "'");
}

std::vector<int> parse_batches(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 1) {
      fail(ErrorCode::kInvalidArgument, "--batch: '" + item + "' is not a positive integer (list: 1,8,32)");
    }
    out.push_back(v);
  }
  if (out.empty()) fail(ErrorCode::kInvalidArgument, "--batch: empty list");
  return out;
}

struct MemInfo {
  size_t free = 0, total = 0;
};
MemInfo mem_info() {
  MemInfo m;
  VIT_CUDA_CHECK(cudaMemGetInfo(&m.free, &m.total));
  return m;
}

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// Host fp32 input sets for one batch size: random U(-2.5, 2.5) (normalised-image range).
struct HostInputs {
  std::vector<std::vector<float>> sets;
  int64_t per_set = 0;  // floats
};
HostInputs make_host_inputs(int64_t floats_per_batch, int64_t rotate_bytes, uint64_t seed) {
  HostInputs in;
  in.per_set = floats_per_batch;
  const int64_t bytes = floats_per_batch * 4;
  const int64_t n = std::clamp<int64_t>((rotate_bytes + bytes - 1) / bytes, 2, 256);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 77;
  in.sets.resize(static_cast<size_t>(n));
  for (auto& v : in.sets) {
    v.resize(static_cast<size_t>(floats_per_batch));
    for (float& x : v) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      x = -2.5f + 5.0f * static_cast<float>(s >> 40) * (1.0f / 16777216.0f);
    }
  }
  return in;
}

// The loop every mode shares: warm-up, then `iterations` runs (or `duration_s` seconds, at
// least 10 runs). `one(i)` performs run i and returns its time in ms.
template <class F>
std::vector<double> timed_loop(const Options& o, F&& one) {
  for (int i = 0; i < o.warmup; ++i) (void)one(i);
  std::vector<double> t;
  const auto t0 = Clock::now();
  for (int i = 0;; ++i) {
    if (o.duration_s > 0.0) {
      const double el = std::chrono::duration<double>(Clock::now() - t0).count();
      if (el >= o.duration_s && i >= 10) break;
      if (i >= 1000000) break;
    } else if (i >= o.iterations) {
      break;
    }
    t.push_back(one(o.warmup + i));
  }
  return t;
}

struct CopyTimes {
  double host_copy_ms = 0;  // pageable -> pinned memcpy of one batch (what run() does first)
  double h2d_ms = 0;        // pinned -> device of one batch
  double d2h_ms = 0;        // logits device -> pinned
};

// Times the copies run() makes, separately, so the end-to-end time can be split.
CopyTimes time_copies(const HostInputs& in, int64_t out_floats, cudaStream_t s) {
  CopyTimes ct;
  const size_t in_bytes = static_cast<size_t>(in.per_set) * 4;
  const size_t out_bytes = static_cast<size_t>(std::max<int64_t>(out_floats, 1)) * 4;
  void* pinned = nullptr;
  void* pinned_out = nullptr;
  VIT_CUDA_CHECK(cudaMallocHost(&pinned, in_bytes));
  const cudaError_t e = cudaMallocHost(&pinned_out, out_bytes);
  if (e != cudaSuccess) {
    cudaFreeHost(pinned);
    cuda::throw_cuda_error(e, "cudaMallocHost(logits)", __FILE__, __LINE__);
  }
  try {
    DeviceMem d_in(in_bytes), d_out(out_bytes);
    EventPair ev;
    std::vector<double> hc, h2d, d2h;
    for (int r = 0; r < 12; ++r) {
      const auto& src = in.sets[static_cast<size_t>(r) % in.sets.size()];
      const auto t0 = Clock::now();
      std::memcpy(pinned, src.data(), in_bytes);
      hc.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      ev.start(s);
      VIT_CUDA_CHECK(cudaMemcpyAsync(d_in.p, pinned, in_bytes, cudaMemcpyHostToDevice, s));
      ev.stop(s);
      h2d.push_back(ev.elapsed_ms());
      ev.start(s);
      VIT_CUDA_CHECK(cudaMemcpyAsync(pinned_out, d_out.p, out_bytes, cudaMemcpyDeviceToHost, s));
      ev.stop(s);
      d2h.push_back(ev.elapsed_ms());
    }
    // The first two of each warm the path up.
    hc.erase(hc.begin(), hc.begin() + 2);
    h2d.erase(h2d.begin(), h2d.begin() + 2);
    d2h.erase(d2h.begin(), d2h.begin() + 2);
    ct.host_copy_ms = stats_of(hc).median;
    ct.h2d_ms = stats_of(h2d).median;
    ct.d2h_ms = stats_of(d2h).median;
  } catch (...) {
    cudaFreeHost(pinned);
    cudaFreeHost(pinned_out);
    throw;
  }
  cudaFreeHost(pinned);
  cudaFreeHost(pinned_out);
  return ct;
}

// Device-resident mode through the executor's run_device hook; null json when the hook is absent.
template <class E>
json device_mode(E* eng, const Options& o, const ViTConfig& c, int batch, int64_t rotate_bytes, cudaStream_t s) {
  if constexpr (HasRunDevice<E>::value) {
    if (!eng) return nullptr;
    const int64_t img = int64_t{c.in_chans} * c.image_h * c.image_w;
    const int64_t bytes = img * batch * 4;
    const int64_t nsets = std::clamp<int64_t>((rotate_bytes + bytes - 1) / bytes, 2, 256);
    DeviceMem inputs(static_cast<size_t>(bytes * nsets));  // nsets x [B, C, H, W] fp32
    const int64_t out_per = c.num_classes > 0 ? c.num_classes : c.hidden;
    DeviceMem logits(static_cast<size_t>(out_per * batch * 4));  // [B, classes] fp32
    fill_uniform(inputs.p, DType::F32, img * batch * nsets, -2.5f, 2.5f, o.seed + 1000 + batch, s);
    VIT_CUDA_CHECK(cudaMemsetAsync(logits.p, 0xFF, logits.bytes, s));  // NaN poison
    VIT_CUDA_CHECK(cudaStreamSynchronize(s));
    auto in_at = [&](int i) { return inputs.as<float>() + (i % nsets) * img * batch; };
    for (int i = 0; i < o.warmup; ++i) eng->run_device(in_at(i), batch, logits.as<float>());
    VIT_CUDA_CHECK(cudaStreamSynchronize(s));
    // Back-to-back runs with an event between each pair: latency per run from consecutive
    // events, throughput from the whole span (the host never waits inside the loop).
    int n = o.iterations;
    if (o.duration_s > 0.0) {
      EventPair probe;
      probe.start(s);
      for (int i = 0; i < 5; ++i) eng->run_device(in_at(i), batch, logits.as<float>());
      probe.stop(s);
      const double per = std::max(1e-3, probe.elapsed_ms() / 5.0);
      n = static_cast<int>(std::clamp(o.duration_s * 1000.0 / per, 10.0, 100000.0));
    }
    std::vector<cudaEvent_t> ev(static_cast<size_t>(n) + 1, nullptr);
    for (auto& e : ev) VIT_CUDA_CHECK(cudaEventCreate(&e));
    std::vector<double> lat;
    try {
      VIT_CUDA_CHECK(cudaEventRecord(ev[0], s));
      for (int i = 0; i < n; ++i) {
        eng->run_device(in_at(i), batch, logits.as<float>());
        VIT_CUDA_CHECK(cudaEventRecord(ev[static_cast<size_t>(i) + 1], s));
      }
      VIT_CUDA_CHECK(cudaEventSynchronize(ev.back()));
      for (int i = 0; i < n; ++i) {
        float ms = 0;
        VIT_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[static_cast<size_t>(i)], ev[static_cast<size_t>(i) + 1]));
        lat.push_back(ms);
      }
    } catch (...) {
      for (auto& e : ev) cudaEventDestroy(e);
      throw;
    }
    float span = 0;
    VIT_CUDA_CHECK(cudaEventElapsedTime(&span, ev.front(), ev.back()));
    for (auto& e : ev) cudaEventDestroy(e);
    std::vector<float> h(static_cast<size_t>(out_per * batch));
    VIT_CUDA_CHECK(cudaMemcpy(h.data(), logits.p, h.size() * 4, cudaMemcpyDeviceToHost));
    const bool finite = std::all_of(h.begin(), h.end(), [](float v) { return std::isfinite(v); });
    const Stats st = stats_of(lat);
    return {{"source", "run_device hook"},
            {"input_sets", nsets},
            {"latency_ms", to_json(st)},
            {"throughput_img_s", span > 0 ? 1000.0 * n * batch / span : 0.0},
            {"outputs_finite", finite}};
  } else {
    (void)eng, (void)o, (void)c, (void)batch, (void)rotate_bytes, (void)s;
    return nullptr;
  }
}

// Per-node breakdown through the executor's profile_nodes hook; null json when absent.
template <class E>
json node_breakdown(E* eng, int batch, int reps) {
  if constexpr (HasProfileNodes<E>::value) {
    if (!eng) return nullptr;
    json nodes = json::array();
    std::map<std::string, double> by_kind;
    double total = 0;
    for (const auto& n : eng->profile_nodes(batch, reps)) {
      const std::string name(n.name), kind(n.kind);
      const double ms = static_cast<double>(n.ms);
      nodes.push_back({{"name", name}, {"kind", kind}, {"ms", ms}});
      by_kind[kind] += ms;
      total += ms;
    }
    return {{"total_ms", total}, {"by_kind_ms", by_kind}, {"nodes", nodes}};
  } else {
    (void)eng, (void)batch, (void)reps;
    return nullptr;
  }
}

// Compile-time check of the hook branches above against an engine that has both hooks, so a
// mistake there shows now and not on the day the executor gains them. Never called.
struct MockHookedEngine {
  struct Timing {
    std::string name, kind;
    double ms = 0;
  };
  void run_device(const float*, int, float*) {}
  std::vector<Timing> profile_nodes(int, int) { return {}; }
};
static_assert(HasRunDevice<MockHookedEngine>::value && HasProfileNodes<MockHookedEngine>::value,
              "hook detection must see the mock's hooks");
static_assert(!HasRunDevice<Engine>::value && !HasProfileNodes<Engine>::value,
              "hook detection must not see hooks the base engine lacks");
[[maybe_unused]] json instantiate_hook_paths(MockHookedEngine* e, const Options& o, const ViTConfig& c) {
  return json::array({device_mode(e, o, c, 1, 0, nullptr), node_breakdown(e, 1, 1)});
}

std::shared_ptr<const Model> make_model(const Options& o) {
  if (!o.model.empty()) {
    ConfigOverrides ov;
    if (!o.arch.empty()) ov.architecture = o.arch;
    return load_model(o.model, ov);
  }
  ViTConfig cfg;
  if (!config_from_arch_name(o.arch, &cfg)) {
    fail(ErrorCode::kInvalidArgument, "--arch: unknown architecture '" + o.arch + "' (e.g. vit_base_patch16_224)");
  }
  cfg.ckpt_grid_h = cfg.grid_h();
  cfg.ckpt_grid_w = cfg.grid_w();
  if (cfg.architecture.empty()) cfg.architecture = o.arch;
  return random_vit(cfg, o.seed);
}

// The results table, one row per batch, printed (and flushed) as each batch is measured, so that
// a run stopped part-way (a time cap, a crash) still shows the rows it finished.
void print_table_header(bool device_hook) {
  std::printf("\n%6s %11s %9s %9s %9s %9s %9s %9s %10s %9s %9s\n", "batch", "img/s", "min ms", "mean", "median",
              "p90", "p95", "p99", device_hook ? "gpu ms" : "gpu~ ms", "h2d ms", "gpu img/s");
  std::fflush(stdout);
}

void print_table_row(const json& r) {
  const json& l = r["host"]["latency_ms"];
  double gpu_ms = r["gpu_compute_ms"].get<double>();
  std::string gpu_tp = "-";
  if (!r["device"].is_null()) {
    char b[32];
    std::snprintf(b, sizeof b, "%.0f", r["device"]["throughput_img_s"].get<double>());
    gpu_tp = b;
  }
  std::printf("%6d %11.1f %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %10.3f %9.3f %9s\n", r["batch"].get<int>(),
              r["host"]["throughput_img_s"].get<double>(), l["min"].get<double>(), l["mean"].get<double>(),
              l["median"].get<double>(), l["p90"].get<double>(), l["p95"].get<double>(), l["p99"].get<double>(),
              gpu_ms, r["copies_ms"]["h2d"].get<double>(), gpu_tp.c_str());
  std::fflush(stdout);
}

// Writes the JSON to PATH.partial, then renames it over PATH: a reader (or a run killed while
// writing) never sees a half-written file.
void write_json_atomically(const std::string& path, const json& j) {
  const std::string tmp = path + ".partial";
  {
    std::ofstream f(tmp);
    if (!f) fail(ErrorCode::kIo, "--json: cannot open '" + tmp + "' for writing");
    f << j.dump(2) << "\n";
    if (!f) fail(ErrorCode::kIo, "--json: write to '" + tmp + "' failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(ErrorCode::kIo, "--json: cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
}

int run(const Options& o) {
  std::string why;
  if (!gpu_present(&why)) fail(ErrorCode::kDevice, "vit-bench: no CUDA device (" + why + ")");
  VIT_CUDA_CHECK(cudaSetDevice(o.device));
  VIT_CUDA_CHECK(cudaFree(nullptr));  // create the context so that memory readings exclude it
  const GpuInfo gpu = gpu_info(o.device);
  const int max_batch = *std::max_element(o.batches.begin(), o.batches.end());
  const int64_t rotate = o.rotate_bytes > 0 ? o.rotate_bytes : 2 * gpu.l2_bytes;

  std::fprintf(stderr, "vit-bench: %s, building the model...\n", gpu.name.c_str());
  const auto model = make_model(o);
  const ViTConfig& c = model->cfg;

  cudaStream_t stream = nullptr;
  VIT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  struct StreamGuard {
    cudaStream_t s;
    ~StreamGuard() { cudaStreamDestroy(s); }
  } sg{stream};

  CudaEngineOptions eo;
  eo.device_id = o.device;
  eo.precision = parse_precision(o.precision);
  eo.max_batch = max_batch;
  eo.gemm = parse_gemm(o.gemm);
  eo.cuda_graphs = o.graphs;
  eo.stream = stream;
  VIT_CUDA_CHECK(cudaDeviceSynchronize());
  const MemInfo m0 = mem_info();
  const auto t_create = Clock::now();
  std::unique_ptr<Engine> engine = make_cuda_engine(model, eo);
  const double create_s = std::chrono::duration<double>(Clock::now() - t_create).count();
  VIT_CUDA_CHECK(cudaDeviceSynchronize());
  const MemInfo m1 = mem_info();
  auto* ce = dynamic_cast<gpu::CudaEngine*>(engine.get());
  size_t min_free = m1.free;

  json results = json::array();
  bool any_device = false;
  const bool device_hook = ce != nullptr && HasRunDevice<gpu::CudaEngine>::value;
  json j;
  j["tool"] = "vit-bench";
  j["git_hash"] = git_hash();
  j["date_utc"] = now_utc();
  j["gpu"] = to_json(gpu);
  j["model"] = {{"source", model->source_path},
                {"architecture", c.architecture},
                {"image", {c.image_h, c.image_w}},
                {"patch", c.patch},
                {"hidden", c.hidden},
                {"depth", c.depth},
                {"heads", c.heads},
                {"mlp_hidden", c.mlp_hidden},
                {"num_classes", c.num_classes},
                {"params", c.param_count()},
                {"flops_per_image", c.flops_per_image()}};
  j["options"] = {{"precision", o.precision}, {"gemm", o.gemm},         {"cuda_graphs", o.graphs},
                  {"warmup", o.warmup},       {"iterations", o.iterations}, {"duration_s", o.duration_s},
                  {"max_batch", max_batch},   {"rotate_bytes", rotate},  {"seed", o.seed}};
  j["hooks"] = {{"run_device", HasRunDevice<gpu::CudaEngine>::value},
                {"profile_nodes", HasProfileNodes<gpu::CudaEngine>::value}};
  // The whole document as it stands: after every batch (complete false) and at the end.
  auto memory_json = [&] {
    json mem = {{"free_before_bytes", m0.free},
                {"free_after_create_bytes", m1.free},
                {"min_free_during_runs_bytes", min_free},
                {"session_bytes", static_cast<int64_t>(m0.free) - static_cast<int64_t>(m1.free)},
                {"peak_bytes", static_cast<int64_t>(m0.free) - static_cast<int64_t>(min_free)},
                {"total_bytes", m0.total}};
    if (ce) {
      mem["arena_bytes"] = ce->arena_bytes();
      mem["weight_bytes"] = ce->weight_bytes();
    }
    return mem;
  };
  auto snapshot = [&](bool complete) {
    j["engine"] = {{"name", engine->name()}, {"create_s", create_s}, {"report", ce ? ce->report() : ""}};
    j["memory"] = memory_json();
    j["results"] = results;
    j["complete"] = complete;
    if (!o.json_path.empty()) write_json_atomically(o.json_path, j);
  };

  std::printf("vit-bench  %s  git %s\n", gpu.name.c_str(), git_hash().c_str());
  std::printf("model %s (%s), %.1f GFLOP/image, precision %s, gemm %s, graphs %s\n", c.architecture.c_str(),
              model->source_path.c_str(), c.flops_per_image() / 1e9, o.precision.c_str(), o.gemm.c_str(),
              o.graphs ? "on" : "off");
  std::printf("latencies: host-input runs (copy in, run, copy out, sync), CUDA events, ms\n");
  print_table_header(device_hook);
  const int64_t img = int64_t{c.in_chans} * c.image_h * c.image_w;
  const int64_t out_per = c.num_classes > 0 ? c.num_classes : c.hidden;
  for (int batch : o.batches) {
    std::fprintf(stderr, "vit-bench: batch %d...\n", batch);
    const HostInputs in = make_host_inputs(img * batch, rotate, o.seed + static_cast<uint64_t>(batch));
    std::vector<float> out(static_cast<size_t>(out_per * batch), std::nanf(""));
    RunOutputs ro;
    if (c.num_classes > 0) {
      ro.logits = out.data();
    } else {
      ro.embeddings = out.data();
    }
    // Host-input mode: engine->run() copies in, runs, copies out and synchronises; the
    // events bracket all of that on our stream (the engine runs on eo.stream).
    EventPair ev;
    std::vector<double> wall;
    const auto t0 = Clock::now();
    std::vector<double> lat = timed_loop(o, [&](int i) {
      const auto w0 = Clock::now();
      ev.start(stream);
      engine->run(in.sets[static_cast<size_t>(i) % in.sets.size()].data(), batch, ro, nullptr);
      ev.stop(stream);
      const double ms = ev.elapsed_ms();
      // Timed runs only (timed_loop numbers them from o.warmup): the warm-up includes the
      // bucket's first run (arena, GEMM selection, graph capture).
      if (i >= o.warmup) wall.push_back(std::chrono::duration<double, std::milli>(Clock::now() - w0).count());
      return ms;
    });
    (void)t0;
    const Stats hs = stats_of(lat);
    const double sum_ms = hs.mean * hs.n;
    const bool finite = std::all_of(out.begin(), out.end(), [](float v) { return std::isfinite(v); });
    if (!finite) std::fprintf(stderr, "vit-bench: WARNING batch %d produced non-finite outputs\n", batch);
    min_free = std::min(min_free, mem_info().free);

    const CopyTimes ct = time_copies(in, out_per * batch, stream);
    json dev = device_mode(ce, o, c, batch, rotate, stream);
    double gpu_ms = 0;
    std::string gpu_src;
    if (!dev.is_null()) {
      any_device = true;
      gpu_ms = dev["latency_ms"]["median"].get<double>();
      gpu_src = "run_device median";
    } else {
      gpu_ms = std::max(0.0, hs.median - ct.host_copy_ms - ct.h2d_ms - ct.d2h_ms);
      gpu_src = "estimate: host median - host copy - h2d - d2h";
    }
    json nodes = o.nodes ? node_breakdown(ce, batch, o.node_reps) : json(nullptr);
    min_free = std::min(min_free, mem_info().free);

    json r;
    r["batch"] = batch;
    r["host"] = {{"latency_ms", to_json(hs)},
                 {"wall_ms", to_json(stats_of(wall))},
                 {"throughput_img_s", sum_ms > 0 ? 1000.0 * hs.n * batch / sum_ms : 0.0},
                 {"input_sets", in.sets.size()},
                 {"outputs_finite", finite}};
    r["device"] = dev;
    r["gpu_compute_ms"] = gpu_ms;
    r["gpu_compute_source"] = gpu_src;
    r["gpu_flops_tflop_s"] = gpu_ms > 0 ? c.flops_per_image() * batch / (gpu_ms * 1e-3) / 1e12 : 0.0;
    r["copies_ms"] = {{"host_copy", ct.host_copy_ms}, {"h2d", ct.h2d_ms}, {"d2h", ct.d2h_ms}};
    if (ce) {
      // The engine pads a batch up to the next bucket (powers of two up to max_batch).
      int bucket = batch;
      for (int b : ce->buckets()) {
        if (b >= batch) {
          bucket = b;
          break;
        }
      }
      r["bucket"] = bucket;
      r["graph"] = ce->bucket_uses_graph(bucket);
    }
    r["nodes"] = nodes;
    results.push_back(r);
    print_table_row(r);
    snapshot(false);
  }
  if (!any_device) {
    std::printf("gpu~ ms: end-to-end median minus the separately timed copies (an estimate: the executor has\n"
                "no run_device hook yet, see docs/PERF.md open items).\n");
  }
  snapshot(true);
  const json& mem = j["memory"];

  // session_bytes is read right after creation, before the first run allocates the arena.
  std::printf("memory: session %.1f MiB after creation (weights %.1f MiB), arena %.1f MiB (allocated at the first "
              "run), peak %.1f MiB over the free memory before creation; engine created in %.2f s\n",
              mib(mem["session_bytes"].get<double>()), ce ? mib(static_cast<double>(ce->weight_bytes())) : 0.0,
              ce ? mib(static_cast<double>(ce->arena_bytes())) : 0.0, mib(mem["peak_bytes"].get<double>()),
              create_s);
  for (const json& r : results) {
    if (r["nodes"].is_null()) continue;
    std::printf("\nbatch %d per-node time by kind (non-graphed, total %.3f ms):\n", r["batch"].get<int>(),
                r["nodes"]["total_ms"].get<double>());
    for (const auto& [k, v] : r["nodes"]["by_kind_ms"].items()) std::printf("  %-14s %9.3f ms\n", k.c_str(), v.get<double>());
  }
  if (!HasProfileNodes<gpu::CudaEngine>::value) {
    std::printf("per-node breakdown: not available (the executor has no profile_nodes hook yet)\n");
  }

  return 0;
}

}  // namespace
}  // namespace vit::bench

// Entry point, callable from another program (e.g. `vit-infer bench`) with its own argv.
int vit_bench_main(int argc, char** argv) {
  namespace fs = std::filesystem;
  using vit::bench::Options;
  Options o;
  CLI::App app{"vit-bench: end-to-end timing of the vit-infer CUDA engine (trtexec-style)"};
  std::string batches = "1,8,32,64,128,256";
  std::string graphs = "on";
  app.add_option("--model", o.model, "checkpoint (.safetensors / .npz / directory); default: random weights");
  app.add_option("--arch", o.arch, "timm architecture (random weights), or an override for --model");
  app.add_option("--batch", batches, "comma-separated batch sizes")->capture_default_str();
  app.add_option("--precision", o.precision, "fp32 | fp16 | bf16")->capture_default_str();
  app.add_option("--warmup", o.warmup, "warm-up runs per batch")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--iterations", o.iterations, "timed runs per batch")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--duration", o.duration_s, "seconds per batch (instead of --iterations)")->check(CLI::PositiveNumber);
  app.add_option("--cuda-graphs", graphs, "on | off")->capture_default_str()->check(CLI::IsMember({"on", "off"}));
  app.add_option("--gemm", o.gemm, "auto | custom | cublaslt")->capture_default_str();
  app.add_option("--json", o.json_path, "write the full results as JSON here");
  app.add_option("--device", o.device, "CUDA device ordinal")->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the random weights and inputs")->capture_default_str();
  app.add_option("--rotate-bytes", o.rotate_bytes, "total input bytes rotated over (default 2 x L2)");
  app.add_option("--node-reps", o.node_reps, "runs averaged per node in the per-node breakdown")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  bool no_nodes = false;
  app.add_flag("--no-nodes", no_nodes, "skip the per-node breakdown");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // app.exit prints the message (or the help) and returns CLI11's own code (105, 109, ...);
    // every parse error is a bad argument, which exits 2 like the checks below (docs/PERF.md).
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    o.nodes = !no_nodes;
    o.graphs = graphs == "on";
    o.batches = vit::bench::parse_batches(batches);
    if (!o.json_path.empty()) {
      // Checked now, not after minutes of runs whose results would then be lost.
      const fs::path dir = fs::absolute(o.json_path).parent_path();
      std::error_code ec;
      if (!fs::is_directory(dir, ec) || access(dir.c_str(), W_OK) != 0) {
        vit::fail(vit::ErrorCode::kIo, "--json: directory '" + dir.string() + "' does not exist or is not writable");
      }
    }
    if (o.model.empty() && o.arch.empty()) o.arch = "vit_base_patch16_224";
    (void)vit::bench::parse_precision(o.precision);
    (void)vit::bench::parse_gemm(o.gemm);
    return vit::bench::run(o);
  } catch (const vit::Error& e) {
    std::fprintf(stderr, "vit-bench: error (%s): %s\n", vit::error_code_name(e.code()), e.what());
    // Device failures, out-of-memory included, are CUDA failures (3), not bad arguments (2).
    return e.code() == vit::ErrorCode::kDevice || e.code() == vit::ErrorCode::kOutOfMemory ? 3 : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vit-bench: error: %s\n", e.what());
    return 2;
  }
}

#ifndef VIT_BENCH_NO_MAIN
int main(int argc, char** argv) { return vit_bench_main(argc, argv); }
#endif
