// vit-infer: the activation op (Op::kAct, core/activation.h) applied in place: the unfused graph's
// act node, or after a cuBLASLt bias epilogue (lt_gemm.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/activation.h"
#include "core/tensor.h"

namespace vit {

struct ActivationParams {
  DType dtype = DType::F32;
  void* x = nullptr;  // [rows, cols], rows ld apart; the activation applied in place
  int64_t rows = 0, cols = 0, ld = 0;
  Activation act = Activation::kGeluErf;
};
void launch_activation(const ActivationParams& p, cudaStream_t stream);

}  // namespace vit
