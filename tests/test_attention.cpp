// vit-infer tests: attention maps. Rollout on hand-made matrices with closed forms (identity,
// uniform, single block) and against an independent left-to-right product; bilinear
// upsampling, normalisation, the colormap and compositing; PNG encode -> our decoder
// round-trips; the CPU engine's attention_layers [depth, B, T, T] (rows sum to 1, last block
// = head mean of `attention`, normal outputs unchanged) directly and through the C API; and
// `vit-infer attention` run as a child process (tests/cli_runner) on the demo model (or a
// golden fixture).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "core/error.h"
#include "cpu/cpu_engine.h"
#include "image/attention_map.h"
#include "image/decode.h"
#include "image/encode.h"
#include "image/preprocess.h"
#include "model/model.h"
#include "model_fixture.h"
#include "test_api_fixture.h"
#include "test_util.h"
#include "vit/vit.hpp"

namespace {

using vit::AttentionStack;
using vit::ErrorCode;
using vit::Image;
namespace fs = std::filesystem;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

#define EXPECT_VIT_ERROR(stmt, code_, substr)                                          \
  do {                                                                                 \
    try {                                                                              \
      stmt;                                                                            \
      ADD_FAILURE() << "no exception from " #stmt;                                     \
    } catch (const vit::Error& e) {                                                    \
      EXPECT_EQ(e.code(), code_) << e.what();                                          \
      EXPECT_NE(std::string(e.what()).find(substr), std::string::npos) << e.what();    \
    }                                                                                  \
  } while (0)

// depth random row-stochastic [T, T] matrices (positive entries, rows normalised in double).
std::vector<float> random_stochastic(int depth, int T, int64_t stride, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.01, 1.0);
  std::vector<float> a(static_cast<size_t>(stride) * depth, kNaN);  // gaps stay NaN: never read
  for (int l = 0; l < depth; ++l) {
    for (int i = 0; i < T; ++i) {
      std::vector<double> row(T);
      double s = 0.0;
      for (double& v : row) s += (v = u(rng) * u(rng));  // skewed, like real attention
      for (int j = 0; j < T; ++j) a[l * stride + i * T + j] = static_cast<float>(row[j] / s);
    }
  }
  return a;
}

// A' of one block as the paper defines it, built independently of the library: [T, T] fp64.
std::vector<double> residual(const float* A, int T) {
  std::vector<double> m(static_cast<size_t>(T) * T);
  for (int i = 0; i < T; ++i) {
    double s = 0.0;
    for (int j = 0; j < T; ++j) s += (m[i * T + j] = 0.5 * A[i * T + j] + (i == j ? 0.5 : 0.0));
    for (int j = 0; j < T; ++j) m[i * T + j] /= s;
  }
  return m;
}

std::vector<double> matmul(const std::vector<double>& a, const std::vector<double>& b, int T) {
  std::vector<double> c(static_cast<size_t>(T) * T, 0.0);
  for (int i = 0; i < T; ++i)
    for (int j = 0; j < T; ++j) {
      double s = 0.0;
      for (int k = 0; k < T; ++k) s += a[i * T + k] * b[k * T + j];
      c[i * T + j] = s;
    }
  return c;
}

// ---- rollout -------------------------------------------------------------------------------

TEST(Rollout, IdentityAttentionGivesIdentityAndUniformZeroMap) {
  const int T = 6, L = 3;
  std::vector<float> a(static_cast<size_t>(L) * T * T, 0.0f);
  for (int l = 0; l < L; ++l)
    for (int i = 0; i < T; ++i) a[l * T * T + i * T + i] = 1.0f;
  const AttentionStack s{a.data(), L, T, T * T};
  const std::vector<double> R = vit::attention_rollout(s);
  for (int i = 0; i < T; ++i)
    for (int j = 0; j < T; ++j) EXPECT_EQ(R[i * T + j], i == j ? 1.0 : 0.0) << i << "," << j;
  // Tokens that only attend to themselves: nothing flows into the class token from any patch.
  for (float v : vit::rollout_cls_map(s)) EXPECT_EQ(v, 0.0f);
  for (float v : vit::last_layer_cls_map(s)) EXPECT_EQ(v, 0.0f);
}

