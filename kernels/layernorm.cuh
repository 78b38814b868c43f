// vit-infer: LayerNorm over the last dim D of [rows, D] rows, statistics in fp32 (two-pass:
// mean, then the mean of squared deviations) whatever the storage type. Optional fused
// residual add (x_out = x + residual, then y = LN(x_out)) and row strides, so that e.g. only
// the cls rows of tokens [B, T, D] are normalised (rows = B, x_stride = T * D).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/tensor.h"

namespace vit {

struct LayerNormParams {
  DType dtype = DType::F32;      // storage type of every tensor below
  const void* x = nullptr;       // [rows, D], rows x_stride apart
  int64_t x_stride = 0;
  const void* residual = nullptr;  // optional [rows, D], rows x_stride apart
  void* x_out = nullptr;         // with residual: x + residual stored here (rows x_stride apart; may be x)
  void* y = nullptr;             // [rows, D], rows y_stride apart (may be x when no residual)
  int64_t y_stride = 0;
  const void* gamma = nullptr;   // [D]
  const void* beta = nullptr;    // [D]
  int rows = 0, D = 0;
  float eps = 1e-6f;
  bool rms = false;  // RMSNorm (timm RmsNorm): no centring, y = x * rsqrt(mean(x^2) + eps) * gamma + beta
};

void launch_layernorm(const LayerNormParams& p, cudaStream_t stream);

}  // namespace vit
