// vit-infer benchmarks: row softmax for the unfused attention baseline (S = QK^T * scale by
// cuBLAS, P = softmax(S) here, O = PV by cuBLAS), i.e. what an eager framework runs.
// x, y: [rows, cols] contiguous, F16 / BF16 / F32 storage, fp32 arithmetic; y may alias x.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/tensor.h"

namespace vit::bench {

void launch_softmax_rows(const void* x, void* y, DType dt, int64_t rows, int cols, cudaStream_t s);

}  // namespace vit::bench