// Uniform attention U (all 1/T) is idempotent, so (0.5 U + 0.5 I)^L = (1 - 2^-L) U + 2^-L I and
// every patch gets (1 - 2^-L) / T of the class token's rollout: a uniform map.
TEST(Rollout, UniformAttentionMatchesClosedForm) {
  const int T = 9;
  for (int L : {1, 2, 5}) {
    std::vector<float> a(static_cast<size_t>(L) * T * T, 1.0f / T);
    const AttentionStack s{a.data(), L, T, T * T};
    const std::vector<double> R = vit::attention_rollout(s);
    const double p = std::ldexp(1.0, -L);
    for (int i = 0; i < T; ++i)
      for (int j = 0; j < T; ++j) {
        // 1/T is rounded to fp32 (relative error 6e-8); the closed form uses it exactly.
        EXPECT_NEAR(R[i * T + j], (1.0 - p) / T + (i == j ? p : 0.0), 1e-7) << L << ": " << i << "," << j;
      }
    const std::vector<float> m = vit::rollout_cls_map(s);
    ASSERT_EQ(m.size(), static_cast<size_t>(T - 1));
    for (float v : m) EXPECT_NEAR(v, (1.0 - p) / T, 1e-7) << L;
    for (float v : vit::last_layer_cls_map(s)) EXPECT_EQ(v, 1.0f / T);
  }
}

TEST(Rollout, SingleBlockIsHalfAttentionPlusHalfIdentity) {
  std::mt19937 rng(11);
  const int T = 5;
  std::vector<float> a = random_stochastic(1, T, T * T, rng);
  const std::vector<double> R = vit::attention_rollout({a.data(), 1, T, T * T});
  const std::vector<double> want = residual(a.data(), T);
  for (int k = 0; k < T * T; ++k) EXPECT_NEAR(R[k], want[k], 1e-15) << k;
}

// Random stochastic blocks in the engine's strided layout (another image's slices in between):
// the library's product equals an independent left-to-right product A'_L (A'_{L-1} (... A'_1));
// rows of R sum to 1; the vector path equals row 0 of R; the last-layer map is block L's row 0.
TEST(Rollout, RandomBlocksMatchIndependentProductAndRowPath) {
  std::mt19937 rng(12345);
  const int T = 17, L = 6;
  const int64_t stride = 3 * T * T;  // batch 3: image 0's blocks
  std::vector<float> a = random_stochastic(L, T, stride, rng);
  for (int l = 0; l < L; ++l)  // fill image 0 only; the rest of each layer stays NaN
    for (int64_t k = T * T; k < stride; ++k) a[l * stride + k] = kNaN;
  const AttentionStack s{a.data(), L, T, stride};
  const std::vector<double> R = vit::attention_rollout(s);

  std::vector<double> want = residual(&a[(L - 1) * stride], T);
  for (int l = L - 2; l >= 0; --l) want = matmul(want, residual(&a[l * stride], T), T);
  double norm = 0.0;
  for (int k = 0; k < T * T; ++k) {
    EXPECT_NEAR(R[k], want[k], 1e-14) << k;  // fp64, different association: a few ulps
    norm += std::fabs(R[k]);
  }
  EXPECT_NEAR(norm, T, 1e-12);  // non-negative rows summing to 1
  for (int i = 0; i < T; ++i) {
    double sum = 0.0;
    for (int j = 0; j < T; ++j) sum += R[i * T + j];
    EXPECT_NEAR(sum, 1.0, 1e-13) << i;
  }
  const std::vector<float> m = vit::rollout_cls_map(s);
  ASSERT_EQ(m.size(), static_cast<size_t>(T - 1));
  for (int j = 1; j < T; ++j) EXPECT_NEAR(m[j - 1], R[j], 1e-7 * R[j] + 1e-12) << j;  // fp32 output
  const std::vector<float> last = vit::last_layer_cls_map(s);
  for (int j = 1; j < T; ++j) EXPECT_EQ(last[j - 1], a[(L - 1) * stride + j]);
}

