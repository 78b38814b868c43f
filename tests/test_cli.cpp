// vit-infer tests: the `vit-infer` program, run as a subprocess (cli_runner.h) on random
// timm-layout checkpoints in a temp dir. Checks the table and JSON Lines outputs, the
// --logits-out / --embeddings-out arrays (against the internal CPU engine), per-file error
// reporting with a non-zero exit, `info`, and usage errors. VIT_INFER_BIN is the program.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "cpu/cpu_engine.h"
#include "golden_cases.h"
#include "io/npy.h"
#include "model/model.h"
#include "model_fixture.h"
#include "test_api_fixture.h"
#include "test_util.h"
#include "tolerances.h"

namespace {

using nlohmann::json;

// The program runs through the shared child-process runner (cli_runner.h): a 60 s limit
// per run, stdout and stderr captured separately, rc = the exit status (-1 on a signal).
using vit::test::lines;
using vit::test::Proc;
using vit::test::run_cli;

// One classifier model (10 classes, vit::test::make_cli_model_and_inputs with good1 / good2)
// and one headless (num_classes 0), plus bad inputs.
struct Fixture : vit::test::CliModelAndInputs {
  std::string headless, bad_shape, bad_dtype, missing, fake_jpg;
};

const Fixture& fx() {
  static Fixture f = [] {
    Fixture f;
    static_cast<vit::test::CliModelAndInputs&>(f) = vit::test::make_cli_model_and_inputs(5);
    f.headless = vit::test::write_random_checkpoint(vit::test::small_config(32, 32, 8, 32, 4, 1, 0), 6);
    f.bad_shape = f.dir + "/bad_shape.npy";
    std::vector<float> small(3 * 16 * 16, 0.5f);
    vit::write_npy(f.bad_shape, small.data(), {1, 3, 16, 16});
    f.bad_dtype = f.dir + "/bad_dtype.npy";
    vit::test::write_npy_raw(f.bad_dtype, "<i4", false, {1, 3, 32, 32}, std::vector<uint8_t>(3 * 32 * 32 * 4));
    f.missing = f.dir + "/missing.npy";
    f.fake_jpg = f.dir + "/fake.jpg";
    vit::test::write_file(f.fake_jpg, {'n', 'o', 't', ' ', 'a', ' ', 'j', 'p', 'g'});
    return f;
  }();
  return f;
}

// Reference logits [3, 10] for good1 ++ good2 from the internal engine behind `--device cpu`
// (the fast fp32 engine), one batch of 3.
std::vector<float> reference_logits(int tome = 0) {
  auto model = vit::load_model(fx().model);
  auto eng = vit::make_fast_cpu_engine(model, vit::DType::F32, 2, true, tome);
  std::vector<float> x = fx().x1;
  x.insert(x.end(), fx().x2.begin(), fx().x2.end());
  std::vector<float> logits(3 * 10, NAN);
  vit::RunOutputs o;
  o.logits = logits.data();
  eng->run(x.data(), 3, o);
  return logits;
}

int argmax(const float* v, int n) { return static_cast<int>(std::max_element(v, v + n) - v); }

TEST(Cli, ClassifyTablePrintsTopK) {
  Proc p = run_cli({"classify", "--model", fx().model, "--top-k", "3", "--threads", "2", fx().good1, fx().good2});
  ASSERT_EQ(p.rc, 0) << p.err;
  auto ls = lines(p.out);
  ASSERT_EQ(ls.size(), 1u + 3 * 3) << p.out;  // header + 3 rows x top-3
  EXPECT_NE(ls[0].find("prob"), std::string::npos);
  std::vector<float> ref = reference_logits();
  // Rank-1 lines: file, row, rank 1, the reference argmax, its label.
  const std::string want[3] = {fx().good1 + "\t0\t1\t" + std::to_string(argmax(&ref[0], 10)),
                               fx().good1 + "\t1\t1\t" + std::to_string(argmax(&ref[10], 10)),
                               fx().good2 + "\t0\t1\t" + std::to_string(argmax(&ref[20], 10))};
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(ls[1 + 3 * r].rfind(want[r] + "\t", 0), 0u) << ls[1 + 3 * r] << " vs " << want[r];
    EXPECT_NE(ls[1 + 3 * r].find("class_"), std::string::npos);
  }
  EXPECT_NE(p.err.find("loaded"), std::string::npos);  // logs go to stderr
}

