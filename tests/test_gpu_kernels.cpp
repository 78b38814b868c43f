// vit-infer GPU tests: every kernel launcher (kernels/*.cuh) against a plain double-precision
// CPU reference computed from the same (storage-rounded) inputs, for F32 / F16 / BF16, tokens
// 197 / 50 / 577, batch 1 / 3 / 64 and head dims 24 / 32 / 48 / 64 / 80 / 128. Outputs are
// poisoned with NaN before every launch. Skips when no CUDA device is present.
// The same file is built as test_gpu_emu against the CPU emulator (tests/gpu_emu, which defines
// VIT_GPU_EMU_BUILD): there the case lists are smaller (the emulator runs ~10^7 MAC/s) but
// still take every kernel path: both GEMM tile shapes (the emulator reports 8 SMs), M / N / K
// tails, every tensor-core head-dim family, the 32-key tiles of hd > 96 and both QKV layouts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "activation.cuh"
#include "attention.cuh"
#include "core/error.h"
#include "gemm.cuh"
#include "gemm_sm90.cuh"
#include "glu.cuh"
#include "layernorm.cuh"
#include "patch_embed.cuh"
#include "pool.cuh"
#include "test_gpu_util.h"
#include "test_util.h"
#include "to_f32.cuh"

#ifdef VIT_GPU_EMU_BUILD
#include "emu.h"
#endif

namespace vit::test {
namespace {

const DType kTypes[] = {DType::F32, DType::F16, DType::BF16};

// Whether the wgmma kernel runs here. On a compute capability 9.0 device a build that holds its
// sm_90a image (VIT_HAVE_SM90A, CMakeLists.txt) must run it: unavailable there is a failure of
// the calling test, never a silent skip.
bool sm90_runs() {
  if (gemm_sm90_available()) return true;
#ifdef VIT_HAVE_SM90A
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) == cudaSuccess &&
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess && major == 9 &&
      minor == 0)
    ADD_FAILURE() << "compute capability 9.0 and a build with sm_90a code, but gemm_sm90_available() is false: "
                     "the sm_90a image did not load or its probe kernel did not run";
#endif
  return false;
}

// The MLP activations in double (torch's definitions): erf GELU, tanh approximation, quick-GELU, SiLU.
double gelu_ref(double x, Activation form = Activation::kGeluErf) {
  switch (form) {
    case Activation::kGeluTanh: return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case Activation::kQuickGelu: return x / (1.0 + std::exp(-1.702 * x));
    case Activation::kSilu: return x / (1.0 + std::exp(-x));
    case Activation::kGeluErf: break;
  }
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

// ---------------------------------------------------------------------------------------
// GEMM
struct GemmCase {
  int M, N, K;
};

std::vector<float> gemm_ref(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>* bias,
                            int M, int N, int K) {
  std::vector<float> y(static_cast<size_t>(M) * N);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double s = bias ? (*bias)[n] : 0.0;
      const float* xr = &x[static_cast<size_t>(m) * K];
      const float* wr = &w[static_cast<size_t>(n) * K];
      for (int k = 0; k < K; ++k) s += static_cast<double>(xr[k]) * wr[k];
      y[static_cast<size_t>(m) * N + n] = static_cast<float>(s);
    }
  return y;
}

// Dense y[M, N] = x[M, K] W[N, K]^T on device buffers (packed rows); epilogue fields left default.
GemmParams dense_params(DType dt, const DevMem& x, const DevMem& w, const DevMem& y, int M, int N, int K) {
  GemmParams p;
  p.dtype = dt;
  p.a = x.get();
  p.lda = K;
  p.w = w.get();
  p.ldw = K;
  p.c = y.get();
  p.ldc = N;
  p.M = M;
  p.N = N;
  p.K = K;
  return p;
}

// Launches p (launch_gemm) and expects y within tol_rel of want.
void expect_gemm(const GemmParams& p, const DevMem& y, const std::vector<float>& want) {
  launch_gemm(p, nullptr);
  sync_or_throw();
  EXPECT_TRUE(close_rel(y.download(), want, tol_rel(p.dtype)));
}

void run_gemm_case(DType dt, GemmKernel kern, GemmEpilogue epi, bool with_bias, GemmCase gc,
                   Activation form = Activation::kGeluErf) {
  SCOPED_TRACE(std::string(dt_label(dt)) + " M=" + std::to_string(gc.M) + " N=" + std::to_string(gc.N) +
               " K=" + std::to_string(gc.K) + " epi=" + std::to_string(static_cast<int>(epi)) +
               " gelu form " + std::to_string(static_cast<int>(form)) +
               (kern == GemmKernel::kSimt ? " simt" : " auto") + (with_bias ? " bias" : ""));
  const int M = gc.M, N = gc.N, K = gc.K;
  const float a = 1.0f / std::sqrt(static_cast<float>(K));
  const auto x = round_to(dt, random_vec(static_cast<size_t>(M) * K));
  const auto w = round_to(dt, random_vec(static_cast<size_t>(N) * K, -a, a));
  const auto b = round_to(dt, random_vec(N, -0.5f, 0.5f));
  const auto r = round_to(dt, random_vec(static_cast<size_t>(M) * N));
  DevMem dx(dt, x), dw(dt, w), db(dt, b), dr(dt, r), dc(dt, static_cast<size_t>(M) * N);
  dc.poison();
  GemmParams p = dense_params(dt, dx, dw, dc, M, N, K);
  p.bias = with_bias ? db.get() : nullptr;
  p.epilogue = epi;
  p.act = form;
  p.kernel = kern;
  if (epi == GemmEpilogue::kResidual) {
    p.residual = dr.get();
    p.ldr = N;
  }
  std::vector<float> want = gemm_ref(x, w, with_bias ? &b : nullptr, M, N, K);
  if (epi == GemmEpilogue::kAct)
    for (float& v : want) v = static_cast<float>(gelu_ref(v, form));
  if (epi == GemmEpilogue::kResidual)
    for (size_t i = 0; i < want.size(); ++i) want[i] += r[i];
  expect_gemm(p, dc, want);
}

TEST(GpuGemm, AllEpiloguesShapesAndTypes) {
  VIT_SKIP_WITHOUT_GPU();
#ifdef VIT_GPU_EMU_BUILD
  // 64x64 tiles below 8 tiles of 128x128, 128x128 from there (the emulator reports 8 SMs).
  const GemmCase cases[] = {{197, 136, 96}, {37, 33, 20}, {1, 100, 768}, {129, 130, 592}, {260, 400, 40}};
#else
  const GemmCase cases[] = {{197, 768, 256}, {150, 192, 192}, {577, 200, 136}, {3200, 72, 64},
                            {12608, 40, 32}, {37, 33, 20},    {1, 1000, 768},  {64, 3072, 64},
                            {2048, 1152, 32}, {2053, 1157, 40}};  // the last two use 128x128 tiles
#endif
  for (DType dt : kTypes) {
    for (GemmKernel kern : {GemmKernel::kAuto, GemmKernel::kSimt}) {
      if (dt == DType::F32 && kern == GemmKernel::kSimt) continue;  // F32 is always SIMT
      for (const GemmCase& gc : cases) {
        run_gemm_case(dt, kern, GemmEpilogue::kNone, false, gc);
        run_gemm_case(dt, kern, GemmEpilogue::kNone, true, gc);
        run_gemm_case(dt, kern, GemmEpilogue::kAct, true, gc);
        run_gemm_case(dt, kern, GemmEpilogue::kResidual, true, gc);
      }
      // The other GELUs (SigLIP's tanh, OpenAI CLIP's quick) in the same epilogue.
      for (Activation form : {Activation::kGeluTanh, Activation::kQuickGelu, Activation::kSilu})
        run_gemm_case(dt, kern, GemmEpilogue::kAct, true, cases[0], form);
    }
  }
}