TEST(Rollout, RejectsBadStacks) {
  std::vector<float> a(16, 0.25f);
  EXPECT_VIT_ERROR(vit::attention_rollout({nullptr, 1, 4, 16}), ErrorCode::kInvalidArgument, "null");
  EXPECT_VIT_ERROR(vit::rollout_cls_map({a.data(), 0, 4, 16}), ErrorCode::kInvalidArgument, "depth 0");
  EXPECT_VIT_ERROR(vit::last_layer_cls_map({a.data(), 1, 1, 1}), ErrorCode::kInvalidArgument, "class token");
  EXPECT_VIT_ERROR(vit::attention_rollout({a.data(), 1, 4, 15}), ErrorCode::kInvalidArgument, "stride");
  a[4] = -3.0f;  // row 1 sums to < 0 even with the identity added
  EXPECT_VIT_ERROR(vit::attention_rollout({a.data(), 1, 4, 16}), ErrorCode::kInvalidArgument, "row 1");
  a[4] = kNaN;
  EXPECT_VIT_ERROR(vit::attention_rollout({a.data(), 1, 4, 16}), ErrorCode::kInvalidArgument, "row 1");
}

// ---- drawing ------------------------------------------------------------------------------

TEST(Drawing, BilinearUpsampleHalfPixelCentres) {
  const float g[2] = {1.0f, 5.0f};
  const std::vector<float> u = vit::upsample_bilinear(g, 1, 2, 1, 4);
  // Source x = (o + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
  const float want[4] = {1.0f, 2.0f, 4.0f, 5.0f};
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(u[i], want[i]) << i;

  std::vector<float> r = vit::test::random_vec(12);
  const std::vector<float> same = vit::upsample_bilinear(r.data(), 3, 4, 3, 4);
  for (size_t i = 0; i < r.size(); ++i) EXPECT_EQ(same[i], r[i]) << i;  // same size: identity

  // 2x2 -> 4x4: the centre 2x2 block averages with weights 3/4, 1/4 per axis.
  const float q[4] = {0.0f, 4.0f, 8.0f, 12.0f};
  const std::vector<float> v = vit::upsample_bilinear(q, 2, 2, 4, 4);
  EXPECT_FLOAT_EQ(v[0], 0.0f);
  EXPECT_FLOAT_EQ(v[1 * 4 + 1], 0.75f * 0.75f * 0 + 0.75f * 0.25f * 4 + 0.25f * 0.75f * 8 + 0.25f * 0.25f * 12);
  EXPECT_FLOAT_EQ(v[15], 12.0f);
  EXPECT_VIT_ERROR(vit::upsample_bilinear(q, 0, 2, 4, 4), ErrorCode::kInvalidArgument, "positive");
}

TEST(Drawing, NormalizeUnit) {
  std::vector<float> v = {2.0f, 4.0f, 3.0f, kNaN};
  vit::normalize_unit(v);
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_EQ(v[1], 1.0f);
  EXPECT_FLOAT_EQ(v[2], 0.5f);
  EXPECT_EQ(v[3], 0.0f);
  std::vector<float> c(5, 7.0f);
  vit::normalize_unit(c);
  for (float x : c) EXPECT_EQ(x, 0.0f);
}

// The embedded table is matplotlib's inferno (entries checked against matplotlib 3.x
// _inferno_data * 255, rounded) and, as a perceptual map, its luma rises end to end.
TEST(Drawing, InfernoTable) {
  const auto& t = vit::inferno_table();
  const int probes[3][4] = {{0, 0, 0, 4}, {128, 188, 55, 84}, {255, 252, 255, 164}};
  for (const auto& p : probes)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(t[p[0]][c], p[1 + c]) << p[0];
  double prev = -1.0;
  for (int i = 0; i < 256; ++i) {
    const double luma = 0.2126 * t[i][0] + 0.7152 * t[i][1] + 0.0722 * t[i][2];
    EXPECT_GT(luma, prev - 0.5) << i;  // monotone up to the 8-bit rounding of the table
    prev = std::max(prev, luma);
  }
  EXPECT_GT(prev, 240.0);
  uint8_t rgb[3];
  vit::inferno(1.0f, rgb);
  EXPECT_EQ(rgb[0], 252);
  vit::inferno(kNaN, rgb);
  EXPECT_EQ(rgb[2], 4);
}

// Random RGB8 pixels [h, w, 3].
Image random_image(int w, int h) { return Image{w, h, vit::test::random_bytes(static_cast<size_t>(w) * h * 3)}; }

