// vit-infer: vit-cpu-bench, the CPU side of the benchmarks. Three parts, in one process so that
// they see the same machine state:
//   engines  the reference (OpenBLAS fp32) and the fast engine (fp32 / bf16) on a model file or
//            random weights, batches interleaved with engines run by run; median / min / max ms
//   gemm     the ViT GEMMs (M = 197 * B x N x K) on each candidate GEMM engine: oneDNN fp32 and
//            bf16 (as DnnlLinear runs them: packed weights, fused bias), OpenBLAS fp32 (as the
//            reference runs it), MKL sgemm / gemm_bf16bf16f32 when --mkl names libmkl_rt.so
//   attention  the fast engine's fused attention alone at ViT-B's shapes (T 197, 12 heads of 64;
//            T 577 at 384), fp32 and bf16, per ISA kernel set: ms and GFLOP/s (QK^T and PV)
//   ceiling  measured peak of the vector units: AVX-512 fp32 FMA and AVX512-BF16 dot-product
//            loops on every thread (register-only, no memory), so results read as a fraction
//            of what the cores can do. AMX is measured by oneDNN's AMX GEMM when the CPU has it.
//   starts   --starts N: the engines part in N fresh processes, one after the other (this program
//            re-run without --starts), and each start's median per (engine, batch) side by side:
//            the spread across starts (slowest start's median / fastest's) is measured, not
//            guessed from one process's runs.
// Writes --json (schema in docs/PERF.md, CPU section) and prints a short table.
#include <dlfcn.h>
#include <immintrin.h>
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_isa.h"
#include "cpu/dnnl_linear.h"
#include "cpu/cpu_engine.h"
#include "cpu/int8.h"
#include "cpu/fast_kernels.h"
#include "cpu/ref_ops.h"
#include "model/model.h"
#include "random_model.h"

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string model, arch = "vit_base_patch16_224", json_out, mkl;
  std::string int8_calibration;  // int8: the file; default: next to --model, else calibrated in-process
  std::string engines = "reference,fp32,bf16", batches = "1,8,32";
  int runs = 5, warmup = 2, threads = 2, starts = 0;
  bool gemm = false, attention = false, ceiling = false, no_engines = false;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  size_t p = 0;
  while (p <= s.size()) {
    const size_t q = std::min(s.find(',', p), s.size());
    if (q > p) v.push_back(s.substr(p, q - p));
    p = q + 1;
  }
  return v;
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

json stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const double med = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  return {{"median", med}, {"min", v.front()}, {"max", v.back()}, {"all", v}};
}

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string k;
  while (f >> k) {
    if (k == "VmRSS:") {
      long v = 0;
      f >> v;
      return v;
    }
  }
  return -1;
}

std::shared_ptr<const vit::Model> make_model(const Options& o) {
  if (!o.model.empty()) {
    vit::ConfigOverrides ov;  // a bare model.safetensors needs the architecture named
    ov.architecture = o.arch;
    return vit::load_model(o.model, ov);
  }
  vit::ViTConfig cfg;
  if (!vit::config_from_arch_name(o.arch, &cfg)) vit::fail(vit::ErrorCode::kInvalidArgument, "unknown --arch " + o.arch);
  cfg.ckpt_grid_h = cfg.grid_h();
  cfg.ckpt_grid_w = cfg.grid_w();
  if (cfg.architecture.empty()) cfg.architecture = o.arch;
  return vit::bench::random_vit(cfg, 1234);
}

// ---- engines ---------------------------------------------------------------------------------

// The int8 engine's calibration: --int8-calibration, else the file next to --model, else 16 of the
// bench's own synthetic images calibrated here (random weights).
vit::Int8Options int8_options(const Options& o, const std::shared_ptr<const vit::Model>& model) {
  vit::Int8Options opt;
  opt.calibration_path = o.int8_calibration;
  if (!o.int8_calibration.empty() || !o.model.empty()) return opt;
  const vit::ViTConfig& c = model->cfg;
  const int64_t isz = int64_t{c.in_chans} * c.image_h * c.image_w;
  std::vector<float> images(static_cast<size_t>(16 * isz));
  for (size_t i = 0; i < images.size(); ++i) images[i] = static_cast<float>((i * 2246822519u) % 1000) / 500.0f - 1.0f;
  vit::int8::Calibrator cal(model, o.threads);
  cal.add(images.data(), 16);
  opt.calibration = std::make_shared<vit::int8::Calibration>(cal.result());
  return opt;
}