// kResidual with residual_period: output row r adds row r % period of a read-only table (the
// patch-embedding GEMM adds pos[1 + n] this way), on the SIMT, mma.sync and (where it runs) the
// Hopper kernels; images of 49 and 197 rows (periods that cut tiles anywhere).
TEST(GpuGemm, PeriodicResidualTable) {
  VIT_SKIP_WITHOUT_GPU();
  struct Case {
    int images, period, N, K;
  };
#ifdef VIT_GPU_EMU_BUILD
  const Case cases[] = {{3, 49, 96, 200}, {1, 197, 64, 48}};
#else
  const Case cases[] = {{3, 49, 96, 200}, {1, 197, 64, 48}, {64, 196, 768, 768}, {7, 197, 192, 592}};
#endif
  for (DType dt : kTypes) {
    for (GemmKernel kern : {GemmKernel::kAuto, GemmKernel::kSimt, GemmKernel::kSm90}) {
      if (kern == GemmKernel::kSm90 && (dt == DType::F32 || !sm90_runs())) continue;
      for (const Case& c : cases) {
        const int M = c.images * c.period, N = c.N, K = c.K;
        SCOPED_TRACE(std::string(dt_label(dt)) + " kernel " + std::to_string(static_cast<int>(kern)) + " M=" +
                     std::to_string(M) + " period " + std::to_string(c.period));
        const float a = 1.0f / std::sqrt(static_cast<float>(K));
        const auto x = round_to(dt, random_vec(static_cast<size_t>(M) * K));
        const auto w = round_to(dt, random_vec(static_cast<size_t>(N) * K, -a, a));
        const auto b = round_to(dt, random_vec(N, -0.5f, 0.5f));
        const auto table = round_to(dt, random_vec(static_cast<size_t>(c.period) * N));
        DevMem dx(dt, x), dw(dt, w), db(dt, b), dtab(dt, table), dc(dt, static_cast<size_t>(M) * N);
        dc.poison();
        GemmParams p = dense_params(dt, dx, dw, dc, M, N, K);
        p.bias = db.get();
        p.epilogue = GemmEpilogue::kResidual;
        p.residual = dtab.get();
        p.ldr = N;
        p.residual_period = c.period;
        p.kernel = kern;
        std::vector<float> want = gemm_ref(x, w, &b, M, N, K);
        for (int m = 0; m < M; ++m)
          for (int n = 0; n < N; ++n) want[static_cast<size_t>(m) * N + n] += table[static_cast<size_t>(m % c.period) * N + n];
        expect_gemm(p, dc, want);
      }
    }
  }
  // A periodic residual is a read-only table: aliasing y is refused.
  DevMem d(DType::F16, 64 * 64);
  GemmParams p;
  p.dtype = DType::F16;
  p.a = p.w = d.get();
  p.c = d.get();
  p.M = p.N = p.K = 64;
  p.lda = p.ldw = p.ldc = p.ldr = 64;
  p.epilogue = GemmEpilogue::kResidual;
  p.residual = d.get();
  p.residual_period = 8;
  EXPECT_THROW(launch_gemm(p, nullptr), Error);
}

TEST(GpuGemm, TensorCoreSelection) {
  VIT_SKIP_WITHOUT_GPU();
  DevMem a(DType::F16, 64 * 64), w(DType::F16, 64 * 64);
  GemmParams p;
  p.dtype = DType::F16;
  p.a = a.get();
  p.w = w.get();
  p.M = p.N = p.K = 64;
  p.lda = p.ldw = 64;
  EXPECT_TRUE(gemm_uses_tensor_cores(p));
  p.K = 60;
  EXPECT_FALSE(gemm_uses_tensor_cores(p));  // K % 8 != 0 -> SIMT
  p.K = 64;
  p.dtype = DType::F32;
  EXPECT_FALSE(gemm_uses_tensor_cores(p));
}

TEST(GpuGemm, InPlaceResidual) {
  VIT_SKIP_WITHOUT_GPU();
  for (DType dt : kTypes) {
    SCOPED_TRACE(dt_label(dt));
#ifdef VIT_GPU_EMU_BUILD
    const int M = 197, N = 72, K = 64;
#else
    const int M = 3 * 197, N = 192, K = 192;
#endif
    const auto x = round_to(dt, random_vec(static_cast<size_t>(M) * K));
    const auto w = round_to(dt, random_vec(static_cast<size_t>(N) * K, -0.07f, 0.07f));
    const auto b = round_to(dt, random_vec(N));
    const auto r = round_to(dt, random_vec(static_cast<size_t>(M) * N));
    DevMem dx(dt, x), dw(dt, w), db(dt, b), dc(dt, r);
    GemmParams p = dense_params(dt, dx, dw, dc, M, N, K);
    p.bias = db.get();
    p.residual = dc.get();
    p.ldr = N;
    p.epilogue = GemmEpilogue::kResidual;
    auto want = gemm_ref(x, w, &b, M, N, K);
    for (size_t i = 0; i < want.size(); ++i) want[i] += r[i];
    expect_gemm(p, dc, want);
  }
}