TEST(Drawing, OverlayScaleAndStack) {
  const Image img = random_image(5, 3);
  std::vector<float> heat = vit::test::random_vec(15, 0.0f, 1.0f);
  EXPECT_EQ(vit::overlay_heatmap(img, heat, 0.0f).rgb, img.rgb);
  const Image full = vit::overlay_heatmap(img, heat, 1.0f);
  for (int i = 0; i < 15; ++i) {
    uint8_t c[3];
    vit::inferno(heat[i], c);
    for (int k = 0; k < 3; ++k) EXPECT_EQ(full.rgb[3 * i + k], c[k]);
  }
  const Image half = vit::overlay_heatmap(img, heat, 0.5f);
  for (int i = 0; i < 45; ++i) EXPECT_NEAR(half.rgb[i], 0.5 * img.rgb[i] + 0.5 * full.rgb[i], 0.5 + 1e-6);
  EXPECT_VIT_ERROR(vit::overlay_heatmap(img, std::vector<float>(14), 0.5f), ErrorCode::kInvalidArgument, "14");

  const Image big = vit::scale_nearest(img, 3);
  ASSERT_EQ(big.w, 15);
  ASSERT_EQ(big.h, 9);
  for (int y = 0; y < 9; ++y)
    for (int x = 0; x < 15; ++x)
      for (int k = 0; k < 3; ++k)
        ASSERT_EQ(big.rgb[(y * 15 + x) * 3 + k], img.rgb[((y / 3) * 5 + x / 3) * 3 + k]);

  const Image other = random_image(2, 4);
  const Image s = vit::hstack({img, other}, 1, 200);
  ASSERT_EQ(s.w, 5 + 1 + 2);
  ASSERT_EQ(s.h, 4);
  EXPECT_EQ(s.rgb[(0 * 8 + 5) * 3], 200);                       // the gap
  EXPECT_EQ(s.rgb[(3 * 8 + 0) * 3], 200);                       // padding under the short image
  EXPECT_EQ(s.rgb[(2 * 8 + 4) * 3 + 1], img.rgb[(2 * 5 + 4) * 3 + 1]);
  EXPECT_EQ(s.rgb[(3 * 8 + 7) * 3 + 2], other.rgb[(3 * 2 + 1) * 3 + 2]);
}

// ---- PNG ------------------------------------------------------------------------------------

TEST(Png, EncodeDecodeRoundTrip) {
  for (auto [w, h] : {std::pair{37, 23}, std::pair{1, 1}, std::pair{256, 3}}) {
    const Image img = random_image(w, h);
    const std::vector<uint8_t> png = vit::encode_png(img);
    ASSERT_GT(png.size(), 8u);
    EXPECT_EQ(vit::detect_image_format(png.data(), png.size()), vit::ImageFormat::kPng);
    const Image back = vit::decode_image_memory(png.data(), png.size(), "roundtrip");
    ASSERT_EQ(back.w, w);
    ASSERT_EQ(back.h, h);
    EXPECT_EQ(back.rgb, img.rgb) << w << "x" << h;
  }
  const Image img = random_image(9, 7);
  const std::string path = vit::test::temp_dir() + "/rt.png";
  vit::write_png(path, img);
  EXPECT_EQ(vit::decode_image_file(path).rgb, img.rgb);
}

TEST(Png, Errors) {
  Image bad = random_image(4, 4);
  bad.rgb.pop_back();
  EXPECT_VIT_ERROR(vit::encode_png(bad), ErrorCode::kInvalidArgument, "expected 48");
  EXPECT_VIT_ERROR(vit::encode_png(Image{}), ErrorCode::kInvalidArgument, "positive");
  EXPECT_VIT_ERROR(vit::write_png("/nonexistent-dir/x.png", random_image(2, 2)), ErrorCode::kIo,
                   "/nonexistent-dir/x.png");
}

// ---- the CPU engine's attention_layers -----------------------------------------------------

