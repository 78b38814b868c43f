// vit-infer GPU tests: the CUDA engine on every golden fixture (golden_cases.h: timm, HF and JAX
// checkpoints saved by the frameworks themselves, with their float64 logits and embeddings), in
// fp32, fp16 and bf16, and with each GEMM implementation. Checks, per precision (tol_golden_rel in
// tolerances.h): logits and embeddings within the bound of the framework's numbers, and the
// same top-1 as the CPU engine (and as the framework) on every row: the issue's "same top-1 on
// every golden fixture, in every precision". Built twice: against the real CUDA runtime (skips
// without a device; every fixture in every precision) and against the CPU emulator (ctest
// "emu.Golden*", "emu.Families*", "emu.Dynamic*", runs everywhere: one run per family and precision,
// emulated_runs.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_engine.h"
#include "emulated_runs.h"
#include "golden_cases.h"
#include "gpu/cuda_engine.h"
#include "model/model.h"
#include "test_gpu_util.h"
#include "test_util.h"

namespace vit::test {
namespace {

struct Result {
  std::vector<float> logits, emb, feat;  // [B, C], [B, D], [B, T, D]
};

Result run_engine(Engine& e, const GoldenCase& gc, const ViTConfig& cfg) {
  const int batch = gc.batch();
  Result r;
  r.logits.assign(static_cast<size_t>(batch) * std::max(cfg.num_classes, 1), NAN);  // poisoned
  r.emb.assign(static_cast<size_t>(batch) * cfg.embed_dim(), NAN);
  r.feat.assign(static_cast<size_t>(batch) * cfg.tokens() * cfg.hidden, NAN);
  RunOutputs out;
  out.logits = gc.has_logits ? r.logits.data() : nullptr;
  out.embeddings = r.emb.data();
  out.features = r.feat.data();
  e.run(gc.input.ptr(), batch, out);
  if (!gc.has_logits) r.logits.clear();
  return r;
}

const char* gemm_name(GemmChoice g) {
  return g == GemmChoice::kCustom ? "custom" : g == GemmChoice::kCublasLt ? "cublaslt" : "auto";
}

// The emulator runs ~10^7 MAC/s and has no cuBLASLt (gpu_emu/lt_gemm_stub.cpp: kCublasLt falls
// back to the custom kernels, which auto then picks among), so it takes auto; a GPU takes all three.
std::vector<GemmChoice> gemms() {
#ifdef VIT_GPU_EMU_BUILD
  return {GemmChoice::kAuto};
#else
  return {GemmChoice::kAuto, GemmChoice::kCustom, GemmChoice::kCublasLt};
#endif
}

#ifdef VIT_GPU_EMU_BUILD
constexpr bool kEmulated = true;
#else
constexpr bool kEmulated = false;
#endif

// Runs fixture run.name of run.set through the CUDA engine in run.precisions (and every GEMM
// choice) and checks it against the framework's numbers and the CPU engine's top-1. A model with
// a feature the CUDA kernels do not have yet (ViTConfig::graph_only_features) must instead be
// refused, by family and by each feature's name, never run as something else.
void check_gpu_case(const GoldenRun& run) {
  const std::string& name = run.name;
  if (!run.family.empty()) std::printf("  emulated run of family '%s'\n", run.family.c_str());
  const GoldenCase gc = load_golden_case(name, run.set);
  SCOPED_TRACE(gc.name + " (" + gc.framework + ")");
  std::shared_ptr<const Model> model = load_model(gc.model_path, gc.overrides);
  const ViTConfig& cfg = model->cfg;
  const int batch = gc.batch();
  ASSERT_EQ(gc.input.shape[2], cfg.image_h);
  ASSERT_EQ(gc.input.shape[3], cfg.image_w);

  if (const std::vector<std::string> feats = cfg.graph_only_features(); !feats.empty()) {
    CudaEngineOptions o;
    o.max_batch = batch;
    try {
      make_cuda_engine(model, o);
      ADD_FAILURE() << name << ": make_cuda_engine accepted a model with " << feats.front();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << name;
      const std::string msg = e.what();
      EXPECT_NE(msg.find(cfg.family()), std::string::npos) << name << ": " << msg;
      for (const std::string& f : feats) EXPECT_NE(msg.find(f), std::string::npos) << name << ": " << msg;
    }
    return;
  }

  auto cpu_engine = make_cpu_engine(model, 2);
  const Result cpu = run_engine(*cpu_engine, gc, cfg);
  const float* ref_logits = gc.has_logits ? gc.logits.ptr() : nullptr;
  if (gc.has_logits) {
    // The oracle itself agrees with the framework (test_golden checks the values).
    const float slack = top1_slack(ref_logits, gc.logits.data.size(), tol_golden_rel(DType::F32));
    for (int b = 0; b < batch; ++b) expect_top1(name, "the framework (CPU engine)", cpu.logits.data(), ref_logits, cfg.num_classes, b, slack);
  }

  for (Precision prec : run.precisions) {
    const DType dt = storage_type(prec);
    for (GemmChoice g : gemms()) {
      SCOPED_TRACE(std::string(dt_label(dt)) + ", gemm " + gemm_name(g));
      CudaEngineOptions o;
      o.precision = prec;
      o.gemm = g;
      o.max_batch = batch;
      std::unique_ptr<Engine> gpu;
      try {
        gpu = make_cuda_engine(model, o);
      } catch (const Error& e) {
        FAIL() << "make_cuda_engine: [" << error_code_name(e.code()) << "] " << e.what();
      }
      const Result got = run_engine(*gpu, gc, cfg);
      EXPECT_TRUE(close_rel(got.emb, gc.embeddings.data, tol_golden_rel(dt))) << "embeddings vs " << gc.framework;
      EXPECT_TRUE(close_rel(got.feat, gc.final_tokens.data, tol_golden_rel(dt))) << "features vs " << gc.framework;
      if (!gc.has_logits) continue;
      EXPECT_TRUE(close_rel(got.logits, gc.logits.data, tol_golden_rel(dt))) << "logits vs " << gc.framework;
      // Top-1 as the framework's and the CPU engine's, but for a near-tie this precision cannot
      // decide (expect_top1: within 2 x tol x max|logit|).
      const float slack = top1_slack(ref_logits, gc.logits.data.size(), tol_golden_rel(dt));
      for (int b = 0; b < batch; ++b) {
        expect_top1(name, gc.framework.c_str(), got.logits.data(), ref_logits, cfg.num_classes, b, slack);
        expect_top1(name, "the CPU engine", got.logits.data(), cpu.logits.data(), cfg.num_classes, b, slack);
      }
    }
  }
}

class GpuGolden : public ::testing::TestWithParam<GoldenRun> {};
TEST_P(GpuGolden, MatchesFrameworkAndCpuTop1EveryPrecision) {
  VIT_SKIP_WITHOUT_GPU();
  check_gpu_case(GetParam());
}

// The families (tests/data/golden_families): registers, no_embed_class, no class token with avg /
// max / avgmax pooling, LayerScale, CLIP towers (pre-norm, no patch bias, quick-GELU, eps 1e-5),
// SigLIP gap towers, tanh-GELU, no qkv bias, no final norm, DeiT distilled (two heads).
class GpuGoldenFamilies : public ::testing::TestWithParam<GoldenRun> {};
TEST_P(GpuGoldenFamilies, MatchFrameworkEveryPrecisionOrRefusedByName) {
  VIT_SKIP_WITHOUT_GPU();
  check_gpu_case(GetParam());
}

// Per-run sizes (tests/data/golden_dynamic): one CUDA engine per precision runs every size of the
// case in turn (run_at: a lowered graph, buckets and CUDA graphs per size, the model's weights
// shared), against the framework within the golden bound of each precision.
class GpuGoldenDynamic : public ::testing::TestWithParam<GoldenRun> {};
TEST_P(GpuGoldenDynamic, EverySizeMatchesFramework) {
  VIT_SKIP_WITHOUT_GPU();
  const GoldenRun& run = GetParam();
  if (!run.family.empty()) std::printf("  emulated run of family '%s'\n", run.family.c_str());
  std::vector<DType> dts;
  for (Precision p : run.precisions) dts.push_back(storage_type(p));
  check_dynamic_case(run.name, dts,
                     [](std::shared_ptr<const Model> m, DType d) {
                       CudaEngineOptions o;
                       o.precision = find_precision(d)->precision;
                       o.max_batch = 2;  // runs of 3 images take two chunks
                       return make_cuda_engine(m, o);
                     },
                     [](DType d) { return tol_golden_rel(d); });
}

std::string run_test_name(const ::testing::TestParamInfo<GoldenRun>& info) { return info.param.test_name(); }

INSTANTIATE_TEST_SUITE_P(Golden, GpuGolden, ::testing::ValuesIn(golden_runs(kGoldenSet, kEmulated)), run_test_name);
INSTANTIATE_TEST_SUITE_P(Families, GpuGoldenFamilies, ::testing::ValuesIn(golden_runs(kFamilySet, kEmulated)),
                         run_test_name);
INSTANTIATE_TEST_SUITE_P(Dynamic, GpuGoldenDynamic, ::testing::ValuesIn(golden_runs(kDynamicSet, kEmulated)),
                         run_test_name);

// A missing tests/data/golden must fail, not pass with zero instances.
TEST(GpuGoldenData, CasesPresent) {
  EXPECT_GE(list_golden_cases().size(), 9u);
  EXPECT_GE(list_golden_cases(kFamilySet).size(), 12u);
  EXPECT_GE(list_golden_cases(kDynamicSet).size(), 6u);
  // Every set has runs (the sanitizer build runs only the families marked asan: no dynamic ones).
  EXPECT_FALSE(golden_runs(kGoldenSet, kEmulated).empty());
  EXPECT_FALSE(golden_runs(kFamilySet, kEmulated).empty());
  if (!kEmulated || !sanitizer_build()) EXPECT_FALSE(golden_runs(kDynamicSet, kEmulated).empty());
}

}  // namespace
}  // namespace vit::test

// The sanitizer build's emulator runs no dynamic-size family (emulated_runs.cpp); CasesPresent
// above fails where a set has no runs it should have.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GpuGoldenDynamic);
