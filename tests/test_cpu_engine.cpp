// vit-infer tests: the fp32 CPU engine against an independent, deliberately naive
// double-precision forward pass (plain loops, no BLAS, no shared code with the engine).
// Layouts: images [B, C, H, W]; logits [B, C]; embeddings [B, D]; attention [B, heads, T, T].
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <utility>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_engine.h"
#include "cpu/ref_ops.h"
#include "model_fixture.h"
#include "test_util.h"
#include "tolerances.h"

namespace vit {
namespace {

// Tolerance for fp32 engine vs double reference: |got - want| <= kRelTol * max|want| over the
// compared output. fp32 keeps ~7 digits; a few blocks of dot products up to 3072 long lose
// ~1-2 of them (~1e-6 relative to the output's scale), so 1e-4 leaves margin for reordering
// while any real mistake (a wrong bias, eps, GELU variant, head order) is >= 1e-3.
constexpr double kRelTol = 1e-4;

// ---------------------------------------------------------------------------------------
// The naive reference: one image at a time, everything in double.
struct RefOut {
  std::vector<double> logits;  // [C]
  std::vector<double> emb;     // [D]
  std::vector<double> attn;    // [heads, T, T] of the last block
};

using Mat = std::vector<double>;  // row-major [rows, cols]

Mat ref_linear(const Mat& x, int rows, int in, const Tensor& w, const Tensor& b, int out) {
  Mat y(static_cast<size_t>(rows) * out);
  for (int r = 0; r < rows; ++r) {
    for (int o = 0; o < out; ++o) {
      double s = b.data[o];
      for (int i = 0; i < in; ++i) s += x[r * in + i] * static_cast<double>(w.data[o * in + i]);
      y[r * out + o] = s;
    }
  }
  return y;
}

Mat ref_layer_norm(const Mat& x, int rows, int D, const Tensor& g, const Tensor& b, double eps) {
  Mat y(x.size());
  for (int r = 0; r < rows; ++r) {
    double mean = 0.0, var = 0.0;
    for (int j = 0; j < D; ++j) mean += x[r * D + j];
    mean /= D;
    for (int j = 0; j < D; ++j) var += (x[r * D + j] - mean) * (x[r * D + j] - mean);
    var /= D;
    for (int j = 0; j < D; ++j) {
      y[r * D + j] = (x[r * D + j] - mean) / std::sqrt(var + eps) * g.data[j] + b.data[j];
    }
  }
  return y;
}

RefOut reference_forward(const Model& m, const float* img) {
  const ViTConfig& c = m.cfg;
  const ViTWeights& w = m.w;
  const int D = c.hidden, T = c.tokens(), P = c.patch, I = c.mlp_hidden;
  const int nH = c.heads, hd = D / nH, gw = c.image_w / P, gh = c.image_h / P;
  const double eps = c.ln_eps;

  // Patch embedding as the convolution it is: x[1+n, o] = b[o] + sum w[o,c,py,px] * img[c, y, x].
  Mat x(static_cast<size_t>(T) * D);
  for (int j = 0; j < D; ++j) x[j] = static_cast<double>(w.cls.data[j]) + w.pos.data[j];
  for (int gy = 0; gy < gh; ++gy) {
    for (int gx = 0; gx < gw; ++gx) {
      const int t = 1 + gy * gw + gx;
      for (int o = 0; o < D; ++o) {
        double s = w.patch_b.data[o];
        for (int ch = 0; ch < c.in_chans; ++ch) {
          for (int py = 0; py < P; ++py) {
            for (int px = 0; px < P; ++px) {
              const double wv = w.patch_w.data[((o * c.in_chans + ch) * P + py) * P + px];
              const double iv = img[(ch * c.image_h + gy * P + py) * c.image_w + gx * P + px];
              s += wv * iv;
            }
          }
        }
        x[t * D + o] = s + w.pos.data[t * D + o];
      }
    }
  }

  RefOut out;
  for (size_t li = 0; li < w.blocks.size(); ++li) {
    const BlockWeights& b = w.blocks[li];
    Mat h = ref_layer_norm(x, T, D, b.ln1_w, b.ln1_b, eps);
    Mat qkv = ref_linear(h, T, D, b.qkv_w, b.qkv_b, 3 * D);
    Mat att(static_cast<size_t>(T) * D, 0.0);
    if (li + 1 == w.blocks.size()) out.attn.assign(static_cast<size_t>(nH) * T * T, 0.0);
    for (int head = 0; head < nH; ++head) {
      for (int i = 0; i < T; ++i) {
        std::vector<double> p(T);
        double mx = -1e300;
        for (int j = 0; j < T; ++j) {
          double s = 0.0;
          for (int d = 0; d < hd; ++d) {
            s += qkv[i * 3 * D + head * hd + d] * qkv[j * 3 * D + D + head * hd + d];
          }
          p[j] = s / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, p[j]);
        }
        double sum = 0.0;
        for (int j = 0; j < T; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (int j = 0; j < T; ++j) p[j] /= sum;
        if (!out.attn.empty()) {
          for (int j = 0; j < T; ++j) out.attn[(head * T + i) * T + j] = p[j];
        }
        for (int d = 0; d < hd; ++d) {
          double s = 0.0;
          for (int j = 0; j < T; ++j) s += p[j] * qkv[j * 3 * D + 2 * D + head * hd + d];
          att[i * D + head * hd + d] = s;
        }
      }
    }
    Mat proj = ref_linear(att, T, D, b.proj_w, b.proj_b, D);
    for (size_t k = 0; k < x.size(); ++k) x[k] += c.layer_scale ? b.ls1.data[k % D] * proj[k] : proj[k];

    h = ref_layer_norm(x, T, D, b.ln2_w, b.ln2_b, eps);
    Mat f1 = ref_linear(h, T, D, b.fc1_w, b.fc1_b, I);
    for (double& v : f1) v = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    Mat f2 = ref_linear(f1, T, I, b.fc2_w, b.fc2_b, D);
    for (size_t k = 0; k < x.size(); ++k) x[k] += c.layer_scale ? b.ls2.data[k % D] * f2[k] : f2[k];
  }

  if (c.final_norm) x = ref_layer_norm(x, T, D, w.norm_w, w.norm_b, eps);
  Mat pooled(D, 0.0);
  if (c.pool == GlobalPool::kToken) {
    for (int j = 0; j < D; ++j) pooled[j] = x[j];
  } else {
    for (int t = 1; t < T; ++t) {
      for (int j = 0; j < D; ++j) pooled[j] += x[t * D + j];
    }
    for (double& v : pooled) v /= (T - 1);
  }
  if (c.fc_norm) pooled = ref_layer_norm(pooled, 1, D, w.fc_norm_w, w.fc_norm_b, eps);
  out.emb = pooled;
  if (c.num_classes > 0) out.logits = ref_linear(pooled, 1, D, w.head_w, w.head_b, c.num_classes);
  return out;
}

// ---------------------------------------------------------------------------------------
// Helpers.

std::vector<float> poisoned(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

// Every element finite and within kRelTol * max|want| of the reference.
void expect_close(const float* got, const double* want, size_t n, const std::string& what) {
  double scale = 0.0;
  for (size_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(want[i]));
  ASSERT_GT(scale, 0.0) << what << ": reference is all zero, the comparison would be vacuous";
  const double tol = kRelTol * scale;
  double worst = 0.0;
  size_t worst_i = 0;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << "[" << i << "] = " << got[i] << " (not written?)";
    const double d = std::fabs(got[i] - want[i]);
    if (d > worst) worst = d, worst_i = i;
  }
  EXPECT_LE(worst, tol) << what << ": worst at [" << worst_i << "]: got " << got[worst_i]
                        << " want " << want[worst_i] << " (max|want| " << scale << ")";
}

void expect_close_f(const float* got, const float* want, size_t n, const std::string& what) {
  std::vector<double> w(want, want + n);
  expect_close(got, w.data(), n, what);
}

template <class F>
void expect_error(ErrorCode code, const std::string& needle, F&& f) {
  try {
    f();
    ADD_FAILURE() << "expected vit::Error(" << static_cast<int>(code) << ") mentioning '" << needle
                  << "', nothing was thrown";
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.code()), static_cast<int>(code)) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

uint64_t fresh_seed() {
  static std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

struct Outputs {
  std::vector<float> logits, emb, attn;
  Outputs(const ViTConfig& c, int batch)
      : logits(poisoned(static_cast<size_t>(batch) * c.num_classes)),
        emb(poisoned(static_cast<size_t>(batch) * c.hidden)),
        attn(poisoned(static_cast<size_t>(batch) * c.heads * c.tokens() * c.tokens())) {}
  RunOutputs ptrs() {
    RunOutputs o;
    o.logits = logits.empty() ? nullptr : logits.data();
    o.embeddings = emb.data();
    o.attention = attn.data();
    return o;
  }
};

size_t image_numel(const ViTConfig& c) {
  return static_cast<size_t>(c.in_chans) * c.image_h * c.image_w;
}

// B fresh random images through `engine` in one batch; each image's logits (when the model
// has a head), embeddings and attention [H, T, T] are checked against the double reference.
// Returns the engine's outputs (NaN-poisoned before the run) for further checks.
Outputs run_against_reference(Engine& engine, const Model& model, int B) {
  const ViTConfig& cfg = model.cfg;
  const int C = cfg.num_classes, D = cfg.hidden;
  const size_t A = static_cast<size_t>(cfg.heads) * cfg.tokens() * cfg.tokens();
  const std::vector<float> images = test::random_vec(B * image_numel(cfg));
  Outputs out(cfg, B);
  engine.run(images.data(), B, out.ptrs());
  for (int b = 0; b < B; ++b) {
    SCOPED_TRACE("image " + std::to_string(b));
    const RefOut ref = reference_forward(model, images.data() + b * image_numel(cfg));
    if (C > 0) expect_close(out.logits.data() + b * C, ref.logits.data(), C, "logits");
    expect_close(out.emb.data() + b * D, ref.emb.data(), D, "embeddings");
    expect_close(out.attn.data() + b * A, ref.attn.data(), A, "attention");
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Engine vs reference on awkward shapes.

struct Case {
  const char* name;
  int image_h, image_w, patch, hidden, heads, depth, classes;
  GlobalPool pool;
  bool final_norm, fc_norm;
  float eps;
  int in_chans, batch;
};

// gtest prints parameters on failure; the name is what identifies a case.
void PrintTo(const Case& k, std::ostream* os) { *os << k.name; }

ViTConfig case_config(const Case& k) {
  ViTConfig c =
      test::small_config(k.image_h, k.image_w, k.patch, k.hidden, k.heads, k.depth, k.classes);
  c.pool = k.pool;
  c.final_norm = k.final_norm;
  c.fc_norm = k.fc_norm;
  c.ln_eps = k.eps;
  c.in_chans = k.in_chans;
  return c;
}

class CpuVsReference : public ::testing::TestWithParam<Case> {};

TEST_P(CpuVsReference, MatchesDoubleReference) {
  const Case& k = GetParam();
  const ViTConfig cfg = case_config(k);
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("model seed " + std::to_string(seed));
  auto model = test::random_model(cfg, seed);
  auto engine = make_cpu_engine(model, 2);
  const int B = k.batch, T = cfg.tokens(), H = cfg.heads;
  const Outputs out = run_against_reference(*engine, *model, B);
  for (int b = 0; b < B; ++b) {
    SCOPED_TRACE("image " + std::to_string(b));
    const float* attn = out.attn.data() + static_cast<size_t>(b) * H * T * T;
    // Each probability row sums to 1 up to the rounding of T fp32 terms.
    const double row_tol = T * std::numeric_limits<float>::epsilon();
    for (int r = 0; r < H * T; ++r) {
      double s = 0.0;
      for (int j = 0; j < T; ++j) s += attn[r * T + j];
      ASSERT_NEAR(s, 1.0, row_tol) << "attention row " << r;
    }
  }
}

// 224/16 = 197 tokens, 224/32 = 50 tokens, odd grids (40x24 and 24x40 with patch 8),
// head dims 24 / 64 / 80, both poolings, every norm combination, HF eps, a large eps (so that
// an engine ignoring cfg.ln_eps fails), one input channel, batch 1 / 2 / 3.
// clang-format off
const Case kCases[] = {
  // name, image_h, image_w, patch, hidden, heads, depth, classes, pool, final_norm, fc_norm, eps,
  // in_chans, batch
  {"t197_hd24_token_b1",                      224, 224, 16,  48, 2, 2, 10, GlobalPool::kToken, true,  false, 1e-6f,  3, 1},
  {"t197_hd24_token_hfeps_b3",                224, 224, 16,  48, 2, 2, 10, GlobalPool::kToken, true,  false, 1e-12f, 3, 3},
  {"t50_hd64_avg_fcnorm_b3",                  224, 224, 32, 128, 2, 2,  7, GlobalPool::kAvg,   false, true,  1e-6f,  3, 3},
  {"odd40x24_hd80_noclasses_b3",               40,  24,  8, 160, 2, 3,  0, GlobalPool::kToken, true,  false, 1e-6f,  3, 3},
  {"odd24x40_hd24_avg_finalnorm_bigeps_b1",    24,  40,  8,  72, 3, 2,  5, GlobalPool::kAvg,   true,  false, 0.5f,   3, 1},
  {"t7_hd64_token_nonorm_1chan_b2",            32,  48, 16,  64, 1, 1,  3, GlobalPool::kToken, false, false, 1e-6f,  1, 2},
  {"t50_hd80_token_bothnorms_b1",             224, 224, 32, 160, 2, 2,  4, GlobalPool::kToken, true,  true,  1e-6f,  3, 1},
};
// clang-format on

INSTANTIATE_TEST_SUITE_P(Shapes, CpuVsReference, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           return std::string(i.param.name);
                         });

// ---------------------------------------------------------------------------------------
// Consistency.

ViTConfig consistency_config() {
  ViTConfig c = test::small_config(40, 24, 8, 48, 2, 2, 6);  // 16 tokens, hd 24
  return c;
}

// ref::cross_attention (the map head's op) against a plain double loop written from its
// definition, on the brief's awkward shapes: T 197 and 50 kv rows, head dims 24 and 80, batch 1
// and 3, 1 and 2 query rows, a shared (weight) query and per-image ones, 0 / 1 / 5 skipped prefix
// rows. Fresh random inputs every run; the output is poisoned with NaN, and so are the skipped kv
// rows, so that an unwritten element or a read of a prefix row fails.
TEST(RefOps, CrossAttentionMatchesNaiveLoop) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const int64_t T : {197, 50})
    for (const int64_t hd : {24, 80})
      for (const int64_t B : {1, 3})
        for (const int64_t L : {1, 2})
          for (const bool shared : {true, false})
            for (const int64_t first : {0, 1, 5}) {
              SCOPED_TRACE("T " + std::to_string(T) + " hd " + std::to_string(hd) + " B " + std::to_string(B) + " L " +
                           std::to_string(L) + (shared ? " shared q" : " per-image q") + " first " +
                           std::to_string(first));
              const int64_t H = 3, D = H * hd;
              // q in (-4, 4): scores of std ~1.3, so the softmax is far from uniform.
              const std::vector<float> q = test::random_vec(static_cast<size_t>((shared ? 1 : B) * L * D), -4.0f, 4.0f);
              std::vector<float> kv = test::random_vec(static_cast<size_t>(B * T * 2 * D));
              for (int64_t b = 0; b < B; ++b)
                for (int64_t j = 0; j < first; ++j)
                  std::fill_n(kv.begin() + (b * T + j) * 2 * D, 2 * D, nan);
              std::vector<float> got(static_cast<size_t>(B * L * D), nan);
              ref::cross_attention(q.data(), shared ? 0 : L * D, kv.data(), got.data(), B, L, T, first, H, hd, 2);
              std::vector<float> want(got.size());
              for (int64_t b = 0; b < B; ++b)
                for (int64_t h = 0; h < H; ++h)
                  for (int64_t l = 0; l < L; ++l) {
                    const float* qr = q.data() + ((shared ? 0 : b) * L + l) * D + h * hd;
                    std::vector<double> e;
                    double mx = -1e300, z = 0.0;
                    for (int64_t j = first; j < T; ++j) {
                      const float* k = kv.data() + (b * T + j) * 2 * D + h * hd;
                      double dot = 0.0;
                      for (int64_t d = 0; d < hd; ++d) dot += static_cast<double>(qr[d]) * k[d];
                      e.push_back(dot / std::sqrt(static_cast<double>(hd)));
                      mx = std::max(mx, e.back());
                    }
                    for (double& v : e) z += (v = std::exp(v - mx));
                    for (int64_t d = 0; d < hd; ++d) {
                      double o = 0.0;
                      for (int64_t j = first; j < T; ++j) {
                        const float v = kv[static_cast<size_t>((b * T + j) * 2 * D + D + h * hd + d)];
                        o += e[static_cast<size_t>(j - first)] / z * v;
                      }
                      want[static_cast<size_t>((b * L + l) * D + h * hd + d)] = static_cast<float>(o);
                    }
                  }
              EXPECT_TRUE(test::close_rel(got, want, test::tol_rel(DType::F32)));
            }
}

TEST(CpuEngine, RepeatedRunsAreBitwiseIdentical) {
  const ViTConfig cfg = consistency_config();
  auto engine = make_cpu_engine(test::random_model(cfg, fresh_seed()), 2);
  const int B = 3;
  std::vector<float> images = test::random_vec(B * image_numel(cfg));
  Outputs a(cfg, B), b(cfg, B);
  engine->run(images.data(), B, a.ptrs());
  engine->run(images.data(), B, b.ptrs());
  ASSERT_GT(test::max_abs(a.logits.data(), a.logits.size()), 0.0f);
  EXPECT_EQ(0, std::memcmp(a.logits.data(), b.logits.data(), a.logits.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(a.emb.data(), b.emb.data(), a.emb.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(a.attn.data(), b.attn.data(), a.attn.size() * sizeof(float)));
}

TEST(CpuEngine, BatchEqualsSingleImageRuns) {
  const ViTConfig cfg = consistency_config();
  auto engine = make_cpu_engine(test::random_model(cfg, fresh_seed()), 2);
  const int B = 3, C = cfg.num_classes, D = cfg.hidden;
  const size_t A = static_cast<size_t>(cfg.heads) * cfg.tokens() * cfg.tokens();
  std::vector<float> images = test::random_vec(B * image_numel(cfg));
  // Image 2 repeats image 0: same input at another batch position gives the same output.
  std::copy_n(images.begin(), image_numel(cfg), images.begin() + 2 * image_numel(cfg));
  Outputs batched(cfg, B);
  engine->run(images.data(), B, batched.ptrs());
  for (int b = 0; b < B; ++b) {
    SCOPED_TRACE("image " + std::to_string(b));
    Outputs single(cfg, 1);
    engine->run(images.data() + b * image_numel(cfg), 1, single.ptrs());
    expect_close_f(batched.logits.data() + b * C, single.logits.data(), C, "logits");
    expect_close_f(batched.emb.data() + b * D, single.emb.data(), D, "embeddings");
    expect_close_f(batched.attn.data() + b * A, single.attn.data(), A, "attention");
  }
  expect_close_f(batched.logits.data() + 2 * C, batched.logits.data(), C, "logits[2] vs logits[0]");
  // Distinct images give distinct outputs (guards against every slot holding image 0).
  EXPECT_GT(test::max_abs_diff(batched.logits.data(), batched.logits.data() + C, C), 1e-3f);
}

// LayerScale (timm init_values): each branch scaled per channel by ls1 / ls2.gamma before its
// residual add; 50 tokens, head dim 24, avg pooling, odd batch.
TEST(CpuEngine, LayerScaleMatchesReference) {
  ViTConfig cfg = test::small_config(56, 40, 8, 48, 2, 2, 6);  // 35 patches, hd 24
  cfg.layer_scale = true;
  cfg.pool = GlobalPool::kAvg;
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("model seed " + std::to_string(seed));
  auto model = test::random_model(cfg, seed);
  for (bool fusion : {true, false}) {
    SCOPED_TRACE(fusion ? "fused" : "unfused");
    auto engine = make_cpu_engine(model, 2, fusion);
    run_against_reference(*engine, *model, 3);
  }
}

// The fused graph (fusion pass) and the unfused one compute the same function; both are also
// checked against the double reference so that agreeing on a wrong answer cannot pass.
TEST(CpuEngine, FusedAndUnfusedGraphsAgree) {
  for (bool layer_scale : {false, true}) {
    ViTConfig cfg = consistency_config();
    cfg.layer_scale = layer_scale;
    SCOPED_TRACE(layer_scale ? "layer scale" : "plain");
    auto model = test::random_model(cfg, fresh_seed());
    auto fused = make_cpu_engine(model, 2, true);
    auto unfused = make_cpu_engine(model, 2, false);
    const int B = 3;
    run_against_reference(*fused, *model, B);
    std::vector<float> images = test::random_vec(B * image_numel(cfg));
    Outputs f(cfg, B), u(cfg, B);
    fused->run(images.data(), B, f.ptrs());
    unfused->run(images.data(), B, u.ptrs());
    ASSERT_GT(test::max_abs(f.logits.data(), f.logits.size()), 0.0f);
    expect_close_f(u.logits.data(), f.logits.data(), f.logits.size(), "logits");
    expect_close_f(u.emb.data(), f.emb.data(), f.emb.size(), "embeddings");
    expect_close_f(u.attn.data(), f.attn.data(), f.attn.size(), "attention");
    run_against_reference(*unfused, *model, 1);
  }
}

// More images than the engine processes per internal pass, so chunk offsets are exercised.
TEST(CpuEngine, LargeBatchMatchesReference) {
  ViTConfig cfg = test::small_config(16, 24, 8, 32, 2, 2, 5);  // 7 tokens, hd 16
  auto model = test::random_model(cfg, fresh_seed());
  auto engine = make_cpu_engine(model, 2);
  run_against_reference(*engine, *model, 37);
}

TEST(CpuEngine, ThreadCountDoesNotChangeResults) {
  const ViTConfig cfg = consistency_config();
  auto model = test::random_model(cfg, fresh_seed());
  auto one = make_cpu_engine(model, 1);
  auto all = make_cpu_engine(model, 0);
  const int B = 2;
  std::vector<float> images = test::random_vec(B * image_numel(cfg));
  Outputs a(cfg, B), b(cfg, B);
  one->run(images.data(), B, a.ptrs());
  all->run(images.data(), B, b.ptrs());
  expect_close_f(a.logits.data(), b.logits.data(), a.logits.size(), "logits");
  expect_close_f(a.attn.data(), b.attn.data(), a.attn.size(), "attention");
}

TEST(CpuEngine, OutputsAreOptional) {
  const ViTConfig cfg = consistency_config();
  auto engine = make_cpu_engine(test::random_model(cfg, fresh_seed()), 2);
  const int B = 2;
  std::vector<float> images = test::random_vec(B * image_numel(cfg));
  Outputs full(cfg, B);
  engine->run(images.data(), B, full.ptrs());

  engine->run(images.data(), B, RunOutputs{});  // nothing requested: must not crash

  std::vector<float> logits = poisoned(full.logits.size());
  RunOutputs only_logits;
  only_logits.logits = logits.data();
  engine->run(images.data(), B, only_logits);
  EXPECT_EQ(0, std::memcmp(logits.data(), full.logits.data(), logits.size() * sizeof(float)));

  std::vector<float> attn = poisoned(full.attn.size());
  RunOutputs only_attn;
  only_attn.attention = attn.data();
  engine->run(images.data(), B, only_attn);
  EXPECT_EQ(0, std::memcmp(attn.data(), full.attn.data(), attn.size() * sizeof(float)));
}

// ---------------------------------------------------------------------------------------
// Errors.

TEST(CpuEngine, CancelFlagThrowsCancelled) {
  const ViTConfig cfg = consistency_config();
  auto engine = make_cpu_engine(test::random_model(cfg, fresh_seed()), 2);
  std::vector<float> images = test::random_vec(image_numel(cfg));
  Outputs out(cfg, 1);
  std::atomic<bool> cancel{true};
  expect_error(ErrorCode::kCancelled, "cancel",
               [&] { engine->run(images.data(), 1, out.ptrs(), &cancel); });
  // The engine is still usable afterwards (the lock was released) and a clear flag runs through.
  cancel = false;
  engine->run(images.data(), 1, out.ptrs(), &cancel);
  for (float v : out.logits) ASSERT_TRUE(std::isfinite(v));
}

// Per-run sizes (Engine::run_at): each size's output equals that of the same model rebuilt at
// that size (its position table resampled by pos_embed_at, its own graph), on the reference and
// the fast engine; more sizes than the cache keeps (8 besides the model's own), so the least
// recently used are dropped and rebuilt, and a size run again gives the same bits; head dim 24,
// grids from 1x1 to 9x9, odd and even batches.
TEST(CpuEngine, RunSizesMatchTheModelBuiltAtThatSize) {
  const ViTConfig cfg = test::small_config(32, 32, 8, 48, 2, 2, 7);
  std::shared_ptr<const Model> model = test::random_model(cfg, fresh_seed());
  const std::vector<std::pair<int, int>> sizes = {{48, 48}, {32, 32}, {16, 40}, {64, 24}, {24, 24}, {40, 40},
                                                  {56, 16}, {8, 8},   {32, 48}, {48, 32}, {72, 72}, {48, 48}};
  for (bool fast : {false, true}) {
    SCOPED_TRACE(fast ? "fast engine" : "reference engine");
    auto engine = fast ? make_fast_cpu_engine(model, DType::F32, 2) : make_cpu_engine(model, 2);
    std::map<std::pair<int, int>, std::vector<float>> first;  // logits of each size's first run
    for (const auto& [h, w] : sizes) {
      SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w));
      auto sized = std::make_shared<Model>(*model);
      sized->cfg = model->cfg.at_size(h, w);
      sized->w.pos = pos_embed_at(*model, h / cfg.patch, w / cfg.patch);
      const int B = 1 + (h / cfg.patch + w / cfg.patch) % 3;  // 1..3, the same when a size repeats
      std::mt19937 rng(static_cast<uint32_t>(h * 1000 + w));  // the same images when a size repeats
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      std::vector<float> images(B * image_numel(sized->cfg));
      for (float& v : images) v = u(rng);
      Outputs got(sized->cfg, B), want(sized->cfg, B);
      engine->run_at(images.data(), B, h, w, got.ptrs());
      make_cpu_engine(sized, 2)->run(images.data(), B, want.ptrs());
      expect_close_f(got.logits.data(), want.logits.data(), got.logits.size(), "logits");
      expect_close_f(got.emb.data(), want.emb.data(), got.emb.size(), "embeddings");
      expect_close_f(got.attn.data(), want.attn.data(), got.attn.size(), "attention");
      const auto [it, fresh] = first.emplace(std::make_pair(h, w), got.logits);
      if (!fresh) EXPECT_EQ(got.logits, it->second) << "the size run again (its graph dropped and rebuilt)";
    }
  }
}

TEST(CpuEngine, RunSizeRules) {
  const ViTConfig cfg = consistency_config();
  auto engine = make_cpu_engine(test::random_model(cfg, fresh_seed()), 2);
  std::vector<float> images = test::random_vec(4 * image_numel(cfg));
  Outputs own(cfg, 1), at(cfg, 1);
  engine->run(images.data(), 1, own.ptrs());
  engine->run_at(images.data(), 1, cfg.image_h, cfg.image_w, at.ptrs());
  EXPECT_EQ(own.logits, at.logits) << "run_at at the model's size is run";
  Outputs out(cfg.at_size(2 * cfg.patch, 2 * cfg.patch), 1);
  expect_error(ErrorCode::kInvalidArgument, "not a multiple of the patch size",
               [&] { engine->run_at(images.data(), 1, cfg.image_h + 1, cfg.image_w, out.ptrs()); });
  expect_error(ErrorCode::kInvalidArgument, "smaller than the patch size",
               [&] { engine->run_at(images.data(), 1, cfg.patch / 2, cfg.image_w, out.ptrs()); });
  expect_error(ErrorCode::kInvalidArgument, "exceeds",
               [&] { engine->run_at(images.data(), 1, 9000 / cfg.patch * cfg.patch, cfg.patch, out.ptrs()); });
  // A failed size leaves the engine as it was.
  engine->run_at(images.data(), 1, 2 * cfg.patch, 2 * cfg.patch, out.ptrs());
  for (float v : out.logits) EXPECT_TRUE(std::isfinite(v));
}

TEST(CpuEngine, InvalidRunArguments) {
  const ViTConfig cfg = consistency_config();
  auto engine = make_cpu_engine(test::random_model(cfg, fresh_seed()), 2);
  std::vector<float> images = test::random_vec(image_numel(cfg));
  Outputs out(cfg, 1);
  expect_error(ErrorCode::kInvalidArgument, "batch",
               [&] { engine->run(images.data(), 0, out.ptrs()); });
  expect_error(ErrorCode::kInvalidArgument, "batch",
               [&] { engine->run(images.data(), -2, out.ptrs()); });
  expect_error(ErrorCode::kInvalidArgument, "images", [&] { engine->run(nullptr, 1, out.ptrs()); });
}

TEST(CpuEngine, InvalidModels) {
  const ViTConfig cfg = consistency_config();
  expect_error(ErrorCode::kInvalidArgument, "model", [] { make_cpu_engine(nullptr, 1); });

  auto bad_bias = test::random_model(cfg, 1);
  bad_bias->w.blocks[1].fc1_b.data.pop_back();
  bad_bias->w.blocks[1].fc1_b.shape = {cfg.mlp_hidden - 1};
  expect_error(ErrorCode::kInvalidArgument, "blocks.1.mlp.fc1.bias",
               [&] { make_cpu_engine(bad_bias, 1); });

  auto no_head = test::random_model(cfg, 2);
  no_head->w.head_w = Tensor();
  expect_error(ErrorCode::kInvalidArgument, "head.weight", [&] { make_cpu_engine(no_head, 1); });

  auto missing_block = test::random_model(cfg, 3);
  missing_block->w.blocks.pop_back();
  expect_error(ErrorCode::kInvalidArgument, "depth", [&] { make_cpu_engine(missing_block, 1); });

  ViTConfig odd_heads = cfg;
  odd_heads.heads = 5;  // 48 % 5 != 0
  auto m = test::random_model(cfg, 4);
  m->cfg = odd_heads;
  expect_error(ErrorCode::kInvalidArgument, "heads", [&] { make_cpu_engine(m, 1); });
}

}  // namespace
}  // namespace vit