// batch 19 crosses the engine's 16-image chunk, so the [depth, B, T, T] layer stride (whole
// batch, not chunk) is exercised.
TEST(EngineAttentionLayers, RowsSumToOneAndLastBlockIsHeadMean) {
  const vit::ViTConfig cfg = vit::test::small_config(16, 12, 4, 32, 4, 3, 7);  // T = 13
  auto model = vit::test::random_model(cfg, 7);
  auto eng = vit::make_cpu_engine(model, 2);
  const int B = 19, T = cfg.tokens(), H = cfg.heads, L = cfg.depth;
  const std::vector<float> x = vit::test::random_vec(static_cast<size_t>(B) * 3 * 16 * 12);

  std::vector<float> logits_ref(static_cast<size_t>(B) * 7, kNaN);
  {
    vit::RunOutputs o;
    o.logits = logits_ref.data();
    eng->run(x.data(), B, o);
  }
  std::vector<float> layers(static_cast<size_t>(L) * B * T * T, kNaN);
  std::vector<float> probs(static_cast<size_t>(B) * H * T * T, kNaN);
  std::vector<float> logits(static_cast<size_t>(B) * 7, kNaN);
  vit::RunOutputs o;
  o.logits = logits.data();
  o.attention = probs.data();
  o.attention_layers = layers.data();
  eng->run(x.data(), B, o);

  EXPECT_EQ(logits, logits_ref);  // asking for the maps changes nothing else
  for (int l = 0; l < L; ++l)
    for (int b = 0; b < B; ++b)
      for (int i = 0; i < T; ++i) {
        const float* row = &layers[((static_cast<size_t>(l) * B + b) * T + i) * T];
        double s = 0.0, mx = 0.0;
        for (int j = 0; j < T; ++j) {
          ASSERT_TRUE(row[j] >= 0.0f && row[j] <= 1.0f) << l << "," << b << "," << i << "," << j << ": " << row[j];
          s += row[j];
          mx = std::max(mx, static_cast<double>(row[j]));
        }
        // fp32 probabilities, each rounded once, then a mean over 4 heads: ~T ulps.
        ASSERT_NEAR(s, 1.0, 1e-5) << l << "," << b << "," << i;
        ASSERT_GT(mx, 1.0 / T - 1e-6);
      }
  // The last block's slice is the head mean of `attention` of the same run.
  double maxdiff = 0.0;
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < T; ++i)
      for (int j = 0; j < T; ++j) {
        double m = 0.0;
        for (int h = 0; h < H; ++h) m += probs[((static_cast<size_t>(b) * H + h) * T + i) * T + j];
        m /= H;
        const double got = layers[((static_cast<size_t>(L - 1) * B + b) * T + i) * T + j];
        maxdiff = std::max(maxdiff, std::fabs(got - m));
      }
  EXPECT_LT(maxdiff, 1e-7);  // values <= 1: fp32 sum of 4 terms and a scale, < 2 ulps of 1
  // Earlier blocks differ from the last one (the output is not one layer copied L times).
  EXPECT_NE(std::vector<float>(layers.begin(), layers.begin() + T * T),
            std::vector<float>(layers.end() - static_cast<size_t>(B) * T * T,
                               layers.end() - static_cast<size_t>(B - 1) * T * T));

  // attention_layers alone: the same values as when `attention` was requested too.
  std::vector<float> alone(layers.size(), kNaN);
  vit::RunOutputs o2;
  o2.attention_layers = alone.data();
  eng->run(x.data(), B, o2);
  EXPECT_EQ(alone, layers);

  // Image 17 alone (batch 1) gives the same maps as inside the batch of 19.
  std::vector<float> one(static_cast<size_t>(L) * T * T, kNaN);
  vit::RunOutputs o3;
  o3.attention_layers = one.data();
  eng->run(x.data() + 17 * 3 * 16 * 12, 1, o3);
  for (int l = 0; l < L; ++l)
    for (int k = 0; k < T * T; ++k)
      ASSERT_NEAR(one[l * T * T + k], layers[(static_cast<size_t>(l) * B + 17) * T * T + k], 1e-6) << l << "," << k;
}

// attention_layers [depth, B, T, T] of the model in `dir` for images x [B, 3, H, W] from the
// CPU engine (1 thread), NaN-poisoned before the run: the reference for the C API runs.
std::vector<float> cpu_attention_layers(const std::string& dir, const std::vector<float>& x, int B) {
  auto model = vit::load_model(dir);
  const int T = model->cfg.tokens();
  std::vector<float> layers(static_cast<size_t>(model->cfg.depth) * B * T * T, kNaN);
  vit::RunOutputs o;
  o.attention_layers = layers.data();
  vit::make_cpu_engine(model, 1)->run(x.data(), B, o);
  return layers;
}

