// vit-infer: patch embedding = patchify (im2col) + GEMM (gemm.cuh) + embed_finish.
// patchify: images [B, C, H, W] fp32 -> cols [B*N, k_pad] in the storage type, N = (H/P)*(W/P)
//   patches in row-major grid order, each flattened (c, py, px) like the OIHW conv weight;
//   columns K = C*P*P .. k_pad-1 are zero (k_pad rounds K up so the tensor-core GEMM applies);
//   optionally fused input normalisation v = (v * scale - mean[c]) / std[c].
// embed_finish: tokens[b, 0] = cls + pos[0]; tokens[b, 1+n] = patches[b*N+n] + bias + pos[1+n]
// (or patches[b*N+n] as is, when the GEMM epilogue added bias and pos: patches_final).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/tensor.h"

namespace vit {

struct PatchifyParams {
  DType dtype = DType::F32;      // storage type of cols
  const float* images = nullptr; // [B, C, H, W] fp32
  void* cols = nullptr;          // [B*N, k_pad]
  int B = 0, C = 0, H = 0, W = 0, P = 0;
  int k_pad = 0;                 // >= C*P*P
  bool normalize = false;        // apply (v * scale - mean[c]) / std[c]
  float scale = 1.0f;
  float mean[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  float std[8] = {1, 1, 1, 1, 1, 1, 1, 1};  // normalize needs C <= 8
};

struct EmbedParams {
  DType dtype = DType::F32;        // storage type of every tensor below
  const void* patches = nullptr;   // [B*N, D] patch GEMM output (no bias), rows D apart
  // The patch GEMM's epilogue already added bias and pos[1+n] (kResidual with residual_period N:
  // one rounding to the storage type instead of two): patch rows are copied as they are, only
  // the cls rows are computed, and bias may be null.
  bool patches_final = false;
  const void* bias = nullptr;      // [D]
  const void* cls = nullptr;       // [D]
  const void* pos = nullptr;       // [N+1, D]
  void* tokens = nullptr;          // [B, N+1, D]
  int B = 0, N = 0, D = 0;
};

void launch_patchify(const PatchifyParams& p, cudaStream_t stream);
void launch_embed_finish(const EmbedParams& p, cudaStream_t stream);

}  // namespace vit