TEST(Cli, JsonLinesParseAndTopKIsClamped) {
  Proc p = run_cli({"classify", "--model", fx().model, "--json", "--top-k", "50", fx().good1, fx().good2});
  ASSERT_EQ(p.rc, 0) << p.err;
  auto ls = lines(p.out);
  ASSERT_EQ(ls.size(), 3u) << p.out;
  std::vector<float> ref = reference_logits();
  const std::string files[3] = {fx().good1, fx().good1, fx().good2};
  const int rows[3] = {0, 1, 0};
  for (int r = 0; r < 3; ++r) {
    json j = json::parse(ls[r]);
    EXPECT_EQ(j.at("file"), files[r]);
    EXPECT_EQ(j.at("index"), rows[r]);
    const json& top = j.at("topk");
    ASSERT_EQ(top.size(), 10u);  // clamped to num_classes
    double sum = 0.0, prev = 2.0;
    for (const json& t : top) {
      double pr = t.at("prob").get<double>();
      EXPECT_LE(pr, prev);
      prev = pr;
      sum += pr;
      int idx = t.at("index").get<int>();
      EXPECT_EQ(t.at("label"), "class_" + std::to_string(idx));
    }
    // All classes listed: the softmax sums to 1 up to double rounding of 10 terms.
    EXPECT_NEAR(sum, 1.0, 1e-9);
    EXPECT_EQ(top[0].at("index").get<int>(), argmax(&ref[10 * r], 10));
    // Probability of the top class from the reference logits (fp32 logits, softmax in double).
    double mx = *std::max_element(&ref[10 * r], &ref[10 * r] + 10), z = 0.0;
    for (int c = 0; c < 10; ++c) z += std::exp(static_cast<double>(ref[10 * r + c]) - mx);
    EXPECT_NEAR(top[0].at("prob").get<double>(), 1.0 / z, 1e-12);
  }
}

TEST(Cli, LogitsOutMatchesEngineAndBatchSplitting) {
  const std::string out3 = vit::test::temp_dir() + "/logits.npy";
  Proc p = run_cli({"classify", "--model", fx().model, "--threads", "2", "--batch", "8", "--logits-out", out3,
                    fx().good1, fx().good2});
  ASSERT_EQ(p.rc, 0) << p.err;
  vit::Tensor t = vit::read_npy(out3);
  ASSERT_EQ(t.shape, (std::vector<int64_t>{3, 10}));
  std::vector<float> ref = reference_logits();
  // Same engine, same weights, same batch of 3 and thread count: bit-identical.
  EXPECT_EQ(0, std::memcmp(t.ptr(), ref.data(), ref.size() * sizeof(float)))
      << "max |diff| " << vit::test::max_abs_diff(t.ptr(), ref.data(), ref.size());

  // --batch 2 splits the rows into runs of 2 + 1; rows keep input order. Different GEMM
  // shapes may round differently: tolerance 1e-4 on O(1) logits is far below any mix-up.
  const std::string out2 = vit::test::temp_dir() + "/logits_b2.npy";
  p = run_cli({"classify", "--model", fx().model, "--batch", "2", "--logits-out", out2, fx().good1, fx().good2});
  ASSERT_EQ(p.rc, 0) << p.err;
  vit::Tensor t2 = vit::read_npy(out2);
  ASSERT_EQ(t2.shape, (std::vector<int64_t>{3, 10}));
  EXPECT_LT(vit::test::max_abs_diff(t2.ptr(), ref.data(), ref.size()), 1e-4f);
  EXPECT_GT(vit::test::max_abs(t2.ptr(), ref.size()), 0.0f);
}