// Through the C API (and the vitpp wrapper): the same numbers as the engine; attention_layers
// alone is a valid request.
TEST(EngineAttentionLayers, CApiAndWrapper) {
  const vit::ViTConfig cfg = vit::test::small_config(16, 16, 8, 24, 3, 2, 5);  // T = 5
  const std::string dir = vit::test::write_random_checkpoint(cfg, 3);
  const int B = 2, T = cfg.tokens();
  const std::vector<float> x = vit::test::random_vec(static_cast<size_t>(B) * 3 * 16 * 16);

  const std::vector<float> want = cpu_attention_layers(dir, x, B);

  vitpp::Model m(dir);
  vitpp::Session s(m);
  vit_outputs co{};
  std::vector<float> got(want.size(), kNaN);
  co.attention_layers = got.data();
  s.run(x.data(), B, co);
  for (size_t k = 0; k < want.size(); ++k) ASSERT_NEAR(got[k], want[k], 1e-6) << k;  // thread-count only

  vitpp::AttentionOutputs r = s.run_attention(x.data(), B);
  EXPECT_EQ(r.depth, cfg.depth);
  EXPECT_EQ(r.tokens, T);
  EXPECT_EQ(r.logits.size(), static_cast<size_t>(B) * 5);
  EXPECT_EQ(r.attention_layers, got);
  EXPECT_EQ(r.layer(1, 1), r.attention_layers.data() + (1 * B + 1) * T * T);
}

// A CUDA session fills attention_layers too (un-graphed run, per-block probabilities averaged
// over heads on the device): the same maps as the CPU engine. The device computes exp with
// fp32 intrinsics, so the tolerance is 1e-5 on probabilities in [0, 1] rather than fp32 ulps.
// Skips where no CUDA session can be created.
TEST(EngineAttentionLayers, CudaSessionMatchesCpu) {
  const vit::ViTConfig cfg = vit::test::small_config(16, 16, 8, 24, 3, 2, 5);
  const std::string dir = vit::test::write_random_checkpoint(cfg, 4);
  vitpp::Model m(dir);
  vit_session_params sp = vit_session_default_params();
  sp.device = VIT_DEVICE_CUDA;
  vit_session* s = nullptr;
  vit_status* st = vit_session_create(m.get(), &sp, &s);
  if (st) {
    const std::string msg = vit_status_get_message(st);
    vit_status_free(st);
    GTEST_SKIP() << "no CUDA session: " << msg;
  }
  const int B = 3;
  const std::vector<float> x = vit::test::random_vec(static_cast<size_t>(B) * 3 * 16 * 16);
  const std::vector<float> want = cpu_attention_layers(dir, x, B);

  std::vector<float> got(want.size(), kNaN);
  vit_outputs o{};
  o.attention_layers = got.data();
  st = vit_session_run(s, x.data(), B, &o);
  EXPECT_EQ(st, nullptr) << vit_status_get_message(st);
  vit_status_free(st);
  vit_session_free(s);
  for (size_t k = 0; k < want.size(); ++k) ASSERT_NEAR(got[k], want[k], 1e-5) << k;
}

// ---- the CLI ---------------------------------------------------------------------------------

// The program runs through the shared child-process runner (cli_runner.h): no shell, a 60 s
// limit per run, stdout and stderr captured separately, rc = the exit status (-1 on a signal).
using vit::test::Proc;
using vit::test::run_cli;

// The demo model with one of its samples when it has been trained, else the timm golden
// fixture with a fixture photo.
struct CliCase {
  std::string model, image;
};
CliCase cli_case() {
  const std::string demo = std::string(VIT_SOURCE_DIR) + "/models/demo";
  if (fs::exists(demo + "/model.safetensors") && fs::exists(demo + "/config.json")) {
    for (const char* s : {"sample_01.png", "sample_01.jpg", "sample_02.png", "sample_02.jpg"})
      if (fs::exists(demo + "/samples/" + s)) return {demo, demo + "/samples/" + s};
  }
  return {vit::test::data_path("golden/timm_token/model"), vit::test::data_path("images/rgba_53x37.png")};
}

