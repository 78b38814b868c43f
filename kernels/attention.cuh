// vit-infer: fused multi-head self-attention O = softmax(Q K^T * scale) V, flash-style (online
// softmax, no T x T matrix in global memory). Q, K, V element (b, h, t, d) lives at
// base + b*stride_b + h*stride_h + t*stride_t + d, which covers both [B, H, T, hd] (the GEMM's
// QKV epilogue) and [B, T, 3, H, hd] (a plain [B*T, 3D] GEMM output). O is [B, T, H*hd]
// (heads concatenated head-major, ready for proj). Storage F32 / F16 / BF16, fp32 softmax;
// optionally a per-key bias log(size) (token merging's proportional attention).
// F16/BF16 with hd in {32, 48, 64, 80, 96, 112, 128} use tensor cores (mma.sync); other hd
// <= 128 and F32 use the SIMT kernel. hd > 128 is rejected (kInvalidArgument).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/tensor.h"

namespace vit {

enum class AttentionKernel { kAuto, kSimt };

struct AttentionParams {
  DType dtype = DType::F32;
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t stride_b = 0, stride_h = 0, stride_t = 0;  // in elements, shared by q, k, v
  void* o = nullptr;  // [B, T, H*hd]
  int B = 0, H = 0, T = 0, head_dim = 0;
  float scale = 0.0f;  // usually head_dim^-0.5
  AttentionKernel kernel = AttentionKernel::kAuto;
  // [B, T] token sizes, or null: proportional attention (ToMe), every key j's logit gains
  // log(size[b, j]) after the scaling (tome.cuh makes the sizes).
  const float* size = nullptr;
};

// Softmax probabilities of the first `query_rows` query rows: probs [B, H, query_rows, T] fp32
// (query_rows = 1: the cls row's attention; = T: the full last-block matrix).
struct AttentionProbsParams {
  DType dtype = DType::F32;
  const void* q = nullptr;
  const void* k = nullptr;
  int64_t stride_b = 0, stride_h = 0, stride_t = 0;
  float* probs = nullptr;
  int B = 0, H = 0, T = 0, head_dim = 0, query_rows = 0;
  float scale = 0.0f;
};

// Head mean of attention probabilities: out[b, r, j] = (1/H) * sum_h probs[b, h, r, j], summed in
// head order (as the CPU engine does). probs [B, H, R, T] fp32 -> out [B, R, T] fp32; out may be
// strided per image (out_stride_b floats between images, >= R * T) so that one layer of a
// [depth, batch, T, T] result is written in place.
struct AttentionHeadMeanParams {
  const float* probs = nullptr;
  float* out = nullptr;
  int64_t out_stride_b = 0;
  int B = 0, H = 0, R = 0, T = 0;
};

// Cross-attention of L query rows over the kv rows first..T-1 (the attention-pool head: its
// latent query over the patch tokens). q [L, D] per image, q_stride_b elements apart (0: one q
// for every image, a weight); kv [B, T, 2D] (k | v, each head-major, as a plain [B*T, 2D] GEMM
// writes it); o [B, L, D]. o = softmax(q_h k_h^T * scale) v_h per head h, scores and softmax in
// fp32 (keys in chunks, rescaled online: any T), any head_dim <= 128.
struct CrossAttentionParams {
  DType dtype = DType::F32;
  const void* q = nullptr;
  int64_t q_stride_b = 0;
  const void* kv = nullptr;
  void* o = nullptr;
  int B = 0, L = 0, T = 0, first = 0, H = 0, head_dim = 0;
  float scale = 0.0f;
};

void launch_attention(const AttentionParams& p, cudaStream_t stream);
void launch_cross_attention(const CrossAttentionParams& p, cudaStream_t stream);
void launch_attention_head_mean(const AttentionHeadMeanParams& p, cudaStream_t stream);
void launch_attention_probs(const AttentionProbsParams& p, cudaStream_t stream);
// True when launch_attention would use the tensor-core kernel.
bool attention_uses_tensor_cores(const AttentionParams& p);

}  // namespace vit