TEST(Cli, BadInputsAreReportedAndTheRestClassified) {
  const std::string logits = vit::test::temp_dir() + "/logits.npy";
  Proc p = run_cli({"classify", "--model", fx().model, "--json", "--top-k", "2", "--logits-out", logits, fx().good1,
                    fx().missing, fx().bad_shape, fx().bad_dtype, fx().fake_jpg, fx().good2});
  EXPECT_NE(p.rc, 0) << p.out;
  for (const std::string& bad : {fx().missing, fx().bad_shape, fx().bad_dtype, fx().fake_jpg})
    EXPECT_NE(p.err.find(bad), std::string::npos) << "stderr does not name " << bad << ":\n" << p.err;
  auto ls = lines(p.out);
  ASSERT_EQ(ls.size(), 7u) << p.out;  // 2 rows of good1, 4 errors, 1 row of good2, in input order
  const std::string order[7] = {fx().good1, fx().good1, fx().missing, fx().bad_shape,
                                fx().bad_dtype, fx().fake_jpg, fx().good2};
  for (int i = 0; i < 7; ++i) {
    json j = json::parse(ls[i]);
    EXPECT_EQ(j.at("file"), order[i]) << ls[i];
    bool is_error = i >= 2 && i <= 5;
    EXPECT_EQ(j.contains("error"), is_error) << ls[i];
    EXPECT_EQ(j.contains("topk"), !is_error) << ls[i];
    if (is_error) EXPECT_FALSE(j.at("error").get<std::string>().empty());
  }
  EXPECT_NE(json::parse(ls[3]).at("error").get<std::string>().find("shape"), std::string::npos) << ls[3];
  // The good rows are still written, in input order.
  vit::Tensor t = vit::read_npy(logits);
  ASSERT_EQ(t.shape, (std::vector<int64_t>{3, 10}));
  std::vector<float> ref = reference_logits();
  EXPECT_LT(vit::test::max_abs_diff(t.ptr(), ref.data(), ref.size()), 1e-4f);
}

TEST(Cli, DirectoryInputExpandsSorted) {
  const std::string d = vit::test::temp_dir();
  std::vector<float> x(3 * 32 * 32, 0.25f);
  vit::write_npy(d + "/b.npy", x.data(), {3, 32, 32});
  vit::write_npy(d + "/a.npy", x.data(), {1, 3, 32, 32});
  vit::test::write_file(d + "/notes.txt", {'x'});  // ignored
  Proc p = run_cli({"classify", "--model", fx().model, "--json", "-k", "1", d});
  ASSERT_EQ(p.rc, 0) << p.err;
  auto ls = lines(p.out);
  ASSERT_EQ(ls.size(), 2u) << p.out;
  EXPECT_EQ(json::parse(ls[0]).at("file"), d + "/a.npy");
  EXPECT_EQ(json::parse(ls[1]).at("file"), d + "/b.npy");
  // Identical inputs, same answer. Rows at different batch positions may round differently
  // inside the GEMMs, so probabilities agree to 1e-5 (fp32 rounding, O(1) logits).
  const json a = json::parse(ls[0]).at("topk")[0], b = json::parse(ls[1]).at("topk")[0];
  EXPECT_EQ(a.at("index"), b.at("index"));
  EXPECT_NEAR(a.at("prob").get<double>(), b.at("prob").get<double>(), 1e-5);
}

TEST(Cli, HeadlessModelPrintsEmbeddingNorms) {
  const std::string emb = vit::test::temp_dir() + "/emb.npy";
  Proc p = run_cli({"classify", "--model", fx().headless, "--json", "--embeddings-out", emb, fx().good1});
  ASSERT_EQ(p.rc, 0) << p.err;
  auto ls = lines(p.out);
  ASSERT_EQ(ls.size(), 2u) << p.out;
  vit::Tensor t = vit::read_npy(emb);
  ASSERT_EQ(t.shape, (std::vector<int64_t>{2, 32}));
  for (int r = 0; r < 2; ++r) {
    double ss = 0.0;
    for (int d = 0; d < 32; ++d) ss += static_cast<double>(t.data[r * 32 + d]) * t.data[r * 32 + d];
    json j = json::parse(ls[r]);
    EXPECT_GT(j.at("embedding_norm").get<double>(), 0.0);
    EXPECT_NEAR(j.at("embedding_norm").get<double>(), std::sqrt(ss), 1e-9 * (1 + std::sqrt(ss)));
  }
  p = run_cli({"classify", "--model", fx().headless, "--logits-out", emb, fx().good1});
  EXPECT_EQ(p.rc, 2);
  EXPECT_NE(p.err.find("num_classes 0"), std::string::npos) << p.err;
}