// In-process reference for a CLI run: the same decode + preprocessing and the CPU engine.
struct Reference {
  vit::ViTConfig cfg;
  std::vector<float> logits, layers;  // [C], [depth, 1, T, T]
};
Reference reference(const CliCase& c) {
  auto model = vit::load_model(c.model);
  Reference r;
  r.cfg = model->cfg;
  vit::PreprocessConfig pp = model->cfg.preprocess;
  pp.input_h = r.cfg.image_h;
  pp.input_w = r.cfg.image_w;
  std::vector<float> x(static_cast<size_t>(3) * r.cfg.image_h * r.cfg.image_w);
  vit::preprocess_image(vit::decode_image_file(c.image), pp, x.data());
  r.logits.assign(static_cast<size_t>(r.cfg.num_classes), kNaN);
  r.layers.assign(static_cast<size_t>(r.cfg.depth) * r.cfg.tokens() * r.cfg.tokens(), kNaN);
  vit::RunOutputs o;
  o.logits = r.logits.data();
  o.attention_layers = r.layers.data();
  vit::make_cpu_engine(model, 1)->run(x.data(), 1, o);
  return r;
}

TEST(CliAttention, WritesPngOfExpectedSizeAndJsonMaps) {
  const CliCase c = cli_case();
  const Reference ref = reference(c);
  const int H = ref.cfg.image_h, W = ref.cfg.image_w, gh = ref.cfg.grid_h(), gw = ref.cfg.grid_w();
  const std::string out = vit::test::temp_dir() + "/map.png";
  Proc p = run_cli({"attention", "--model", c.model, "--image", c.image, "--out", out, "--json", "--threads", "2"});
  ASSERT_EQ(p.rc, 0) << p.err;

  // image | last | rollout, each the crop scaled by ceil(224 / H), with gaps of max(2, f) columns.
  const int f = (224 + H - 1) / H;
  const Image fig = vit::decode_image_file(out);
  EXPECT_EQ(fig.h, H * f);
  EXPECT_EQ(fig.w, 3 * W * f + 2 * std::max(2, f));
  // The first panel is the crop the model saw, scaled: compare with our own resize+crop.
  vit::PreprocessConfig pp = ref.cfg.preprocess;
  pp.input_h = H;
  pp.input_w = W;
  const Image src = vit::decode_image_file(c.image);
  const Image crop = vit::resize_crop(src, vit::plan_resize_crop(src.w, src.h, pp));
  for (int y = 0; y < fig.h; y += 5)
    for (int x = 0; x < W * f; x += 3)
      ASSERT_EQ(fig.rgb[(static_cast<size_t>(y) * fig.w + x) * 3], crop.rgb[((y / f) * W + x / f) * 3]) << y << "," << x;
  // The overlays are not the plain image.
  int differ = 0;
  for (int y = 0; y < fig.h; ++y)
    for (int x = 0; x < W * f; ++x)
      differ += fig.rgb[(static_cast<size_t>(y) * fig.w + x + W * f + std::max(2, f)) * 3] !=
                fig.rgb[(static_cast<size_t>(y) * fig.w + x) * 3];
  EXPECT_GT(differ, W * f * fig.h / 2);

  const nlohmann::json j = nlohmann::json::parse(p.out);
  EXPECT_EQ(j.at("grid"), (nlohmann::json{gh, gw}));
  const int top = static_cast<int>(std::max_element(ref.logits.begin(), ref.logits.end()) - ref.logits.begin());
  EXPECT_EQ(j.at("top1").at("index").get<int>(), top);
  const int T = ref.cfg.tokens();
  const vit::AttentionStack s{ref.layers.data(), ref.cfg.depth, T, static_cast<int64_t>(T) * T};
  const std::vector<float> last = vit::last_layer_cls_map(s), roll = vit::rollout_cls_map(s);
  ASSERT_EQ(j.at("last_layer").size(), static_cast<size_t>(gh));
  ASSERT_EQ(j.at("rollout").size(), static_cast<size_t>(gh));
  for (int y = 0; y < gh; ++y) {
    ASSERT_EQ(j.at("last_layer")[y].size(), static_cast<size_t>(gw));
    for (int x = 0; x < gw; ++x) {
      // The program runs the same fp32 engine with another thread count: 1e-6 absolute.
      EXPECT_NEAR(j.at("last_layer")[y][x].get<double>(), last[y * gw + x], 1e-6);
      EXPECT_NEAR(j.at("rollout")[y][x].get<double>(), roll[y * gw + x], 1e-6);
    }
  }
}

