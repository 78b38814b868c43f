// vit-infer GPU tests on small models, built twice: as test_gpu_engine_small against the real CUDA
// runtime (skips without a device) and as test_gpu_emu_engine, where the whole CudaEngine (the
// executor, its CUDA graphs, the shipped kernels and GpuPreprocessor) runs in the CPU emulator
// (tests/gpu_emu: synchronous streams, recorded graph capture, a device-memory budget, freed
// memory poisoned). The fp32 CPU engine is the oracle. Covers: buckets and chunking, arena
// growth with graph re-capture, out-of-memory then recovery, forced graph-capture failure,
// run_images (device preprocessing) and attention / attention_layers outputs.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_engine.h"
#include "gpu/cuda_engine.h"
#include "gpu/executor.h"
#include "image/decode.h"
#include "image/preprocess.h"
#include "model_fixture.h"
#include "test_gpu_util.h"
#include "test_util.h"

#ifdef VIT_GPU_EMU
#include "emu.h"
#endif

namespace vit::test {
namespace {

// Tolerances: tol_small_model_rel (tolerances.h); probabilities use the same numbers.
float tol_for(Precision p) { return tol_small_model_rel(storage_type(p)); }

// 32x32 images, patch 8: 17 tokens, hidden 64, 2 heads (head dim 32: the tensor-core attention
// in bf16), depth 2, 10 classes. Small enough for the emulator, real enough for every node kind.
ViTConfig tiny_config() { return small_config(32, 32, 8, 64, 2, 2, 10); }

struct Outputs {
  std::vector<float> logits, emb, attn, layers;
};

RunOutputs bind(Outputs& o, const ViTConfig& c, int batch, bool attention, bool layers) {
  const size_t TT = static_cast<size_t>(c.tokens()) * c.tokens();
  o.logits.assign(static_cast<size_t>(batch) * c.num_classes, NAN);
  o.emb.assign(static_cast<size_t>(batch) * c.hidden, NAN);
  if (attention) o.attn.assign(static_cast<size_t>(batch) * c.heads * TT, NAN);
  if (layers) o.layers.assign(static_cast<size_t>(c.depth) * batch * TT, NAN);
  RunOutputs ro;
  ro.logits = o.logits.data();
  ro.embeddings = o.emb.data();
  ro.attention = attention ? o.attn.data() : nullptr;
  ro.attention_layers = layers ? o.layers.data() : nullptr;
  return ro;
}

Outputs run_engine(Engine& e, const ViTConfig& c, const std::vector<float>& images, int batch, bool attention = false,
                   bool layers = false) {
  Outputs o;
  const RunOutputs ro = bind(o, c, batch, attention, layers);
  e.run(images.data(), batch, ro);
  return o;
}

std::vector<float> images_for(const ViTConfig& c, int batch) {
  return random_vec(static_cast<size_t>(batch) * c.in_chans * c.image_h * c.image_w, -1.0f, 1.0f);
}

void expect_close(const Outputs& got, const Outputs& want, Precision p) {
  const float tol = tol_for(p);
  EXPECT_TRUE(close_rel(got.logits, want.logits, tol)) << "logits";
  EXPECT_TRUE(close_rel(got.emb, want.emb, tol)) << "embeddings";
  if (!want.attn.empty()) EXPECT_TRUE(close_rel(got.attn, want.attn, tol)) << "attention";
  if (!want.layers.empty()) EXPECT_TRUE(close_rel(got.layers, want.layers, tol)) << "attention_layers";
}

// In the emulator, turns on the host stand-in for cuBLASLt (gpu_emu/lt_gemm_stub.cpp) for its
// scope, so that the engine has a reference to check the custom kernels against. On a GPU: nothing.
struct EmulatedCublasLt {
#ifdef VIT_GPU_EMU
  EmulatedCublasLt() { setenv("VIT_EMU_CUBLASLT", "1", 1); }
  ~EmulatedCublasLt() { unsetenv("VIT_EMU_CUBLASLT"); }
#endif
};

// f() throws vit::Error(kInvalidArgument) whose message holds `needle`.
template <class F>
void expect_invalid(const std::string& needle, F&& f) {
  try {
    f();
    ADD_FAILURE() << "expected kInvalidArgument mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

gpu::CudaEngine* as_cuda(const std::unique_ptr<Engine>& e) {
  auto* ce = dynamic_cast<gpu::CudaEngine*>(e.get());
  if (!ce) throw std::runtime_error("not a CudaEngine");
  return ce;
}

// The GEMM agreement check of the executor (executor.h, gemm_choices): a custom kernel whose
// result disagrees with cuBLASLt on the check's random input is never selected by kAuto, even
// when it would win (CudaTestHooks::prefer_gemm stands for "faster"); the rejection is logged on stderr,
// naming the shape; a forced --gemm custom keeps the custom kernel and only warns. The
// disagreement is injected with CudaTestHooks::corrupt_gemm (it perturbs the check's copy of that
// kernel's result, not the kernel). In the emulator, cuBLASLt is the host stand-in of
// gpu_emu/lt_gemm_stub.cpp (VIT_EMU_CUBLASLT=1) and the wgmma kernel runs (compute capability 9.0).
TEST(GpuEngineSmall, GemmAgreementCheckNeverSelectsADisagreeingKernel) {
  VIT_SKIP_WITHOUT_GPU();
  [[maybe_unused]] const EmulatedCublasLt lt_stand_in;  // the emulator's cuBLASLt stand-in, for the test's scope
  const ViTConfig cfg = tiny_config();
  std::shared_ptr<const Model> model = random_model(cfg, 43, 1.0f);
  auto cpu = make_cpu_engine(model, 2);
  const auto img = images_for(cfg, 2);
  const Outputs want = run_engine(*cpu, cfg, img, 2);
  struct Run {
    std::vector<std::pair<std::string, std::string>> choices;
    std::string log;
  };
  auto run_with = [&](GemmChoice g, const std::string& corrupt) {
    CudaEngineOptions o;
    o.precision = Precision::kBF16;
    o.max_batch = 2;
    o.gemm = g;
    gpu::CudaTestHooks hooks;
    hooks.prefer_gemm = "mma_sync,wgmma";
    hooks.corrupt_gemm = corrupt;
    auto gpu = gpu::make_cuda_engine(model, o, hooks);
    ::testing::internal::CaptureStderr();
    Outputs got;
    try {
      got = run_engine(*gpu, cfg, img, 2);
    } catch (...) {
      ::testing::internal::GetCapturedStderr();
      throw;
    }
    Run r;
    r.log = ::testing::internal::GetCapturedStderr();
    r.choices = as_cuda(gpu)->gemm_choices(2);
    expect_close(got, want, Precision::kBF16);
    return r;
  };
  const std::string shape = "(M=34 N=" + std::to_string(3 * cfg.hidden) + " K=" + std::to_string(cfg.hidden);
  {
    SCOPED_TRACE("auto, nothing corrupted: the preferred custom kernels pass the check");
    const Run r = run_with(GemmChoice::kAuto, "");
    ASSERT_FALSE(r.choices.empty());
    for (const auto& c : r.choices)
      if (c.first.rfind("blocks.", 0) == 0) EXPECT_NE(c.second, "cublaslt") << c.first;
    EXPECT_EQ(r.log.find("disagrees"), std::string::npos) << r.log;
  }
  {
    SCOPED_TRACE("auto, both custom kernels corrupted: cuBLASLt everywhere, rejections logged");
    const Run r = run_with(GemmChoice::kAuto, "mma_sync,wgmma");
    ASSERT_FALSE(r.choices.empty());
    for (const auto& c : r.choices)
      if (c.first.rfind("blocks.", 0) == 0) EXPECT_EQ(c.second, "cublaslt") << c.first;
    EXPECT_NE(r.log.find("mma_sync disagrees with cublaslt"), std::string::npos) << r.log;
    EXPECT_NE(r.log.find(shape), std::string::npos) << "the log names the QKV shape " << shape << "\n" << r.log;
    EXPECT_NE(r.log.find("not selecting it"), std::string::npos) << r.log;
    // Once per shape and kernel: blocks 0 and 1 share their shapes, so one line for fc1 / mma_sync.
    size_t n = 0, start = 0;
    while (start < r.log.size()) {
      size_t end = r.log.find('\n', start);
      if (end == std::string::npos) end = r.log.size();
      const std::string line = r.log.substr(start, end - start);
      n += line.find("mlp.fc1") != std::string::npos && line.find("mma_sync disagrees") != std::string::npos;
      start = end + 1;
    }
    EXPECT_EQ(n, 1u) << r.log;
  }
  {
    SCOPED_TRACE("forced custom, both corrupted: still custom, only a warning");
    const Run r = run_with(GemmChoice::kCustom, "mma_sync,wgmma");
    for (const auto& c : r.choices) EXPECT_NE(c.second, "cublaslt") << c.first;
    EXPECT_NE(r.log.find("warning: "), std::string::npos) << r.log;
    EXPECT_NE(r.log.find("anyway because --gemm custom is forced"), std::string::npos) << r.log;
  }
}

// The agreement checks are cached by what they run (N, K, epilogue, check rows, candidate,
// reference). With CudaTestHooks::check_rows = 1 every check input is one image, except the head's (one
// row per image: min(batch, 2) images), so bucket 4 needs exactly the checks that bucket 2 ran
// and bucket 1 needs new ones (its head check has one row). kAuto times after warming the GPU.
TEST(GpuEngineSmall, GemmChecksCachedAcrossBucketsAndTimedWarm) {
  VIT_SKIP_WITHOUT_GPU();
  [[maybe_unused]] const EmulatedCublasLt lt_stand_in;  // the emulator's cuBLASLt stand-in, for the test's scope
  CudaEngineOptions o;
  o.precision = Precision::kBF16;
  o.max_batch = 8;
  o.gemm = GemmChoice::kAuto;
  gpu::CudaTestHooks hooks;
  hooks.check_rows = 1;
  const ViTConfig cfg = tiny_config();
  std::shared_ptr<const Model> model = random_model(cfg, 44, 1.0f);
  auto gpu = gpu::make_cuda_engine(model, o, hooks);
  auto cpu = make_cpu_engine(model, 2);
  gpu::CudaEngine* ce = as_cuda(gpu);
  EXPECT_EQ(ce->gemm_pick_stats().agreement_checks, 0);
  EXPECT_FALSE(ce->gemm_pick_stats().warmed);
  auto run_batch = [&](int batch) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const auto img = images_for(cfg, batch);
    expect_close(run_engine(*gpu, cfg, img, batch), run_engine(*cpu, cfg, img, batch), Precision::kBF16);
    EXPECT_FALSE(ce->gemm_choices(batch).empty());
    return ce->gemm_pick_stats();
  };
  const gpu::GemmPickStats s2 = run_batch(2);
  EXPECT_GT(s2.agreement_checks, 0);
  EXPECT_GT(s2.timings, 0);  // cuBLASLt and the custom kernels agree: timed
  EXPECT_TRUE(s2.warmed);
  const gpu::GemmPickStats s4 = run_batch(4);
  EXPECT_EQ(s4.agreement_checks, s2.agreement_checks) << "bucket 4 runs the checks of bucket 2";
  EXPECT_GT(s4.timings, s2.timings);  // the timing is per bucket: its own M
  const gpu::GemmPickStats s1 = run_batch(1);
  EXPECT_GT(s1.agreement_checks, s4.agreement_checks) << "bucket 1's head check has one row: new";
}

TEST(GpuEngineSmall, MatchesCpuThroughBucketsAndChunks) {
  VIT_SKIP_WITHOUT_GPU();
  const ViTConfig cfg = tiny_config();
  std::shared_ptr<const Model> model = random_model(cfg, 41, 1.0f);
  auto cpu = make_cpu_engine(model, 2);
  for (Precision prec : {Precision::kFP32, Precision::kBF16}) {
    CudaEngineOptions o;
    o.precision = prec;
    o.max_batch = 4;
    auto gpu = make_cuda_engine(model, o);
    gpu::CudaEngine* ce = as_cuda(gpu);
    EXPECT_EQ(ce->buckets(), (std::vector<int>{1, 2, 4}));
    EXPECT_EQ(ce->arena_bytes(), 0) << "the arena is allocated lazily, at the first run";
    for (int b : {3, 1, 6}) {  // 3: padded bucket 4; 6: two chunks (4 + 2)
      SCOPED_TRACE(std::string(precision_name(prec)) + " batch " + std::to_string(b));
      const auto img = images_for(cfg, b);
      expect_close(run_engine(*gpu, cfg, img, b), run_engine(*cpu, cfg, img, b), prec);
    }
    EXPECT_EQ(ce->arena_bytes(), ce->arena_bytes_for(4)) << ce->report();
    for (int b : {1, 2, 4}) EXPECT_TRUE(ce->bucket_uses_graph(b)) << ce->report();
  }
}

// The same graph fused (the default) and unfused (CudaEngineOptions::fusion = false: separate
// add / GELU nodes, bias + pos in the embed, plain QKV layout), with and without LayerScale
// (scale nodes; the residual adds then fold into the next LayerNorm), every precision, against
// the CPU reference; 25 tokens, head dim 24, odd batch (padded bucket).
TEST(GpuEngineSmall, FusedAndUnfusedGraphsMatchCpuWithLayerScale) {
  VIT_SKIP_WITHOUT_GPU();
  for (bool layer_scale : {false, true}) {
    ViTConfig cfg = small_config(40, 40, 8, 48, 2, 2, 7);
    cfg.layer_scale = layer_scale;
    std::shared_ptr<const Model> model = random_model(cfg, 47 + layer_scale, 1.0f);
    auto cpu = make_cpu_engine(model, 2);
    const auto img = images_for(cfg, 3);
    const Outputs want = run_engine(*cpu, cfg, img, 3, true);
    for (Precision prec : {Precision::kFP32, Precision::kFP16, Precision::kBF16}) {
      for (bool fusion : {true, false}) {
        SCOPED_TRACE(std::string(precision_name(prec)) + (fusion ? " fused" : " unfused") +
                     (layer_scale ? ", LayerScale" : ""));
        CudaEngineOptions o;
        o.precision = prec;
        o.max_batch = 4;
        o.fusion = fusion;
        o.gemm = GemmChoice::kCustom;  // no tuner timing: the emulator runs every timed GEMM too
        auto gpu = make_cuda_engine(model, o);
        const std::string rep = as_cuda(gpu)->report();
        EXPECT_NE(rep.find(fusion ? "(fused)" : "(unfused)"), std::string::npos) << rep;
        expect_close(run_engine(*gpu, cfg, img, 3, true), want, prec);
      }
    }
  }
}

// Per-run sizes (run_at): a lowered graph, buckets and CUDA graphs per size, the model's weights
// one copy and each size's position table its own segment. Every size against the CPU engine's
// run_at (itself checked against models rebuilt at each size, test_cpu_engine), with the attention
// outputs at one size; more sizes than the engine caches, so the least recently used are dropped
// (their graphs and tables freed: the emulator poisons freed memory) and rebuilt, and a size run
// again gives the same bits; a size in two chunks (batch 3, max_batch 2).
TEST(GpuEngineSmall, RunSizesMatchCpuThroughEviction) {
  VIT_SKIP_WITHOUT_GPU();
  const ViTConfig cfg = tiny_config();
  std::shared_ptr<const Model> model = random_model(cfg, 43, 1.0f);
  auto cpu = make_cpu_engine(model, 2);
  const std::vector<std::pair<int, int>> sizes = {{48, 48}, {32, 32}, {16, 40}, {64, 24}, {24, 24}, {40, 40},
                                                  {56, 16}, {8, 8},   {32, 48}, {48, 32}, {72, 64}, {48, 48}};
  for (Precision prec : {Precision::kFP32, Precision::kBF16}) {
    CudaEngineOptions o;
    o.precision = prec;
    o.max_batch = 2;
    o.gemm = GemmChoice::kCustom;  // no tuner timing in the emulator
    auto gpu = make_cuda_engine(model, o);
    std::map<std::pair<int, int>, std::vector<float>> first;
    const size_t n = prec == Precision::kFP32 ? sizes.size() : 3;
    for (size_t k = 0; k < n; ++k) {
      const auto [h, w] = sizes[k];
      SCOPED_TRACE(std::string(precision_name(prec)) + " " + std::to_string(h) + "x" + std::to_string(w));
      const ViTConfig at = cfg.at_size(h, w);
      const int B = 1 + (h / cfg.patch + w / cfg.patch) % 3;
      std::mt19937 rng(static_cast<uint32_t>(h * 1000 + w));
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      std::vector<float> img(static_cast<size_t>(B) * at.in_chans * h * w);
      for (float& v : img) v = u(rng);
      const bool maps = k == 2;
      Outputs got, want;
      const RunOutputs go = bind(got, at, B, maps, maps), wo = bind(want, at, B, maps, maps);
      gpu->run_at(img.data(), B, h, w, go);
      cpu->run_at(img.data(), B, h, w, wo);
      expect_close(got, want, prec);
      const auto [it, fresh] = first.emplace(std::make_pair(h, w), got.logits);
      if (!fresh) EXPECT_EQ(got.logits, it->second) << "the size run again (dropped and rebuilt)";
    }
    const std::string rep = as_cuda(gpu)->report();
    EXPECT_NE(rep.find("run sizes cached"), std::string::npos) << rep;
  }
  // A size the CUDA engine cannot run is refused before any work, naming the rule.
  CudaEngineOptions o;
  o.max_batch = 1;
  auto gpu = make_cuda_engine(model, o);
  std::vector<float> img(3 * 36 * 32), out(10);
  RunOutputs ro;
  ro.logits = out.data();
  expect_invalid("not a multiple of the patch size 8", [&] { gpu->run_at(img.data(), 1, 36, 32, ro); });
}

// The arena grows 1 -> 4 images: the graph of bucket 1 was captured over the old arena and must
// be re-captured (the emulator poisons freed device memory, so a stale graph reads NaN).
TEST(GpuEngineSmall, GraphsReCapturedAfterArenaGrows) {
  VIT_SKIP_WITHOUT_GPU();
  const ViTConfig cfg = tiny_config();
  std::shared_ptr<const Model> model = random_model(cfg, 42, 1.0f);
  auto cpu = make_cpu_engine(model, 2);
  CudaEngineOptions o;
  o.max_batch = 4;
  o.gemm = GemmChoice::kCustom;
  auto gpu = make_cuda_engine(model, o);
  gpu::CudaEngine* ce = as_cuda(gpu);
  const auto img1 = images_for(cfg, 1), img4 = images_for(cfg, 4);
  const Outputs first = run_engine(*gpu, cfg, img1, 1);
  EXPECT_TRUE(ce->bucket_uses_graph(1));
  EXPECT_EQ(ce->arena_bytes(), ce->arena_bytes_for(1));
  expect_close(run_engine(*gpu, cfg, img4, 4), run_engine(*cpu, cfg, img4, 4), Precision::kFP32);
  EXPECT_EQ(ce->arena_bytes(), ce->arena_bytes_for(4));
  const Outputs again = run_engine(*gpu, cfg, img1, 1);
  EXPECT_EQ(again.logits, first.logits) << "bucket 1 after the arena moved";
  EXPECT_EQ(again.emb, first.emb);
  EXPECT_TRUE(ce->bucket_uses_graph(1)) << ce->report();
  expect_close(first, run_engine(*cpu, cfg, img1, 1), Precision::kFP32);
}

// "A batch too large for device memory returns an out-of-memory status. The same session then
// serves a smaller batch correctly." Emulator: a device budget that holds bucket 8 but not 64.
// GPU: a wide model whose bucket arena exceeds the device's whole memory.
TEST(GpuEngineSmall, OutOfMemoryThenSmallerBatchesRun) {
  VIT_SKIP_WITHOUT_GPU();
#ifdef VIT_GPU_EMU
  const ViTConfig cfg = tiny_config();
  const int max_batch = 64;
#else
  // 257 tokens x hidden 2048 x mlp 8192: ~20 MB of activations per image, 49 KB of input.
  const ViTConfig cfg = small_config(64, 64, 4, 2048, 16, 1, 10);
  const int max_batch = 1 << 20;
#endif
  std::shared_ptr<const Model> model = random_model(cfg, 43, 1.0f);
  CudaEngineOptions o;
  o.max_batch = max_batch;
  o.gemm = GemmChoice::kCustom;
  auto gpu = make_cuda_engine(model, o);
  gpu::CudaEngine* ce = as_cuda(gpu);
  int big = 0;  // a batch whose bucket cannot be allocated
#ifdef VIT_GPU_EMU
  struct Restore {
    ~Restore() { emu::set_device_memory_limit(size_t{80} << 30); }
  } restore;
  emu::set_device_memory_limit(emu::device_memory_used() + static_cast<size_t>(ce->arena_bytes_for(8)) + (64 << 10));
  big = 33;  // bucket 64
#else
  size_t free_b = 0, total_b = 0;
  VIT_TEST_CUDA(cudaMemGetInfo(&free_b, &total_b));
  for (int b = 1; b <= max_batch; b *= 2) {
    if (ce->arena_bytes_for(b) > static_cast<int64_t>(total_b) + (int64_t{1} << 30)) {
      big = b / 2 + 1;  // served by bucket b
      break;
    }
  }
  ASSERT_GT(big, 0) << "no bucket exceeds the device memory (" << total_b << " bytes)";
#endif
  const auto small = images_for(cfg, 2);
  const Outputs before = run_engine(*gpu, cfg, small, 2);
  {
    const auto huge = images_for(cfg, big);
    Outputs o_big;
    const RunOutputs ro = bind(o_big, cfg, big, false, false);
    try {
      gpu->run(huge.data(), big, ro);
      FAIL() << "expected kOutOfMemory for batch " << big;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory) << e.what();
      const std::string msg = e.what();
      EXPECT_NE(msg.find("batch " + std::to_string(big)), std::string::npos) << msg;
      EXPECT_NE(msg.find("bytes"), std::string::npos) << msg;
    }
  }
  EXPECT_EQ(cudaGetLastError(), cudaSuccess) << "the allocation failure must not linger as the last error";
  const Outputs after = run_engine(*gpu, cfg, small, 2);
  EXPECT_EQ(after.logits, before.logits) << "same session, same bucket, same kernels: bit-identical";
  EXPECT_EQ(after.emb, before.emb);
  auto cpu = make_cpu_engine(model, 2);
  const auto img3 = images_for(cfg, 3);
  expect_close(run_engine(*gpu, cfg, img3, 3), run_engine(*cpu, cfg, img3, 3), Precision::kFP32);
  EXPECT_TRUE(ce->bucket_uses_graph(4)) << ce->report();
  EXPECT_LE(ce->arena_bytes(), ce->arena_bytes_for(4)) << "the failed bucket's arena must not be kept";
}

// A failed capture falls back to plain launches: same numbers as an engine without graphs.
TEST(GpuEngineSmall, FailedGraphCaptureFallsBackToPlainLaunches) {
  VIT_SKIP_WITHOUT_GPU();
  const ViTConfig cfg = tiny_config();
  std::shared_ptr<const Model> model = random_model(cfg, 44, 1.0f);
  auto cpu = make_cpu_engine(model, 2);
  CudaEngineOptions o;
  o.max_batch = 4;
  o.gemm = GemmChoice::kCustom;
  o.precision = Precision::kBF16;
  o.cuda_graphs = false;
  auto plain = make_cuda_engine(model, o);
  o.cuda_graphs = true;
  const auto img = images_for(cfg, 3);
  const Outputs want = run_engine(*plain, cfg, img, 3);
  for (int via_env = 0; via_env < 2; ++via_env) {
    SCOPED_TRACE(via_env ? "VIT_TEST_FAIL_GRAPH_CAPTURE=1" : "CudaTestHooks::fail_graph_capture");
    gpu::CudaTestHooks hooks;
    hooks.fail_graph_capture = !via_env;
    if (via_env) setenv("VIT_TEST_FAIL_GRAPH_CAPTURE", "1", 1);
    auto gpu = gpu::make_cuda_engine(model, o, hooks);
    if (via_env) unsetenv("VIT_TEST_FAIL_GRAPH_CAPTURE");
    for (int rep = 0; rep < 2; ++rep) {  // the second run takes the "graphs disabled" path
      const Outputs got = run_engine(*gpu, cfg, img, 3);
      EXPECT_EQ(got.logits, want.logits);
      EXPECT_EQ(got.emb, want.emb);
    }
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    gpu::CudaEngine* ce = as_cuda(gpu);
    EXPECT_FALSE(ce->bucket_uses_graph(4)) << ce->report();
    EXPECT_NE(ce->report().find("disabled"), std::string::npos) << ce->report();
  }
  expect_close(want, run_engine(*cpu, cfg, img, 3), Precision::kBF16);
}

// Random RGB8 images of odd sizes; the timm resize-then-crop path and the HF squash path.
std::vector<Image> random_images(uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int sizes[][2] = {{40, 50}, {17, 33}, {64, 64}};
  std::vector<Image> v;
  for (const auto& s : sizes) {
    Image im;
    im.w = s[0];
    im.h = s[1];
    im.rgb.resize(static_cast<size_t>(im.w) * im.h * 3);
    for (auto& px : im.rgb) px = static_cast<uint8_t>(rng() & 0xFF);
    v.push_back(std::move(im));
  }
  return v;
}

TEST(GpuEngineSmall, RunImagesMatchesHostPreprocessing) {
  VIT_SKIP_WITHOUT_GPU();
  const ViTConfig cfg = tiny_config();
  std::shared_ptr<const Model> model = random_model(cfg, 45, 1.0f);
  auto cpu = make_cpu_engine(model, 2);
  CudaEngineOptions o;
  o.max_batch = 2;  // 3 images: two chunks
  o.gemm = GemmChoice::kCustom;
  auto gpu = make_cuda_engine(model, o);
  const std::vector<Image> imgs = random_images(7);
  std::vector<ImageView> views;
  for (const Image& im : imgs) views.push_back({im.rgb.data(), im.w, im.h});
  const int n = static_cast<int>(views.size());
  for (int variant = 0; variant < 2; ++variant) {
    PreprocessConfig pp;
    pp.input_h = cfg.image_h;
    pp.input_w = cfg.image_w;
    if (variant == 1) {
      pp.resize = PreprocessConfig::Resize::kDirect;
      pp.interpolation = "bilinear";
      pp.mean = {0.485f, 0.456f, 0.406f};
      pp.std = {0.229f, 0.224f, 0.225f};
    }
    SCOPED_TRACE(variant ? "direct bilinear" : "shortest-then-crop bicubic");
    // Host preprocessing (bit-exact Pillow port) then run(): the GPU preprocessor must give the
    // same input bits, hence the same outputs through the same graph.
    std::vector<float> batch(static_cast<size_t>(n) * 3 * cfg.image_h * cfg.image_w);
    for (int i = 0; i < n; ++i) preprocess_image(imgs[i], pp, batch.data() + static_cast<size_t>(i) * 3 * cfg.image_h * cfg.image_w);
    const Outputs via_run = run_engine(*gpu, cfg, batch, n);
    Outputs got;
    const RunOutputs ro = bind(got, cfg, n, false, false);
    gpu->run_images(views.data(), n, pp, ro);
    EXPECT_EQ(got.logits, via_run.logits);
    EXPECT_EQ(got.emb, via_run.emb);
    Outputs want;
    const RunOutputs rc = bind(want, cfg, n, false, false);
    cpu->run_images(views.data(), n, pp, rc);
    expect_close(got, want, Precision::kFP32);
  }
  // A bad image is named, and the engine stays usable.
  PreprocessConfig pp;
  pp.input_h = cfg.image_h;
  pp.input_w = cfg.image_w;
  std::vector<ImageView> bad = views;
  bad[1].rgb = nullptr;
  Outputs junk;
  const RunOutputs rj = bind(junk, cfg, n, false, false);
  expect_invalid("image 1", [&] { gpu->run_images(bad.data(), n, pp, rj); });
  // Another run size: the images preprocessed to it on the device, as the CPU engine does on the
  // host; a size that is not a multiple of the patch is refused, naming the rule.
  pp.input_h = cfg.image_h + 8;
  {
    Outputs got, want;
    const RunOutputs rg = bind(got, cfg, n, false, false), rc = bind(want, cfg, n, false, false);
    gpu->run_images(views.data(), n, pp, rg);
    cpu->run_images(views.data(), n, pp, rc);
    expect_close(got, want, Precision::kFP32);
  }
  pp.input_h = cfg.image_h + 3;
  expect_invalid("not a multiple of the patch size", [&] { gpu->run_images(views.data(), n, pp, rj); });
}

TEST(GpuEngineSmall, AttentionAndPerLayerMapsMatchCpu) {
  VIT_SKIP_WITHOUT_GPU();
  const ViTConfig cfg = tiny_config();
  std::shared_ptr<const Model> model = random_model(cfg, 46, 1.0f);
  auto cpu = make_cpu_engine(model, 2);
  const int batch = 3;
  const auto img = images_for(cfg, batch);
  const Outputs want = run_engine(*cpu, cfg, img, batch, true, true);
  for (Precision prec : {Precision::kFP32, Precision::kBF16}) {
    SCOPED_TRACE(precision_name(prec));
    CudaEngineOptions o;
    o.max_batch = 2;  // two chunks: layer l of chunk 2 starts at row 2 of layer l
    o.precision = prec;
    auto gpu = make_cuda_engine(model, o);
    expect_close(run_engine(*gpu, cfg, img, batch, true, true), want, prec);
    // Only attention_layers (the un-graphed path), then a normal run (the graph) again.
    Outputs layers_only;
    RunOutputs ro = bind(layers_only, cfg, batch, false, true);
    gpu->run(img.data(), batch, ro);
    EXPECT_TRUE(close_rel(layers_only.layers, want.layers, tol_for(prec)));
    // Each head-mean row is a probability distribution.
    const int T = cfg.tokens();
    for (size_t r = 0; r < layers_only.layers.size() / T; ++r) {
      double s = 0;
      for (int j = 0; j < T; ++j) s += layers_only.layers[r * T + j];
      ASSERT_NEAR(s, 1.0, 1e-3) << "row " << r;
    }
    expect_close(run_engine(*gpu, cfg, img, batch), Outputs{want.logits, want.emb, {}, {}}, prec);
  }
}

}  // namespace
}  // namespace vit::test
