// vit-infer: the CUDA engine's attention-map outputs (see attention_maps.h).
#include "gpu/attention_maps.h"

#include "attention.cuh"
#include "cuda_check.h"

namespace vit::gpu {

const float* AttentionMaps::probs(const CudaRunCtx& c, const graph::Node& attn, int nb, cudaStream_t s) {
  const AttentionParams lay = c.attention_layout(attn);
  const int64_t n = int64_t{nb} * lay.H * lay.T * lay.T;
  if (probs_.bytes < n * 4) probs_.alloc(n * 4, "attention probabilities");
  AttentionProbsParams ap;
  ap.dtype = lay.dtype;
  ap.q = lay.q;
  ap.k = lay.k;
  ap.stride_b = lay.stride_b;
  ap.stride_h = lay.stride_h;
  ap.stride_t = lay.stride_t;
  ap.probs = static_cast<float*>(probs_.p);
  ap.B = nb;
  ap.H = lay.H;
  ap.T = lay.T;
  ap.head_dim = lay.head_dim;
  ap.query_rows = lay.T;
  ap.scale = lay.scale;
  launch_attention_probs(ap, s);
  return static_cast<const float*>(probs_.p);
}

void AttentionMaps::forward_with_layers(const CudaRunCtx& c, const std::vector<graph::Node>& nodes,
                                        const std::vector<const CudaOpRow*>& rows, int nb, float* dst,
                                        int64_t layer_stride, cudaStream_t s) {
  int depth = 0;
  int64_t T = 0;
  for (const graph::Node& n : nodes) {
    if (n.op != graph::Op::kAttention) continue;
    ++depth;
    T = c.L.t(n.in[0]).rows();
  }
  const int64_t per_layer = int64_t{nb} * T * T;
  if (layers_.bytes < depth * per_layer * 4) layers_.alloc(depth * per_layer * 4, "per-block attention maps");
  int layer = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    rows[i]->run(c, nodes[i], i, s);
    if (nodes[i].op != graph::Op::kAttention) continue;
    const AttentionParams lay = c.attention_layout(nodes[i]);
    AttentionHeadMeanParams hm;
    hm.probs = probs(c, nodes[i], nb, s);
    hm.out = static_cast<float*>(layers_.p) + layer * per_layer;
    hm.out_stride_b = T * T;
    hm.B = nb;
    hm.H = lay.H;
    hm.R = lay.T;
    hm.T = lay.T;
    launch_attention_head_mean(hm, s);
    ++layer;
  }
  for (int l = 0; l < layer; ++l) {
    VIT_CUDA_CHECK(cudaMemcpyAsync(dst + l * layer_stride, static_cast<const float*>(layers_.p) + l * per_layer,
                                   static_cast<size_t>(per_layer) * sizeof(float), cudaMemcpyDeviceToHost, s));
  }
}

}  // namespace vit::gpu
