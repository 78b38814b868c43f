// vit-infer: elementwise binary ops (Op::kAdd, Op::kScale, Op::kMean2): residual add, LayerScale,
// the mean of DeiT's two heads.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/tensor.h"

namespace vit {

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
void launch_binary(const BinaryParams& p, cudaStream_t stream);

}  // namespace vit