json bench_engines(const Options& o, std::shared_ptr<const vit::Model> model) {
  const vit::ViTConfig& c = model->cfg;
  struct E {
    std::string key;
    std::unique_ptr<vit::Engine> e;
    long rss_create_kib = 0;
  };
  std::vector<E> engines;
  // The engines are made for the largest batch timed, as a session with that max_batch is (the
  // GEMMs' packing follows it: cpu/dnnl_linear.h LinearTiles); --batches 1 times a latency session.
  int max_batch = 1;
  for (const std::string& b : split(o.batches)) max_batch = std::max(max_batch, std::stoi(b));
  for (const std::string& k : split(o.engines)) {
    const long before = rss_kib();
    E e{k, nullptr};
    // "<engine>+tome<r>": the same engine with token merging, r tokens per block.
    const size_t plus = k.find("+tome");
    const std::string base = k.substr(0, plus);
    const int tome = plus == std::string::npos ? 0 : std::stoi(k.substr(plus + 5));
    if (base == "reference") e.e = vit::make_cpu_engine(model, o.threads, true, tome);
    else if (base == "fp32") e.e = vit::make_fast_cpu_engine(model, vit::DType::F32, o.threads, true, tome, max_batch);
    else if (base == "bf16") e.e = vit::make_fast_cpu_engine(model, vit::DType::BF16, o.threads, true, tome, max_batch);
    else if (base == "int8") e.e = vit::make_int8_cpu_engine(model, int8_options(o, model), o.threads, true, tome, max_batch);
    else if (base == "int8dyn") {
      vit::Int8Options none;
      none.find_calibration = false;
      e.e = vit::make_int8_cpu_engine(model, none, o.threads, true, tome, max_batch);
    }
    else vit::fail(vit::ErrorCode::kInvalidArgument, "unknown engine " + k);
    e.rss_create_kib = rss_kib() - before;
    engines.push_back(std::move(e));
  }
  const std::vector<std::string> bs = split(o.batches);
  const int64_t isz = int64_t{c.in_chans} * c.image_h * c.image_w;
  int maxb = 1;
  for (auto& b : bs) maxb = std::max(maxb, std::stoi(b));
  std::vector<float> images(static_cast<size_t>(maxb * isz));
  for (size_t i = 0; i < images.size(); ++i) images[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  std::vector<float> logits(static_cast<size_t>(maxb) * std::max(1, c.num_classes));
  vit::RunOutputs out;
  out.logits = c.num_classes > 0 ? logits.data() : nullptr;
  std::vector<float> emb(static_cast<size_t>(maxb) * c.hidden);
  if (!out.logits) out.embeddings = emb.data();
  // times[engine][batch]
  std::vector<std::vector<std::vector<double>>> times(engines.size(), std::vector<std::vector<double>>(bs.size()));
  std::vector<long> rss_run(engines.size(), 0);
  for (size_t e = 0; e < engines.size(); ++e) {
    const long before = rss_kib();
    for (size_t b = 0; b < bs.size(); ++b)
      for (int w = 0; w < o.warmup; ++w) engines[e].e->run(images.data(), std::stoi(bs[b]), out);
    rss_run[e] = rss_kib() - before;
  }
  for (int r = 0; r < o.runs; ++r) {
    for (size_t b = 0; b < bs.size(); ++b) {
      for (size_t e = 0; e < engines.size(); ++e) {
        const auto t0 = Clock::now();
        engines[e].e->run(images.data(), std::stoi(bs[b]), out);
        times[e][b].push_back(ms_since(t0));
      }
    }
  }
  json rows = json::array();
  for (size_t e = 0; e < engines.size(); ++e) {
    for (size_t b = 0; b < bs.size(); ++b) {
      const int batch = std::stoi(bs[b]);
      json s = stats(times[e][b]);
      const double med = s["median"];
      rows.push_back({{"engine", engines[e].key}, {"name", engines[e].e->name()}, {"batch", batch}, {"ms", s},
                      {"img_s", 1000.0 * batch / med},
                      {"gflop_s", c.flops_per_image() * batch / (med * 1e6)},
                      {"rss_create_mib", engines[e].rss_create_kib / 1024.0},
                      {"rss_first_runs_mib", rss_run[e] / 1024.0}});
      std::printf("%-10s %-28s batch %3d  median %8.2f ms  [%8.2f .. %8.2f]  %7.1f img/s\n", engines[e].key.c_str(),
                  engines[e].e->name(), batch, med, s["min"].get<double>(), s["max"].get<double>(), 1000.0 * batch / med);
    }
  }
  return rows;
}

// ---- GEMMs -----------------------------------------------------------------------------------

using sgemm_t = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using bgemm_t = void (*)(int, int, int, int, int, int, float, const uint16_t*, int, const uint16_t*, int, float,
                         float*, int);
using setnt_t = void (*)(int);

// Median ms of `runs` calls of f after 2 warm-ups.
template <class F>
json time_it(int runs, F&& f) {
  f();
  f();
  std::vector<double> t;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = Clock::now();
    f();
    t.push_back(ms_since(t0));
  }
  return stats(t);
}

