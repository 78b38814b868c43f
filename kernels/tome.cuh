// vit-infer: token merging (ToMe, Bolya et al., ICLR 2023) on the device: the matching metric
// (the keys averaged over the heads, ToMeAttention's k.mean(1)) and one block's merge
// (bipartite_soft_matching + merge_wavg), the graph's Op::kTomeMerge. The proportional attention
// that goes with it (log size added to every key's logit) is launch_attention's `size`.
// Layouts: metric [B, T, hd] fp32; x [B, T, D] and y [B, T - r, D] in the run precision; sizes
// [B, T] / [B, T - r] fp32 (whole numbers: how many input tokens a token stands for).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/tensor.h"

namespace vit {

// metric[b, t, d] = (1/H) sum_h K(b, h, t, d); K element (b, h, t, d) at
// k + b*stride_b + h*stride_h + t*stride_t + d (attention.cuh's layouts), in `dtype`.
struct TomeKeyMeanParams {
  DType dtype = DType::F32;
  const void* k = nullptr;
  int64_t stride_b = 0, stride_h = 0, stride_t = 0;
  float* metric = nullptr;  // [B, T, hd]
  int B = 0, H = 0, T = 0, head_dim = 0;
};

// One block per image (the reference is cpu/ref_ops.h ref::tome_merge, whose rules this follows
// exactly): cosine similarities in double between A = rows 0, 2, ... and B = rows 1, 3, ..., the
// first `prefix` rows protected; each A row's best B row (lowest index on a tie); the r A rows with
// the best edges (the lower index first on a tie) merged into their partners, y = sum(size x) /
// sum(size) in fp32; output rows: prefix rows, the unmerged A rows (ascending when prefix > 0,
// else by edge), the B rows.
struct TomeMergeParams {
  DType dtype = DType::F32;
  const void* x = nullptr;       // [B, T, D]
  const float* metric = nullptr; // [B, T, hd]
  const float* size = nullptr;   // [B, T], or null: every token of size 1
  void* y = nullptr;             // [B, T - r, D]
  float* size_out = nullptr;     // [B, T - r]
  int B = 0, T = 0, D = 0, head_dim = 0, r = 0, prefix = 0;
};

void launch_tome_key_mean(const TomeKeyMeanParams& p, cudaStream_t stream);
void launch_tome_merge(const TomeMergeParams& p, cudaStream_t stream);

}  // namespace vit
