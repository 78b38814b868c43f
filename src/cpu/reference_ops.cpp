// vit-infer: the reference ops of the fp32 CPU engine (cpu_engine.cpp), shared with the fast CPU
// engine (fast_engine.cpp) where its cost does not matter (validation, im2col, pooling, the head,
// the attention-map path) and used by the tests as the oracle of the fast kernels. fp32,
// row-major, batch-major activations: tokens [B, T, D], cls token at row 0 of each image.
#include "cpu/reference_ops.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"

namespace vit::ref {

namespace {

void check_numel(const Tensor& t, int64_t want, const std::string& name, const std::string& shape) {
  if (t.numel() != want || static_cast<int64_t>(t.data.size()) != want) {
    fail(ErrorCode::kInvalidArgument,
         "cpu engine: weight '" + name + "' has shape " + shape_str(t.shape) + " (" +
             std::to_string(t.data.size()) + " values), expected " + shape + " from the config");
  }
}

std::string dims(std::initializer_list<int64_t> d) { return shape_str(std::vector<int64_t>(d)); }

}  // namespace

void validate_model(const Model& m) {
  const ViTConfig& c = m.cfg;
  auto positive = [](int v, const char* what) {
    if (v <= 0)
      fail(ErrorCode::kInvalidArgument, std::string("cpu engine: config ") + what +
                                            " must be positive, got " + std::to_string(v));
  };
  positive(c.image_h, "image_h");
  positive(c.image_w, "image_w");
  positive(c.patch, "patch");
  positive(c.in_chans, "in_chans");
  positive(c.hidden, "hidden");
  positive(c.heads, "heads");
  positive(c.mlp_hidden, "mlp_hidden");
  positive(c.depth, "depth");  // >= 1 so that the last block's attention always exists
  if (c.num_classes < 0) {
    fail(ErrorCode::kInvalidArgument, "cpu engine: config num_classes must not be negative");
  }
  if (c.hidden % c.heads != 0) {
    fail(ErrorCode::kInvalidArgument, "cpu engine: hidden " + std::to_string(c.hidden) +
                                          " is not divisible by heads " + std::to_string(c.heads));
  }
  if (c.image_h % c.patch != 0 || c.image_w % c.patch != 0) {
    fail(ErrorCode::kInvalidArgument,
         "cpu engine: image size " + std::to_string(c.image_h) + "x" + std::to_string(c.image_w) +
             " is not a multiple of the patch size " + std::to_string(c.patch));
  }
  if (!(c.ln_eps >= 0.0f)) fail(ErrorCode::kInvalidArgument, "cpu engine: ln_eps must be >= 0");

  const int64_t D = c.hidden, I = c.mlp_hidden, T = c.tokens();
  const int64_t K = int64_t{c.in_chans} * c.patch * c.patch, C = c.num_classes;
  const ViTWeights& w = m.w;
  check_numel(w.patch_w, D * K, "patch_embed.proj.weight", dims({D, K}));
  check_numel(w.patch_b, D, "patch_embed.proj.bias", dims({D}));
  check_numel(w.cls, D, "cls_token", dims({D}));
  check_numel(w.pos, T * D, "pos_embed", dims({T, D}));
  if (static_cast<int>(w.blocks.size()) != c.depth) {
    fail(ErrorCode::kInvalidArgument, "cpu engine: model has " + std::to_string(w.blocks.size()) +
                                          " blocks but config depth is " + std::to_string(c.depth));
  }
  for (size_t i = 0; i < w.blocks.size(); ++i) {
    const BlockWeights& b = w.blocks[i];
    const std::string p = "blocks." + std::to_string(i) + ".";
    check_numel(b.ln1_w, D, p + "norm1.weight", dims({D}));
    check_numel(b.ln1_b, D, p + "norm1.bias", dims({D}));
    check_numel(b.qkv_w, 3 * D * D, p + "attn.qkv.weight", dims({3 * D, D}));
    check_numel(b.qkv_b, 3 * D, p + "attn.qkv.bias", dims({3 * D}));
    check_numel(b.proj_w, D * D, p + "attn.proj.weight", dims({D, D}));
    check_numel(b.proj_b, D, p + "attn.proj.bias", dims({D}));
    check_numel(b.ln2_w, D, p + "norm2.weight", dims({D}));
    check_numel(b.ln2_b, D, p + "norm2.bias", dims({D}));
    check_numel(b.fc1_w, I * D, p + "mlp.fc1.weight", dims({I, D}));
    check_numel(b.fc1_b, I, p + "mlp.fc1.bias", dims({I}));
    check_numel(b.fc2_w, D * I, p + "mlp.fc2.weight", dims({D, I}));
    check_numel(b.fc2_b, D, p + "mlp.fc2.bias", dims({D}));
  }
  if (c.final_norm) {
    check_numel(w.norm_w, D, "norm.weight", dims({D}));
    check_numel(w.norm_b, D, "norm.bias", dims({D}));
  }
  if (c.fc_norm) {
    check_numel(w.fc_norm_w, D, "fc_norm.weight", dims({D}));
    check_numel(w.fc_norm_b, D, "fc_norm.bias", dims({D}));
  }
  if (C > 0) {
    check_numel(w.head_w, C * D, "head.weight", dims({C, D}));
    check_numel(w.head_b, C, "head.bias", dims({C}));
  }
}


// A Linear layer: y[M, N] = x[M, K] W^T + bias (accumulate: y += ...), then the epilogue.
// W is [N, K] (torch orientation), so BLAS reads it transposed in place.
// The work is split across the OpenMP team (by columns, or by rows when there are more rows
// than columns); each part is one single-threaded OpenBLAS call followed by its own bias/GELU,
// so there is one thread pool and one parallel region per layer. (OpenBLAS threading the GEMMs
// with OpenMP for the other loops makes each pool's idle threads spin while the other works.)
void linear(const float* x, int64_t M, int64_t K, const Tensor& w, const Tensor& bias, int64_t N,
            float* y, bool accumulate, Epilogue epi, int nt) {
  const float* wp = w.ptr();
  const float* bp = bias.ptr();
  auto part = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    if (m1 <= m0 || n1 <= n0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m1 - m0),
                static_cast<blasint>(n1 - n0), static_cast<blasint>(K), 1.0f, x + m0 * K,
                static_cast<blasint>(K), wp + n0 * K, static_cast<blasint>(K),
                accumulate ? 1.0f : 0.0f, y + m0 * N + n0, static_cast<blasint>(N));
    for (int64_t m = m0; m < m1; ++m) {
      float* row = y + m * N;
      if (epi == Epilogue::kBiasGelu) {
        for (int64_t n = n0; n < n1; ++n) row[n] = gelu(row[n] + bp[n]);
      } else {
#pragma omp simd
        for (int64_t n = n0; n < n1; ++n) row[n] += bp[n];
      }
    }
  };
  const bool split_rows = M > N;
  const int64_t extent = split_rows ? M : N;
  const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nt, extent / 16)));
  if (parts == 1) {
    part(0, M, 0, N);
    return;
  }
  // Part boundaries on multiples of 16 keep the BLAS micro-kernels on full tiles.
  const int64_t step = ((extent + parts - 1) / parts + 15) / 16 * 16;
