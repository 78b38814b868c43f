// vit-infer: the gated MLP's middle (Op::kGlu, SwiGLU): act(gate) * value.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/activation.h"
#include "core/tensor.h"

namespace vit {

// The gated MLP's middle (SwiGLU): y[r, c] = act(x[r, c]) * x[r, cols + c], x [rows, 2 * cols]
// (the gate half first), y [rows, cols], both contiguous; act in fp32, y in the storage type.
struct GluParams {
  DType dtype = DType::F32;
  const void* x = nullptr;  // [rows, 2 * cols]
  void* y = nullptr;        // [rows, cols]; must not overlap x
  int64_t rows = 0, cols = 0;
  Activation act = Activation::kSilu;
};
void launch_glu(const GluParams& p, cudaStream_t stream);

}  // namespace vit