TEST(GpuGemm, QkvScatterEpilogue) {
  VIT_SKIP_WITHOUT_GPU();
  struct QC {
    int B, T, heads, hd, K;
  };
#ifdef VIT_GPU_EMU_BUILD
  // head_dim 13 (odd): column pairs that straddle two heads, and 3 heads x 13 = 39 columns per
  // block of q / k / v (not a multiple of 8: pairs straddle q | k | v too).
  const QC cases[] = {{1, 197, 1, 64, 64}, {3, 50, 2, 24, 48}, {2, 20, 3, 13, 32}};
#else
  const QC cases[] = {{1, 197, 2, 64, 128}, {3, 50, 2, 80, 160}, {64, 50, 1, 24, 48}, {1, 577, 1, 128, 64},
                      {2, 20, 3, 13, 32}};
#endif
  for (DType dt : kTypes) {
    for (GemmKernel kern : {GemmKernel::kAuto, GemmKernel::kSimt, GemmKernel::kSm90}) {
      if (kern == GemmKernel::kSm90 && (dt == DType::F32 || !sm90_runs())) continue;
      for (const QC& q : cases) {
        SCOPED_TRACE(std::string(dt_label(dt)) + " kernel " + std::to_string(static_cast<int>(kern)) + " B=" +
                     std::to_string(q.B) + " T=" + std::to_string(q.T) + " hd=" + std::to_string(q.hd));
        const int M = q.B * q.T, D = q.heads * q.hd, N = 3 * D, K = q.K;
        const auto x = round_to(dt, random_vec(static_cast<size_t>(M) * K));
        const auto w = round_to(dt, random_vec(static_cast<size_t>(N) * K, -0.1f, 0.1f));
        const auto b = round_to(dt, random_vec(N));
        DevMem dx(dt, x), dw(dt, w), db(dt, b), dc(dt, static_cast<size_t>(M) * N);
        dc.poison();
        GemmParams p = dense_params(dt, dx, dw, dc, M, N, K);  // ldc unused by the kQkv scatter
        p.bias = db.get();
        p.epilogue = GemmEpilogue::kQkv;
        p.tokens = q.T;
        p.heads = q.heads;
        p.head_dim = q.hd;
        p.kernel = kern;
        const auto flat = gemm_ref(x, w, &b, M, N, K);  // [B*T, 3D]
        std::vector<float> want(flat.size());
        for (int m = 0; m < M; ++m)
          for (int n = 0; n < N; ++n) {
            const int which = n / D, h = (n % D) / q.hd, d = n % q.hd, bb = m / q.T, t = m % q.T;
            want[((((static_cast<size_t>(which) * q.B + bb) * q.heads + h) * q.T + t) * q.hd) + d] =
                flat[static_cast<size_t>(m) * N + n];
          }
        expect_gemm(p, dc, want);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Hopper GEMM (wgmma + TMA, gemm_sm90.cu). On a GPU it runs only on compute capability 9.0 with
// the sm_90a image; in the emulator (which reports 9.0) wgmma, its descriptors and fragment
// layout, TMA with the 128-byte swizzle and the mbarrier pipeline are emulated from the PTX ISA.
// The four ViT-B GEMMs with M = 211 (odd: a partial second 128-row tile) and each one's
// executor epilogue, plus M / N / K tails inside a tile and fp16.
struct Sm90Case {
  int M, N, K;
  GemmEpilogue epi;
  bool bias;
  bool in_place;  // kResidual: residual aliases y (x += ...)
  DType dt;
  Activation act = Activation::kGeluErf;
};

void run_sm90_case(const Sm90Case& c) {
  const int M = c.M, N = c.N, K = c.K;
  SCOPED_TRACE(std::string(dt_label(c.dt)) + " M=" + std::to_string(M) + " N=" + std::to_string(N) +
               " K=" + std::to_string(K) + " epi=" + std::to_string(static_cast<int>(c.epi)));
  const float a = 1.0f / std::sqrt(static_cast<float>(K));
  const auto x = round_to(c.dt, random_vec(static_cast<size_t>(M) * K));
  const auto w = round_to(c.dt, random_vec(static_cast<size_t>(N) * K, -a, a));
  const auto b = round_to(c.dt, random_vec(N));
  const auto r = round_to(c.dt, random_vec(static_cast<size_t>(M) * N));
  DevMem dx(c.dt, x), dw(c.dt, w), db(c.dt, b), dr(c.dt, r), dc(c.dt, static_cast<size_t>(M) * N);
  GemmParams p = dense_params(c.dt, dx, dw, dc, M, N, K);
  p.bias = c.bias ? db.get() : nullptr;
  p.epilogue = c.epi;
  p.act = c.act;
  std::vector<float> want = gemm_ref(x, w, c.bias ? &b : nullptr, M, N, K);
  if (c.epi == GemmEpilogue::kAct)
    for (float& v : want) v = static_cast<float>(gelu_ref(v, c.act));
  if (c.epi == GemmEpilogue::kResidual) {
    for (size_t i = 0; i < want.size(); ++i) want[i] += r[i];
    if (c.in_place) {
      dc.upload(c.dt, r);  // y holds the residual and is overwritten
      p.c = dc.get();
      p.residual = dc.get();
    } else {
      dc.poison();
      p.residual = dr.get();
    }
    p.ldr = N;
  } else {
    dc.poison();
  }
  if (c.epi == GemmEpilogue::kQkv) {  // one image of M tokens, heads of 64
    p.tokens = M;
    p.head_dim = 64;
    p.heads = N / 3 / 64;
    const int D = N / 3;
    std::vector<float> sc(want.size());
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) {
        const int which = n / D, h = (n % D) / 64, d = n % 64;
        sc[((static_cast<size_t>(which) * p.heads + h) * M + m) * 64 + d] = want[static_cast<size_t>(m) * N + n];
      }
    want.swap(sc);
  }
  ASSERT_TRUE(gemm_sm90_supports(p));
  launch_gemm_sm90(p, nullptr);
  sync_or_throw();
  EXPECT_TRUE(close_rel(dc.download(), want, tol_rel(c.dt)));
}

TEST(GpuGemmSm90, VitBaseShapesAndTails) {
  VIT_SKIP_WITHOUT_GPU();
  if (!sm90_runs()) GTEST_SKIP() << "no sm_90 device or no sm_90a code in this build";
  const DType B = DType::BF16, H = DType::F16;
  const Sm90Case cases[] = {
      {211, 2304, 768, GemmEpilogue::kQkv, true, false, B},        // attn.qkv
      {211, 768, 768, GemmEpilogue::kResidual, true, false, B},    // attn.proj (separate residual)
      {211, 3072, 768, GemmEpilogue::kAct, true, false, B},       // mlp.fc1
      {211, 768, 3072, GemmEpilogue::kResidual, true, true, B},    // mlp.fc2 (in place, as the executor)
      {133, 200, 136, GemmEpilogue::kNone, false, false, B},       // tails in M, N and K
      {70, 264, 72, GemmEpilogue::kNone, true, false, H},          // fp16, N tail past one 256 tile
      {211, 768, 768, GemmEpilogue::kResidual, true, false, H},    // fp16 proj
      {133, 200, 136, GemmEpilogue::kAct, true, false, B, Activation::kGeluTanh},   // SigLIP's fc1
      {70, 264, 72, GemmEpilogue::kAct, true, false, H, Activation::kQuickGelu},    // OpenAI CLIP's fc1
  };
  for (const Sm90Case& c : cases) run_sm90_case(c);
}

// Same inputs through the mma.sync kernel and the wgmma kernel: both accumulate in fp32 and share
// the epilogue, so on a GPU they agree to fp32 summation order (the test tolerance); in the
// emulator, whose wgmma and mma.sync both sum k in order, bit for bit (a tighter check of every
// fragment position than a tolerance). Shapes of the tiny engine test model.
TEST(GpuGemmSm90, MatchesTheMmaSyncKernel) {
  VIT_SKIP_WITHOUT_GPU();
  if (!sm90_runs()) GTEST_SKIP() << "no sm_90 device or no sm_90a code in this build";
  // Every epilogue kind with and without bias (kAct requires one; the wgmma kernel is
  // instantiated per kind and bias), an N tail past one 256-column tile, a
  // residual table (period), and QKV scatters with head_dim 32 and 13 (odd: pairs straddle heads).
  struct C {
    int M, N, K;
    GemmEpilogue epi;
    bool bias;
    int period, tokens, heads, hd;
  };
  const GemmEpilogue kN = GemmEpilogue::kNone, kG = GemmEpilogue::kAct, kR = GemmEpilogue::kResidual,
                     kQ = GemmEpilogue::kQkv;
  const C cases[] = {{68, 64, 192, kN, true, 0, 0, 0, 0},   {68, 64, 192, kN, false, 0, 0, 0, 0},
                     {68, 256, 64, kG, true, 0, 0, 0, 0},   {68, 264, 64, kG, true, 0, 0, 0, 0},
                     {68, 64, 256, kR, true, 0, 0, 0, 0},   {68, 72, 64, kR, false, 0, 0, 0, 0},
                     {68, 64, 64, kR, true, 17, 0, 0, 0},   {4, 10, 64, kN, true, 0, 0, 0, 0},
                     {34, 192, 64, kQ, true, 0, 17, 2, 32}, {40, 117, 32, kQ, false, 0, 20, 3, 13}};
  for (DType dt : {DType::BF16, DType::F16}) {
    for (const C& c : cases) {
      SCOPED_TRACE(std::string(dt_label(dt)) + " M=" + std::to_string(c.M) + " N=" + std::to_string(c.N) +
                   " K=" + std::to_string(c.K) + " epilogue " + std::to_string(static_cast<int>(c.epi)) +
                   (c.bias ? " bias" : "") + " period " + std::to_string(c.period) + " hd " + std::to_string(c.hd));
      const auto x = round_to(dt, random_vec(static_cast<size_t>(c.M) * c.K));
      const auto w = round_to(dt, random_vec(static_cast<size_t>(c.N) * c.K, -0.2f, 0.2f));
      const auto b = round_to(dt, random_vec(c.N));
      const auto r = round_to(dt, random_vec(static_cast<size_t>(c.period > 0 ? c.period : c.M) * c.N));
      DevMem dx(dt, x), dw(dt, w), db(dt, b), dr(dt, r), y1(dt, static_cast<size_t>(c.M) * c.N),
          y2(dt, static_cast<size_t>(c.M) * c.N);
      y1.poison();
      y2.poison();
      GemmParams p;
      p.dtype = dt;
      p.a = dx.get();
      p.lda = c.K;
      p.w = dw.get();
      p.ldw = c.K;
      p.ldc = c.N;
      p.bias = c.bias ? db.get() : nullptr;
      p.epilogue = c.epi;
      p.residual = c.epi == GemmEpilogue::kResidual ? dr.get() : nullptr;
      p.ldr = c.N;
      p.residual_period = c.period;
      p.tokens = c.tokens;
      p.heads = c.heads;
      p.head_dim = c.hd;
      p.M = c.M;
      p.N = c.N;
      p.K = c.K;
      p.c = y1.get();
      p.kernel = GemmKernel::kAuto;  // mma.sync at these sizes (16-bit), the generic epilogue
      launch_gemm(p, nullptr);
      p.c = y2.get();
      p.kernel = GemmKernel::kSm90;  // through launch_gemm's dispatch
      launch_gemm(p, nullptr);
      sync_or_throw();
      const auto a1 = y1.download(), a2 = y2.download();
#ifdef VIT_GPU_EMU_BUILD
      size_t differ = 0;
      for (size_t i = 0; i < a1.size(); ++i) differ += !(a1[i] == a2[i]);
      EXPECT_EQ(differ, 0u) << "elements that differ between mma.sync and wgmma";
#endif
      EXPECT_TRUE(close_rel(a2, a1, tol_rel(dt)));
    }
  }
}

TEST(GpuGemmSm90, SupportChecks) {
  GemmParams p;
  p.dtype = DType::BF16;
  p.M = 64;
  p.N = 64;
  p.K = 64;
  p.lda = p.ldw = p.ldc = 64;
  alignas(16) static uint16_t buf[64];
  p.a = p.w = buf;
  p.c = buf;
  EXPECT_TRUE(gemm_sm90_supports(p));
  p.lda = 66;  // 132-byte rows: not a multiple of 16 bytes (TMA stride rule)
  EXPECT_FALSE(gemm_sm90_supports(p));
  p.lda = 64;
  p.dtype = DType::F32;
  EXPECT_FALSE(gemm_sm90_supports(p));
  p.dtype = DType::BF16;
  p.a = buf + 1;  // not 16-byte aligned
  EXPECT_FALSE(gemm_sm90_supports(p));
}

// ---------------------------------------------------------------------------------------
// LayerNorm
std::vector<float> ln_ref(const std::vector<float>& x, int64_t stride, int rows, int D, const std::vector<float>& g,
                          const std::vector<float>& b, float eps) {
  std::vector<float> y(static_cast<size_t>(rows) * D);
  for (int r = 0; r < rows; ++r) {
    const float* xr = &x[static_cast<size_t>(r * stride)];
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < D; ++i) mean += xr[i];
    mean /= D;
    for (int i = 0; i < D; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= D;
    const double rstd = 1.0 / std::sqrt(var + eps);
    for (int i = 0; i < D; ++i) y[static_cast<size_t>(r) * D + i] = static_cast<float>((xr[i] - mean) * rstd * g[i] + b[i]);
  }
  return y;
}

TEST(GpuLayerNorm, RowsResidualAndStride) {
  VIT_SKIP_WITHOUT_GPU();
  struct LC {
    int rows, D;
  };
#ifdef VIT_GPU_EMU_BUILD
  const LC cases[] = {{197, 768}, {3 * 50, 192}, {77, 100}};
#else
  const LC cases[] = {{197, 768}, {3 * 50, 192}, {577, 100}, {64 * 197, 64}, {64 * 50, 1024}};
#endif
  for (DType dt : kTypes) {
    for (const LC& lc : cases) {
      SCOPED_TRACE(std::string(dt_label(dt)) + " rows=" + std::to_string(lc.rows) + " D=" + std::to_string(lc.D));
      const size_t n = static_cast<size_t>(lc.rows) * lc.D;
      // An offset mean (3) checks that the variance is not computed as E[x^2] - mean^2 naively.
      const auto x = round_to(dt, random_vec(n, 2.0f, 4.0f));
      const auto r = round_to(dt, random_vec(n));
      const auto g = round_to(dt, random_vec(lc.D, 0.8f, 1.2f));
      const auto b = round_to(dt, random_vec(lc.D, -0.2f, 0.2f));
      DevMem dx(dt, x), dr(dt, r), dg(dt, g), db(dt, b), dy(dt, n), dxo(dt, n);
      LayerNormParams p;
      p.dtype = dt;
      p.x = dx.get();
      p.x_stride = lc.D;
      p.y = dy.get();
      p.y_stride = lc.D;
      p.gamma = dg.get();
      p.beta = db.get();
      p.rows = lc.rows;
      p.D = lc.D;
      p.eps = 1e-6f;
      dy.poison();
      launch_layernorm(p, nullptr);
      sync_or_throw();
      EXPECT_TRUE(close_rel(dy.download(), ln_ref(x, lc.D, lc.rows, lc.D, g, b, 1e-6f), tol_rel(dt)));

      // Fused residual: x_out = x + r, y = LN(x_out).
      std::vector<float> sum(n);
      for (size_t i = 0; i < n; ++i) sum[i] = x[i] + r[i];
      sum = round_to(dt, sum);
      p.residual = dr.get();
      p.x_out = dxo.get();
      dy.poison();
      dxo.poison();
      launch_layernorm(p, nullptr);
      sync_or_throw();
      EXPECT_TRUE(close_rel(dxo.download(), sum, dt == DType::F32 ? 1e-6f : 1e-2f));
      EXPECT_TRUE(close_rel(dy.download(), ln_ref(sum, lc.D, lc.rows, lc.D, g, b, 1e-6f), tol_rel(dt)));

      // RMSNorm (timm RmsNorm, aimv2): no centring, y = x * rsqrt(mean(x^2) + eps) * g + b, in double.
      std::vector<float> want(n);
      for (int row = 0; row < lc.rows; ++row) {
        double sq = 0.0;
        for (int j = 0; j < lc.D; ++j) sq += static_cast<double>(x[row * lc.D + j]) * x[row * lc.D + j];
        const double rstd = 1.0 / std::sqrt(sq / lc.D + 1e-5);
        for (int j = 0; j < lc.D; ++j) want[row * lc.D + j] = static_cast<float>(x[row * lc.D + j] * rstd * g[j] + b[j]);
      }
      p.residual = nullptr;
      p.rms = true;
      p.eps = 1e-5f;
      dy.poison();
      launch_layernorm(p, nullptr);
      sync_or_throw();
      EXPECT_TRUE(close_rel(dy.download(), want, tol_rel(dt)));
      p.rms = false;
      p.eps = 1e-6f;
    }
    // Strided: only the cls rows of tokens [B, T, D].
    const int B = 3, T = 197, D = 192;
    const auto x = round_to(dt, random_vec(static_cast<size_t>(B) * T * D));
    const auto g = round_to(dt, random_vec(D, 0.8f, 1.2f));
    const auto b = round_to(dt, random_vec(D, -0.2f, 0.2f));
    DevMem dx(dt, x), dg(dt, g), db(dt, b), dy(dt, static_cast<size_t>(B) * D);
    dy.poison();
    LayerNormParams p;
    p.dtype = dt;
    p.x = dx.get();
    p.x_stride = static_cast<int64_t>(T) * D;
    p.y = dy.get();
    p.y_stride = D;
    p.gamma = dg.get();
    p.beta = db.get();
    p.rows = B;
    p.D = D;
    p.eps = 1e-12f;
    launch_layernorm(p, nullptr);
    sync_or_throw();
    EXPECT_TRUE(close_rel(dy.download(), ln_ref(x, static_cast<int64_t>(T) * D, B, D, g, b, 1e-12f), tol_rel(dt)));
  }
}

// ---------------------------------------------------------------------------------------
// Attention
struct AttnCase {
  int B, H, T, hd;
};

// q, k, v in the canonical [B, H, T, hd] order; returns O [B, T, H*hd] and probs [B, H, T, T].
void attn_ref(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v, AttnCase c,
              std::vector<float>* o, std::vector<float>* probs) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.hd));
  o->assign(static_cast<size_t>(c.B) * c.T * c.H * c.hd, 0.0f);
  probs->assign(static_cast<size_t>(c.B) * c.H * c.T * c.T, 0.0f);
  std::vector<double> s(c.T);
  for (int b = 0; b < c.B; ++b)
    for (int h = 0; h < c.H; ++h) {
      const size_t base = (static_cast<size_t>(b) * c.H + h) * c.T * c.hd;
      for (int i = 0; i < c.T; ++i) {
        double mx = -1e300;
        for (int j = 0; j < c.T; ++j) {
          double d = 0.0;
          for (int e = 0; e < c.hd; ++e) d += static_cast<double>(q[base + i * c.hd + e]) * k[base + j * c.hd + e];
          s[j] = d * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0.0;
        for (int j = 0; j < c.T; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (int j = 0; j < c.T; ++j)
          (*probs)[((static_cast<size_t>(b) * c.H + h) * c.T + i) * c.T + j] = static_cast<float>(s[j] / sum);
        for (int e = 0; e < c.hd; ++e) {
          double acc = 0.0;
          for (int j = 0; j < c.T; ++j) acc += s[j] * v[base + j * c.hd + e];
          (*o)[((static_cast<size_t>(b) * c.T + i) * c.H + h) * c.hd + e] = static_cast<float>(acc / sum);
        }
      }
    }
}

TEST(GpuAttention, FlashAndSimtBothLayouts) {
  VIT_SKIP_WITHOUT_GPU();
#ifdef VIT_GPU_EMU_BUILD
  const AttnCase cases[] = {{1, 1, 197, 64}, {2, 2, 50, 80}, {1, 1, 130, 128}, {2, 1, 70, 24},
                            {1, 1, 70, 112}, {1, 1, 70, 96}, {2, 1, 50, 32},  {1, 1, 50, 48}};
#else
  const AttnCase cases[] = {{1, 2, 197, 64}, {3, 2, 50, 80}, {1, 1, 577, 128}, {2, 3, 197, 24},
                            {64, 1, 50, 64}, {1, 2, 577, 80}, {3, 1, 197, 32}, {2, 1, 50, 48}};
#endif
  for (DType dt : kTypes) {
    for (const AttnCase& c : cases) {
      const size_t n = static_cast<size_t>(c.B) * c.H * c.T * c.hd;
      const auto q = round_to(dt, random_vec(n, -2.0f, 2.0f));
      const auto k = round_to(dt, random_vec(n, -2.0f, 2.0f));
      const auto v = round_to(dt, random_vec(n));
      std::vector<float> want_o, want_p;
      attn_ref(q, k, v, c, &want_o, &want_p);
      for (int layout = 0; layout < 2; ++layout) {
        // layout 0: [3, B, H, T, hd] (custom QKV epilogue); 1: [B, T, 3, H, hd] (plain GEMM output).
        std::vector<float> packed(3 * n);
        const int64_t D = static_cast<int64_t>(c.H) * c.hd;
        int64_t sb, sh, st, off_k, off_v;
        if (layout == 0) {
          sb = static_cast<int64_t>(c.H) * c.T * c.hd, sh = static_cast<int64_t>(c.T) * c.hd, st = c.hd;
          off_k = static_cast<int64_t>(n), off_v = 2 * static_cast<int64_t>(n);
        } else {
          sb = static_cast<int64_t>(c.T) * 3 * D, sh = c.hd, st = 3 * D;
          off_k = D, off_v = 2 * D;
        }
        for (int b = 0; b < c.B; ++b)
          for (int h = 0; h < c.H; ++h)
            for (int t = 0; t < c.T; ++t)
              for (int e = 0; e < c.hd; ++e) {
                const size_t src = ((static_cast<size_t>(b) * c.H + h) * c.T + t) * c.hd + e;
                const int64_t dst = b * sb + h * sh + t * st + e;
                packed[static_cast<size_t>(dst)] = q[src];
                packed[static_cast<size_t>(dst + off_k)] = k[src];
                packed[static_cast<size_t>(dst + off_v)] = v[src];
              }
        DevMem dqkv(dt, packed), dout(dt, n);
        const size_t es = dtype_size(dt);
        const char* base = static_cast<const char*>(dqkv.get());
        for (AttentionKernel kern : {AttentionKernel::kAuto, AttentionKernel::kSimt}) {
          SCOPED_TRACE(std::string(dt_label(dt)) + " B=" + std::to_string(c.B) + " H=" + std::to_string(c.H) +
                       " T=" + std::to_string(c.T) + " hd=" + std::to_string(c.hd) + " layout=" +
                       std::to_string(layout) + (kern == AttentionKernel::kSimt ? " simt" : " auto"));
          AttentionParams p;
          p.dtype = dt;
          p.q = base;
          p.k = base + off_k * es;
          p.v = base + off_v * es;
          p.stride_b = sb;
          p.stride_h = sh;
          p.stride_t = st;
          p.o = dout.get();
          p.B = c.B;
          p.H = c.H;
          p.T = c.T;
          p.head_dim = c.hd;
          p.scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
          p.kernel = kern;
          if (kern == AttentionKernel::kAuto && dt != DType::F32 && c.hd % 16 == 0) {
            EXPECT_TRUE(attention_uses_tensor_cores(p));
          }
          dout.poison();
          launch_attention(p, nullptr);
          sync_or_throw();
          EXPECT_TRUE(close_rel(dout.download(), want_o, tol_rel(dt)));
        }
        // Probabilities: full matrix and the cls row only.
        for (int rows : {c.T, 1}) {
          SCOPED_TRACE("probs rows=" + std::to_string(rows));
          DevMem dp(DType::F32, static_cast<size_t>(c.B) * c.H * rows * c.T);
          dp.poison();
          AttentionProbsParams pp;
          pp.dtype = dt;
          pp.q = base;
          pp.k = base + off_k * es;
          pp.stride_b = sb;
          pp.stride_h = sh;
          pp.stride_t = st;
          pp.probs = static_cast<float*>(dp.get());
          pp.B = c.B;
          pp.H = c.H;
          pp.T = c.T;
          pp.head_dim = c.hd;
          pp.query_rows = rows;
          pp.scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
          launch_attention_probs(pp, nullptr);
          sync_or_throw();
          std::vector<float> want(static_cast<size_t>(c.B) * c.H * rows * c.T);
          for (int bh = 0; bh < c.B * c.H; ++bh)
            for (int i = 0; i < rows; ++i)
              for (int j = 0; j < c.T; ++j)
                want[(static_cast<size_t>(bh) * rows + i) * c.T + j] = want_p[(static_cast<size_t>(bh) * c.T + i) * c.T + j];
          EXPECT_TRUE(close_rel(dp.download(), want, dt == DType::F32 ? 1e-4f : 1e-2f));
        }
      }
    }
  }
}

// The attention-pool head's cross-attention against double: L latent rows over kv rows
// first..T-1, T past one key chunk (256) so the online rescale across chunks runs, head dim 72
// and 20 (not 64), odd batch, the query as a weight (one for every image) and per image.
TEST(GpuAttention, CrossAttentionMatchesReference) {
  VIT_SKIP_WITHOUT_GPU();
  struct Case {
    int B, L, T, first, H, hd;
    bool q_weight;
  };
  for (const Case& c : {Case{3, 1, 300, 5, 3, 72, true}, Case{1, 2, 197, 1, 4, 20, false}, Case{2, 3, 9, 0, 2, 64, true}}) {
    for (DType dt : kTypes) {
      SCOPED_TRACE(std::string(dt_label(dt)) + " B" + std::to_string(c.B) + " L" + std::to_string(c.L) + " T" + std::to_string(c.T) +
                   " hd" + std::to_string(c.hd));
      const int D = c.H * c.hd;
      const size_t qn = static_cast<size_t>(c.q_weight ? 1 : c.B) * c.L * D;
      const auto q = round_to(dt, random_vec(qn, -1.5f, 1.5f));
      const auto kv = round_to(dt, random_vec(static_cast<size_t>(c.B) * c.T * 2 * D, -1.5f, 1.5f));
      DevMem dq(dt, q), dkv(dt, kv), dout(dt, static_cast<size_t>(c.B) * c.L * D);
      dout.poison();
      CrossAttentionParams p;
      p.dtype = dt;
      p.q = dq.get();
      p.q_stride_b = c.q_weight ? 0 : static_cast<int64_t>(c.L) * D;
      p.kv = dkv.get();
      p.o = dout.get();
      p.B = c.B;
      p.L = c.L;
      p.T = c.T;
      p.first = c.first;
      p.H = c.H;
      p.head_dim = c.hd;
      p.scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
      launch_cross_attention(p, nullptr);
      sync_or_throw();
      std::vector<float> want(static_cast<size_t>(c.B) * c.L * D);
      const int n = c.T - c.first;
      std::vector<double> s(static_cast<size_t>(n));
      for (int b = 0; b < c.B; ++b)
        for (int l = 0; l < c.L; ++l)
          for (int h = 0; h < c.H; ++h) {
            const float* qr = q.data() + (c.q_weight ? 0 : static_cast<size_t>(b) * c.L * D) + static_cast<size_t>(l) * D + h * c.hd;
            double mx = -1e300, sum = 0.0;
            for (int j = 0; j < n; ++j) {
              const float* kr = kv.data() + (static_cast<size_t>(b) * c.T + c.first + j) * 2 * D + h * c.hd;
              double acc = 0.0;
              for (int d = 0; d < c.hd; ++d) acc += static_cast<double>(qr[d]) * kr[d];
              s[static_cast<size_t>(j)] = acc / std::sqrt(static_cast<double>(c.hd));
              mx = std::max(mx, s[static_cast<size_t>(j)]);
            }
            for (double& v : s) sum += (v = std::exp(v - mx));
            for (int d = 0; d < c.hd; ++d) {
              double acc = 0.0;
              for (int j = 0; j < n; ++j)
                acc += s[static_cast<size_t>(j)] * kv[(static_cast<size_t>(b) * c.T + c.first + j) * 2 * D + D + h * c.hd + d];
              want[(static_cast<size_t>(b) * c.L + l) * D + h * c.hd + d] = static_cast<float>(acc / sum);
            }
          }
      EXPECT_TRUE(close_rel(dout.download(), want, tol_rel(dt)));
    }
  }
  CrossAttentionParams bad;  // no key rows (first == T) is refused by name, not run
  bad.q = bad.kv = reinterpret_cast<const void*>(16);
  bad.o = reinterpret_cast<void*>(16);
  bad.B = bad.L = bad.H = 1;
  bad.head_dim = 8;
  bad.T = bad.first = 4;
  bad.scale = 1.0f;
  EXPECT_THROW(launch_cross_attention(bad, nullptr), Error);
}

TEST(GpuAttention, RejectsHeadDimAbove128) {
  VIT_SKIP_WITHOUT_GPU();
  DevMem d(DType::F16, 3 * 2 * 50 * 136);
  AttentionParams p;
  p.dtype = DType::F16;
  p.q = p.k = p.v = d.get();
  p.o = d.get();
  p.stride_b = 50 * 136;
  p.stride_h = 50 * 136;
  p.stride_t = 136;
  p.B = 1;
  p.H = 1;
  p.T = 50;
  p.head_dim = 136;
  p.scale = 0.1f;
  try {
    launch_attention(p, nullptr);
    FAIL() << "expected kInvalidArgument";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

// ---------------------------------------------------------------------------------------
// Patch embedding
TEST(GpuPatchEmbed, PatchifyMatchesIm2col) {
  VIT_SKIP_WITHOUT_GPU();
  struct PC {
    int B, C, H, W, P;
    bool norm;
  };
  const PC cases[] = {{3, 3, 32, 48, 16, false}, {1, 3, 28, 28, 14, true}, {64, 3, 16, 16, 8, false}};
  for (DType dt : kTypes) {
    for (const PC& c : cases) {
      SCOPED_TRACE(std::string(dt_label(dt)) + " P=" + std::to_string(c.P) + " B=" + std::to_string(c.B));
      const int K = c.C * c.P * c.P, kp = (K + 7) / 8 * 8, gh = c.H / c.P, gw = c.W / c.P, N = gh * gw;
      const auto img = random_vec(static_cast<size_t>(c.B) * c.C * c.H * c.W, 0.0f, 255.0f);
      DevMem dimg(DType::F32, img), dcols(dt, static_cast<size_t>(c.B) * N * kp);
      dcols.poison();
      PatchifyParams p;
      p.dtype = dt;
      p.images = static_cast<const float*>(dimg.get());
      p.cols = dcols.get();
      p.B = c.B;
      p.C = c.C;
      p.H = c.H;
      p.W = c.W;
      p.P = c.P;
      p.k_pad = kp;
      p.normalize = c.norm;
      p.scale = 1.0f / 255.0f;
      const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
      for (int i = 0; i < 3; ++i) {
        p.mean[i] = mean[i];
        p.std[i] = sd[i];
      }
      std::vector<float> want(static_cast<size_t>(c.B) * N * kp, 0.0f);
      for (int b = 0; b < c.B; ++b)
        for (int n = 0; n < N; ++n)
          for (int k = 0; k < K; ++k) {
            const int ch = k / (c.P * c.P), py = (k / c.P) % c.P, px = k % c.P, gy = n / gw, gx = n % gw;
            float v = img[((static_cast<size_t>(b) * c.C + ch) * c.H + gy * c.P + py) * c.W + gx * c.P + px];
            if (c.norm) v = (v * p.scale - mean[ch]) / sd[ch];
            want[(static_cast<size_t>(b) * N + n) * kp + k] = v;
          }
      launch_patchify(p, nullptr);
      sync_or_throw();
      EXPECT_TRUE(close_rel(dcols.download(), round_to(dt, want), dt == DType::F32 ? 1e-5f : 1e-2f));
    }
  }
}

// The embed of every family: P prefix rows (0: no class token; 1: cls; 5: cls + dist + 3
// registers), position tables with or without prefix rows (timm no_embed_class), with and without
// the patch bias (CLIP towers have none).
TEST(GpuPatchEmbed, EmbedFinish) {
  VIT_SKIP_WITHOUT_GPU();
  struct Variant {
    int P;
    bool pos_prefix, bias;
  };
  for (const Variant v : {Variant{1, true, true}, Variant{0, true, true}, Variant{5, false, false}, Variant{5, true, true},
                          Variant{2, false, true}}) {
    for (DType dt : kTypes) {
#ifdef VIT_GPU_EMU_BUILD
      for (int B : {1, 3}) {
#else
      for (int B : {1, 3, 64}) {
#endif
        const int N = 196, D = 96, P = v.P, T = P + N, pos_rows = v.pos_prefix ? T : N;
        SCOPED_TRACE(std::string(dt_label(dt)) + " B=" + std::to_string(B) + " P=" + std::to_string(P) +
                     (v.pos_prefix ? "" : " no_embed_class") + (v.bias ? "" : " no bias"));
        const auto pe = round_to(dt, random_vec(static_cast<size_t>(B) * N * D));
        const auto bias = round_to(dt, random_vec(D));
        const auto prefix = round_to(dt, random_vec(static_cast<size_t>(std::max(P, 1)) * D));
        const auto pos = round_to(dt, random_vec(static_cast<size_t>(pos_rows) * D));
        DevMem dpe(dt, pe), db(dt, bias), dpre(dt, prefix), dpos(dt, pos), dtok(dt, static_cast<size_t>(B) * T * D);
        dtok.poison();
        EmbedParams p;
        p.dtype = dt;
        p.patches = dpe.get();
        p.bias = v.bias ? db.get() : nullptr;
        p.prefix = P > 0 ? dpre.get() : nullptr;
        p.P = P;
        p.pos_prefix = v.pos_prefix;
        p.pos = dpos.get();
        p.tokens = dtok.get();
        p.B = B;
        p.N = N;
        p.D = D;
        std::vector<float> want(static_cast<size_t>(B) * T * D);
        for (int b = 0; b < B; ++b)
          for (int t = 0; t < T; ++t)
            for (int j = 0; j < D; ++j) {
              float w;
              if (t < P) {
                w = prefix[static_cast<size_t>(t) * D + j] + (v.pos_prefix ? pos[static_cast<size_t>(t) * D + j] : 0.0f);
              } else {
                const int pr = v.pos_prefix ? t : t - P;
                w = pe[(static_cast<size_t>(b) * N + t - P) * D + j] + (v.bias ? bias[j] : 0.0f) +
                    pos[static_cast<size_t>(pr) * D + j];
              }
              want[(static_cast<size_t>(b) * T + t) * D + j] = w;
            }
        launch_embed_finish(p, nullptr);
        sync_or_throw();
        EXPECT_TRUE(close_rel(dtok.download(), want, dt == DType::F32 ? 1e-6f : 1e-2f));

        // patches_final: the patch rows already hold + bias + pos (the GEMM epilogue added them)
        // and are copied bit for bit; only the prefix rows are computed; bias may be null.
        dtok.poison();
        p.patches_final = true;
        p.bias = nullptr;
        for (int b = 0; b < B; ++b)
          for (int t = P; t < T; ++t)
            for (int j = 0; j < D; ++j)
              want[(static_cast<size_t>(b) * T + t) * D + j] = pe[(static_cast<size_t>(b) * N + t - P) * D + j];
        launch_embed_finish(p, nullptr);
        sync_or_throw();
        const std::vector<float> got = dtok.download();
        EXPECT_TRUE(close_rel(got, want, dt == DType::F32 ? 1e-6f : 1e-2f));
        for (int b = 0; b < B; ++b)
          for (int t = P; t < T; ++t)
            for (int j = 0; j < D; ++j) {
              const size_t i = (static_cast<size_t>(b) * T + t) * D + j;
              ASSERT_EQ(got[i], want[i]) << "patch row not copied exactly at b " << b << " t " << t << " j " << j;
            }
        // Without pos on the prefix rows, they are the prefix weights exactly.
        if (!v.pos_prefix)
          for (int b = 0; b < B; ++b)
            for (int i = 0; i < P * D; ++i) ASSERT_EQ(got[static_cast<size_t>(b) * T * D + i], prefix[static_cast<size_t>(i)]);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Head
// Every pooling of the families: one row (cls at 0, DeiT's dist at 1), and the mean / max /
// avgmax over the patch rows after 0, 1 or 5 prefix rows.
TEST(GpuHead, PoolEveryMode) {
  VIT_SKIP_WITHOUT_GPU();
  for (DType dt : kTypes) {
    for (int T : {197, 50, 577}) {
      const int B = 3, D = 64;
      const auto x = round_to(dt, random_vec(static_cast<size_t>(B) * T * D));
      DevMem dx(dt, x), dout(dt, static_cast<size_t>(B) * D);
      for (PoolMode mode : {PoolMode::kRow, PoolMode::kMean, PoolMode::kMax, PoolMode::kAvgMax}) {
        for (int first : {0, 1, 5}) {
          SCOPED_TRACE(std::string(dt_label(dt)) + " T=" + std::to_string(T) + " mode " +
                       std::to_string(static_cast<int>(mode)) + " first " + std::to_string(first));
          std::vector<float> want(static_cast<size_t>(B) * D);
          for (int b = 0; b < B; ++b)
            for (int j = 0; j < D; ++j) {
              double s = 0.0, mx = -INFINITY;
              for (int t = first; t < T; ++t) {
                const double v = x[(static_cast<size_t>(b) * T + t) * D + j];
                s += v;
                mx = std::max(mx, v);
              }
              const double mean = s / (T - first);
              want[static_cast<size_t>(b) * D + j] = static_cast<float>(
                  mode == PoolMode::kRow    ? x[(static_cast<size_t>(b) * T + first) * D + j]
                  : mode == PoolMode::kMean ? mean
                  : mode == PoolMode::kMax  ? mx
                                            : 0.5 * (mean + mx));
            }
          PoolParams p;
          p.dtype = dt;
          p.x = dx.get();
          p.out = dout.get();
          p.B = B;
          p.T = T;
          p.D = D;
          p.mode = mode;
          p.first = first;
          dout.poison();
          launch_pool(p, nullptr);
          sync_or_throw();
          const std::vector<float> got = dout.download();
          if (mode == PoolMode::kRow || mode == PoolMode::kMax) {
            EXPECT_EQ(got, want);  // a copy / a max of stored values: exact
          } else {
            EXPECT_TRUE(close_rel(got, want, dt == DType::F32 ? 1e-5f : 1e-2f));
          }
        }
      }
    }
  }
  // A first row outside the tokens is an error, not an out-of-bounds read.
  PoolParams bad;
  bad.x = bad.out = reinterpret_cast<void*>(16);
  bad.B = 1;
  bad.T = 4;
  bad.D = 8;
  bad.first = 4;
  EXPECT_THROW(launch_pool(bad, nullptr), Error);
}

TEST(GpuHead, ToF32AndGelu) {
  VIT_SKIP_WITHOUT_GPU();
  for (DType dt : kTypes) {
    SCOPED_TRACE(dt_label(dt));
    const int rows = 197, cols = 300, ld = 320;
    const auto x = round_to(dt, random_vec(static_cast<size_t>(rows) * ld, -4.0f, 4.0f));
    DevMem dx(dt, x), df(DType::F32, x.size());
    df.poison();
    ToF32Params tp;
    tp.dtype = dt;
    tp.src = dx.get();
    tp.dst = static_cast<float*>(df.get());
    tp.n = static_cast<int64_t>(x.size());
    launch_to_f32(tp, nullptr);
    sync_or_throw();
    EXPECT_EQ(df.download(), x);  // exact: widening is lossless
    for (const ActivationInfo& ai : kActivations) {
      const Activation form = ai.act;
      SCOPED_TRACE("GELU form " + std::to_string(static_cast<int>(form)));
      DevMem dg(dt, x);
      const ActivationParams gp{dt, dg.get(), rows, cols, ld, form};  // {dtype, x, rows, cols, ld, act}
      launch_activation(gp, nullptr);
      sync_or_throw();
      std::vector<float> want = x;
      for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) {
          const size_t i = static_cast<size_t>(r) * ld + c;
          want[i] = static_cast<float>(gelu_ref(x[i], form));
        }
      EXPECT_TRUE(close_rel(dg.download(), want, dt == DType::F32 ? 1e-5f : 1e-2f));  // padding columns untouched too
    }
  }
}

// The gated MLP's middle: y = act(x[:, :I]) * x[:, I:] against double, odd sizes (197 rows, I
// not a multiple of the block), every output written (poisoned first), both GLU acts.
TEST(GpuHead, Glu) {
  VIT_SKIP_WITHOUT_GPU();
  for (DType dt : kTypes) {
    SCOPED_TRACE(dt_label(dt));
    const int rows = 197, I = 173;
    const auto x = round_to(dt, random_vec(static_cast<size_t>(rows) * 2 * I, -4.0f, 4.0f));
    for (Activation form : {Activation::kSilu, Activation::kGeluErf}) {
      SCOPED_TRACE("act form " + std::to_string(static_cast<int>(form)));
      DevMem dx(dt, x), dy(dt, static_cast<size_t>(rows) * I);
      dy.poison();
      GluParams gp;
      gp.dtype = dt;
      gp.x = dx.get();
      gp.y = dy.get();
      gp.rows = rows;
      gp.cols = I;
      gp.act = form;
      launch_glu(gp, nullptr);
      sync_or_throw();
      std::vector<float> want(static_cast<size_t>(rows) * I);
      for (int r = 0; r < rows; ++r)
        for (int c = 0; c < I; ++c) {
          const size_t g = static_cast<size_t>(r) * 2 * I + c;
          want[static_cast<size_t>(r) * I + c] = static_cast<float>(gelu_ref(x[g], form) * x[g + I]);
        }
      EXPECT_TRUE(close_rel(dy.download(), want, dt == DType::F32 ? 1e-5f : 1e-2f));
    }
  }
  GluParams bad;  // a null input is refused by name, not run
  bad.rows = 1;
  bad.cols = 1;
  EXPECT_THROW(launch_glu(bad, nullptr), Error);
}

#ifdef VIT_GPU_EMU_BUILD
// The emulator's race check (gpu_emu/emu.cpp): a pageable cudaMemcpy or a cudaMemset on the legacy
// stream may still be in flight when it returns, and a cudaStreamNonBlocking stream is not
// ordered after it. Work on such a stream that reaches the written allocation before anything
// ordered the two is reported as a launch failure; ordered or unrelated work is not.
TEST(GpuEmuRuntime, FlagsLegacyWritesRacingANonBlockingStream) {
  const int n = 1000;
  const std::vector<float> x = random_vec(n, -1.0f, 1.0f);
  cudaStream_t s = nullptr, blocking = nullptr;
  VIT_TEST_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  VIT_TEST_CUDA(cudaStreamCreate(&blocking));
  struct Case {
    const char* name;
    bool race;
    std::function<void(DevMem& src, DevMem& dst, cudaStream_t& st)> prepare;
  };
  DevMem unrelated;
  float* pinned = nullptr;
  VIT_TEST_CUDA(cudaMallocHost(reinterpret_cast<void**>(&pinned), n * sizeof(float)));
  std::copy(x.begin(), x.end(), pinned);
  const Case cases[] = {
      {"pageable upload, then the stream", true, [&](DevMem& a, DevMem&, cudaStream_t&) { a.upload(DType::F32, x); }},
      {"cudaMemset of the output, then the stream", true, [&](DevMem& a, DevMem& d, cudaStream_t&) {
         a.upload(DType::F32, x);
         VIT_TEST_CUDA(cudaDeviceSynchronize());
         d.poison();
       }},
      {"pageable upload, cudaDeviceSynchronize", false, [&](DevMem& a, DevMem&, cudaStream_t&) {
         a.upload(DType::F32, x);
         VIT_TEST_CUDA(cudaDeviceSynchronize());
       }},
      {"pageable upload, legacy-stream sync", false, [&](DevMem& a, DevMem&, cudaStream_t&) {
         a.upload(DType::F32, x);
         VIT_TEST_CUDA(cudaStreamSynchronize(nullptr));
       }},
      {"cudaMemcpyAsync on the stream itself", false, [&](DevMem& a, DevMem&, cudaStream_t& st) {
         a.alloc(DType::F32, x.size());
         VIT_TEST_CUDA(cudaMemcpyAsync(a.get(), x.data(), n * sizeof(float), cudaMemcpyHostToDevice, st));
       }},
      {"cudaMemcpy from pinned memory (synchronous)", false, [&](DevMem& a, DevMem&, cudaStream_t&) {
         a.alloc(DType::F32, x.size());
         VIT_TEST_CUDA(cudaMemcpy(a.get(), pinned, n * sizeof(float), cudaMemcpyHostToDevice));
       }},
      {"pageable upload, then a blocking stream", false, [&](DevMem& a, DevMem&, cudaStream_t& st) {
         a.upload(DType::F32, x);
         st = blocking;
       }},
      {"pageable upload of another buffer", false, [&](DevMem& a, DevMem&, cudaStream_t&) {
         a.upload(DType::F32, x);
         VIT_TEST_CUDA(cudaDeviceSynchronize());
         unrelated.upload(DType::F32, x);  // in flight while the kernel runs, but not its memory
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    DevMem src, dst(DType::F32, x.size());
    VIT_TEST_CUDA(cudaDeviceSynchronize());
    cudaStream_t st = s;
    c.prepare(src, dst, st);
    const uint64_t before = emu::races_found();
    ToF32Params tp;
    tp.dtype = DType::F32;
    tp.src = src.get();
    tp.dst = static_cast<float*>(dst.get());
    tp.n = n;
    // The launch wrapper checks cudaGetLastError: a race surfaces as its Error (kDevice).
    bool failed = false;
    try {
      launch_to_f32(tp, st);
      failed = cudaStreamSynchronize(st) != cudaSuccess;
    } catch (const Error& e) {
      failed = e.code() == ErrorCode::kDevice;
    }
    (void)cudaGetLastError();
    EXPECT_EQ(emu::races_found() - before, c.race ? 1u : 0u);
    EXPECT_EQ(failed, c.race);
    if (!c.race) EXPECT_EQ(dst.download(), x);
  }
  VIT_TEST_CUDA(cudaFreeHost(pinned));
  VIT_TEST_CUDA(cudaStreamDestroy(blocking));
  VIT_TEST_CUDA(cudaStreamDestroy(s));
}
#endif

}  // namespace
}  // namespace vit::test