TEST(Cli, ModelAndUsageErrors) {
  Proc p = run_cli({"classify", "--model", fx().dir + "/nope", fx().good1});
  EXPECT_EQ(p.rc, 1);
  EXPECT_NE(p.err.find(fx().dir + "/nope"), std::string::npos) << p.err;
  EXPECT_TRUE(p.out.empty()) << p.out;

  p = run_cli({"classify", "--model", fx().model, "--precision", "fp16", fx().good1});
  EXPECT_EQ(p.rc, 1);
  EXPECT_NE(p.err.find("fp16"), std::string::npos) << p.err;

  p = run_cli({"classify", "--model", fx().model});  // no INPUT
  EXPECT_EQ(p.rc, 2);
  p = run_cli({"classify", "--model", fx().model, "--top-k", "0", fx().good1});
  EXPECT_EQ(p.rc, 2);
  p = run_cli({"classify", "--model", fx().model, "--device", "tpu", fx().good1});
  EXPECT_EQ(p.rc, 2);
  p = run_cli({});
  EXPECT_EQ(p.rc, 2);
}

// --tome R: the engine's token merging (same logits as the engine with merging, not the plain
// ones); a value past the model's limit (17 tokens, 1 protected: 8) and --features-out refused.
TEST(Cli, TomeMergesTokens) {
  const std::string out = vit::test::temp_dir() + "/tome.npy";
  Proc p = run_cli({"classify", "--model", fx().model, "--threads", "2", "--batch", "8", "--tome", "4", "--logits-out",
                    out, fx().good1, fx().good2});
  ASSERT_EQ(p.rc, 0) << p.err;
  const vit::Tensor t = vit::read_npy(out);
  const std::vector<float> want = reference_logits(4), plain = reference_logits(0);
  ASSERT_EQ(t.data.size(), want.size());
  EXPECT_LT(vit::test::max_abs_diff(t.ptr(), want.data(), want.size()), 1e-4f * vit::test::max_abs(want.data(), want.size()));
  EXPECT_GT(vit::test::max_abs_diff(t.ptr(), plain.data(), plain.size()), 1e-3f) << "--tome 4 merged nothing";
  p = run_cli({"classify", "--model", fx().model, "--tome", "9", fx().good1});
  EXPECT_EQ(p.rc, 1);
  EXPECT_NE(p.err.find("tome 9 is outside 0..8"), std::string::npos) << p.err;
  p = run_cli({"classify", "--model", fx().model, "--tome", "2", "--features-out", out, fx().good1});
  EXPECT_EQ(p.rc, 2);
  EXPECT_NE(p.err.find("--features-out"), std::string::npos) << p.err;
}

