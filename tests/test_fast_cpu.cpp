// vit-infer tests: the fast CPU engine (src/cpu/fast_engine.cpp) and its kernels against the
// reference ops (src/cpu/ref_ops.h, the oracle), on the awkward shapes of the brief: 197 /
// 50 / 577 tokens, head dims 24 / 64 / 80, batch 1 and 3; fresh random inputs every run; outputs
// poisoned with NaN first so that an unwritten element fails. Tolerances from tolerances.h: fp32
// 1e-4 relative to max|ref|; bf16 tol_rel(BF16) per op (inputs rounded to bf16 before the
// reference sees them) and tol_small_model_rel(BF16) for whole models. Every kernel level the CPU
// has (base, AVX2, AVX-512) is run in-process; the GEMM ISA (oneDNN's ceiling, once per process)
// is forced by VIT_CPU_ISA in the extra ctest entries of fast_cpu.cmake.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_isa.h"
#include "cpu/dnnl_linear.h"
#include "cpu/cpu_engine.h"
#include "cpu/fast_kernels.h"
#include "cpu/ref_ops.h"
#include "model_fixture.h"
#include "test_util.h"
#include "tolerances.h"

namespace {

using vit::CpuIsa;
using vit::DType;
using vit::test::close_rel;
using vit::test::random_vec;
using vit::test::tol_rel;
namespace fc = vit::fastcpu;

const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> bf16_round(const std::vector<float>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = fc::from_bf16(fc::to_bf16(v[i]));
  return r;
}
std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = fc::to_bf16(v[i]);
  return r;
}
std::vector<float> from_bf16(const std::vector<uint16_t>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = fc::from_bf16(v[i]);
  return r;
}

// The kernel levels this CPU can run, all tested in one process.
std::vector<CpuIsa> kernel_levels() {
  std::vector<CpuIsa> v;
  for (CpuIsa i : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAvx512Bf16})
    if (static_cast<int>(i) <= static_cast<int>(vit::detect_cpu_isa())) v.push_back(i);
  return v;
}

vit::Tensor tensor_of(std::vector<float> v, std::vector<int64_t> shape) {
  vit::Tensor t;
  t.shape = std::move(shape);
  t.data = std::move(v);
  return t;
}