json bench_gemms(const Options& o) {
  // epi / bf16_out: what the fast engine's forward asks of each (the residual stream is fp32, fc1's
  // GELU output feeds fc2 in the run's precision).
  using vit::fastcpu::LinearEpilogue;
  struct Shape {
    const char* name;
    int64_t N, K;
    LinearEpilogue epi;
    bool bf16_out;
  };
  const Shape shapes[] = {{"qkv", 2304, 768, LinearEpilogue::kBias, false},
                          {"proj", 768, 768, LinearEpilogue::kBiasAccumulate, false},
                          {"fc1", 3072, 768, LinearEpilogue::kBiasAct, true},  // GELU erf: LinearSpec::act's default
                          {"fc2", 768, 3072, LinearEpilogue::kBiasAccumulate, false}};
  void* mkl = o.mkl.empty() ? nullptr : dlopen(o.mkl.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!o.mkl.empty() && !mkl) std::fprintf(stderr, "cpu-bench: cannot dlopen %s: %s\n", o.mkl.c_str(), dlerror());
  auto mkl_sgemm = mkl ? reinterpret_cast<sgemm_t>(dlsym(mkl, "cblas_sgemm")) : nullptr;
  auto mkl_bgemm = mkl ? reinterpret_cast<bgemm_t>(dlsym(mkl, "cblas_gemm_bf16bf16f32")) : nullptr;
  auto mkl_threads = mkl ? reinterpret_cast<setnt_t>(dlsym(mkl, "MKL_Set_Num_Threads")) : nullptr;
  if (mkl_threads) mkl_threads(o.threads);
  json rows = json::array();
  for (int64_t B : {1, 8}) {
    const int64_t M = 197 * B;
    for (const Shape& s : shapes) {
      const double flop = 2.0 * M * s.N * s.K;
      vit::Tensor w, bias;
      w.shape = {s.N, s.K};
      w.data.resize(static_cast<size_t>(s.N * s.K));
      bias.shape = {s.N};
      bias.data.assign(static_cast<size_t>(s.N), 0.01f);
      for (size_t i = 0; i < w.data.size(); ++i) w.data[i] = static_cast<float>((i * 7919) % 200) / 1000.0f - 0.1f;
      std::vector<float> x(static_cast<size_t>(M * s.K), 0.5f), y(static_cast<size_t>(M * s.N));
      std::vector<uint16_t> x16(x.size(), vit::fastcpu::to_bf16(0.5f)), w16(w.data.size());
      for (size_t i = 0; i < w16.size(); ++i) w16[i] = vit::fastcpu::to_bf16(w.data[i]);
      auto add = [&](const std::string& impl, json t) {
        const double med = t["median"];
        rows.push_back({{"impl", impl}, {"gemm", s.name}, {"M", M}, {"N", s.N}, {"K", s.K}, {"ms", t},
                        {"gflop_s", flop / (med * 1e6)}});
        std::printf("gemm %-5s M %5lld  %-22s %8.3f ms  %7.1f GFLOP/s\n", s.name, static_cast<long long>(M),
                    impl.c_str(), med, flop / (med * 1e6));
      };
      for (bool bf16 : {false, true}) {
        if (bf16 && static_cast<int>(vit::effective_cpu_isa()) < static_cast<int>(vit::CpuIsa::kAvx512Bf16)) continue;
        vit::fastcpu::LinearSpec spec;
        spec.N = s.N;
        spec.K = s.K;
        spec.bf16 = bf16;
        spec.hint_m = 197;
        vit::fastcpu::DnnlLinear lin(w.ptr(), bias.ptr(), spec);
        const void* xin = bf16 ? static_cast<const void*>(x16.data()) : x.data();
        add(std::string("onednn ") + (bf16 ? "bf16 " : "fp32 ") + lin.impl_name(M),
            time_it(o.runs * 4, [&] { lin.run(xin, M, y.data(), o.threads); }));
        // As in a forward: each call reads another layer's weights (12 copies, 40-170 MB in all,
        // past the last-level cache, so they come from DRAM), with the forward's epilogue and
        // output type; the gap to the row above is what these cost (per call: the median).
        vit::fastcpu::LinearSpec fwd = spec;
        fwd.epi = s.epi;
        fwd.y_bf16 = bf16 && s.bf16_out;
        std::vector<std::unique_ptr<vit::fastcpu::DnnlLinear>> layers;
        for (int l = 0; l < 12; ++l)
          layers.push_back(std::make_unique<vit::fastcpu::DnnlLinear>(w.ptr(), bias.ptr(), fwd));
        int next = 0;
        add(std::string("onednn ") + (bf16 ? "bf16" : "fp32") + " as in a forward",
            time_it(o.runs * 12, [&] { layers[static_cast<size_t>(next++ % 12)]->run(xin, M, y.data(), o.threads); }));
      }
      {
        // int8 (the int8 engine's static GEMM): u8 x s8 -> s32, per-N output scales, fp32 bias and
        // the forward's epilogue; weights in -63..63 as below VNNI (int8.h), 8-bit with it.
        const int wmax = vit::int8::weight_max_for(vit::effective_cpu_isa());
        std::vector<int8_t> wq(w.data.size());
        for (size_t i = 0; i < wq.size(); ++i) wq[i] = static_cast<int8_t>(static_cast<int>((i * 7919) % (2 * wmax + 1)) - wmax);
        std::vector<uint8_t> xq(x.size());
        for (size_t i = 0; i < xq.size(); ++i) xq[i] = static_cast<uint8_t>((i * 2654435761u) >> 24);
        vit::fastcpu::LinearSpec spec;
        spec.N = s.N;
        spec.K = s.K;
        spec.int8 = true;
        spec.out_scales.assign(static_cast<size_t>(s.N), 1e-4f);
        spec.hint_m = 197;
        vit::fastcpu::DnnlLinear lin(wq.data(), bias.ptr(), spec);
        add("onednn u8s8 " + lin.impl_name(M), time_it(o.runs * 4, [&] { lin.run(xq.data(), M, y.data(), o.threads); }));
        vit::fastcpu::LinearSpec fwd = spec;
        fwd.epi = s.epi;
        std::vector<std::unique_ptr<vit::fastcpu::DnnlLinear>> layers;
        for (int l = 0; l < 12; ++l) layers.push_back(std::make_unique<vit::fastcpu::DnnlLinear>(wq.data(), bias.ptr(), fwd));
        int next = 0;
        add("onednn u8s8 as in a forward",
            time_it(o.runs * 12, [&] { layers[static_cast<size_t>(next++ % 12)]->run(xq.data(), M, y.data(), o.threads); }));
      }
      {
        vit::ref::BlasSingleThreaded guard;
        add("openblas fp32 (reference split)", time_it(o.runs * 4, [&] {
              vit::ref::linear(x.data(), M, s.K, w.ptr(), bias.ptr(), s.N, y.data(), false, o.threads);
            }));
      }
      // CBLAS enums: RowMajor 101, NoTrans 111, Trans 112.
      if (mkl_sgemm) {
        add("mkl sgemm", time_it(o.runs * 4, [&] {
              mkl_sgemm(101, 111, 112, M, s.N, s.K, 1.0f, x.data(), s.K, w.ptr(), s.K, 0.0f, y.data(), s.N);
            }));
      }
      if (mkl_bgemm && static_cast<int>(vit::effective_cpu_isa()) >= static_cast<int>(vit::CpuIsa::kAvx512Bf16)) {
        add("mkl gemm_bf16bf16f32", time_it(o.runs * 4, [&] {
              mkl_bgemm(101, 111, 112, M, s.N, s.K, 1.0f, x16.data(), s.K, w16.data(), s.K, 0.0f, y.data(), s.N);
            }));
      }
    }
  }
  return rows;
}