#pragma omp parallel for num_threads(parts) schedule(static)
  for (int p = 0; p < parts; ++p) {
    const int64_t lo = std::min(extent, p * step), hi = std::min(extent, lo + step);
    if (split_rows) {
      part(lo, hi, 0, N);
    } else {
      part(0, M, lo, hi);
    }
  }
}

// Keeps OpenBLAS single-threaded for the duration of a run (our OpenMP team calls it in
// parallel) and restores the caller's setting afterwards. The setting is process-global.
BlasSingleThreaded::BlasSingleThreaded() : saved_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
BlasSingleThreaded::~BlasSingleThreaded() { openblas_set_num_threads(saved_); }

// One LayerNorm row, statistics in double (two passes) so that large-mean rows and the tiny HF
// eps (1e-12) lose nothing. In-place (y == x) is allowed: every x[j] is read before y[j] is
// written.
namespace {

inline void layer_norm_row(const float* x, float* y, int64_t D, const float* g, const float* b,
                           double eps) {
  double sum = 0.0;
  for (int64_t j = 0; j < D; ++j) sum += x[j];
  const double mean = sum / static_cast<double>(D);
  double sq = 0.0;
  for (int64_t j = 0; j < D; ++j) {
    const double d = x[j] - mean;
    sq += d * d;
  }
  const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(D) + eps);
  for (int64_t j = 0; j < D; ++j) {
    y[j] = static_cast<float>((x[j] - mean) * rstd * g[j] + b[j]);
  }
}

}  // namespace

// x, y: [rows, D] with row strides ldx / ldy (rows need not be contiguous).
void layer_norm(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t D,
                const Tensor& g, const Tensor& b, float eps, int nt) {
  const float* gp = g.ptr();
  const float* bp = b.ptr();
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; ++r) layer_norm_row(x + r * ldx, y + r * ldy, D, gp, bp, eps);
}

