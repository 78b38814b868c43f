// Golden tests: every fixture under tests/data/golden/<case>/ (golden_cases.h; made by
// tools/make_golden.py with timm / transformers' own code and savers) is loaded with
// vit::load_model, run on the CPU engine, and compared with the framework's logits [B, C] and
// pooled embeddings [B, D]; then the fast CPU engine in fp32 (same bound) and bf16
// (tol_golden_rel(BF16), and the reference engine's top-1 on every row).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_engine.h"
#include "cpu/int8.h"
#include "emulated_runs.h"
#include "io/npy.h"
#include "golden_cases.h"
#include "model/model.h"
#include "test_util.h"
#include "tolerances.h"

namespace {

// The references are float64 forward passes of the frameworks; the engine runs fp32 with
// different summation orders. Over 1-2 blocks that costs ~1e-6 relative; 1e-4 leaves room
// for that while still failing on semantic slips (tanh-GELU instead of erf alone moves these
// logits by ~1.8e-4 relative, a wrong pos-embed resampling kernel by ~1e-1).
constexpr float kRelTol = 1e-4f;

// Compares ours vs the framework's [rows, cols] (or [B, T, cols]) output: bound = rel_tol * max|ref|.
void expect_close(const std::string& case_name, const char* what, const std::vector<float>& ours,
                  const vit::Tensor& ref, float rel_tol = kRelTol) {
  ASSERT_GE(ref.shape.size(), 2u) << case_name << " " << what;
  ASSERT_EQ(ours.size(), static_cast<size_t>(ref.numel())) << case_name << " " << what;
  const int64_t cols = ref.shape.back();
  const float scale = vit::test::max_abs(ref.ptr(), ref.data.size());
  ASSERT_GT(scale, 0.0f) << case_name << ": reference " << what << " are all zero";
  const float tol = rel_tol * scale;
  float worst = -1.0f;
  size_t wi = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    float d = std::fabs(ours[i] - ref.data[i]);
    if (!(d == d)) d = std::numeric_limits<float>::infinity();  // NaN: never written / bad math
    if (d > worst) worst = d, wi = i;
  }
  // Recorded in the XML report (--gtest_output=xml) so the margin to kRelTol stays visible.
  std::ostringstream rel;
  rel << std::scientific << std::setprecision(2) << worst / scale;
  ::testing::Test::RecordProperty(std::string(what) + "_rel_err", rel.str());
  EXPECT_LE(worst, tol) << case_name << " " << what << ": max |ours - framework| = " << worst
                        << " > " << tol << " (= " << rel_tol << " x max|ref| " << scale
                        << ") at [" << wi / cols << ", " << wi % cols << "]: ours " << ours[wi]
                        << ", framework " << ref.data[wi];
}