TEST(FastCpuBf16, RoundsToNearestEven) {
  EXPECT_EQ(fc::to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(fc::to_bf16(1.00390625f), 0x3f80);   // exactly half an ulp above 1: ties to even (down)
  EXPECT_EQ(fc::to_bf16(1.01171875f), 0x3f82);   // 1 + 3/256: half-way, rounds up to even
  EXPECT_EQ(fc::to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(fc::to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_TRUE(std::isnan(fc::from_bf16(fc::to_bf16(kNaN))));
}

// The kernels' conversion (vectorised on AVX-512, as the attention's output rounding) gives the
// scalar to_bf16's bits: ties to even, NaN quiet, infinities, subnormals, both signs, a tail.
TEST(FastCpuKernels, ToBf16MatchesScalarBits) {
  std::vector<float> x = random_vec(4096 * 2 + 37, -1e4f, 1e4f);
  const float special[] = {1.00390625f, 1.01171875f, -1.00390625f, 0.0f, -0.0f, 1e-40f, -3e-39f,
                           std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(), kNaN,
                           -kNaN, std::numeric_limits<float>::max(), 3.3895313e38f};
  for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); ++i) x[i * 7] = special[i];
  const std::vector<uint16_t> want = to_bf16(x);
  for (CpuIsa isa : kernel_levels()) {
    SCOPED_TRACE(vit::cpu_isa_name(isa));
    std::vector<uint16_t> got(x.size(), 0x1234);
    fc::kernels_for(isa).to_bf16(x.data(), got.data(), static_cast<int64_t>(x.size()), 2);
    size_t bad = 0;
    for (size_t i = 0; i < x.size(); ++i) bad += got[i] != want[i];
    EXPECT_EQ(bad, 0u);
  }
}

TEST(FastCpuKernels, LayerNormMatchesReference) {
  for (CpuIsa isa : kernel_levels()) {
    const fc::Kernels& k = fc::kernels_for(isa);
    for (int64_t rows : {197 * 3, 50, 577}) {
      for (int64_t D : {96, 768, 320}) for (const bool rms : {false, true}) {
        SCOPED_TRACE(std::string(vit::cpu_isa_name(isa)) + " rows " + std::to_string(rows) + " D " + std::to_string(D) +
                     (rms ? " RMSNorm" : " LayerNorm"));
        std::vector<float> x = random_vec(rows * D, -3.0f, 5.0f);  // non-zero mean
        vit::Tensor g = tensor_of(random_vec(D, 0.5f, 1.5f), {D}), b = tensor_of(random_vec(D), {D});
        std::vector<float> want(rows * D, kNaN), got(rows * D, kNaN);
        vit::ref::layer_norm(x.data(), D, want.data(), D, rows, D, g.ptr(), b.ptr(), 1e-6f, 2, rms);
        k.layer_norm(x.data(), nullptr, nullptr, got.data(), false, rows, D, g.ptr(), b.ptr(), 1e-6f, rms, 2);
        EXPECT_TRUE(close_rel(got, want, tol_rel(DType::F32)));
        std::vector<uint16_t> got16(rows * D, 0xffff);  // 0xffff: a bf16 NaN
        k.layer_norm(x.data(), nullptr, nullptr, got16.data(), true, rows, D, g.ptr(), b.ptr(), 1e-6f, rms, 2);
        EXPECT_TRUE(close_rel(from_bf16(got16), want, tol_rel(DType::BF16)));
        // With the fused residual add: sum = x + r, y = LN(sum).
        const std::vector<float> r = random_vec(rows * D);
        std::vector<float> want_sum(rows * D), sum(rows * D, kNaN);
        for (size_t i = 0; i < want_sum.size(); ++i) want_sum[i] = x[i] + r[i];
        vit::ref::layer_norm(want_sum.data(), D, want.data(), D, rows, D, g.ptr(), b.ptr(), 1e-6f, 2, rms);
        std::fill(got.begin(), got.end(), kNaN);
        k.layer_norm(x.data(), r.data(), sum.data(), got.data(), false, rows, D, g.ptr(), b.ptr(), 1e-6f, rms, 2);
        EXPECT_EQ(sum, want_sum);
        EXPECT_TRUE(close_rel(got, want, tol_rel(DType::F32)));
      }
    }
  }
}

// The SwiGLU middle against ref::glu (SiLU), gates across the range where exp_neg clamps, odd
// widths (I = 88 and 1365: tails of every vector width), fp32 and bf16 outputs, poisoned.
TEST(FastCpuKernels, GluSiluMatchesReference) {
  for (CpuIsa isa : kernel_levels()) {
    const fc::Kernels& k = fc::kernels_for(isa);
    for (int64_t rows : {1, 197 * 3}) {
      for (int64_t I : {88, 1365, 2048}) {
        SCOPED_TRACE(std::string(vit::cpu_isa_name(isa)) + " rows " + std::to_string(rows) + " I " + std::to_string(I));
        std::vector<float> x = random_vec(rows * 2 * I, -12.0f, 12.0f);
        x[0] = -100.0f;  // silu -> -0 (exp_neg flushes)
        x[1] = 100.0f;   // silu -> the gate itself
        std::vector<float> want(rows * I, kNaN), got(rows * I, kNaN);
        vit::ref::glu(x.data(), want.data(), rows, I, 2, vit::Activation::kSilu);
        k.glu_silu(x.data(), got.data(), false, rows, I, 2);
        EXPECT_TRUE(close_rel(got, want, 1e-5f));
        std::vector<uint16_t> got16(rows * I, 0xffff);
        k.glu_silu(x.data(), got16.data(), true, rows, I, 2);
        EXPECT_TRUE(close_rel(from_bf16(got16), want, tol_rel(DType::BF16)));
      }
    }
  }
}

struct AttnShape {
  int64_t B, T, H, hd;
};

TEST(FastCpuKernels, FlashAttentionMatchesReference) {
  const AttnShape shapes[] = {{1, 197, 3, 64}, {3, 197, 2, 24}, {1, 50, 4, 80}, {3, 50, 2, 64},
                              {1, 577, 2, 80}, {3, 577, 1, 24}, {2, 35, 3, 40}, {1, 35, 2, 64},
                              {1, 197, 6, 32}, {3, 197, 4, 48}, {5, 65, 3, 48},
                              // the 512-key softmax steps (AVX-512, bf16): a 1-key second step, three
                              // steps; the AVX2 kernel's 1024-key steps: a 1-key and a 76-key second one
                              {1, 513, 2, 40}, {1, 1100, 1, 64}, {1, 1025, 2, 48}};
  for (CpuIsa isa : kernel_levels()) {
    const fc::Kernels& k = fc::kernels_for(isa);
    for (const AttnShape& s : shapes) {
      SCOPED_TRACE(std::string(vit::cpu_isa_name(isa)) + " B " + std::to_string(s.B) + " T " + std::to_string(s.T) +
                   " H " + std::to_string(s.H) + " hd " + std::to_string(s.hd));
      const int64_t D = s.H * s.hd, R = s.B * s.T;
      // Spread 3: scores of several units, so softmax rows are peaked and the max matters.
      std::vector<float> qkv = random_vec(R * 3 * D, -3.0f, 3.0f);
      std::vector<float> want(R * D, kNaN), kt(R * D), scratch(2 * s.T);
      vit::ref::attention(qkv.data(), want.data(), nullptr, kt.data(), scratch.data(), s.B, s.T, s.H, s.hd, 2);
      std::vector<float> got(R * D, kNaN);
      k.attention(qkv.data(), got.data(), false, s.B, s.T, s.H, s.hd, 2, nullptr);
      EXPECT_TRUE(close_rel(got, want, tol_rel(DType::F32)));
      std::vector<uint16_t> got16(R * D, 0xffff);
      k.attention(qkv.data(), got16.data(), true, s.B, s.T, s.H, s.hd, 2, nullptr);
      EXPECT_TRUE(close_rel(from_bf16(got16), want, tol_rel(DType::BF16)));
    }
  }
}

// The oneDNN ISA the GEMMs run on must be the one asked for (a forced path cannot fall back to
// AMX, or to oneDNN's slow reference kernels, unnoticed).
std::string expected_impl_isa(bool bf16) {
  switch (vit::effective_cpu_isa()) {
    case CpuIsa::kAmx: return bf16 ? "avx512_core_amx" : "avx512_core";
    case CpuIsa::kAvx512Bf16: return bf16 ? "avx512_core_bf16" : "avx512_core";
    case CpuIsa::kAvx512: return "avx512_core";
    case CpuIsa::kAvx2:
    case CpuIsa::kScalar: return "gemm:jit";  // oneDNN's jit sgemm, which obeys the ceiling itself
  }
  return "?";
}

// LinearTiles::kAuto: tiles for an fp32 GEMM on a CPU without AVX-512 whose session runs fewer than
// two images per thread (VIT_CPU_GEMM_TILES=1 / 0 decides instead when set); never bf16 or narrow.
TEST(FastCpuLinear, AutoTilesForSmallSessionsWhereMeasured) {
  fc::dnnl_set_isa(vit::effective_cpu_isa());
  const char* env = std::getenv("VIT_CPU_GEMM_TILES");
  const bool have_bf16 = static_cast<int>(vit::effective_cpu_isa()) >= static_cast<int>(CpuIsa::kAvx512Bf16);
  const bool below_avx512 = static_cast<int>(vit::effective_cpu_isa()) < static_cast<int>(CpuIsa::kAvx512);
  struct C {
    int max_images, threads;
    bool small;  // fewer than two images per thread
  } cases[] = {{1, 2, true}, {3, 2, true}, {4, 2, false}, {8, 2, false}, {1, 1, false}, {0, 2, false}, {7, 4, true}};
  std::vector<float> w = random_vec(768 * 64), bias = random_vec(768);
  const vit::Tensor wt = tensor_of(w, {768, 64}), bt = tensor_of(bias, {768});
  for (bool bf16 : {false, true}) {
    if (bf16 && !have_bf16) continue;
    for (const C& c : cases) {
      fc::LinearSpec spec;
      spec.N = 768;
      spec.K = 64;
      spec.bf16 = bf16;
      spec.max_images = c.max_images;
      spec.threads = c.threads;
      fc::DnnlLinear lin(wt.ptr(), bt.ptr(), spec);
      const bool want = env && *env ? std::string(env) == "1" : !bf16 && below_avx512 && c.small;
      EXPECT_EQ(lin.tiled(), want) << "max_images " << c.max_images << " threads " << c.threads << (bf16 ? " bf16" : "");
      spec.N = 200;  // narrower than two blocks of 128: never tiled
      fc::DnnlLinear narrow(wt.ptr(), bt.ptr(), spec);
      EXPECT_FALSE(narrow.tiled());
    }
  }
}

TEST(FastCpuLinear, MatchesReference) {
  fc::dnnl_set_isa(vit::effective_cpu_isa());
  const bool have_bf16 = static_cast<int>(vit::effective_cpu_isa()) >= static_cast<int>(CpuIsa::kAvx512Bf16);
  struct Shape {
    int64_t N, K;
  };
  // 300 columns: two tiles' blocks of 128 and a block of 44; 240 and 96 are never tiled.
  const Shape shapes[] = {{2304, 768}, {300, 64}, {240, 80}, {96, 384}};
  for (bool bf16 : {false, true}) {
    if (bf16 && !have_bf16) continue;
    for (const Shape& sh : shapes) {
      for (fc::LinearTiles tiles : {fc::LinearTiles::kOn, fc::LinearTiles::kOff})
      for (fc::LinearEpilogue epi :
           {fc::LinearEpilogue::kBias, fc::LinearEpilogue::kBiasAct, fc::LinearEpilogue::kBiasAccumulate}) {
        fc::LinearSpec spec;
        spec.tiles = tiles;
        spec.N = sh.N;
        spec.K = sh.K;
        spec.bf16 = bf16;
        spec.y_bf16 = bf16 && epi == fc::LinearEpilogue::kBiasAct;  // GELU erf, spec.act's default
        spec.epi = epi;
        spec.hint_m = 197;
        std::vector<float> w = random_vec(sh.N * sh.K), bias = random_vec(sh.N);
        vit::Tensor wt = tensor_of(w, {sh.N, sh.K}), bt = tensor_of(bias, {sh.N});
        fc::DnnlLinear lin(wt.ptr(), bt.ptr(), spec);
        EXPECT_EQ(lin.tiled(), tiles == fc::LinearTiles::kOn && sh.N >= 256);
        // The reference sees the bf16-rounded operands, so only accumulation / output rounding differ.
        vit::Tensor wref = tensor_of(bf16 ? bf16_round(w) : w, {sh.N, sh.K});
        // 4 x 197 rows at 2 threads: a tiled layer runs each block with oneDNN's threading.
        for (int64_t M : {int64_t{197}, int64_t{3 * 197}, int64_t{50}, int64_t{577}, int64_t{1}, int64_t{4 * 197}}) {
          SCOPED_TRACE(std::string(bf16 ? "bf16" : "fp32") + " M " + std::to_string(M) + " N " + std::to_string(sh.N) +
                       " K " + std::to_string(sh.K) + " epi " + std::to_string(static_cast<int>(epi)) +
                       (lin.tiled() ? " tiled" : ""));
          const std::string impl = lin.impl_name(M);
          // oneDNN runs a one-row bf16 product on the AVX512-BF16 brgemm even where AMX is there
          // (tiles of 16 rows would be 1/16 used): either is the ceiling's own ISA family.
          if (M == 1 && bf16 && vit::effective_cpu_isa() == CpuIsa::kAmx) {
            EXPECT_NE(impl.find("avx512_core"), std::string::npos) << impl;
          } else {
            EXPECT_NE(impl.find(expected_impl_isa(bf16)), std::string::npos) << impl;
          }
          EXPECT_EQ(impl.find("ref"), std::string::npos) << impl;
          std::vector<float> x = random_vec(M * sh.K);
          const bool acc = epi == fc::LinearEpilogue::kBiasAccumulate;
          std::vector<float> base = acc ? random_vec(M * sh.N) : std::vector<float>(M * sh.N, kNaN);
          std::vector<float> want = base;
          vit::ref::linear(bf16 ? bf16_round(x).data() : x.data(), M, sh.K, wref.ptr(), bt.ptr(), sh.N, want.data(), acc, 2,
                           epi == fc::LinearEpilogue::kBiasAct ? std::optional<vit::Activation>(spec.act) : std::nullopt);
          std::vector<float> got = base;
          std::vector<uint16_t> x16 = to_bf16(x), y16(M * sh.N, 0xffff);
          const void* xin = bf16 ? static_cast<const void*>(x16.data()) : x.data();
          if (spec.y_bf16) {
            lin.run(xin, M, y16.data(), 2);
            got = from_bf16(y16);
          } else {
            lin.run(xin, M, got.data(), 2);
          }
          EXPECT_TRUE(close_rel(got, want, spec.y_bf16 ? tol_rel(DType::BF16) : tol_rel(DType::F32)));
        }
      }
    }
  }
}

// Whole random models: token counts 197 / 50 / 577 with head dims 24 / 64 / 80.
struct ModelShape {
  int image, patch, hidden, heads;
  vit::GlobalPool pool;
};

void expect_engine_matches_reference(DType prec, bool fusion) {
  const ModelShape shapes[] = {{224, 16, 96, 4, vit::GlobalPool::kToken},   // T 197, hd 24
                               {112, 16, 128, 2, vit::GlobalPool::kAvg},    // T 50, hd 64
                               {384, 16, 160, 2, vit::GlobalPool::kToken}};  // T 577, hd 80
  std::random_device rd;
  for (const ModelShape& s : shapes) {
    const uint64_t seed = rd();
    vit::ViTConfig cfg = vit::test::small_config(s.image, s.image, s.patch, s.hidden, s.heads, 2, 10);
    cfg.pool = s.pool;
    cfg.fc_norm = s.pool == vit::GlobalPool::kAvg;
    cfg.final_norm = !cfg.fc_norm;
    auto model = vit::test::random_model(cfg, seed);
    auto ref = vit::make_cpu_engine(model, 2);
    auto fast = vit::make_fast_cpu_engine(model, prec, 2, fusion);
    const bool bf16_runs = prec == DType::BF16 &&
                           static_cast<int>(vit::effective_cpu_isa()) >= static_cast<int>(CpuIsa::kAvx512Bf16);
    EXPECT_NE(std::string(fast->name()).find(bf16_runs ? "bf16" : "fp32"), std::string::npos) << fast->name();
    EXPECT_NE(std::string(fast->name()).find(vit::cpu_isa_name(vit::effective_cpu_isa())), std::string::npos);
    const float tol = bf16_runs ? vit::test::tol_small_model_rel(DType::BF16) : tol_rel(DType::F32);
    const int64_t T = cfg.tokens(), D = cfg.hidden, C = cfg.num_classes, H = cfg.heads;
    for (int batch : {1, 3}) {
      SCOPED_TRACE("T " + std::to_string(T) + " hd " + std::to_string(cfg.head_dim()) + " batch " +
                   std::to_string(batch) + " seed " + std::to_string(seed) + " " + fast->name() +
                   (fusion ? " fused" : " unfused"));
      const std::vector<float> images = random_vec(size_t(batch) * 3 * s.image * s.image);
      // Plain run (flash attention), then one asking for the maps (the probabilities path).
      std::vector<float> lr(batch * C, kNaN), er(batch * D, kNaN), ar(batch * H * T * T, kNaN),
          alr(cfg.depth * batch * T * T, kNaN);
      vit::RunOutputs o;
      o.logits = lr.data();
      o.embeddings = er.data();
      o.attention = ar.data();
      o.attention_layers = alr.data();
      ref->run(images.data(), batch, o);
      std::vector<float> lf(batch * C, kNaN), ef(batch * D, kNaN);
      vit::RunOutputs of;
      of.logits = lf.data();
      of.embeddings = ef.data();
      fast->run(images.data(), batch, of);
      EXPECT_TRUE(close_rel(lf, lr, tol)) << "logits";
      EXPECT_TRUE(close_rel(ef, er, tol)) << "embeddings";
      std::vector<float> lm(batch * C, kNaN), am(batch * H * T * T, kNaN), alm(cfg.depth * batch * T * T, kNaN);
      vit::RunOutputs om;
      om.logits = lm.data();
      om.attention = am.data();
      om.attention_layers = alm.data();
      fast->run(images.data(), batch, om);
      EXPECT_EQ(lm, lf) << "asking for the maps changed the logits";
      EXPECT_TRUE(close_rel(am, ar, tol)) << "attention";
      EXPECT_TRUE(close_rel(alm, alr, tol)) << "attention_layers";
    }
  }
}

TEST(FastCpuEngine, Fp32MatchesReference) { expect_engine_matches_reference(DType::F32, true); }
TEST(FastCpuEngine, Bf16MatchesReference) { expect_engine_matches_reference(DType::BF16, true); }
// The unfused graph (VIT_DISABLE_FUSION's form) through the same backend: separate add / GELU
// nodes run by the reference rows, GEMMs without epilogues.
TEST(FastCpuEngine, UnfusedGraphMatchesReference) {
  expect_engine_matches_reference(DType::F32, false);
  expect_engine_matches_reference(DType::BF16, false);
}

TEST(FastCpuEngine, RejectsBadArguments) {
  auto model = vit::test::random_model(vit::test::small_config(32, 32, 16, 32, 2, 1, 4), 7);
  EXPECT_THROW(vit::make_fast_cpu_engine(model, DType::F16, 1), vit::Error);
  EXPECT_THROW(vit::make_fast_cpu_engine(nullptr, DType::F32, 1), vit::Error);
  auto e = vit::make_fast_cpu_engine(model, DType::F32, 1);
  std::vector<float> img(3 * 32 * 32), logits(4);
  vit::RunOutputs o;
  o.logits = logits.data();
  EXPECT_THROW(e->run(img.data(), 0, o), vit::Error);
  EXPECT_THROW(e->run(nullptr, 1, o), vit::Error);
  std::atomic<bool> cancel{true};
  try {
    e->run(img.data(), 1, o, &cancel);
    ADD_FAILURE() << "a cancelled run returned";
  } catch (const vit::Error& err) {
    EXPECT_EQ(err.code(), vit::ErrorCode::kCancelled);
  }
}

}  // namespace

