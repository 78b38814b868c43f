// vit-soak: a long-running stability check of one CUDA engine session. For --minutes (default
// 10) it runs batches of random size 1..max_batch through the same engine; every --check-every
// iterations it re-runs a fixed reference batch and requires outputs bit-identical to the first
// reference run; every --sample-s seconds it samples device memory in use (cudaMemGetInfo) and
// host RSS (/proc/self/statm). After the warm-up fraction, both must stay flat (drift = max - min
// of the later samples, within --max-device-drift-mib / --max-host-drift-mib). Any exception or
// non-finite output counts as an error. Prints a summary (and --json); exit 0 only on a pass.
// Inputs are [B, 3, H, W] fp32 random images; outputs logits [B, C] + embeddings [B, D] fp32.
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "core/error.h"
#include "gpu/cuda_engine.h"
#include "gpu/executor.h"
#include "model/config.h"
#include "random_model.h"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Options {
  double minutes = 10.0;
  std::string arch = "vit_base_patch16_224";
  std::string precision = "bf16";
  int max_batch = 64;
  int check_every = 50;
  int ref_batch = 5;  // a padded bucket on purpose (8)
  double sample_s = 5.0;
  double warmup_fraction = 0.2;
  double max_device_drift_mib = 16.0;
  double max_host_drift_mib = 64.0;
  uint64_t seed = 1;
  int device = 0;
  std::string json_path;
};

struct Sample {
  double t = 0;
  long iteration = 0;
  int64_t device_used = 0;  // total - free (whole device)
  int64_t host_rss = 0;
};

int64_t host_rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long pages_total = 0, pages_rss = 0;
  if (!(f >> pages_total >> pages_rss)) return -1;
  return static_cast<int64_t>(pages_rss) * sysconf(_SC_PAGESIZE);
}

int64_t device_used_bytes() {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    (void)cudaGetLastError();
    return -1;
  }
  return static_cast<int64_t>(total_b - free_b);
}

vit::Precision parse_precision(const std::string& p) {
  if (p == "fp32") return vit::Precision::kFP32;
  if (p == "fp16") return vit::Precision::kFP16;
  if (p == "bf16") return vit::Precision::kBF16;
  vit::fail(vit::ErrorCode::kInvalidArgument, "--precision: '" + p + "' is not fp32 | fp16 | bf16");
}

// Drift of one series over the samples after warm-up: max - min (-1 when unmeasured).
int64_t drift(const std::vector<Sample>& s, size_t from, int64_t Sample::*field) {
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (size_t i = from; i < s.size(); ++i) {
    if (s[i].*field < 0) return -1;
    lo = std::min(lo, s[i].*field);
    hi = std::max(hi, s[i].*field);
  }
  return hi >= lo ? hi - lo : -1;
}

