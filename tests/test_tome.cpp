// vit-infer tests: token merging (ToMe, Bolya et al. 2023). The merge rules on hand-checked
// inputs (the reference op, ref::tome_merge), the graph's schedule and refusals, the session
// parameter through the C API, and the fixtures of tools/make_golden_tome.py (tests/data/
// golden_tome: the paper's algorithm, facebookresearch/ToMe's merge.py + timm patch, applied to timm
// models in float64): the reference and fast fp32 engines within 1e-4, bf16 within its golden bound
// where the fixture's decisions are farther from a tie than bf16's error. Built twice more: against
// the CUDA runtime (test_tome_cuda: every case, every precision; skips without a device) and the
// emulator (test_gpu_emu_tome, ctest "emu.Tome*": the one small case in fp32, CI's only emulated
// whole-model ToMe run).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/precision.h"
#include "cpu/cpu_engine.h"
#include "io/npy.h"
#include "model/model.h"
#include "test_util.h"
#include "tolerances.h"

#ifdef VIT_TEST_TOME_CUDA
#include "gpu/cuda_engine.h"
#include "test_gpu_util.h"
#else
#include "cpu/ref_ops.h"
#include "graph/graph.h"
#include "model_fixture.h"
#include "vit/vit.h"
#endif

namespace vit::test {
namespace {

// --- the fixtures -------------------------------------------------------------------------------

struct TomeCase {
  std::string name, model_path;
  int r = 0;
  double margin = 0.0;           // the smallest decision gap in float64 (case.json decision_margin)
  std::vector<int> tokens;       // entering each block, then the head
  Tensor input, logits, embeddings;
  int batch() const { return static_cast<int>(input.shape.at(0)); }
};

std::vector<std::string> tome_cases() {
  std::vector<std::string> v;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(data_path("golden_tome"), ec), end; !ec && it != end; it.increment(ec))
    if (std::filesystem::exists(it->path() / "case.json")) v.push_back(it->path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

TomeCase load_tome_case(const std::string& name) {
  TomeCase c;
  c.name = name;
  const std::string dir = data_path("golden_tome/" + name);
  std::ifstream f(dir + "/case.json");
  const nlohmann::json j = nlohmann::json::parse(f);
  c.model_path = dir + "/" + j.at("model").get<std::string>();
  c.r = j.at("tome").get<int>();
  c.margin = j.at("decision_margin").get<double>();
  c.tokens = j.at("tokens").get<std::vector<int>>();
  c.input = read_npy(dir + "/input.npy");
  c.logits = read_npy(dir + "/logits.npy");
  c.embeddings = read_npy(dir + "/embeddings.npy");
  return c;
}

struct Out {
  std::vector<float> logits, emb;
};

Out run(Engine& e, const TomeCase& c, const ViTConfig& cfg) {
  Out o;
  o.logits.assign(static_cast<size_t>(c.batch()) * cfg.num_classes, NAN);  // poisoned
  o.emb.assign(static_cast<size_t>(c.batch()) * cfg.embed_dim(), NAN);
  RunOutputs out;
  out.logits = o.logits.data();
  out.embeddings = o.emb.data();
  e.run(c.input.ptr(), c.batch(), out);
  return o;
}

// Logits and embeddings within tol of the paper's float64 numbers, and the same top-1.
void expect_matches(const TomeCase& c, const Out& got, float tol) {
  EXPECT_TRUE(close_rel(got.logits, c.logits.data, tol)) << c.name << " logits vs the paper's algorithm";
  EXPECT_TRUE(close_rel(got.emb, c.embeddings.data, tol)) << c.name << " embeddings vs the paper's algorithm";
  const int64_t C = c.logits.shape.at(1);
  for (int b = 0; b < c.batch(); ++b) {
    const float* g = got.logits.data() + b * C;
    const float* w = c.logits.ptr() + b * C;
    EXPECT_EQ(std::max_element(g, g + C) - g, std::max_element(w, w + C) - w) << c.name << " top-1 of image " << b;
  }
}

class TomeGolden : public ::testing::TestWithParam<std::string> {};

std::string case_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

// bf16's similarities are ~1e-2 from float64's: a fixture whose decisions are closer than that to
// a tie may merge another pair in bf16 (a different, equally valid ToMe result).
constexpr double kBf16DecisionGap = 4e-2;

#ifndef VIT_TEST_TOME_CUDA

// --- the merge rules, by hand -------------------------------------------------------------------
// Five tokens, metric rows (hd 2): t0 (1, 0), t1 (0, 1), t2 (0, 1), t3 (1, 0), t4 (0.6, 0.8).
// A = {t0, t2, t4}, B = {t1, t3}. Cosine similarities: t0 -> t1 0, t3 1; t2 -> t1 1, t3 0;
// t4 -> t1 0.8, t3 0.6. x row t is (t, 10 t, 100 t); sizes 1, 2, 3, 1, 1.
struct Merged {
  std::vector<float> y, size;
};
Merged merge5(int r, int prefix, bool sizes) {
  const std::vector<float> metric = {1, 0, 0, 1, 0, 1, 1, 0, 0.6f, 0.8f};
  std::vector<float> x;
  for (int t = 0; t < 5; ++t) x.insert(x.end(), {float(t), 10.0f * t, 100.0f * t});
  const std::vector<float> sz = {1, 2, 3, 1, 1};
  Merged m;
  m.y.assign(static_cast<size_t>(3 * (5 - r)), NAN);
  m.size.assign(static_cast<size_t>(5 - r), NAN);
  ref::tome_merge(x.data(), metric.data(), sizes ? sz.data() : nullptr, m.y.data(), m.size.data(), 1, 5, 3, 2, r,
                  prefix, 1);
  return m;
}
std::vector<float> row(float t) { return {t, 10 * t, 100 * t}; }
std::vector<float> rows(std::initializer_list<float> ts) {
  std::vector<float> v;
  for (float t : ts) {
    const std::vector<float> r = row(t);
    v.insert(v.end(), r.begin(), r.end());
  }
  return v;
}
void expect_near(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4f * (1.0f + std::fabs(want[i]))) << i;
}

// Class token (t0) protected: t2's edge (1.0) beats t4's (0.8), so t2 merges into t1 (sizes 2 + 3:
// (2 t1 + 3 t2) / 5); the unmerged A rows ascending (t0, t4) lead, then the B rows (t1 + t2, t3).
TEST(TomeMerge, ClassTokenProtectedSizeWeighted) {
  const Merged m = merge5(1, 1, true);
  expect_near(m.y, rows({0, 4, (2 * 1 + 3 * 2) / 5.0f, 3}));
  expect_near(m.size, {1, 1, 5, 1});
}

// No prefix: t0 -> t3 and t2 -> t1 tie at 1.0; the lower A row (t0) goes first (the engine's rule
// on an exact tie, which torch's argsort leaves unordered), so t0 merges into t3; the unmerged A
// rows stay in edge order (t2 at 1.0, t4 at 0.8), then the B rows (t1, t3 + t0). First block: no
// sizes, plain means.
TEST(TomeMerge, NoPrefixEdgeOrderAndFirstBlockMeans) {
  const Merged m = merge5(1, 0, false);
  expect_near(m.y, rows({2, 4, 1, 1.5f}));
  expect_near(m.size, {1, 1, 1, 2});
}

// Class and distillation tokens (t0 an A row, t1 a B row) protected: t2 can only go to t3 (0), t4
// to t3 (0.6): t4 merges into t3; the prefix rows lead in their order (t0, t1), then t2, t3 + t4.
TEST(TomeMerge, DistillationTokenTakesNoMerge) {
  const Merged m = merge5(1, 2, false);
  expect_near(m.y, rows({0, 1, 2, 3.5f}));
  expect_near(m.size, {1, 1, 1, 2});
}

// r at the clip limit (5 - 1) / 2 = 2: both unprotected A rows merge into t1.
TEST(TomeMerge, ClipLimitMergesEveryMergeableRow) {
  const Merged m = merge5(2, 1, true);
  expect_near(m.y, rows({0, (2 * 1 + 3 * 2 + 1 * 4) / 6.0f, 3}));
  expect_near(m.size, {1, 6, 1});
}

// --- the graph ------------------------------------------------------------------------------------

int count(const graph::Graph& g, graph::Op op) {
  return static_cast<int>(std::count_if(g.nodes.begin(), g.nodes.end(), [&](const graph::Node& n) { return n.op == op; }));
}

// ViT-B/16's schedule at r 13: 197 -> 184 -> ... -> 41 (ToMe's r = 13 setting); the clip halves
// the mergeable tokens once r exceeds them.
TEST(TomeGraph, Schedule) {
  const std::vector<int> s = graph::tome_schedule(197, 1, 12, 13);
  ASSERT_EQ(s.size(), 13u);
  EXPECT_EQ(s.front(), 197);
  EXPECT_EQ(s[1], 184);
  EXPECT_EQ(s.back(), 197 - 12 * 13);
  EXPECT_EQ(graph::tome_schedule(197, 1, 3, 98), (std::vector<int>{197, 99, 50, 26}));
  EXPECT_EQ(graph::tome_schedule(7, 5, 2, 4), (std::vector<int>{7, 6, 6}));  // 2 mergeable: 1, then none
}

// build_vit emits a merge per block that merges, sized by the schedule; every attention after the
// first merge takes the sizes, every merging block's attention gives the metric.
TEST(TomeGraph, MergeNodesFollowTheSchedule) {
  ViTConfig cfg = small_config(32, 32, 8, 32, 2, 3, 5);  // 16 patches + cls = 17 tokens
  auto model = random_model(cfg, 3);
  const graph::Graph g = graph::build_vit(*model, DType::F32, "test", {}, 5);
  const std::vector<int> s = graph::tome_schedule(17, 1, 3, 5);  // 17, 12, 7, 4
  EXPECT_EQ(count(g, graph::Op::kTomeMerge), 3);
  int block = 0;
  for (const graph::Node& n : g.nodes) {
    if (n.op == graph::Op::kAttention) {
      EXPECT_EQ(g.t(n.in[0]).rows(), s[static_cast<size_t>(block)]) << n.name;
      EXPECT_EQ(n.input(1) >= 0, block > 0) << n.name << ": proportional attention after the first merge";
      EXPECT_EQ(n.out.size(), 2u) << n.name << ": the metric";
    }
    if (n.op == graph::Op::kTomeMerge) {
      EXPECT_EQ(g.t(n.out[0]).rows(), s[static_cast<size_t>(block) + 1]) << n.name;
      EXPECT_EQ(n.p<graph::TomeParams>().prefix, 1);
      ++block;
    }
  }
  EXPECT_EQ(graph::build_vit(*model, DType::F32, "test", {}, 0).nodes.size() + 3,
            g.nodes.size());  // r 0: the plain graph
}

TEST(TomeGraph, OutOfRangeRefusedByValue) {
  ViTConfig cfg = small_config(32, 32, 8, 32, 2, 2, 5);
  cfg.reg_tokens = 4;  // 21 tokens, 5 protected: at most 8
  EXPECT_NO_THROW(graph::check_tome(cfg, 8, "t"));
  for (int bad : {-1, 9, 1000}) {
    try {
      graph::check_tome(cfg, bad, "t");
      ADD_FAILURE() << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("tome " + std::to_string(bad) + " is outside 0..8"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("5 protected"), std::string::npos) << e.what();
    }
  }
}

// The fused graph (the merge between the proj GEMM's residual and the plain norm2) computes the
// same as the unfused one, and an engine with merging refuses the per-token outputs by name.
TEST(TomeEngine, FusedAgreesAndPerTokenOutputsRefused) {
  ViTConfig cfg = small_config(48, 48, 8, 48, 3, 2, 7);  // 36 patches + cls
  auto model = random_model(cfg, 11);
  const std::vector<float> img = random_vec(static_cast<size_t>(2 * 3 * 48 * 48));
  std::vector<float> a(14), b(14), feat(static_cast<size_t>(2 * 37 * 48));
  RunOutputs out;
  out.logits = a.data();
  make_cpu_engine(model, 2, true, 6)->run(img.data(), 2, out);
  out.logits = b.data();
  make_cpu_engine(model, 2, false, 6)->run(img.data(), 2, out);
  EXPECT_LE(max_abs_diff(a.data(), b.data(), a.size()), 1e-4f * max_abs(b.data(), b.size()));
  auto e = make_fast_cpu_engine(model, DType::F32, 2, true, 6);
  out.features = feat.data();
  try {
    e->run(img.data(), 2, out);
    ADD_FAILURE() << "features with tome accepted";
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(err.what()).find("features"), std::string::npos) << err.what();
  }
}

// --- the fixtures: reference and fast CPU engines ---------------------------------------------------

TEST_P(TomeGolden, ReferenceAndFastFp32MatchThePaper) {
  const TomeCase c = load_tome_case(GetParam());
  SCOPED_TRACE(c.name + ", r " + std::to_string(c.r));
  std::shared_ptr<const Model> model = load_model(c.model_path, {});
  auto ref = make_cpu_engine(model, 2, true, c.r);
  expect_matches(c, run(*ref, c, model->cfg), tol_rel(DType::F32));
  auto unfused = make_cpu_engine(model, 2, false, c.r);
  expect_matches(c, run(*unfused, c, model->cfg), tol_rel(DType::F32));
  auto fast = make_fast_cpu_engine(model, DType::F32, 2, true, c.r);
  expect_matches(c, run(*fast, c, model->cfg), tol_rel(DType::F32));
  // Without merging the same model gives other numbers: the fixture does test the merges.
  auto plain = make_cpu_engine(model, 2, true, 0);
  EXPECT_FALSE(close_rel(run(*plain, c, model->cfg).logits, c.logits.data, tol_rel(DType::F32)));
}

TEST_P(TomeGolden, FastBf16WhereDecisionsAreClear) {
  const TomeCase c = load_tome_case(GetParam());
  if (c.margin < kBf16DecisionGap)
    GTEST_SKIP() << c.name << ": decisions " << c.margin << " from a tie, closer than bf16's error";
  std::shared_ptr<const Model> model = load_model(c.model_path, {});
  auto e = make_fast_cpu_engine(model, DType::BF16, 2, true, c.r);
  SCOPED_TRACE(std::string(e->name()));
  expect_matches(c, run(*e, c, model->cfg), tol_golden_rel(DType::BF16));
}

// int8 (W8A8 GEMMs, dynamic per-token activations) with merging, at int8's golden bound: the
// merges follow the int8 keys, so the fixtures whose decisions are clear of int8's error.
TEST_P(TomeGolden, Int8WhereDecisionsAreClear) {
  const TomeCase c = load_tome_case(GetParam());
  if (c.margin < kBf16DecisionGap)
    GTEST_SKIP() << c.name << ": decisions " << c.margin << " from a tie, closer than int8's error";
  std::shared_ptr<const Model> model = load_model(c.model_path, {});
  Int8Options dynamic;
  dynamic.find_calibration = false;
  auto e = make_int8_cpu_engine(model, dynamic, 2, true, c.r);
  SCOPED_TRACE(std::string(e->name()));
  const Out got = run(*e, c, model->cfg);
  expect_matches(c, got, find_precision(VIT_PRECISION_INT8)->logits_rel_tol);
  auto plain = make_int8_cpu_engine(model, dynamic, 2, true, 0);
  EXPECT_FALSE(close_rel(run(*plain, c, model->cfg).logits, got.logits, 1e-3f)) << "int8 with tome merged nothing";
}

INSTANTIATE_TEST_SUITE_P(Cases, TomeGolden, ::testing::ValuesIn(tome_cases()), case_name);

TEST(TomeGoldenData, CasesPresent) {
  const std::vector<std::string> v = tome_cases();
  EXPECT_GE(v.size(), 6u);
  EXPECT_TRUE(std::any_of(v.begin(), v.end(), [](const std::string& n) { return load_tome_case(n).margin >= kBf16DecisionGap; }))
      << "no case for the 16-bit engines";
}

// --- the C API ------------------------------------------------------------------------------------

struct ApiModel {
  vit_model* m = nullptr;
  explicit ApiModel(const std::string& path) {
    vit_status* st = vit_model_load(path.c_str(), nullptr, &m);
    EXPECT_EQ(st, nullptr) << vit_status_get_message(st);
    vit_status_free(st);
  }
  ~ApiModel() { vit_model_free(m); }
};

// vit_session_params.tome (version 5): named errors out of range, the per-token outputs refused at
// run time, an older caller's struct (without the field) runs without merging, and the session's
// numbers are the engine's.
TEST(TomeApi, SessionParameter) {
  const TomeCase c = load_tome_case("tome_small");
  ApiModel model(c.model_path);
  ASSERT_NE(model.m, nullptr);
  vit_session_params p = vit_session_default_params();
  EXPECT_EQ(p.tome, 0);
  p.gemm = VIT_GEMM_REFERENCE;
  vit_session* s = nullptr;
  for (int bad : {-2, 9}) {  // 17 tokens, 1 protected: at most 8
    p.tome = bad;
    vit_status* st = vit_session_create(model.m, &p, &s);
    EXPECT_EQ(vit_status_get_code(st), VIT_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(vit_status_get_message(st)).find("vit_session_create: tome " + std::to_string(bad)),
              std::string::npos)
        << vit_status_get_message(st);
    EXPECT_EQ(s, nullptr);
    vit_status_free(st);
  }
  p.tome = c.r;
  ASSERT_EQ(vit_session_create(model.m, &p, &s), nullptr);
  std::vector<float> logits(c.logits.data.size(), NAN), feat(static_cast<size_t>(c.batch()) * 17 * 48);
  vit_outputs o{};
  o.logits = logits.data();
  ASSERT_EQ(vit_session_run(s, c.input.ptr(), c.batch(), &o), nullptr);
  EXPECT_TRUE(close_rel(logits, c.logits.data, tol_rel(DType::F32)));
  o.features = feat.data();
  vit_status* st = vit_session_run(s, c.input.ptr(), c.batch(), &o);
  EXPECT_EQ(vit_status_get_code(st), VIT_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(vit_status_get_message(st)).find("features output is not defined with token merging"),
            std::string::npos)
      << vit_status_get_message(st);
  vit_status_free(st);
  vit_session_free(s);

  // A version-4 caller: struct_size ends before tome, whatever its bytes hold.
  p.tome = 12345;
  p.struct_size = static_cast<uint32_t>(offsetof(vit_session_params, tome));
  ASSERT_EQ(vit_session_create(model.m, &p, &s), nullptr);
  o.features = nullptr;
  ASSERT_EQ(vit_session_run(s, c.input.ptr(), c.batch(), &o), nullptr);
  EXPECT_FALSE(close_rel(logits, c.logits.data, tol_rel(DType::F32))) << "an old caller's session merged tokens";
  vit_session_free(s);
}

#else  // VIT_TEST_TOME_CUDA

// The CUDA engine: every case in fp32 (1e-4), the clear-decision case in fp16 / bf16 too; the
// emulator runs tome_small in fp32 alone (CI keeps one emulated whole-model ToMe run).
TEST_P(TomeGolden, CudaMatchesThePaper) {
  VIT_SKIP_WITHOUT_GPU();
  const TomeCase c = load_tome_case(GetParam());
#ifdef VIT_GPU_EMU_BUILD
  if (c.name != "tome_small") GTEST_SKIP() << c.name << ": left to a GPU (emulated whole-model runs cost CI minutes)";
  const std::vector<Precision> precisions = {Precision::kFP32};
#else
  const std::vector<Precision> precisions = {Precision::kFP32, Precision::kFP16, Precision::kBF16};
#endif
  std::shared_ptr<const Model> model = load_model(c.model_path, {});
  for (Precision prec : precisions) {
    const DType dt = storage_type(prec);
    if (dt != DType::F32 && c.margin < kBf16DecisionGap) continue;
    SCOPED_TRACE(c.name + " " + dt_label(dt));
    CudaEngineOptions o;
    o.precision = prec;
    o.max_batch = c.batch();
    o.tome = c.r;
    auto e = make_cuda_engine(model, o);
    expect_matches(c, run(*e, c, model->cfg), tol_golden_rel(dt));
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, TomeGolden, ::testing::ValuesIn(tome_cases()), case_name);

#endif  // VIT_TEST_TOME_CUDA

}  // namespace
}  // namespace vit::test