// Loads the case of `set`, runs it on the CPU engine, compares logits, embeddings and top-1
// (expect_top1, golden_cases.h: the framework's class, or one of a near-tie within the slack).
void check_case(const std::string& name, const std::string& set) {
  const vit::test::GoldenCase gc = vit::test::load_golden_case(name, set);
  SCOPED_TRACE(name + " (" + gc.framework + ", " + gc.model_path + ")");

  std::shared_ptr<const vit::Model> model;
  try {
    model = vit::load_model(gc.model_path, gc.overrides);
  } catch (const vit::Error& e) {
    FAIL() << name << ": load_model failed: [" << vit::error_code_name(e.code()) << "] " << e.what();
  }
  const vit::ViTConfig& cfg = model->cfg;

  const vit::Tensor& input = gc.input;          // [B, 3, H, W]
  const vit::Tensor& ref_emb = gc.embeddings;   // [B, D]
  const bool has_logits = gc.has_logits;
  const vit::Tensor& ref_logits = gc.logits;    // [B, C]

  const int batch = gc.batch();
  ASSERT_EQ(input.shape[1], cfg.in_chans) << name;
  ASSERT_EQ(input.shape[2], cfg.image_h) << name << ": engine runs at a different size";
  ASSERT_EQ(input.shape[3], cfg.image_w) << name;
  ASSERT_EQ(ref_emb.shape, (std::vector<int64_t>{batch, cfg.embed_dim()})) << name;
  if (has_logits) {
    ASSERT_EQ(ref_logits.shape, (std::vector<int64_t>{batch, cfg.num_classes})) << name;
  } else {
    EXPECT_EQ(cfg.num_classes, 0) << name << ": the framework model has no classifier";
  }

  const float nan = std::numeric_limits<float>::quiet_NaN();
  const int C = cfg.num_classes;
  struct Kind {
    const char* label;
    vit::DType precision;
    bool reference;
  };
  // The fused graph (the product default) and, for the families whose embed / head / pool
  // variants the fusion pass rewrites, the unfused one too; each through the reference engine
  // and the fast engine in fp32 and bf16.
  for (const bool fusion : {true, false}) {
    if (!fusion && set != vit::test::kFamilySet) break;
    SCOPED_TRACE(fusion ? "fused graph" : "unfused graph");
    std::vector<float> ref_engine_logits;  // the reference engine's, for the bf16 top-1 check
    for (const Kind& k : {Kind{"reference", vit::DType::F32, true}, Kind{"fast fp32", vit::DType::F32, false},
                          Kind{"fast bf16", vit::DType::BF16, false}}) {
      std::vector<float> logits(static_cast<size_t>(batch) * std::max(C, 0), nan);
      std::vector<float> emb(static_cast<size_t>(batch) * cfg.embed_dim(), nan);
      std::vector<float> feat(gc.final_tokens.data.size(), nan);
      vit::RunOutputs out;
      out.logits = has_logits ? logits.data() : nullptr;
      out.embeddings = emb.data();
      out.features = feat.data();
      std::unique_ptr<vit::Engine> engine;
      try {
        engine = k.reference ? vit::make_cpu_engine(model, 2, fusion)
                             : vit::make_fast_cpu_engine(model, k.precision, 2, fusion);
        engine->run(input.ptr(), batch, out);
      } catch (const vit::Error& e) {
        FAIL() << name << " " << k.label << ": run failed: [" << vit::error_code_name(e.code()) << "] " << e.what();
      }
      SCOPED_TRACE(engine->name());
      const bool bf16 = std::string(engine->name()).find("bf16") != std::string::npos;
      const float tol = bf16 ? vit::test::tol_golden_rel(vit::DType::BF16) : kRelTol;
      expect_close(name, "embeddings", emb, ref_emb, tol);
      expect_close(name, "features (final tokens)", feat, gc.final_tokens, tol);
      if (!has_logits) continue;
      expect_close(name, "logits", logits, ref_logits, tol);
      if (k.reference) ref_engine_logits = logits;
      const float slack = vit::test::top1_slack(ref_logits.ptr(), ref_logits.data.size(), tol);
      for (int b = 0; b < batch; ++b) {
        vit::test::expect_top1(name, "the framework", logits.data(), ref_logits.ptr(), C, b, slack);
        vit::test::expect_top1(name, "the reference engine", logits.data(), ref_engine_logits.data(), C, b, slack);
      }
    }
  }
  // int8 (the fused graph): static, calibrated on the fixture's own images, and dynamic per token,
  // within the int8 row's tolerance (core/precision.h: these are random-initialised or barely
  // trained towers of 1-2 blocks, whose activations use the 8-bit range as a trained ViT's do not;
  // the worst fixture measured 0.15, most under 0.08).
  const float tol8 = vit::test::tol_golden_rel(vit::Precision::kINT8);
  auto cal = std::make_shared<vit::int8::Calibration>([&] {
    vit::int8::Calibrator c(model, 2);
    c.add(input.ptr(), batch);
    return c.result();
  }());
  for (bool dynamic : {false, true}) {
    vit::Int8Options opt;
    opt.find_calibration = false;
    if (!dynamic) opt.calibration = cal;
    std::vector<float> logits(static_cast<size_t>(batch) * std::max(C, 0), nan);
    std::vector<float> emb(static_cast<size_t>(batch) * cfg.embed_dim(), nan);
    vit::RunOutputs out;
    out.logits = has_logits ? logits.data() : nullptr;
    out.embeddings = emb.data();
    std::unique_ptr<vit::Engine> engine;
    try {
      engine = vit::make_int8_cpu_engine(model, opt, 2);
      engine->run(input.ptr(), batch, out);
    } catch (const vit::Error& e) {
      FAIL() << name << " int8: run failed: [" << vit::error_code_name(e.code()) << "] " << e.what();
    }
    SCOPED_TRACE(engine->name());
    expect_close(name, dynamic ? "int8 dynamic embeddings" : "int8 static embeddings", emb, ref_emb, tol8);
    if (has_logits) expect_close(name, dynamic ? "int8 dynamic logits" : "int8 static logits", logits, ref_logits, tol8);
  }
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};
TEST_P(GoldenTest, MatchesFramework) { check_case(GetParam(), vit::test::kGoldenSet); }

