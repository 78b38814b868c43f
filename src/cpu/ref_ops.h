// vit-infer: the fp32 CPU reference ops: THE math every backend and every op test is checked
// against (tests/test_ops.cpp), and the kernels of the CPU backend (cpu_engine.cpp). All
// buffers are row-major fp32; `nt` is the OpenMP team size. Linear layers are split into
// single-threaded OpenBLAS calls (the caller holds OpenBLAS at 1 thread: BlasSingleThreaded)
// so that one thread pool does all the work; LayerNorm, the activations and attention are plain loops.
#pragma once

#include <cstdint>
#include <optional>

#include "core/activation.h"
#include "core/pool.h"

namespace vit::ref {

// y[M, N] = x[M, K] W[N, K]^T + bias[N] (accumulate: y += ...), then the activation `act` if
// there is one (core/activation_math.h). bias may be null.
void linear(const float* x, int64_t M, int64_t K, const float* w, const float* bias, int64_t N, float* y,
            bool accumulate, int nt, std::optional<Activation> act = std::nullopt);

// One LayerNorm per row of x [rows, D] (row strides ldx / ldy; y may be x), statistics in double
// (two passes) so that large-mean rows and HF's eps 1e-12 lose nothing. rms: RMSNorm (timm
// RmsNorm: x * rsqrt(mean(x^2) + eps) * g, + b: zeros for RmsNorm's absent bias).
void layer_norm(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t D, const float* g,
                const float* b, float eps, int nt, bool rms = false);

// Multi-head self-attention core.
//   qkv:     [B, T, 3D]    per token q | k | v, each head-major (head h = columns h*hd .. +hd-1)
//   out:     [B, T, D]     softmax(q k^T * hd^-0.5 + log size) v, heads concatenated head-major
//   probs:   [B, H, T, T]  softmax probabilities, or null (then the scratch row holds them)
//   kt:      [B, H, hd, T] workspace: K transposed, so the score loop runs over contiguous keys
//   scratch: [nt, T]       one probability row per thread
//   size:    [B, T]        token sizes (ToMe's proportional attention: key j's logit + log size[j]),
//                          or null (no bias)
void attention(const float* qkv, float* out, float* probs, float* kt, float* scratch, int64_t B, int64_t T,
               int64_t H, int64_t hd, int nt, const float* size = nullptr);

// ToMe's matching metric: metric[b, t, d] = mean over heads of k[b, t, h*hd + d] (qkv as attention's).
void key_mean(const float* qkv, float* metric, int64_t B, int64_t T, int64_t H, int64_t hd, int nt);

// Token merging (ToMe: bipartite_soft_matching + merge_wavg, graph Op::kTomeMerge), per image:
//   x [B, T, D], metric [B, T, hd], size [B, T] (null: all ones) -> y [B, T - r, D], size_out [B, T - r].
// A = rows 0, 2, 4, ..., B = rows 1, 3, ...; cosine similarity of the metric rows (in double; a
// zero row has similarity 0 to everything); the first `prefix` rows are never merged (their A rows
// have no edge, their B rows take none); each A row's edge is its most similar B row (the lowest
// B index on a tie), the r A rows with the most similar edges (descending, the lower index first
// on a tie) are summed into their partners weighted by size, y = sum(size x) / sum(size). Rows of
// y: the prefix rows in order, the unmerged A rows (ascending if prefix > 0, else in edge order),
// then every B row in order. Requires 0 < r <= (T - prefix) / 2.
void tome_merge(const float* x, const float* metric, const float* size, float* y, float* size_out, int64_t B,
                int64_t T, int64_t D, int64_t hd, int64_t r, int64_t prefix, int nt);

// Cross-attention (the attention-pool head): per image b, head h, query row l,
//   out[b, l, h] = softmax_j(q[l, h] . k[b, j, h] * hd^-0.5) v[b, j, h]   over kv rows j = first..T-1
//   q:   [B, L, D] per image (q_batch_stride = L*D), or [L, D] shared by every image (stride 0)
//   kv:  [B, T, 2D] per token k | v, each head-major
//   out: [B, L, D]  heads concatenated head-major
// Dot products, softmax and the weighted sum in double (exact to fp32 rounding): L is 1 for the
// map head, so this costs about one row of the self-attention.
void cross_attention(const float* q, int64_t q_batch_stride, const float* kv, float* out, int64_t B, int64_t L,
                     int64_t T, int64_t first, int64_t H, int64_t hd, int nt);

// dst[b, i, j] = mean over heads of probs[b, h, i, j]; probs [nb, H, T, T], dst [nb, T, T].
void head_mean(const float* probs, float* dst, int64_t nb, int64_t H, int64_t T, int nt);

// images [nb, C, H, W] -> cols [nb * (H/P) * (W/P), C*P*P]: row-major grid, each patch
// flattened (c, py, px), i.e. the OIHW order of the conv weight.
void im2col(const float* images, float* cols, int64_t nb, int64_t C, int64_t H, int64_t W, int64_t P, int nt);

// tokens [nb, P+N, D]: row p < P = prefix[p] (+ pos[p] if pos_prefix); row P+n = patches[n]
// (+ bias + pos[P+n], or pos[n] without pos_prefix, unless final; bias may be null; prefix may
// be null when P == 0).
void embed(const float* patches, const float* prefix, int64_t P, const float* pos, bool pos_prefix, const float* bias,
           float* tokens, int64_t nb, int64_t N, int64_t D, bool patches_final, int nt);

// x [nb, T, D] -> out [nb, D]: row `first` alone (kRow), or over rows first..T-1 the mean
// (summed in double), the max, or (mean + max) / 2 (timm 'avgmax').
void pool(const float* x, float* out, int64_t nb, int64_t T, int64_t D, PoolMode mode, int64_t first, int nt);

// y = (a + b) / 2 over n values (DeiT distilled: the mean of its two heads).
void mean2(const float* a, const float* b, float* y, int64_t n, int nt);

// Elementwise over n values / [rows, D] rows.
void add(const float* a, const float* b, float* y, int64_t n, int nt);
void activation(const float* x, float* y, int64_t n, int nt, Activation act);
// Gated MLP: x [rows, 2I] -> y [rows, I], y = act(x[:, :I]) * x[:, I:] (the gate half first, as
// timm SwiGLUPacked and HF DINOv2's SwiGLU FFN); y must not alias x.
void glu(const float* x, float* y, int64_t rows, int64_t I, int nt, Activation act);
void scale_cols(const float* x, const float* gamma, float* y, int64_t rows, int64_t D, int nt);

// Keeps OpenBLAS single-threaded for the scope (the OpenMP team calls it in parallel) and
// restores the caller's setting afterwards. The setting is process-global.
class BlasSingleThreaded {
 public:
  BlasSingleThreaded();
  ~BlasSingleThreaded();
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;

 private:
  int saved_;
};

}  // namespace vit::ref
