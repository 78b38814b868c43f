// vit-infer: the fp32 CPU reference ops (see ref_ops.h): linear layers as single-threaded
// OpenBLAS calls split over one OpenMP team, LayerNorm / attention / elementwise as plain loops.
#include "cpu/ref_ops.h"

#include "core/activation_math.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace vit::ref {
namespace {

// One LayerNorm row, statistics in double (two passes). In-place (y == x) is allowed: every
// x[j] is read before y[j] is written.
inline void layer_norm_row(const float* x, float* y, int64_t D, const float* g, const float* b,
                           double eps, bool rms) {
  double sum = 0.0;
  if (!rms)
    for (int64_t j = 0; j < D; ++j) sum += x[j];
  const double mean = sum / static_cast<double>(D);  // RMSNorm: no centring (mean 0)
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

// A Linear layer: y[M, N] = x[M, K] W^T + bias (accumulate: y += ...), then the epilogue.
// W is [N, K] (torch orientation), so BLAS reads it transposed in place.
// The work is split across the OpenMP team (by columns, or by rows when there are more rows
// than columns); each part is one single-threaded OpenBLAS call followed by its own bias / activation,
// so there is one thread pool and one parallel region per layer. (OpenBLAS threading the GEMMs
// with OpenMP for the other loops makes each pool's idle threads spin while the other works.)
void linear(const float* x, int64_t M, int64_t K, const float* wp, const float* bp, int64_t N, float* y,
            bool accumulate, int nt, std::optional<Activation> act) {
  auto part = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    if (m1 <= m0 || n1 <= n0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m1 - m0),
                static_cast<blasint>(n1 - n0), static_cast<blasint>(K), 1.0f, x + m0 * K,
                static_cast<blasint>(K), wp + n0 * K, static_cast<blasint>(K),
                accumulate ? 1.0f : 0.0f, y + m0 * N + n0, static_cast<blasint>(N));
    for (int64_t m = m0; m < m1; ++m) {
      float* row = y + m * N;
      if (act) {
        for (int64_t n = n0; n < n1; ++n) row[n] = act::apply(*act, bp ? row[n] + bp[n] : row[n]);
      } else if (bp) {
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

BlasSingleThreaded::BlasSingleThreaded() : saved_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
BlasSingleThreaded::~BlasSingleThreaded() { openblas_set_num_threads(saved_); }

// x, y: [rows, D] with row strides ldx / ldy (rows need not be contiguous).
void layer_norm(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t D, const float* gp,
                const float* bp, float eps, int nt, bool rms) {
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; ++r) layer_norm_row(x + r * ldx, y + r * ldy, D, gp, bp, eps, rms);
}

// Each (image, head, query row) is independent: one flat parallel loop over rows, no BLAS inside.
void attention(const float* qkv, float* out, float* probs, float* kt, float* scratch, int64_t B,
               int64_t T, int64_t H, int64_t hd, int nt, const float* size) {
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
      if (size) {  // proportional attention (ToMe): key j counts size[j] times
        const float* sz = size + b * T;
        for (int64_t j = 0; j < T; ++j) p[j] += static_cast<float>(std::log(static_cast<double>(sz[j])));
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

void key_mean(const float* qkv, float* metric, int64_t B, int64_t T, int64_t H, int64_t hd, int nt) {
  const int64_t D = H * hd;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t bt = 0; bt < B * T; ++bt) {
    const float* k = qkv + bt * 3 * D + D;
    for (int64_t d = 0; d < hd; ++d) {
      double s = 0.0;
      for (int64_t h = 0; h < H; ++h) s += k[h * hd + d];
      metric[bt * hd + d] = static_cast<float>(s / static_cast<double>(H));
    }
  }
}

namespace {

// One image of tome_merge (see ref_ops.h). Scratch vectors are the caller's (one set per thread).
struct MergeScratch {
  std::vector<double> ua, ub, sim, best;
  std::vector<int64_t> partner, order, rank, src_rows;
};

void merge_image(const float* x, const float* metric, const float* size, float* y, float* size_out, int64_t T,
                 int64_t D, int64_t hd, int64_t r, int64_t prefix, MergeScratch& m) {
  const int64_t na = (T + 1) / 2, nb = T / 2, pa = (prefix + 1) / 2, pb = prefix / 2;
  // Unit metric rows of A (even rows) and B (odd rows) in double; a zero row stays zero.
  m.ua.resize(static_cast<size_t>(na * hd));
  m.ub.resize(static_cast<size_t>(nb * hd));
  for (int64_t t = 0; t < T; ++t) {
    const float* mr = metric + t * hd;
    double n2 = 0.0;
    for (int64_t d = 0; d < hd; ++d) n2 += static_cast<double>(mr[d]) * mr[d];
    const double inv = n2 > 0.0 ? 1.0 / std::sqrt(n2) : 0.0;
    double* u = (t % 2 ? m.ub.data() + (t / 2) * hd : m.ua.data() + (t / 2) * hd);
    for (int64_t d = 0; d < hd; ++d) u[d] = mr[d] * inv;
  }
  // Cosine similarities [na, nb] = UA UB^T (one single-threaded BLAS call per image).
  m.sim.resize(static_cast<size_t>(na * nb));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(na), static_cast<blasint>(nb),
              static_cast<blasint>(hd), 1.0, m.ua.data(), static_cast<blasint>(hd), m.ub.data(),
              static_cast<blasint>(hd), 0.0, m.sim.data(), static_cast<blasint>(nb));
  // Each A row's edge: its most similar B row, the lowest on a tie (none for the protected rows:
  // -inf; the protected B rows take none).
  m.best.resize(static_cast<size_t>(na));
  m.partner.resize(static_cast<size_t>(na));
  for (int64_t a = 0; a < na; ++a) {
    double bs = -std::numeric_limits<double>::infinity();
    int64_t bi = 0;
    const double* srow = m.sim.data() + a * nb;
    for (int64_t j = pb; a >= pa && j < nb; ++j)
      if (srow[j] > bs) bs = srow[j], bi = j;
    m.best[static_cast<size_t>(a)] = bs;
    m.partner[static_cast<size_t>(a)] = bi;
  }
  // The descending edge order (the lower A row first on a tie); the first r merge.
  m.order.resize(static_cast<size_t>(na));
  for (int64_t a = 0; a < na; ++a) m.order[static_cast<size_t>(a)] = a;
  std::stable_sort(m.order.begin(), m.order.end(), [&](int64_t i, int64_t j) { return m.best[i] > m.best[j]; });
  if (prefix > 0) std::sort(m.order.begin() + r, m.order.end());  // the unmerged rows ascending
  // Output rows: the unmerged A rows at position u (the prefix ones at their own rows), then the B
  // rows; a B row that takes merges is the size-weighted mean of itself and its A rows.
  for (int64_t u = 0; u < na - r; ++u) {
    const int64_t o = u < pa ? 2 * u : prefix + (u - pa), t = 2 * m.order[static_cast<size_t>(r + u)];
    std::memcpy(y + o * D, x + t * D, static_cast<size_t>(D) * sizeof(float));
    size_out[o] = size ? size[t] : 1.0f;
  }
  m.rank.assign(static_cast<size_t>(nb), 0);  // merges into each B row
  for (int64_t k = 0; k < r; ++k) ++m.rank[static_cast<size_t>(m.partner[static_cast<size_t>(m.order[static_cast<size_t>(k)])])];
  std::vector<double> acc;
  for (int64_t j = 0; j < nb; ++j) {
    const int64_t o = j < pb ? 2 * j + 1 : prefix + (na - r - pa) + (j - pb), t = 2 * j + 1;
    if (m.rank[static_cast<size_t>(j)] == 0) {
      std::memcpy(y + o * D, x + t * D, static_cast<size_t>(D) * sizeof(float));
      size_out[o] = size ? size[t] : 1.0f;
      continue;
    }
    m.src_rows.assign(1, t);  // the B row, then its merged A rows, most similar first
    for (int64_t k = 0; k < r; ++k)
      if (m.partner[static_cast<size_t>(m.order[static_cast<size_t>(k)])] == j)
        m.src_rows.push_back(2 * m.order[static_cast<size_t>(k)]);
    acc.assign(static_cast<size_t>(D), 0.0);
    double total = 0.0;
    for (int64_t s : m.src_rows) {
      const double w = size ? size[s] : 1.0;
      const float* xr = x + s * D;
      total += w;
      for (int64_t d = 0; d < D; ++d) acc[static_cast<size_t>(d)] += w * xr[d];
    }
    for (int64_t d = 0; d < D; ++d) y[o * D + d] = static_cast<float>(acc[static_cast<size_t>(d)] / total);
    size_out[o] = static_cast<float>(total);
  }
}

}  // namespace

// One image per task: the per-image work is a [nA, hd] x [hd, nB] product and row copies, ~0.1 ms
// at ViT-B's 197 tokens, too little to split further.
void tome_merge(const float* x, const float* metric, const float* size, float* y, float* size_out, int64_t B,
                int64_t T, int64_t D, int64_t hd, int64_t r, int64_t prefix, int nt) {
  const int64_t To = T - r;
  const int team = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nt, B)));
#pragma omp parallel num_threads(team)
  {
    MergeScratch m;
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b)
      merge_image(x + b * T * D, metric + b * T * hd, size ? size + b * T : nullptr, y + b * To * D, size_out + b * To,
                  T, D, hd, r, prefix, m);
  }
}

