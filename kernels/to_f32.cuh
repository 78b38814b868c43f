// vit-infer: the graph's cast (Op::kCast): a tensor in the run precision -> fp32 (outputs leave
// the graph in fp32 whatever the run precision).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/tensor.h"

namespace vit {

struct ToF32Params {
  DType dtype = DType::F32;
  const void* src = nullptr;  // [n]
  float* dst = nullptr;       // [n]
  int64_t n = 0;
};
void launch_to_f32(const ToF32Params& p, cudaStream_t stream);

}  // namespace vit