json bench_attention(const Options& o) {
  const vit::fastcpu::Kernels& k = vit::fastcpu::kernels_for(vit::effective_cpu_isa());
  json rows = json::array();
  for (int64_t T : {197, 577}) {
    for (int64_t B : {1, 8}) {
      const int64_t H = 12, hd = 64, D = H * hd;
      const double flop = 4.0 * B * H * T * T * hd;
      std::vector<float> qkv(static_cast<size_t>(B * T * 3 * D)), out(static_cast<size_t>(B * T * D));
      for (size_t i = 0; i < qkv.size(); ++i) qkv[i] = static_cast<float>((i * 7919) % 2000) / 1000.0f - 1.0f;
      for (bool bf16 : {false, true}) {
        const json t = time_it(o.runs * 4, [&] { k.attention(qkv.data(), out.data(), bf16, B, T, H, hd, o.threads, nullptr); });
        const double med = t["median"];
        rows.push_back({{"T", T}, {"B", B}, {"bf16", bf16}, {"ms", t}, {"gflop_s", flop / (med * 1e6)}});
        std::printf("attention T %4lld B %2lld %s %8.3f ms  %7.1f GFLOP/s\n", static_cast<long long>(T),
                    static_cast<long long>(B), bf16 ? "bf16" : "fp32", med, flop / (med * 1e6));
      }
    }
  }
  return rows;
}