TEST(CliAttention, ModesAndAvgPooling) {
  const CliCase c = cli_case();
  const vit::ViTConfig cfg = vit::load_model(c.model)->cfg;
  const int f = (224 + cfg.image_h - 1) / cfg.image_h;
  const std::string out = vit::test::temp_dir() + "/last.png";
  Proc p = run_cli({"attention", "--model", c.model, "--image", c.image, "--out", out, "--mode", "last"});
  ASSERT_EQ(p.rc, 0) << p.err;
  const Image two = vit::decode_image_file(out);  // image | last
  EXPECT_EQ(two.w, 2 * cfg.image_w * f + std::max(2, f));
  EXPECT_EQ(two.h, cfg.image_h * f);
  Proc q = run_cli({"attention", "--model", c.model, "--image", c.image, "--json", "--mode", "rollout"});
  ASSERT_EQ(q.rc, 0) << q.err;
  const nlohmann::json j = nlohmann::json::parse(q.out);
  EXPECT_TRUE(j.contains("rollout"));
  EXPECT_FALSE(j.contains("last_layer"));
  EXPECT_FALSE(j.contains("out"));

  // A model that pools by averaging still has a class token row: it works, with a note.
  Proc a = run_cli({"attention", "--model", c.model, "--image", c.image, "--json", "--pool", "avg"});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_NE(a.err.find("averaging"), std::string::npos) << a.err;
}

// Without --model the program uses the bundled demo model (models/demo, next to the build tree).
TEST(CliAttention, DefaultModelIsTheDemo) {
  const std::string demo = std::string(VIT_SOURCE_DIR) + "/models/demo";
  if (!fs::exists(demo + "/model.safetensors")) GTEST_SKIP() << "models/demo has no weights yet";
  const CliCase c = cli_case();
  vit::test::RunOptions no_env_model;  // $VIT_INFER_MODEL would take the place of the demo
  no_env_model.unset_env = {"VIT_INFER_MODEL"};
  Proc p = run_cli({"attention", "--image", c.image, "--json"}, no_env_model);
  ASSERT_EQ(p.rc, 0) << p.err;
  const nlohmann::json j = nlohmann::json::parse(p.out);
  const vit::ViTConfig cfg = vit::load_model(demo)->cfg;
  EXPECT_EQ(j.at("grid"), (nlohmann::json{cfg.grid_h(), cfg.grid_w()}));
  EXPECT_TRUE(j.at("top1").at("label").is_string());
}

TEST(CliAttention, Errors) {
  const CliCase c = cli_case();
  const std::string dir = vit::test::temp_dir();
  Proc p = run_cli({"attention", "--model", c.model, "--image", dir + "/missing.png", "--out", dir + "/o.png"});
  EXPECT_EQ(p.rc, 1);
  EXPECT_NE(p.err.find("missing.png"), std::string::npos) << p.err;

  const std::string txt = dir + "/not_an_image.png";
  std::ofstream(txt) << "hello, this is text";
  p = run_cli({"attention", "--model", c.model, "--image", txt, "--out", dir + "/o.png"});
  EXPECT_EQ(p.rc, 1);
  EXPECT_NE(p.err.find("not_an_image.png"), std::string::npos) << p.err;

  const std::string npy = dir + "/x.npy";
  std::ofstream(npy) << "x";
  p = run_cli({"attention", "--model", c.model, "--image", npy, "--out", dir + "/o.png"});
  EXPECT_EQ(p.rc, 1);
  EXPECT_NE(p.err.find("not a preprocessed .npy"), std::string::npos) << p.err;

  p = run_cli({"attention", "--model", c.model, "--image", c.image});  // nowhere to write
  EXPECT_EQ(p.rc, 2);
  p = run_cli({"attention", "--model", c.model, "--image", c.image, "--out", dir + "/o.png", "--mode", "sideways"});
  EXPECT_EQ(p.rc, 2);
  p = run_cli({"attention", "--model", c.model, "--image", c.image, "--out", "/nonexistent-dir/o.png"});
  EXPECT_EQ(p.rc, 1);
  EXPECT_NE(p.err.find("/nonexistent-dir/o.png"), std::string::npos) << p.err;
  EXPECT_FALSE(fs::exists(dir + "/o.png"));
}

}  // namespace