// The families (tests/data/golden_families): registers, no_embed_class, no cls, avg / avgmax /
// max pools, CLIP towers (pre-norm, quick-GELU, eps 1e-5), tanh-GELU, DeiT distilled, the
// attention-pool head (timm map towers, transformers' SiglipVisionModel), and their HF layouts
// (DeiT, CLIP vision towers with / without projection, DINOv2 with / without registers).
class FamilyGoldenTest : public ::testing::TestWithParam<std::string> {};
TEST_P(FamilyGoldenTest, MatchesFramework) { check_case(GetParam(), vit::test::kFamilySet); }

std::string case_test_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

INSTANTIATE_TEST_SUITE_P(Golden, GoldenTest, ::testing::ValuesIn(vit::test::list_golden_cases()), case_test_name);
INSTANTIATE_TEST_SUITE_P(Families, FamilyGoldenTest,
                         ::testing::ValuesIn(vit::test::list_golden_cases(vit::test::kFamilySet)), case_test_name);

// Per-run sizes (tests/data/golden_dynamic): one engine per precision runs every size of the
// case in turn (Engine::run_at): the reference and fast fp32 within 1e-4 of the framework, fast
// bf16 within the bf16 golden bound.
class DynamicSizeTest : public ::testing::TestWithParam<std::string> {};
TEST_P(DynamicSizeTest, EverySizeMatchesFramework) {
  using vit::DType;
  const auto tol = [](DType d) { return vit::test::tol_golden_rel(d); };
  vit::test::check_dynamic_case(GetParam(), {DType::F32},
                                [](std::shared_ptr<const vit::Model> m, DType) { return vit::make_cpu_engine(m, 2); }, tol);
  vit::test::check_dynamic_case(GetParam(), {DType::F32, DType::BF16},
                                [](std::shared_ptr<const vit::Model> m, DType d) {
                                  return vit::make_fast_cpu_engine(m, d, 2);
                                },
                                tol);
}
INSTANTIATE_TEST_SUITE_P(Dynamic, DynamicSizeTest,
                         ::testing::ValuesIn(vit::test::list_golden_cases(vit::test::kDynamicSet)), case_test_name);