int soak(const Options& o) {
  using namespace vit;
  std::string why;
  if (!bench::gpu_present(&why)) {
    std::fprintf(stderr, "vit-soak: no CUDA device (%s)\n", why.c_str());
    return 2;
  }
  ViTConfig cfg;
  if (!config_from_arch_name(o.arch, &cfg)) {
    fail(ErrorCode::kInvalidArgument, "--arch: unknown architecture '" + o.arch + "' (e.g. vit_base_patch16_224)");
  }
  cfg.ckpt_grid_h = cfg.grid_h();
  cfg.ckpt_grid_w = cfg.grid_w();
  std::shared_ptr<const Model> model = bench::random_vit(cfg, o.seed);
  CudaEngineOptions eo;
  eo.device_id = o.device;
  eo.precision = parse_precision(o.precision);
  eo.max_batch = o.max_batch;
  std::unique_ptr<Engine> engine = make_cuda_engine(model, eo);
  auto* ce = dynamic_cast<gpu::CudaEngine*>(engine.get());

  const int64_t per_img = int64_t{cfg.in_chans} * cfg.image_h * cfg.image_w;
  const int C = std::max(cfg.num_classes, 1), D = cfg.hidden;
  std::mt19937_64 rng(o.seed ^ 0x5eedULL);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  // A pool of 2 x max_batch images; each batch starts at a random offset in it.
  std::vector<float> pool(static_cast<size_t>(per_img) * 2 * o.max_batch);
  for (float& v : pool) v = u(rng);
  const int ref_b = std::min(o.ref_batch, o.max_batch);
  std::vector<float> ref_in(pool.begin(), pool.begin() + per_img * ref_b);
  std::vector<float> logits(static_cast<size_t>(C) * o.max_batch), emb(static_cast<size_t>(D) * o.max_batch);
  std::vector<float> ref_logits, ref_emb;

  long iterations = 0, images = 0, errors = 0, ref_checks = 0, ref_mismatches = 0, nonfinite = 0;
  std::string first_error;
  std::vector<Sample> samples;
  const auto t0 = Clock::now();
  const double budget_s = o.minutes * 60.0;
  auto now_s = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  double next_sample = 0.0;
  auto note_error = [&](const std::string& m) {
    ++errors;
    if (first_error.empty()) first_error = m;
    if (errors <= 10) std::fprintf(stderr, "vit-soak: error at iteration %ld: %s\n", iterations, m.c_str());
  };
  auto run_ref = [&] {
    std::vector<float> l(static_cast<size_t>(C) * ref_b, NAN), e(static_cast<size_t>(D) * ref_b, NAN);
    RunOutputs ro;
    ro.logits = cfg.num_classes > 0 ? l.data() : nullptr;
    ro.embeddings = e.data();
    engine->run(ref_in.data(), ref_b, ro);
    if (ref_logits.empty()) {
      ref_logits = l;
      ref_emb = e;
      return;
    }
    ++ref_checks;
    if (std::memcmp(l.data(), ref_logits.data(), l.size() * sizeof(float)) != 0 ||
        std::memcmp(e.data(), ref_emb.data(), e.size() * sizeof(float)) != 0) {
      ++ref_mismatches;
      note_error("reference batch outputs differ from the first reference run");
    }
  };

  try {
    run_ref();
  } catch (const std::exception& ex) {
    note_error(std::string("first reference run: ") + ex.what());
  }
  std::uniform_int_distribution<int> pick_b(1, o.max_batch), pick_off(0, o.max_batch);
  while (now_s() < budget_s) {
    const int b = pick_b(rng);
    const int off = pick_off(rng);
    std::fill(logits.begin(), logits.begin() + static_cast<long>(C) * b, NAN);
    std::fill(emb.begin(), emb.begin() + static_cast<long>(D) * b, NAN);
    RunOutputs ro;
    ro.logits = cfg.num_classes > 0 ? logits.data() : nullptr;
    ro.embeddings = emb.data();
    try {
      engine->run(pool.data() + static_cast<size_t>(off) * per_img, b, ro);
      images += b;
      bool finite = true;
      for (long i = 0; i < static_cast<long>(D) * b && finite; ++i) finite = std::isfinite(emb[static_cast<size_t>(i)]);
      if (cfg.num_classes > 0)
        for (long i = 0; i < static_cast<long>(C) * b && finite; ++i) finite = std::isfinite(logits[static_cast<size_t>(i)]);
      if (!finite) {
        ++nonfinite;
        note_error("non-finite output at batch " + std::to_string(b));
      }
    } catch (const std::exception& ex) {
      note_error(std::string("run(batch ") + std::to_string(b) + "): " + ex.what());
    }
    ++iterations;
    if (o.check_every > 0 && iterations % o.check_every == 0) {
      try {
        run_ref();
      } catch (const std::exception& ex) {
        note_error(std::string("reference run: ") + ex.what());
      }
    }
    const double t = now_s();
    if (t >= next_sample) {
      samples.push_back({t, iterations, device_used_bytes(), host_rss_bytes()});
      next_sample = t + o.sample_s;
      std::fprintf(stderr, "[vit-soak %6.0fs] it %ld, %ld images, device %.1f MiB, rss %.1f MiB, errors %ld\n", t,
                   iterations, images, samples.back().device_used / 1048576.0, samples.back().host_rss / 1048576.0,
                   errors);
    }
  }
  const double elapsed = now_s();
  samples.push_back({elapsed, iterations, device_used_bytes(), host_rss_bytes()});

  size_t from = 0;
  while (from + 1 < samples.size() && samples[from].t < o.warmup_fraction * elapsed) ++from;
  const int64_t dev_drift = drift(samples, from, &Sample::device_used);
  const int64_t host_drift = drift(samples, from, &Sample::host_rss);
  const bool dev_ok = dev_drift >= 0 && dev_drift <= static_cast<int64_t>(o.max_device_drift_mib * 1048576.0);
  const bool host_ok = host_drift >= 0 && host_drift <= static_cast<int64_t>(o.max_host_drift_mib * 1048576.0);
  const bool pass = errors == 0 && ref_checks > 0 && dev_ok && host_ok;

  std::printf("vit-soak: %s %s, max_batch %d, %.1f s, %ld iterations, %ld images (%.1f img/s)\n", o.arch.c_str(),
              o.precision.c_str(), o.max_batch, elapsed, iterations, images, elapsed > 0 ? images / elapsed : 0.0);
  std::printf("  reference checks %ld, mismatches %ld; errors %ld (non-finite %ld)%s%s\n", ref_checks, ref_mismatches,
              errors, nonfinite, first_error.empty() ? "" : "; first: ", first_error.c_str());
  std::printf("  after warm-up (%zu of %zu samples): device drift %.2f MiB (limit %.1f), host RSS drift %.2f MiB "
              "(limit %.1f)\n",
              samples.size() - from, samples.size(), dev_drift / 1048576.0, o.max_device_drift_mib,
              host_drift / 1048576.0, o.max_host_drift_mib);
  if (ce) std::printf("  arena %.1f MiB, weights %.1f MiB\n", ce->arena_bytes() / 1048576.0, ce->weight_bytes() / 1048576.0);
  std::printf("  %s\n", pass ? "PASS" : "FAIL");

  if (!o.json_path.empty()) {
    json j;
    j["tool"] = "vit-soak";
    j["commit"] = bench::git_hash();
    j["gpu"] = bench::to_json(bench::gpu_info(o.device));
    j["config"] = {{"arch", o.arch},           {"precision", o.precision},     {"max_batch", o.max_batch},
                   {"minutes", o.minutes},     {"check_every", o.check_every}, {"ref_batch", ref_b},
                   {"sample_s", o.sample_s},   {"warmup_fraction", o.warmup_fraction},
                   {"seed", o.seed}};
    j["elapsed_s"] = elapsed;
    j["iterations"] = iterations;
    j["images"] = images;
    j["images_per_s"] = elapsed > 0 ? images / elapsed : 0.0;
    j["errors"] = errors;
    j["nonfinite_outputs"] = nonfinite;
    j["first_error"] = first_error;
    j["reference_checks"] = ref_checks;
    j["reference_mismatches"] = ref_mismatches;
    j["device_drift_bytes"] = dev_drift;
    j["host_rss_drift_bytes"] = host_drift;
    j["limits_mib"] = {{"device", o.max_device_drift_mib}, {"host", o.max_host_drift_mib}};
    j["arena_bytes"] = ce ? ce->arena_bytes() : 0;
    json sj = json::array();
    for (const Sample& s : samples)
      sj.push_back({{"t", s.t}, {"iteration", s.iteration}, {"device_used", s.device_used}, {"host_rss", s.host_rss}});
    j["samples"] = sj;
    j["warmup_samples"] = from;
    j["pass"] = pass;
    std::ofstream f(o.json_path);
    f << j.dump(2) << "\n";
    if (!f) std::fprintf(stderr, "vit-soak: cannot write %s\n", o.json_path.c_str());
  }
  return pass ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"vit-soak: mixed batch sizes through one CUDA engine session; checks determinism and flat memory"};
  app.add_option("--minutes", o.minutes, "duration")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--arch", o.arch, "timm architecture (random weights)")->capture_default_str();
  app.add_option("--precision", o.precision, "fp32 | fp16 | bf16")->capture_default_str();
  app.add_option("--max-batch", o.max_batch, "engine max batch; batches are uniform in 1..max")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--check-every", o.check_every, "iterations between reference re-runs (0: never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--ref-batch", o.ref_batch, "images in the reference batch")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--sample-s", o.sample_s, "seconds between memory samples")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--warmup-fraction", o.warmup_fraction, "leading fraction of the run excluded from the drift")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--max-device-drift-mib", o.max_device_drift_mib, "allowed device-memory drift")->capture_default_str();
  app.add_option("--max-host-drift-mib", o.max_host_drift_mib, "allowed host RSS drift")->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the weights and inputs")->capture_default_str();
  app.add_option("--device", o.device, "CUDA device ordinal")->capture_default_str();
  app.add_option("--json", o.json_path, "write the results as JSON here");
  CLI11_PARSE(app, argc, argv);
  try {
    return soak(o);
  } catch (const vit::Error& e) {
    std::fprintf(stderr, "vit-soak: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vit-soak: %s\n", e.what());
    return 2;
  }
}
