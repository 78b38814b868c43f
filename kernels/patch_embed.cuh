// vit-infer: patch embedding = patchify (im2col) + GEMM (gemm.cuh) + embed_finish.
// patchify: images [B, C, H, W] fp32 -> cols [B*N, k_pad] in the storage type, N = (H/P)*(W/P)
//   (floor: an H or W that is not a multiple of P leaves its last H % P rows / W % P columns unread)
//   patches in row-major grid order, each flattened (c, py, px) like the OIHW conv weight;
//   columns K = C*P*P .. k_pad-1 are zero (k_pad rounds K up so the tensor-core GEMM applies);
//   optionally fused input normalisation v = (v * scale - mean[c]) / std[c].
// embed_finish: the P prefix rows (cls, dist, register tokens) then the N patch rows:
// tokens[b, p] = prefix[p] (+ pos[p] unless !pos_prefix, timm no_embed_class);
// tokens[b, P+n] = patches[b*N+n] (+ bias) + pos[P+n] (pos[n] for no_embed_class tables), or
// patches[b*N+n] as is, when the GEMM epilogue added bias and pos (patches_final).
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
  const void* bias = nullptr;      // [D], or null (no patch bias: CLIP towers)
  const void* prefix = nullptr;    // [P, D], null when P == 0 (no class token)
  int P = 1;                       // prefix rows
  bool pos_prefix = true;          // pos has the prefix rows: [P+N, D]; else [N, D]
  const void* pos = nullptr;
  void* tokens = nullptr;          // [B, P+N, D]
  int B = 0, N = 0, D = 0;
};

void launch_patchify(const PatchifyParams& p, cudaStream_t stream);
void launch_embed_finish(const EmbedParams& p, cudaStream_t stream);

}  // namespace vit
