// vit-infer: the reference ops (reference_ops.cpp): the fp32 math of the CPU reference engine,
// written once and used by it, by the fast CPU engine where speed does not matter, and by the
// tests as the oracle of every fast kernel. Activations are row-major fp32, batch-major: tokens
// [B, T, D] with the cls token at row 0 of each image; weights in torch orientation [N, K].
#pragma once

#include <cmath>
#include <cstdint>

#include "model/model.h"

namespace vit::ref {

// Throws kInvalidArgument unless every weight has the element count the config implies.
void validate_model(const Model& m);

enum class Epilogue { kBias, kBiasGelu };

inline float gelu(float v) {
  constexpr float kInvSqrt2 = 0.70710678118654752440f;
  return 0.5f * v * (1.0f + std::erf(v * kInvSqrt2));  // exact erf form, as timm and HF
}

// y[M, N] = x[M, K] W^T + bias (accumulate: y += ...), then the epilogue; W is [N, K]. Split
// over `nt` OpenMP threads, each one single-threaded OpenBLAS call (hold BlasSingleThreaded).
void linear(const float* x, int64_t M, int64_t K, const Tensor& w, const Tensor& bias, int64_t N, float* y,
            bool accumulate, Epilogue epi, int nt);

// Keeps OpenBLAS single-threaded while alive (our OpenMP team calls it in parallel) and restores
// the caller's setting afterwards. The setting is process-global.
class BlasSingleThreaded {
 public:
  BlasSingleThreaded();
  ~BlasSingleThreaded();
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;

 private:
  int saved_;
};

// x, y: [rows, D] with row strides ldx / ldy; statistics in double; y == x allowed.
void layer_norm(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t D, const Tensor& g,
                const Tensor& b, float eps, int nt);

// Multi-head self-attention core (see reference_ops.cpp for the buffer shapes); probs
// [B, H, T, T] is written when non-null.
void attention(const float* qkv, float* out, float* probs, float* kt, float* scratch, int64_t B, int64_t T,
               int64_t H, int64_t hd, int nt);

// dst[b, i, j] = mean over heads of probs[b, h, i, j]; probs [nb, H, T, T], dst [nb, T, T].
void head_mean(const float* probs, float* dst, int64_t nb, int64_t H, int64_t T, int nt);

// images [nb, C, H, W] -> dst [nb * N, C*P*P] (row-major grid, each patch in (c, py, px) order).
void im2col(const ViTConfig& c, const float* images, int64_t nb, float* dst, int nt);

// x[b, 0] = cls + pos[0]; x[b, 1+n] = patch[b, n] + pos[1+n]; patch [nb, N, D], x [nb, T, D].
void assemble_tokens(const ViTConfig& c, const ViTWeights& w, const float* patch, float* x, int64_t nb, int nt);

// final norm -> pool -> fc_norm -> head (timm order). x [nb, T, D], h [nb, T, D] workspace,
// pooled [nb, D], logits [nb, C] (skipped when null).
void pool_and_head(const ViTConfig& c, const ViTWeights& w, const float* x, float* h, float* pooled, float* logits,
                   int64_t nb, int nt);

}  // namespace vit::ref