// One flat parallel loop over (image, head, query row); each row is independent and small.
void cross_attention(const float* q, int64_t q_batch_stride, const float* kv, float* out, int64_t B, int64_t L,
                     int64_t T, int64_t first, int64_t H, int64_t hd, int nt) {
  const int64_t D = H * hd, ld = 2 * D, n = T - first;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
#pragma omp parallel num_threads(nt)
  {
    std::vector<double> p(static_cast<size_t>(std::max<int64_t>(n, 1)));
#pragma omp for schedule(static)
    for (int64_t idx = 0; idx < B * H * L; ++idx) {
      const int64_t l = idx % L, h = (idx / L) % H, b = idx / (L * H);
      const float* qr = q + b * q_batch_stride + l * D + h * hd;
      const float* k0 = kv + (b * T + first) * ld + h * hd;  // row j: k0 + j * ld
      const float* v0 = k0 + D;
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        double s = 0.0;
        for (int64_t d = 0; d < hd; ++d) s += static_cast<double>(qr[d]) * k0[j * ld + d];
        p[static_cast<size_t>(j)] = s * scale;
        mx = std::max(mx, p[static_cast<size_t>(j)]);
      }
      double sum = 0.0;  // subtracting the row max keeps exp() in range
      for (int64_t j = 0; j < n; ++j) sum += (p[static_cast<size_t>(j)] = std::exp(p[static_cast<size_t>(j)] - mx));
      float* o = out + (b * L + l) * D + h * hd;
      for (int64_t d = 0; d < hd; ++d) {
        double acc = 0.0;
        for (int64_t j = 0; j < n; ++j) acc += p[static_cast<size_t>(j)] * v0[j * ld + d];
        o[d] = static_cast<float>(acc / sum);
      }
    }
  }
}

