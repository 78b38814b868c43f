// vit-infer GPU tests: the CUDA engine on every golden fixture (golden_cases.h: timm, HF and JAX
// checkpoints saved by the frameworks themselves, with their float64 logits and embeddings), in
// fp32, fp16 and bf16, and with each GEMM implementation. Checks, per precision (tol_golden_rel in
// tolerances.h): logits and embeddings within the bound of the framework's numbers, and the
// same top-1 as the CPU engine (and as the framework) on every row: the issue's "same top-1 on
// every golden fixture, in every precision". Built twice: against the real CUDA runtime (skips
// without a device) and against the CPU emulator (ctest "emu.GpuGolden*", runs everywhere).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_engine.h"
#include "golden_cases.h"
#include "gpu/cuda_engine.h"
#include "model/model.h"
#include "test_gpu_util.h"
#include "test_util.h"

namespace vit::test {
namespace {

struct Result {
  std::vector<float> logits, emb;  // [B, C], [B, D]
};

Result run_engine(Engine& e, const GoldenCase& gc, const ViTConfig& cfg) {
  const int batch = gc.batch();
  Result r;
  r.logits.assign(static_cast<size_t>(batch) * std::max(cfg.num_classes, 1), NAN);  // poisoned
  r.emb.assign(static_cast<size_t>(batch) * cfg.embed_dim(), NAN);
  RunOutputs out;
  out.logits = gc.has_logits ? r.logits.data() : nullptr;
  out.embeddings = r.emb.data();
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

class GpuGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuGolden, MatchesFrameworkAndCpuTop1EveryPrecision) {
  VIT_SKIP_WITHOUT_GPU();
  const GoldenCase gc = load_golden_case(GetParam());
  SCOPED_TRACE(gc.name + " (" + gc.framework + ")");
  std::shared_ptr<const Model> model = load_model(gc.model_path, gc.overrides);
  const ViTConfig& cfg = model->cfg;
  const int batch = gc.batch();
  ASSERT_EQ(gc.input.shape[2], cfg.image_h);
  ASSERT_EQ(gc.input.shape[3], cfg.image_w);

  auto cpu_engine = make_cpu_engine(model, 2);
  const Result cpu = run_engine(*cpu_engine, gc, cfg);
  if (gc.has_logits) {
    // The oracle itself agrees with the framework (test_golden checks the values).
    for (int b = 0; b < batch; ++b)
      ASSERT_EQ(argmax_row(cpu.logits.data(), cfg.num_classes, b), argmax_row(gc.logits.ptr(), cfg.num_classes, b));
  }
  const std::vector<float> gaps = gc.has_logits ? top2_gaps(gc.logits.ptr(), batch, cfg.num_classes)
                                                : std::vector<float>{};

  for (Precision prec : {Precision::kFP32, Precision::kFP16, Precision::kBF16}) {
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
      if (!gc.has_logits) continue;
      EXPECT_TRUE(close_rel(got.logits, gc.logits.data, tol_golden_rel(dt))) << "logits vs " << gc.framework;
      for (int b = 0; b < batch; ++b) {
        EXPECT_EQ(argmax_row(got.logits.data(), cfg.num_classes, b), argmax_row(cpu.logits.data(), cfg.num_classes, b))
            << "top-1 of row " << b << " differs from the CPU engine (reference top-2 gap " << gaps[b] << ")";
      }
    }
  }
}

std::string case_test_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

INSTANTIATE_TEST_SUITE_P(Golden, GpuGolden, ::testing::ValuesIn(list_golden_cases()), case_test_name);

// The families (tests/data/golden_families) run on the graph backends; until the CUDA backend
// executes the graph, the CUDA engine refuses each by family and feature name, never runs one
// as a plain ViT.
TEST(GpuGoldenFamilies, RefusedByName) {
  VIT_SKIP_WITHOUT_GPU();
  const std::vector<std::string> names = list_golden_cases(kFamilySet);
  ASSERT_GE(names.size(), 10u);
  for (const std::string& name : names) {
    const GoldenCase gc = load_golden_case(name, kFamilySet);
    std::shared_ptr<const Model> model = load_model(gc.model_path, gc.overrides);
    const std::vector<std::string> feats = model->cfg.graph_only_features();
    if (feats.empty()) continue;  // e.g. no final norm alone: the CUDA engine runs it (checked below)
    CudaEngineOptions o;
    o.max_batch = gc.batch();
    try {
      make_cuda_engine(model, o);
      ADD_FAILURE() << name << ": make_cuda_engine accepted a model with " << feats.front();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << name;
      const std::string msg = e.what();
      EXPECT_NE(msg.find(model->cfg.family()), std::string::npos) << name << ": " << msg;
      for (const std::string& f : feats) EXPECT_NE(msg.find(f), std::string::npos) << name << ": " << msg;
    }
  }
  // A family whose only difference the CUDA engine already runs (no final norm) is not refused.
  const GoldenCase gc = load_golden_case("fam_nonorm", kFamilySet);
  std::shared_ptr<const Model> model = load_model(gc.model_path, gc.overrides);
  EXPECT_TRUE(model->cfg.graph_only_features().empty());
  CudaEngineOptions o;
  o.precision = Precision::kFP32;
  o.max_batch = gc.batch();
  auto gpu = make_cuda_engine(model, o);
  const Result got = run_engine(*gpu, gc, model->cfg);
  EXPECT_TRUE(close_rel(got.logits, gc.logits.data, tol_golden_rel(DType::F32))) << "fam_nonorm logits";
}

// A missing tests/data/golden must fail, not pass with zero instances.
TEST(GpuGoldenData, CasesPresent) { EXPECT_GE(list_golden_cases().size(), 9u); }

}  // namespace
}  // namespace vit::test
