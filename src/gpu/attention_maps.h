// vit-infer: the CUDA engine's attention-map outputs, apart from its executor. The last block's
// softmax probabilities are recomputed on request from the Q / K the arena still holds (the
// graph keeps that block's QKV alive to the end); the per-block head means (attention_layers) take
// an un-graphed pass that computes each block's probabilities right after its attention node,
// while that block's Q / K are alive. Device buffers: probs [nb, H, T, T] fp32, layers
// [depth, nb, T, T] fp32, grown on first use.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "gpu/cuda_ops.h"
#include "gpu/cuda_raii.h"

namespace vit::gpu {

class AttentionMaps {
 public:
  // The probabilities of attention node `attn` (its Q / K in the arena c reads) for the first nb
  // images of the bucket, enqueued on s: [nb, H, T, T] fp32 on the device, valid until the next call.
  const float* probs(const CudaRunCtx& c, const graph::Node& attn, int nb, cudaStream_t s);
  // Runs every node (rows[i] on nodes[i]) without a graph and, after each attention node, its
  // head-mean map; then copies layer l of this chunk to dst + l * layer_stride (host fp32,
  // [nb, T, T] each). Enqueued on s; the caller synchronises.
  void forward_with_layers(const CudaRunCtx& c, const std::vector<graph::Node>& nodes,
                           const std::vector<const CudaOpRow*>& rows, int nb, float* dst, int64_t layer_stride,
                           cudaStream_t s);

 private:
  DeviceBuffer probs_;   // [nb, H, T, T] fp32
  DeviceBuffer layers_;  // [depth, nb, T, T] fp32
};

}  // namespace vit::gpu