// ---- ceilings --------------------------------------------------------------------------------

constexpr long kIters = 20'000'000;

// 16 independent FMA chains (latency 4 x 2 ports = 8 in flight needed) per thread, registers only.
__attribute__((target("avx512f"))) float fma_loop(long iters) {
  __m512 a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  __m512 s = a[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

// vdpbf16ps: 32 bf16 products summed pairwise into 16 fp32 lanes = 64 FLOP per instruction.
__attribute__((target("avx512f,avx512bf16"))) float dpbf16_loop(long iters) {
  __m512 a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_setzero_ps();
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) a[i] = _mm512_dpbf16_ps(a[i], x, y);
  __m512 s = a[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

// AVX2 fp32 FMA (the fp32 / bf16 run's unit on a CPU without AVX-512). 12 chains: with the two
// constants 14 of the 16 YMM registers (16 chains spilled to the stack and measured a third of the
// peak on Zen 3).
__attribute__((target("avx2,fma"))) float fma_avx2_loop(long iters) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(1.0f + i * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  alignas(32) float l[8];
  __m256 t = a[0];
  for (int i = 1; i < 12; ++i) t = _mm256_add_ps(t, a[i]);
  _mm256_store_ps(l, t);
  return l[0] + l[7];
}

// The int8 GEMM's inner step without VNNI (oneDNN's AVX2 / AVX-512 kernels): vpmaddubsw (u8 x s8
// pairs to s16) + vpmaddwd (pairs to s32) + vpaddd = 32 multiply-adds (64 ops) per 256-bit triple.
// In assembly: written in C++ the loop-invariant products were hoisted (only the vpaddd timed: 4x
// too high) or, kept in the loop, the accumulators went through the stack. 8 accumulators.
__attribute__((target("avx2"))) float u8s8_avx2_loop(long iters) {
  if (iters < 1) return 0.0f;
  int32_t out[8];
  asm volatile(
      "vpxor %%ymm8, %%ymm8, %%ymm8\n\t"
      "vmovdqa %%ymm8, %%ymm9\n\t vmovdqa %%ymm8, %%ymm10\n\t vmovdqa %%ymm8, %%ymm11\n\t"
      "vmovdqa %%ymm8, %%ymm12\n\t vmovdqa %%ymm8, %%ymm13\n\t vmovdqa %%ymm8, %%ymm14\n\t vmovdqa %%ymm8, %%ymm15\n\t"
      "vpcmpeqw %%ymm2, %%ymm2, %%ymm2\n\t vpsrlw $15, %%ymm2, %%ymm2\n\t"  // 16-bit ones
      "vpsrlw $14, %%ymm2, %%ymm0\n\t vpsubb %%ymm2, %%ymm8, %%ymm1\n\t"     // x, y: any values
      "1:\n\t"
#define VIT_U8S8_STEP(t, acc) \
      "vpmaddubsw %%ymm1, %%ymm0, %%ymm" #t "\n\t vpmaddwd %%ymm2, %%ymm" #t ", %%ymm" #t "\n\t" \
      "vpaddd %%ymm" #t ", %%ymm" #acc ", %%ymm" #acc "\n\t"
      VIT_U8S8_STEP(3, 8) VIT_U8S8_STEP(4, 9) VIT_U8S8_STEP(5, 10) VIT_U8S8_STEP(6, 11)
      VIT_U8S8_STEP(7, 12) VIT_U8S8_STEP(3, 13) VIT_U8S8_STEP(4, 14) VIT_U8S8_STEP(5, 15)
#undef VIT_U8S8_STEP
      "dec %[n]\n\t jnz 1b\n\t"
      "vpaddd %%ymm8, %%ymm9, %%ymm8\n\t vpaddd %%ymm10, %%ymm8, %%ymm8\n\t vpaddd %%ymm11, %%ymm8, %%ymm8\n\t"
      "vpaddd %%ymm12, %%ymm8, %%ymm8\n\t vpaddd %%ymm13, %%ymm8, %%ymm8\n\t vpaddd %%ymm14, %%ymm8, %%ymm8\n\t"
      "vpaddd %%ymm15, %%ymm8, %%ymm8\n\t vmovdqu %%ymm8, %[out]\n\t vzeroupper"
      : [n] "+r"(iters), [out] "=m"(out)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
        "xmm13", "xmm14", "xmm15", "cc");
  return static_cast<float>(out[0]);
}

// AVX512-VNNI vpdpbusd: 64 u8 x s8 products summed in fours into 16 int32 lanes = 128 ops.
__attribute__((target("avx512f,avx512vnni"))) float dpbusd_loop(long iters) {
  __m512i a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_setzero_si512();
  const __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) a[i] = _mm512_dpbusd_epi32(a[i], x, y);
  __m512i t = a[0];
  for (int i = 1; i < 16; ++i) t = _mm512_add_epi32(t, a[i]);
  return static_cast<float>(_mm512_reduce_add_epi32(t));
}

template <class F>
double gflops_all_threads(int nt, double flop_per_iter, F&& loop) {
  volatile float sink = 0.0f;
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = Clock::now();
#pragma omp parallel num_threads(nt)
    {
      const float v = loop(kIters / 2);
#pragma omp critical
      sink = sink + v;
    }
    const double s = ms_since(t0) / 1000.0;
    best = std::max(best, nt * flop_per_iter * (kIters / 2) / s / 1e9);
  }
  (void)sink;
  return best;
}

json bench_ceiling(const Options& o) {
  json j;
  const vit::CpuIsa isa = vit::detect_cpu_isa();
  if (static_cast<int>(isa) >= static_cast<int>(vit::CpuIsa::kAvx512)) {
    j["avx512_fp32_fma_gflop_s"] = gflops_all_threads(o.threads, 16 * 32.0, fma_loop);
    j["avx512_fp32_fma_gflop_s_1thread"] = gflops_all_threads(1, 16 * 32.0, fma_loop);
  }
  if (static_cast<int>(isa) >= static_cast<int>(vit::CpuIsa::kAvx512Bf16)) {
    j["avx512_bf16_dp_gflop_s"] = gflops_all_threads(o.threads, 16 * 64.0, dpbf16_loop);
    j["avx512_bf16_dp_gflop_s_1thread"] = gflops_all_threads(1, 16 * 64.0, dpbf16_loop);
  }
  if (static_cast<int>(isa) >= static_cast<int>(vit::CpuIsa::kAvx2)) {
    j["avx2_fp32_fma_gflop_s"] = gflops_all_threads(o.threads, 12 * 16.0, fma_avx2_loop);
    j["avx2_fp32_fma_gflop_s_1thread"] = gflops_all_threads(1, 12 * 16.0, fma_avx2_loop);
    j["avx2_u8s8_gop_s"] = gflops_all_threads(o.threads, 8 * 64.0, u8s8_avx2_loop);
    j["avx2_u8s8_gop_s_1thread"] = gflops_all_threads(1, 8 * 64.0, u8s8_avx2_loop);
  }
  if (__builtin_cpu_supports("avx512vnni")) {
    j["avx512_vnni_u8s8_gop_s"] = gflops_all_threads(o.threads, 16 * 128.0, dpbusd_loop);
    j["avx512_vnni_u8s8_gop_s_1thread"] = gflops_all_threads(1, 16 * 128.0, dpbusd_loop);
  }
  j["amx"] = isa == vit::CpuIsa::kAmx;
  for (auto& [k, v] : j.items()) std::printf("ceiling %-34s %s\n", k.c_str(), v.dump().c_str());
  return j;
}

// ---- starts ----------------------------------------------------------------------------------

// Runs this program again `o.starts` times, one process after the other, with `args` (the command
// line without --starts / --json) plus --json to a temporary file, and puts each start's median
// per (engine, batch) side by side. A start that fails is reported and counted; the others stand.
json bench_starts(const Options& o, const std::vector<std::string>& args) {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) vit::fail(vit::ErrorCode::kInternal, "--starts: cannot read /proc/self/exe");
  self[n] = '\0';
  const std::string tmp = "/tmp/vit-cpu-bench-start-" + std::to_string(getpid()) + ".json";
  // (engine, batch) -> one median per start, in start order
  std::map<std::pair<std::string, int>, std::vector<double>> med;
  json starts = json::array();
  int failed = 0;
  for (int s = 0; s < o.starts; ++s) {
    std::vector<std::string> a = args;
    a.insert(a.begin(), self);
    a.push_back("--json");
    a.push_back(tmp);
    std::vector<char*> argv;
    for (auto& x : a) argv.push_back(x.data());
    argv.push_back(nullptr);
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid < 0) vit::fail(vit::ErrorCode::kInternal, "--starts: fork failed");
    if (pid == 0) {
      execv(self, argv.data());
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    json j;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      std::ifstream f(tmp);
      j = json::parse(f, nullptr, false);
    }
    std::remove(tmp.c_str());
    if (j.is_discarded() || !j.contains("engines")) {
      std::fprintf(stderr, "vit-cpu-bench: start %d failed (status %d)\n", s + 1, status);
      ++failed;
      continue;
    }
    json row = json::array();
    for (const json& e : j["engines"]) {
      const double m = e["ms"]["median"];
      med[{e["engine"].get<std::string>(), e["batch"].get<int>()}].push_back(m);
      row.push_back({{"engine", e["engine"]}, {"batch", e["batch"]}, {"median_ms", m}, {"min_ms", e["ms"]["min"]},
                     {"max_ms", e["ms"]["max"]}});
    }
    starts.push_back(row);
  }
  std::printf("\n%d starts (%d failed): each start's median ms per (engine, batch)\n", o.starts, failed);
  json summary = json::array();
  for (const auto& [key, v] : med) {
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    std::printf("%-10s batch %3d  fastest %8.2f  slowest %8.2f  spread %5.1f %%  |", key.first.c_str(), key.second,
                *lo, *hi, 100.0 * (*hi / *lo - 1.0));
    for (double x : v) std::printf(" %.1f", x);
    std::printf("\n");
    summary.push_back({{"engine", key.first}, {"batch", key.second}, {"start_medians_ms", v}, {"fastest_ms", *lo},
                       {"slowest_ms", *hi}, {"spread", *hi / *lo - 1.0}});
  }
  if (failed == o.starts) vit::fail(vit::ErrorCode::kInternal, "--starts: every start failed");
  return {{"starts", starts}, {"summary", summary}, {"failed", failed}};
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"vit-cpu-bench: CPU engines, GEMM candidates and vector-unit ceilings"};
  app.add_option("--model", o.model, "checkpoint (else random weights for --arch)");
  app.add_option("--arch", o.arch, "timm architecture (random weights, or the config of a bare --model file)")
      ->capture_default_str();
  app.add_option("--engines", o.engines, "reference,fp32,bf16,int8,int8dyn; <engine>+tome<r>: with token merging, r tokens per block (e.g. bf16+tome13)")->capture_default_str();
  app.add_option("--int8-calibration", o.int8_calibration,
                 "int8: the calibration file (default: next to --model, else calibrated on 16 synthetic images)");
  app.add_option("--batches", o.batches)->capture_default_str();
  app.add_option("--runs", o.runs, "timed runs per (engine, batch)")->capture_default_str();
  app.add_option("--warmup", o.warmup)->capture_default_str();
  app.add_option("-t,--threads", o.threads)->capture_default_str();
  app.add_flag("--gemm", o.gemm, "time the GEMM candidates at the ViT-B shapes");
  app.add_flag("--attention", o.attention, "time the fused attention kernels at the ViT-B shapes");
  app.add_flag("--ceiling", o.ceiling, "measure the vector-unit peaks");
  app.add_flag("--no-engines", o.no_engines, "skip the whole-model timings");
  app.add_option("--mkl", o.mkl, "path of libmkl_rt.so to time MKL too (e.g. from pip mkl)");
  app.add_option("--json", o.json_out, "write the results here");
  app.add_option("--starts", o.starts,
                 "run the engines part in N fresh processes and report each start's medians and the spread")
      ->check(CLI::Range(2, 1000));
  CLI11_PARSE(app, argc, argv);
  try {
    json j;
    if (o.starts > 0) {
      // The children get this command line without --starts and --json (each writes its own).
      std::vector<std::string> args;
      for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--starts" || a == "--json") {
          ++i;
          continue;
        }
        if (a.rfind("--starts=", 0) == 0 || a.rfind("--json=", 0) == 0) continue;
        args.push_back(a);
      }
      if (o.no_engines) vit::fail(vit::ErrorCode::kInvalidArgument, "--starts times the engines: drop --no-engines");
      j = bench_starts(o, args);
      j["git"] = VIT_GIT_HASH;
      if (!o.json_out.empty()) std::ofstream(o.json_out) << j.dump(1) << "\n";
      return 0;
    }
    j["git"] = VIT_GIT_HASH;
    j["isa"] = vit::cpu_isa_name(vit::effective_cpu_isa());
    j["threads"] = o.threads;
    if (o.ceiling) j["ceiling"] = bench_ceiling(o);
    if (o.gemm) j["gemm"] = bench_gemms(o);
    if (o.attention) j["attention"] = bench_attention(o);
    if (!o.no_engines) {
      auto model = make_model(o);
      j["model"] = model->cfg.architecture;
      j["gflop_per_image"] = model->cfg.flops_per_image() / 1e9;
      j["engines"] = bench_engines(o, model);
    }
    if (!o.json_out.empty()) std::ofstream(o.json_out) << j.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vit-cpu-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
