// vit-infer GPU tests: the CUDA engine end to end against the fp32 CPU engine (the oracle) on
// random models: a ViT-B/16-shaped model in fp32 / fp16 / bf16, forced GEMM implementations,
// every batch size through the buckets (and past max_batch), pooling variants, head dims that
// take the SIMT attention path, a caller-provided stream, concurrent callers, cancellation and
// lazy arena allocation. Skips when no CUDA device is present.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_engine.h"
#include "gpu/cuda_engine.h"
#include "gpu/executor.h"
#include "model_fixture.h"
#include "test_gpu_util.h"
#include "test_util.h"

namespace vit::test {
namespace {

struct Outputs {
  std::vector<float> logits, emb, attn;
};

Outputs run_engine(Engine& e, const ViTConfig& c, const std::vector<float>& images, int batch, bool attention = false) {
  Outputs o;
  o.logits.assign(static_cast<size_t>(batch) * std::max(c.num_classes, 1), NAN);
  o.emb.assign(static_cast<size_t>(batch) * c.hidden, NAN);
  if (attention) o.attn.assign(static_cast<size_t>(batch) * c.heads * c.tokens() * c.tokens(), NAN);
  RunOutputs ro;
  ro.logits = c.num_classes > 0 ? o.logits.data() : nullptr;
  ro.embeddings = o.emb.data();
  ro.attention = attention ? o.attn.data() : nullptr;
  e.run(images.data(), batch, ro);
  if (c.num_classes == 0) o.logits.clear();
  return o;
}

std::vector<float> images_for(const ViTConfig& c, int batch) {
  return random_vec(static_cast<size_t>(batch) * c.in_chans * c.image_h * c.image_w, -1.0f, 1.0f);
}

float tol_for(Precision p) { return tol_rel(storage_type(p)); }

// Top-1 agreement over rows whose reference top-2 gap exceeds `margin` (closer calls are
// within the stated tolerance and not meaningful); returns the agreeing fraction.
double top1_agreement(const std::vector<float>& got, const std::vector<float>& want, int rows, int C, float margin) {
  int counted = 0, agree = 0;
  for (int r = 0; r < rows; ++r) {
    const float* g = &got[static_cast<size_t>(r) * C];
    const float* w = &want[static_cast<size_t>(r) * C];
    const int gi = static_cast<int>(std::max_element(g, g + C) - g);
    const int wi = static_cast<int>(std::max_element(w, w + C) - w);
    float second = -INFINITY;
    for (int c = 0; c < C; ++c)
      if (c != wi) second = std::max(second, w[c]);
    if (w[wi] - second <= margin) continue;
    ++counted;
    agree += gi == wi ? 1 : 0;
  }
  return counted ? static_cast<double>(agree) / counted : 1.0;
}

void expect_matches_cpu(Engine& gpu, Engine& cpu, const ViTConfig& c, int batch, Precision prec, bool attention = false) {
  const auto img = images_for(c, batch);
  const Outputs want = run_engine(cpu, c, img, batch, attention);
  const Outputs got = run_engine(gpu, c, img, batch, attention);
  const float tol = tol_for(prec);
  if (c.num_classes > 0) {
    EXPECT_TRUE(close_rel(got.logits, want.logits, tol)) << "logits";
    float mx = 0.0f;
    for (float v : want.logits) mx = std::max(mx, std::fabs(v));
    EXPECT_GE(top1_agreement(got.logits, want.logits, batch, c.num_classes, tol * mx), 0.99);
  }
  EXPECT_TRUE(close_rel(got.emb, want.emb, tol)) << "embeddings";
  if (attention) EXPECT_TRUE(close_rel(got.attn, want.attn, tol_for(prec))) << "attention";
}

TEST(GpuEngine, VitB16MatchesCpuAllPrecisions) {
  VIT_SKIP_WITHOUT_GPU();
  ViTConfig cfg;  // defaults: ViT-B/16 at 224, 1000 classes
  std::shared_ptr<const Model> model = random_model(cfg, 1234, 1.0f);
  auto cpu = make_cpu_engine(model);
  const int batch = 8;
  const auto img = images_for(cfg, batch);
  const Outputs want = run_engine(*cpu, cfg, img, batch, true);
  for (Precision prec : {Precision::kFP32, Precision::kFP16, Precision::kBF16}) {
    SCOPED_TRACE(precision_name(prec));
    CudaEngineOptions o;
    o.precision = prec;
    o.max_batch = batch;
    auto gpu = make_cuda_engine(model, o);
    const Outputs got = run_engine(*gpu, cfg, img, batch, true);
    const float tol = tol_for(prec);
    EXPECT_TRUE(close_rel(got.logits, want.logits, tol));
    EXPECT_TRUE(close_rel(got.emb, want.emb, tol));
    EXPECT_TRUE(close_rel(got.attn, want.attn, tol_for(prec)));
    float mx = 0.0f;
    for (float v : want.logits) mx = std::max(mx, std::fabs(v));
    EXPECT_GE(top1_agreement(got.logits, want.logits, batch, cfg.num_classes, tol * mx), 0.99);
    auto* ce = dynamic_cast<gpu::CudaEngine*>(gpu.get());
    ASSERT_NE(ce, nullptr);
    EXPECT_GT(ce->arena_bytes(), 0);
    EXPECT_TRUE(ce->bucket_uses_graph(8)) << ce->report();
  }
}

TEST(GpuEngine, ForcedGemmImplementations) {
  VIT_SKIP_WITHOUT_GPU();
  ViTConfig cfg;
  cfg.depth = 2;
  std::shared_ptr<const Model> model = random_model(cfg, 99, 1.0f);
  auto cpu = make_cpu_engine(model);
  for (Precision prec : {Precision::kFP32, Precision::kFP16, Precision::kBF16}) {
    for (GemmChoice g : {GemmChoice::kCustom, GemmChoice::kCublasLt}) {
      SCOPED_TRACE(std::string(precision_name(prec)) + (g == GemmChoice::kCustom ? " custom" : " cublaslt"));
      CudaEngineOptions o;
      o.precision = prec;
      o.max_batch = 3;
      o.gemm = g;
      auto gpu = make_cuda_engine(model, o);
      expect_matches_cpu(*gpu, *cpu, cfg, 3, prec, /*attention=*/true);
    }
  }
}

TEST(GpuEngine, EveryBatchSizeThroughBuckets) {
  VIT_SKIP_WITHOUT_GPU();
  ViTConfig cfg = small_config(64, 64, 16, 128, 2, 2, 10);  // 17 tokens, head dim 64
  std::shared_ptr<const Model> model = random_model(cfg, 7, 1.0f);
  auto cpu = make_cpu_engine(model);
  for (Precision prec : {Precision::kFP32, Precision::kBF16}) {
    CudaEngineOptions o;
    o.precision = prec;
    o.max_batch = 8;
    auto gpu = make_cuda_engine(model, o);
    auto* ce = dynamic_cast<gpu::CudaEngine*>(gpu.get());
    ASSERT_NE(ce, nullptr);
    EXPECT_EQ(ce->buckets(), (std::vector<int>{1, 2, 4, 8}));
    for (int b = 1; b <= 8; ++b) {
      SCOPED_TRACE(std::string(precision_name(prec)) + " batch " + std::to_string(b));
      expect_matches_cpu(*gpu, *cpu, cfg, b, prec);
    }
    SCOPED_TRACE("batch 19 > max_batch: three bucket runs");
    expect_matches_cpu(*gpu, *cpu, cfg, 19, prec);
    for (int b : {1, 2, 4, 8}) EXPECT_TRUE(ce->bucket_uses_graph(b)) << ce->report();
  }
}

TEST(GpuEngine, GraphsAndPlainLaunchesAgreeExactly) {
  VIT_SKIP_WITHOUT_GPU();
  ViTConfig cfg = small_config(48, 48, 16, 96, 3, 2, 5);  // 10 tokens, head dim 32
  std::shared_ptr<const Model> model = random_model(cfg, 3, 1.0f);
  CudaEngineOptions o;
  o.precision = Precision::kFP16;
  o.max_batch = 5;
  o.gemm = GemmChoice::kCustom;
  auto with = make_cuda_engine(model, o);
  o.cuda_graphs = false;
  auto without = make_cuda_engine(model, o);
  const auto img = images_for(cfg, 5);
  const Outputs a = run_engine(*with, cfg, img, 5), b = run_engine(*without, cfg, img, 5);
  EXPECT_EQ(a.logits, b.logits);
  EXPECT_EQ(a.emb, b.emb);
}

TEST(GpuEngine, PoolingVariantsAndHeadDims) {
  VIT_SKIP_WITHOUT_GPU();
  struct V {
    int hidden, heads;
    GlobalPool pool;
    bool final_norm, fc_norm;
    int classes;
  };
  const V variants[] = {
      {160, 2, GlobalPool::kToken, true, false, 7},   // head dim 80 (tensor-core attention)
      {48, 2, GlobalPool::kToken, false, false, 7},   // head dim 24 (SIMT attention), no final norm
      {128, 1, GlobalPool::kAvg, false, true, 11},    // head dim 128, avg pool + fc_norm
      {96, 2, GlobalPool::kAvg, true, false, 0},      // avg after final norm, no classifier
  };
  for (const V& v : variants) {
    ViTConfig cfg = small_config(56, 56, 14, v.hidden, v.heads, 2, v.classes);  // P = 14: K = 588, padded
    cfg.pool = v.pool;
    cfg.final_norm = v.final_norm;
    cfg.fc_norm = v.fc_norm;
    std::shared_ptr<const Model> model = random_model(cfg, 11, 1.0f);
    auto cpu = make_cpu_engine(model);
    for (Precision prec : {Precision::kFP32, Precision::kFP16}) {
      SCOPED_TRACE(std::string(precision_name(prec)) + " hidden " + std::to_string(v.hidden) + " heads " +
                   std::to_string(v.heads));
      CudaEngineOptions o;
      o.precision = prec;
      o.max_batch = 3;
      auto gpu = make_cuda_engine(model, o);
      expect_matches_cpu(*gpu, *cpu, cfg, 3, prec, /*attention=*/true);
    }
  }
}

TEST(GpuEngine, CallerStreamAndConcurrentCallers) {
  VIT_SKIP_WITHOUT_GPU();
  ViTConfig cfg = small_config(64, 64, 16, 128, 2, 2, 10);
  std::shared_ptr<const Model> model = random_model(cfg, 5, 1.0f);
  auto cpu = make_cpu_engine(model);
  cudaStream_t s = nullptr;
  VIT_TEST_CUDA(cudaStreamCreate(&s));
  {
    CudaEngineOptions o;
    o.max_batch = 4;
    o.stream = s;
    auto gpu = make_cuda_engine(model, o);
    expect_matches_cpu(*gpu, *cpu, cfg, 4, Precision::kFP32);
    // Two threads share the engine: runs serialise on its mutex and both stay correct.
    const auto img1 = images_for(cfg, 4), img2 = images_for(cfg, 3);
    const Outputs w1 = run_engine(*cpu, cfg, img1, 4), w2 = run_engine(*cpu, cfg, img2, 3);
    Outputs g1, g2;
    std::thread t1([&] { g1 = run_engine(*gpu, cfg, img1, 4); });
    std::thread t2([&] { g2 = run_engine(*gpu, cfg, img2, 3); });
    t1.join();
    t2.join();
    EXPECT_TRUE(close_rel(g1.logits, w1.logits, 1e-4f));
    EXPECT_TRUE(close_rel(g2.logits, w2.logits, 1e-4f));
  }
  VIT_TEST_CUDA(cudaStreamDestroy(s));
}

TEST(GpuEngine, CancelAndBadArguments) {
  VIT_SKIP_WITHOUT_GPU();
  ViTConfig cfg = small_config(32, 32, 16, 64, 2, 1, 4);
  std::shared_ptr<const Model> model = random_model(cfg, 1, 1.0f);
  CudaEngineOptions o;
  o.max_batch = 2;
  auto gpu = make_cuda_engine(model, o);
  const auto img = images_for(cfg, 2);
  std::vector<float> logits(8, NAN);
  RunOutputs ro;
  ro.logits = logits.data();
  std::atomic<bool> cancel{true};
  try {
    gpu->run(img.data(), 2, ro, &cancel);
    FAIL() << "expected kCancelled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCancelled);
  }
  cancel = false;
  gpu->run(img.data(), 2, ro, &cancel);
  for (float v : logits) EXPECT_TRUE(std::isfinite(v));
  try {
    gpu->run(img.data(), 0, ro);
    FAIL() << "expected kInvalidArgument";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
  try {
    gpu->run(nullptr, 1, ro);
    FAIL() << "expected kInvalidArgument";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

// The benchmark hooks: run_device must give exactly what run() gives (same graph, same arena),
// through a padded bucket, with and without a classifier; profile_nodes must name every node.
TEST(GpuEngine, RunDeviceMatchesRunAndProfileNodes) {
  VIT_SKIP_WITHOUT_GPU();
  for (int classes : {10, 0}) {
    ViTConfig cfg = small_config(64, 64, 16, 128, 2, 2, classes);
    std::shared_ptr<const Model> model = random_model(cfg, 21, 1.0f);
    for (Precision prec : {Precision::kFP32, Precision::kBF16}) {
      SCOPED_TRACE(std::string(precision_name(prec)) + " classes " + std::to_string(classes));
      cudaStream_t s = nullptr;
      VIT_TEST_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      {
        CudaEngineOptions o;
        o.precision = prec;
        o.max_batch = 4;
        o.stream = s;
        auto eng = make_cuda_engine(model, o);
        auto* ce = dynamic_cast<gpu::CudaEngine*>(eng.get());
        ASSERT_NE(ce, nullptr);
        const int batch = 3;  // bucket 4: one padded image
        const auto img = images_for(cfg, batch);
        const Outputs want = run_engine(*eng, cfg, img, batch);
        const std::vector<float>& ref = classes > 0 ? want.logits : want.emb;
        DevMem dimg(DType::F32, img), dout(DType::F32, ref.size());
        dout.poison();
        // The upload and the poison ran on the legacy stream; `s` is non-blocking: order them.
        sync_or_throw();
        ce->run_device(static_cast<const float*>(dimg.get()), batch, static_cast<float*>(dout.get()));
        VIT_TEST_CUDA(cudaStreamSynchronize(s));
        // Same graph and arena: equal up to run-to-run differences of cuBLASLt reductions (if any).
        EXPECT_TRUE(close_rel(dout.download(), ref, 1e-5f));
        ce->run_device(static_cast<const float*>(dimg.get()), batch, nullptr);  // outputs not wanted
        VIT_TEST_CUDA(cudaStreamSynchronize(s));
        EXPECT_THROW(ce->run_device(static_cast<const float*>(dimg.get()), 5, nullptr), Error);  // > max_batch
        EXPECT_THROW(ce->run_device(nullptr, 1, nullptr), Error);

        const auto nodes = ce->profile_nodes(batch, 3);
        ASSERT_FALSE(nodes.empty());
        int gemms = 0, attn = 0;
        for (const auto& n : nodes) {
          EXPECT_FALSE(n.name.empty());
          EXPECT_TRUE(std::isfinite(n.ms) && n.ms >= 0.0) << n.name << " " << n.ms;
          gemms += n.kind == "gemm";
          attn += n.kind == "attention";
        }
        EXPECT_EQ(gemms, 1 + 4 * cfg.depth + (classes > 0 ? 1 : 0));  // patch, 4 per block, head
        EXPECT_EQ(attn, cfg.depth);
        // The engine is still correct after profiling (profile_nodes leaves no state behind).
        const Outputs again = run_engine(*eng, cfg, img, batch);
        EXPECT_TRUE(close_rel(classes > 0 ? again.logits : again.emb, ref, 1e-5f));
      }
      VIT_TEST_CUDA(cudaStreamDestroy(s));
    }
  }
}

// The arena is allocated lazily per bucket: a max_batch far beyond the device's memory costs
// nothing until a batch that large runs (the out-of-memory run itself, and the recovery after
// it, are in test_gpu_engine_small.cpp: OutOfMemoryThenSmallerBatchesRun).
TEST(GpuEngine, HugeMaxBatchAllocatesOnlyWhatRuns) {
  VIT_SKIP_WITHOUT_GPU();
  ViTConfig cfg;  // ViT-B/16: ~5 MB of activations per image -> 100000 images is ~0.5 TB
  cfg.depth = 2;
  std::shared_ptr<const Model> model = random_model(cfg, 2, 1.0f);
  CudaEngineOptions o;
  o.max_batch = 100000;
  auto gpu = make_cuda_engine(model, o);
  auto* ce = dynamic_cast<gpu::CudaEngine*>(gpu.get());
  ASSERT_NE(ce, nullptr);
  size_t free_b = 0, total_b = 0;
  VIT_TEST_CUDA(cudaMemGetInfo(&free_b, &total_b));
  EXPECT_EQ(ce->arena_bytes(), 0);
  EXPECT_GT(ce->arena_bytes_for(100000), static_cast<int64_t>(total_b));
  auto cpu = make_cpu_engine(model);
  expect_matches_cpu(*gpu, *cpu, cfg, 2, Precision::kFP32);
  EXPECT_EQ(ce->arena_bytes(), ce->arena_bytes_for(2));
}

}  // namespace
}  // namespace vit::test