// Multi-head self-attention core.
//   qkv:     [B, T, 3D]    per token q | k | v, each head-major (head h = columns h*hd .. +hd-1)
//   out:     [B, T, D]     softmax(q k^T * hd^-0.5) v, heads concatenated head-major
//   probs:   [B, H, T, T]  softmax probabilities, or null (then the scratch row holds them)
//   kt:      [B, H, hd, T] workspace: K transposed, so the score loop runs over contiguous keys
//   scratch: [nt, T]       one probability row per thread
// Each (image, head, query row) is independent: one flat parallel loop over rows, no BLAS inside.
void attention(const float* qkv, float* out, float* probs, float* kt, float* scratch, int64_t B,
               int64_t T, int64_t H, int64_t hd, int nt) {
  const int64_t D = H * hd;
  const int64_t ld = 3 * D;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  constexpr int kBlk = 16;  // register block: 16 floats = 4 SSE / 2 AVX registers
#pragma omp parallel num_threads(nt)
  {
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * H; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const float* k0 = qkv + b * T * ld + D + h * hd;
      float* dst = kt + bh * hd * T;
      for (int64_t j = 0; j < T; ++j) {
        for (int64_t d = 0; d < hd; ++d) dst[d * T + j] = k0[j * ld + d];
      }
    }
    // (implicit barrier: every K^T is complete before any row reads it)
#pragma omp for schedule(static)
    for (int64_t idx = 0; idx < B * H * T; ++idx) {
      const int64_t i = idx % T;
      const int64_t bh = idx / T;
      const int64_t b = bh / H, h = bh % H;
      const float* q = qkv + (b * T + i) * ld + h * hd;
      const float* k = kt + bh * hd * T;  // [hd, T]
      const float* v0 = qkv + b * T * ld + 2 * D + h * hd;
      float* p = probs ? probs + idx * T : scratch + omp_get_thread_num() * T;

      // Scores: p[j] = (q * scale) . k_j. Blocks of kBlk keys accumulate in registers over the
      // head dimension (no horizontal sums, no stores inside the d loop).
      int64_t j0 = 0;
      for (; j0 + kBlk <= T; j0 += kBlk) {
        float acc[kBlk] = {};
        for (int64_t d = 0; d < hd; ++d) {
          const float qd = q[d] * scale;
          const float* kd = k + d * T + j0;
          for (int jj = 0; jj < kBlk; ++jj) acc[jj] += qd * kd[jj];
        }
        for (int jj = 0; jj < kBlk; ++jj) p[j0 + jj] = acc[jj];
      }
      for (int64_t j = j0; j < T; ++j) {
        float acc = 0.0f;
        for (int64_t d = 0; d < hd; ++d) acc += q[d] * scale * k[d * T + j];
        p[j] = acc;
      }
      // Softmax; subtracting the row max keeps exp() in range. The sum is accumulated in double.
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < T; ++j) mx = std::max(mx, p[j]);
      double sum = 0.0;
      for (int64_t j = 0; j < T; ++j) {
        p[j] = std::exp(p[j] - mx);
        sum += p[j];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t j = 0; j < T; ++j) p[j] *= inv;

      // out_i = sum_j p_j v_j, kBlk output dimensions at a time held in registers.
      float* o = out + (b * T + i) * D + h * hd;
      int64_t d0 = 0;
      for (; d0 + kBlk <= hd; d0 += kBlk) {
        float acc[kBlk] = {};
        for (int64_t j = 0; j < T; ++j) {
          const float pj = p[j];
          const float* v = v0 + j * ld + d0;
          for (int dd = 0; dd < kBlk; ++dd) acc[dd] += pj * v[dd];
        }
        for (int dd = 0; dd < kBlk; ++dd) o[d0 + dd] = acc[dd];
      }
      for (int64_t d = d0; d < hd; ++d) {
        float acc = 0.0f;
        for (int64_t j = 0; j < T; ++j) acc += p[j] * v0[j * ld + d];
        o[d] = acc;
      }
    }
  }
}