TEST(Cli, InfoPrintsTheConfiguration) {
  Proc p = run_cli({"info", "--model", fx().model});
  ASSERT_EQ(p.rc, 0) << p.err;
  EXPECT_NE(p.out.find("parameters:"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("GFLOPs per image"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("32"), std::string::npos) << p.out;

  p = run_cli({"info", "--model", fx().model, "--json", "--image-size", "48"});
  ASSERT_EQ(p.rc, 0) << p.err;
  json j = json::parse(p.out);
  EXPECT_EQ(j.at("hidden_size"), 32);
  EXPECT_EQ(j.at("depth"), 2);
  EXPECT_EQ(j.at("num_heads"), 4);
  EXPECT_EQ(j.at("num_classes"), 10);
  EXPECT_EQ(j.at("num_tokens"), 37);  // 48/8 = 6x6 patches + cls
  EXPECT_EQ(j.at("image_size"), json::array({48, 48}));
  EXPECT_EQ(j.at("param_count").get<int64_t>(),
            vit::test::small_config(48, 48, 8, 32, 4, 2, 10).param_count());  // pos table at 48x48
  EXPECT_TRUE(j.at("has_labels").get<bool>());

  p = run_cli({"info", "--model", fx().dir + "/nope"});
  EXPECT_EQ(p.rc, 1);
}

// The shipped program on a golden fixture (tools/ reference logits computed in float64 by
// timm / transformers): fp32 CPU logits agree to 1e-4 absolute, several times the fp32
// accumulation error of these small models yet far below any real mistake.
// classify on golden fixtures through each CPU path: the fast engine (default) and --reference in
// fp32 (1e-4 x max|logit|), the fast engine in bf16 (tol_golden_rel(BF16), same top-1).
TEST(Cli, GoldenFixtureLogits) {
  int checked = 0;
  // (fam_siglip_map: the attention-pool head, through the same three paths.)
  for (const char* name : {"golden/timm_token", "golden/hf_cls", "golden/timm_avg", "golden_families/fam_siglip_map"}) {
    const std::string dir = vit::test::data_path(name);
    if (!std::filesystem::exists(dir + "/logits.npy") || !std::filesystem::exists(dir + "/case.json")) continue;
    json c = json::parse(std::ifstream(dir + "/case.json"));
    if (c.contains("overrides") && !c.at("overrides").empty()) continue;  // needs flags we do not pass
    const std::vector<std::pair<std::vector<std::string>, float>> paths = {
        {{}, 1e-4f}, {{"--reference"}, 1e-4f}, {{"--precision", "bf16"}, vit::test::tol_golden_rel(vit::DType::BF16)}};
    for (const auto& [flags, tol] : paths) {
      SCOPED_TRACE(std::string(name) + (flags.empty() ? "" : " " + flags.back()));
      const std::string out = vit::test::temp_dir() + "/golden_logits.npy";
      const std::string feat_out = vit::test::temp_dir() + "/golden_features.npy";
      std::vector<std::string> args = {"classify", "--model", dir + "/" + c.value("model", std::string("model")),
                                       "--logits-out", out, "--features-out", feat_out};
      args.insert(args.end(), flags.begin(), flags.end());
      args.push_back(dir + "/input.npy");
      Proc p = run_cli(args);
      ASSERT_EQ(p.rc, 0) << name << ": " << p.err;
      vit::Tensor got = vit::read_npy(out), want = vit::read_npy(dir + "/logits.npy");
      ASSERT_EQ(got.shape, want.shape) << name;
      EXPECT_TRUE(vit::test::close_rel(got.data, want.data, tol));
      const int C = static_cast<int>(want.shape[1]);
      for (int b = 0; b < static_cast<int>(want.shape[0]); ++b)
        EXPECT_EQ(vit::test::argmax_row(got.ptr(), C, b), vit::test::argmax_row(want.ptr(), C, b)) << "row " << b;
      // --features-out: the framework's final tokens [rows, T, D] (activations.npz "final").
      const std::string set_case = name;  // "<set>/<case>"
      const vit::Tensor feat = vit::read_npy(feat_out),
                        final_tokens = vit::test::load_golden_case(set_case.substr(set_case.find('/') + 1),
                                                                   set_case.substr(0, set_case.find('/')))
                                           .final_tokens;
      ASSERT_EQ(feat.shape, final_tokens.shape) << name;
      EXPECT_TRUE(vit::test::close_rel(feat.data, final_tokens.data, tol)) << name << " features";
    }
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no golden fixtures under tests/data/golden";
}

// --max-image-size: .npy arrays at other sizes run at their own size (tests/data/golden_dynamic:
// timm dynamic_img_size in float64), sizes changing between inputs (each batch one size); without
// the flag such an array is a bad input, reported while the rest run; --features-out refuses a
// size whose token count differs, naming it, and goes on.
TEST(Cli, OtherInputSizesWithMaxImageSize) {
  const vit::test::DynamicCase dc = vit::test::load_dynamic_case("dyn_vit");
  const std::string dir = vit::test::data_path("golden_dynamic/dyn_vit");
  std::vector<std::string> inputs;
  std::vector<float> want;
  for (const vit::test::DynamicRun& r : dc.runs) {
    inputs.push_back(dir + "/runs/" + r.name + "/input.npy");
    want.insert(want.end(), r.logits.data.begin(), r.logits.data.end());
  }
  const std::string out = vit::test::temp_dir() + "/dyn_logits.npy";
  std::vector<std::string> args = {"classify", "--model", dc.model_path, "--max-image-size", "64", "--batch", "2",
                                   "--json", "--logits-out", out};
  args.insert(args.end(), inputs.begin(), inputs.end());
  Proc p = run_cli(args);
  ASSERT_EQ(p.rc, 0) << p.describe();
  const vit::Tensor got = vit::read_npy(out);
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  EXPECT_TRUE(vit::test::close_rel(got.data, want, 1e-4f));

  // Without the flag: the arrays at other sizes are bad inputs; the model-size one runs.
  args = {"classify", "--model", dc.model_path, "--json", "--logits-out", out};
  args.insert(args.end(), inputs.begin(), inputs.end());
  p = run_cli(args);
  EXPECT_EQ(p.rc, 1) << p.describe();
  EXPECT_NE(p.err.find("runs/48x48/input.npy: array shape [2, 3, 48, 48] does not match the model input"),
            std::string::npos) << p.err;
  EXPECT_EQ(vit::read_npy(out).shape, (std::vector<int64_t>{2, 10})) << "the 32x32 array still ran";

  // A size that is not a multiple of the patch, and --features-out with another token count.
  const std::string odd = vit::test::temp_dir() + "/odd.npy";
  std::vector<float> zeros(3 * 36 * 32, 0.25f);
  vit::write_npy(odd, zeros.data(), {1, 3, 36, 32});
  const std::string feat = vit::test::temp_dir() + "/dyn_features.npy";
  p = run_cli({"classify", "--model", dc.model_path, "--max-image-size", "64", "--features-out", feat, odd,
               inputs[0], inputs[1]});
  EXPECT_EQ(p.rc, 1) << p.describe();
  EXPECT_NE(p.err.find("multiples of the patch 8"), std::string::npos) << p.err;
  EXPECT_NE(p.err.find("--features-out holds the model's 17 tokens per row; this array is 48x48"), std::string::npos)
      << p.err;
  EXPECT_EQ(vit::read_npy(feat).shape, (std::vector<int64_t>{2, 17, 64}));
}

// HF CLIPVisionModelWithProjection: the embeddings are the projected image_embeds (24 wide, not
// the width 64), through `info` and `classify --embeddings-out`, matching transformers.
TEST(Cli, ClipProjectedEmbeddings) {
  const std::string dir = vit::test::data_path("golden_families/hf_clip_proj");
  Proc p = run_cli({"info", "--model", dir + "/model", "--json"});
  ASSERT_EQ(p.rc, 0) << p.err;
  const json j = json::parse(p.out);
  EXPECT_EQ(j.at("hidden_size"), 64);
  EXPECT_EQ(j.at("embedding_size"), 24);
  p = run_cli({"info", "--model", dir + "/model"});
  ASSERT_EQ(p.rc, 0) << p.err;
  EXPECT_NE(p.out.find("CLIPVisionModelWithProjection"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("family       : CLIP tower (visual projection to 24"), std::string::npos) << p.out;
  const std::string out = vit::test::temp_dir() + "/clip_emb.npy";
  p = run_cli({"classify", "--model", dir + "/model", "--embeddings-out", out, dir + "/input.npy"});
  ASSERT_EQ(p.rc, 0) << p.err;
  const vit::Tensor got = vit::read_npy(out), want = vit::read_npy(dir + "/embeddings.npy");
  ASSERT_EQ(got.shape, (std::vector<int64_t>{2, 24}));
  ASSERT_EQ(got.shape, want.shape);
  EXPECT_TRUE(vit::test::close_rel(got.data, want.data, 1e-4f));
}

// A model without a classifier (transformers' SiglipVisionModel: its output is pooler_output, the
// attention-pool head's) saves the framework's embeddings with --embeddings-out, fp32 within 1e-4.
TEST(Cli, SiglipVisionEmbeddings) {
  const std::string dir = vit::test::data_path("golden_families/hf_siglip_vision");
  const std::string out = vit::test::temp_dir() + "/siglip_emb.npy";
  Proc p = run_cli({"classify", "--model", dir + "/model", "--embeddings-out", out, dir + "/input.npy"});
  ASSERT_EQ(p.rc, 0) << p.err;
  EXPECT_NE(p.err.find("no classifier"), std::string::npos) << p.err;
  vit::Tensor got = vit::read_npy(out), want = vit::read_npy(dir + "/embeddings.npy");
  ASSERT_EQ(got.shape, want.shape);
  EXPECT_TRUE(vit::test::close_rel(got.data, want.data, 1e-4f));
}

// Image files go through src/image (decode + preprocessing) when the build has it.
TEST(Cli, ImageInputClassifiedWhenSupported) {
  const std::string img = vit::test::data_path("images/gray_120x80.jpg");
  if (!std::filesystem::exists(img)) GTEST_SKIP() << "no test image " << img;
  Proc p = run_cli({"classify", "--model", fx().model, "--json", "-k", "1", img, fx().good2});
  if (p.err.find("image inputs not supported yet") != std::string::npos) {
    EXPECT_NE(p.rc, 0);
    GTEST_SKIP() << "built without image support";
  }
  ASSERT_EQ(p.rc, 0) << p.err;
  auto ls = lines(p.out);
  ASSERT_EQ(ls.size(), 2u) << p.out;
  json j = json::parse(ls[0]);
  EXPECT_EQ(j.at("file"), img);
  double prob = j.at("topk")[0].at("prob").get<double>();
  EXPECT_TRUE(prob > 0.0 && prob <= 1.0) << prob;
}

}  // namespace
