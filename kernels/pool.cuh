// vit-infer: the head's pool (Op::kPool): tokens [B, T, D] -> pooled [B, D], one row (the cls /
// dist token) or the mean / max / avgmax of the patch rows. The final LayerNorm on pooled rows is
// launch_layernorm (strided cls rows or fc_norm), the classifier launch_gemm.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

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
void launch_pool(const PoolParams& p, cudaStream_t stream);

}  // namespace vit