// dst[b, i, j] = mean over heads of probs[b, h, i, j]; probs [nb, H, T, T], dst [nb, T, T].
// Summed in head order in fp32, then scaled by 1/H: every value is in [0, 1], so fp32 loses
// at most a few ulps.
void head_mean(const float* probs, float* dst, int64_t nb, int64_t H, int64_t T, int nt) {
  const float inv = 1.0f / static_cast<float>(H);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t bi = 0; bi < nb * T; ++bi) {
    const int64_t b = bi / T, i = bi % T;
    float* d = dst + bi * T;
    const float* p0 = probs + (b * H * T + i) * T;  // head 0, row i
    for (int64_t j = 0; j < T; ++j) d[j] = p0[j];
    for (int64_t hh = 1; hh < H; ++hh) {
      const float* p = p0 + hh * T * T;
      for (int64_t j = 0; j < T; ++j) d[j] += p[j];
    }
    for (int64_t j = 0; j < T; ++j) d[j] *= inv;
  }
}


// Cuts images [nb, C, H, W] into patches_ [nb * N, C*P*P]: row-major grid, each patch
// flattened (c, py, px), i.e. the OIHW order of the conv weight.
void im2col(const ViTConfig& c, const float* images, int64_t nb, float* dst, int nt) {
  const int64_t P = c.patch, C = c.in_chans, H = c.image_h, W = c.image_w;
  const int64_t gh = c.grid_h(), gw = c.grid_w(), K = C * P * P;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t bg = 0; bg < nb * gh; ++bg) {
    const int64_t b = bg / gh, gy = bg % gh;
    for (int64_t gx = 0; gx < gw; ++gx) {
      float* row = dst + ((b * gh + gy) * gw + gx) * K;
      for (int64_t ch = 0; ch < C; ++ch) {
        for (int64_t py = 0; py < P; ++py) {
          const float* src = images + ((b * C + ch) * H + gy * P + py) * W + gx * P;
          std::memcpy(row + (ch * P + py) * P, src, static_cast<size_t>(P) * sizeof(float));
        }
      }
    }
  }
}

// Tokens: x[b, 0] = cls + pos[0]; x[b, 1+n] = patch[b, n] + pos[1+n].
//   patch: [nb, N, D] (the patch GEMM's output), x: [nb, T, D]
void assemble_tokens(const ViTConfig& c, const ViTWeights& w, const float* patch, float* x, int64_t nb, int nt) {
  const int64_t T = c.tokens(), D = c.hidden, N = c.num_patches();
  const float* cls = w.cls.ptr();
  const float* pos = w.pos.ptr();
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < nb * T; ++r) {
    const int64_t b = r / T, t = r % T;
    float* dst = x + r * D;
    const float* p = pos + t * D;
    if (t == 0) {
      for (int64_t j = 0; j < D; ++j) dst[j] = cls[j] + p[j];
    } else {
      const float* src = patch + (b * N + t - 1) * D;
      for (int64_t j = 0; j < D; ++j) dst[j] = src[j] + p[j];
    }
  }
}

// Pooling (timm forward_head order): final norm -> pool -> fc_norm, then the head when logits is
// non-null and the model has one. x [nb, T, D] (read only), h [nb, T, D] workspace,
// pooled [nb, D], logits [nb, C].
void pool_and_head(const ViTConfig& c, const ViTWeights& w, const float* x, float* h, float* pooled, float* logits,
                   int64_t nb, int nt) {
  const int64_t T = c.tokens(), D = c.hidden, N = c.num_patches();
  if (c.pool == GlobalPool::kToken) {
    // Only the cls rows are needed, and LayerNorm is per row.
    if (c.final_norm) {
      layer_norm(x, T * D, pooled, D, nb, D, w.norm_w, w.norm_b, c.ln_eps, nt);
    } else {
      for (int64_t b = 0; b < nb; ++b) std::memcpy(pooled + b * D, x + b * T * D, D * sizeof(float));
    }
  } else {
    // Mean over the patch tokens (rows 1..T-1), after the final norm if the model has one.
    const float* src = x;
    if (c.final_norm) {
      layer_norm(x, D, h, D, nb * T, D, w.norm_w, w.norm_b, c.ln_eps, nt);
      src = h;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t bj = 0; bj < nb * D; ++bj) {
      const int64_t b = bj / D, j = bj % D;
      double s = 0.0;
      for (int64_t t = 1; t < T; ++t) s += src[(b * T + t) * D + j];
      pooled[bj] = static_cast<float>(s / static_cast<double>(N));
    }
  }
  if (c.fc_norm) layer_norm(pooled, D, pooled, D, nb, D, w.fc_norm_w, w.fc_norm_b, c.ln_eps, nt);
  if (logits && c.num_classes > 0) {
    linear(pooled, nb, D, w.head_w, w.head_b, c.num_classes, logits, false, Epilogue::kBias, nt);  // [nb, C]
  }
}

}  // namespace vit::ref
