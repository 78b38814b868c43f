// vit-infer: the classification head's device pieces and small elementwise helpers.
// pool: tokens [B, T, D] -> pooled [B, D] (one row, or the mean / max / avgmax of the patch rows).
// The final LayerNorm on pooled rows is launch_layernorm (strided cls rows or fc_norm), the
// classifier is launch_gemm (softmax and top-k of the logits run on the host).
// to_f32 / activation: conversions and an activation (core/activation.h) applied after a cuBLASLt
// bias epilogue or as the unfused graph's act node; glu: the
// gated MLP's act(gate) * value; binary: add / LayerScale / mean of two (DeiT distilled).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/activation.h"
#include "core/pool.h"
#include "core/tensor.h"

namespace vit {

// PoolMode (core/pool.h): kRow copies row `first` (the cls / dist token); kMean / kMax /
// kAvgMax reduce rows first..T-1 (the patch rows after the prefix tokens), the sum in fp32.
struct PoolParams {
  DType dtype = DType::F32;
  const void* x = nullptr;  // [B, T, D]
  void* out = nullptr;      // [B, D]
  int B = 0, T = 0, D = 0;
  PoolMode mode = PoolMode::kRow;
  int first = 0;            // 0 <= first < T
};

struct ToF32Params {
  DType dtype = DType::F32;
  const void* src = nullptr;  // [n]
  float* dst = nullptr;       // [n]
  int64_t n = 0;
};

struct ActivationParams {
  DType dtype = DType::F32;
  void* x = nullptr;  // [rows, cols], rows ld apart; the activation applied in place
  int64_t rows = 0, cols = 0, ld = 0;
  Activation act = Activation::kGeluErf;
};

// The gated MLP's middle (SwiGLU): y[r, c] = act(x[r, c]) * x[r, cols + c], x [rows, 2 * cols]
// (the gate half first), y [rows, cols], both contiguous; act in fp32, y in the storage type.
struct GluParams {
  DType dtype = DType::F32;
  const void* x = nullptr;  // [rows, 2 * cols]
  void* y = nullptr;        // [rows, cols]; must not overlap x
  int64_t rows = 0, cols = 0;
  Activation act = Activation::kSilu;
};

// Elementwise binary op over [rows, cols] (contiguous): y = a + b, (a + b) / 2, or y = a * b with
// b a [cols] row broadcast over every row (LayerScale). Computed in fp32, stored in the storage
// type. The unfused graph's residual adds, the LayerScale multiply and DeiT's mean of its two
// heads run here.
enum class BinaryOp { kAdd, kMulCols, kMean };  // kMean: y = (a + b) / 2, same shapes
struct BinaryParams {
  DType dtype = DType::F32;
  const void* a = nullptr;  // [rows, cols]
  const void* b = nullptr;  // [rows, cols] (kAdd, kMean) or [cols] (kMulCols)
  void* y = nullptr;        // [rows, cols]; may be a
  int64_t rows = 0, cols = 0;
  BinaryOp op = BinaryOp::kAdd;
};
void launch_pool(const PoolParams& p, cudaStream_t stream);
void launch_binary(const BinaryParams& p, cudaStream_t stream);
void launch_to_f32(const ToF32Params& p, cudaStream_t stream);
void launch_activation(const ActivationParams& p, cudaStream_t stream);
void launch_glu(const GluParams& p, cudaStream_t stream);

}  // namespace vit