// A missing or emptied tests/data/golden must fail loudly, not pass with zero cases.
TEST(GoldenData, AllCasesPresent) {
  const std::vector<std::string> cases = vit::test::list_golden_cases();
  EXPECT_GE(cases.size(), 9u) << "expected >= 9 golden cases under " << vit::test::data_path("golden")
                              << "; regenerate with tools/make_golden.py";
  for (const char* must : {"timm_token", "timm_avg", "hf_cls", "hf_bare", "jax_npz", "resample",
                           "f16", "bf16", "timm_197", "timm_layerscale"}) {
    EXPECT_TRUE(std::find(cases.begin(), cases.end(), must) != cases.end()) << "missing " << must;
  }
  const std::vector<std::string> fams = vit::test::list_golden_cases(vit::test::kFamilySet);
  for (const char* must : {"fam_reg_noembedcls", "fam_reg_avg", "fam_gap_nocls", "fam_avgmax_tanh", "fam_max",
                           "fam_nonorm", "fam_clip_quickgelu", "fam_clip", "fam_siglip_gap", "fam_deit_distilled",
                           "fam_reg4_gap_ls", "fam_dinov2_reg4", "fam_siglip_map", "fam_siglip2_map_tanh",
                           "fam_reg4_map", "fam_map_latent2", "hf_siglip_vision", "hf_aimv2_vision", "hf_aimv2_vision_bias",
                           // tools/make_golden_hf.py: the HF layouts of the families
                           "hf_deit_teacher", "hf_deit_cls", "hf_deit_bare", "hf_clip", "hf_clip_proj", "hf_dinov2",
                           "hf_dinov2_reg", "hf_dinov2_48", "hf_dinov2_reg_24", "hf_clip_proj_56",
                           "hf_deit_teacher_48", "hf_dinov2_cls", "hf_dinov2_reg_cls", "hf_clip_model", "hf_siglip_model",
                           // tools/make_golden_families.py: open_clip's own layout
                           "oc_openai", "oc_avg_ls",
                           // block / pool variants: ResPostBlock, pool_include_prefix
                           "fam_respost", "fam_prefix_map", "fam_prefix_avg"}) {
    EXPECT_TRUE(std::find(fams.begin(), fams.end(), must) != fams.end())
        << "missing family fixture " << must << "; regenerate with tools/make_golden_families.py / make_golden_hf.py";
  }  const std::vector<std::string> dyn = vit::test::list_golden_cases(vit::test::kDynamicSet);
  for (const char* must : {"dyn_vit", "dyn_reg4_gap", "dyn_siglip_map", "dyn_hf_dinov2", "dyn_hf_dinov2_reg", "dyn_hf_siglip", "dyn_hf_vit"}) {
    EXPECT_TRUE(std::find(dyn.begin(), dyn.end(), must) != dyn.end())
        << "missing dynamic-size fixture " << must << "; regenerate with tools/make_golden_dynamic.py";
  }
}

// Every fixture belongs to exactly one emulated family (emulated_runs.h: the emulator runs one
// fixture per family and precision, so a fixture in no family would lose its emulated CUDA coverage
// unseen, and a fixture listed twice or a family of fixtures that do not exist would count wrong).
TEST(GoldenData, EveryFixtureInOneEmulatedFamily) {
  for (const char* set : {vit::test::kGoldenSet, vit::test::kFamilySet, vit::test::kDynamicSet}) {
    SCOPED_TRACE(set);
    std::map<std::string, std::string> family_of;
    for (const vit::test::EmulatedFamily& f : vit::test::emulated_families()) {
      if (std::string(f.set) != set) continue;
      EXPECT_FALSE(f.cases.empty()) << f.name;
      for (const std::string& c : f.cases) {
        const auto [it, fresh] = family_of.emplace(c, f.name);
        EXPECT_TRUE(fresh) << c << " is listed in '" << it->second << "' and in '" << f.name << "'";
      }
    }
    const std::vector<std::string> cases = vit::test::list_golden_cases(set);
    for (const std::string& c : cases)
      EXPECT_TRUE(family_of.count(c)) << "fixture " << set << "/" << c
                                      << " is in no emulated family: add it to a row of tests/emulated_runs.cpp";
    for (const auto& [c, fam] : family_of)
      EXPECT_TRUE(std::find(cases.begin(), cases.end(), c) != cases.end())
          << "'" << fam << "' lists " << c << ", which is not a fixture of tests/data/" << set;
    // The emulator's runs: every family of the set once in each CUDA precision.
    std::map<std::string, std::set<vit::Precision>> ran;
    for (const vit::test::GoldenRun& r : vit::test::golden_runs(set, true)) {
      ASSERT_EQ(r.precisions.size(), 1u) << r.name;
      EXPECT_TRUE(ran[r.family].insert(r.precisions[0]).second) << r.family << " runs " << r.test_name() << " twice";
    }
    for (const vit::test::EmulatedFamily& f : vit::test::emulated_families())
      if (std::string(f.set) == set && (f.asan || !vit::test::sanitizer_build()))
        EXPECT_EQ(ran[f.name].size(), std::size(vit::test::kCudaPrecisions)) << f.name;
  }
}

}  // namespace

// With no case dirs the parameterised suite has no instances; GoldenData reports that instead.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenTest);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FamilyGoldenTest);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(DynamicSizeTest);