// Summed in head order in fp32, then scaled by 1/H: every value is in [0, 1], so fp32 loses at
// most a few ulps.
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

void im2col(const float* images, float* cols, int64_t nb, int64_t C, int64_t H, int64_t W, int64_t P, int nt) {
  const int64_t gh = H / P, gw = W / P, K = C * P * P;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t bg = 0; bg < nb * gh; ++bg) {
    const int64_t b = bg / gh, gy = bg % gh;
    for (int64_t gx = 0; gx < gw; ++gx) {
      float* row = cols + ((b * gh + gy) * gw + gx) * K;
      for (int64_t ch = 0; ch < C; ++ch) {
        for (int64_t py = 0; py < P; ++py) {
          const float* src = images + ((b * C + ch) * H + gy * P + py) * W + gx * P;
          std::memcpy(row + (ch * P + py) * P, src, static_cast<size_t>(P) * sizeof(float));
        }
      }
    }
  }
}

void embed(const float* patches, const float* prefix, int64_t P, const float* pos, bool pos_prefix, const float* bias,
           float* tokens, int64_t nb, int64_t N, int64_t D, bool patches_final, int nt) {
  const int64_t T = P + N;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < nb * T; ++r) {
    const int64_t b = r / T, t = r % T;
    float* dst = tokens + r * D;
    if (t < P) {
      const float* src = prefix + t * D;
      if (pos_prefix) {
        const float* p = pos + t * D;
        for (int64_t j = 0; j < D; ++j) dst[j] = src[j] + p[j];
      } else {
        std::memcpy(dst, src, static_cast<size_t>(D) * sizeof(float));
      }
    } else if (patches_final) {
      std::memcpy(dst, patches + (b * N + t - P) * D, static_cast<size_t>(D) * sizeof(float));
    } else {
      const float* src = patches + (b * N + t - P) * D;
      const float* p = pos + (pos_prefix ? t : t - P) * D;
      if (bias) {
        for (int64_t j = 0; j < D; ++j) dst[j] = (src[j] + bias[j]) + p[j];
      } else {
        for (int64_t j = 0; j < D; ++j) dst[j] = src[j] + p[j];
      }
    }
  }
}

void pool(const float* x, float* out, int64_t nb, int64_t T, int64_t D, PoolMode mode, int64_t first, int nt) {
  if (mode == PoolMode::kRow) {
    for (int64_t b = 0; b < nb; ++b)
      std::memcpy(out + b * D, x + (b * T + first) * D, static_cast<size_t>(D) * sizeof(float));
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t bj = 0; bj < nb * D; ++bj) {
    const int64_t b = bj / D, j = bj % D;
    double s = 0.0;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t t = first; t < T; ++t) {
      const float v = x[(b * T + t) * D + j];
      s += v;
      mx = std::max(mx, v);
    }
    const float mean = static_cast<float>(s / static_cast<double>(T - first));
    out[bj] = mode == PoolMode::kMean ? mean : mode == PoolMode::kMax ? mx : 0.5f * (mean + mx);
  }
}

void mean2(const float* a, const float* b, float* y, int64_t n, int nt) {
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = (a[i] + b[i]) * 0.5f;
}

void add(const float* a, const float* b, float* y, int64_t n, int nt) {
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void activation(const float* x, float* y, int64_t n, int nt, Activation a) {
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = act::apply(a, x[i]);
}

void glu(const float* x, float* y, int64_t rows, int64_t I, int nt, Activation a) {
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* gate = x + r * 2 * I;
    const float* value = gate + I;
    for (int64_t j = 0; j < I; ++j) y[r * I + j] = act::apply(a, gate[j]) * value[j];
  }
}

void scale_cols(const float* x, const float* gamma, float* y, int64_t rows, int64_t D, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < D; ++j) y[r * D + j] = x[r * D + j] * gamma[j];
}

}  // namespace vit::ref