namespace {

// The same input gives the same bits from any calling thread (a session serves many threads).
TEST(FastCpuEngine, DeterministicAcrossCallingThreads) {
  auto model = vit::test::random_model(vit::test::small_config(32, 32, 8, 32, 4, 2, 10), 1234);
  for (DType prec : {DType::F32, DType::BF16}) {
    auto e = vit::make_fast_cpu_engine(model, prec, 2);
    const std::vector<float> x = random_vec(3 * 3 * 32 * 32);
    auto run = [&] {
      std::vector<float> logits(3 * 10, kNaN);
      vit::RunOutputs o;
      o.logits = logits.data();
      e->run(x.data(), 3, o);
      return logits;
    };
    const std::vector<float> first = run();
    EXPECT_EQ(run(), first) << "second run on the same thread";
    std::vector<float> other;
    std::thread t([&] { other = run(); });
    t.join();
    EXPECT_EQ(other, first) << "run on another thread";
    // Several callers at once (the engine serialises them): still the same bits.
    std::vector<std::vector<float>> got(4);
    std::vector<std::thread> ts;
    for (int i = 0; i < 4; ++i) ts.emplace_back([&, i] { got[i] = run(); });
    for (auto& th : ts) th.join();
    for (int i = 0; i < 4; ++i) EXPECT_EQ(got[i], first) << "concurrent caller " << i;
  }
}

}  // namespace
