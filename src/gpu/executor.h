// vit-infer: the CUDA executor behind make_cuda_engine. A forward graph of ops is built from the
// ViTConfig (patchify, GEMMs, LayerNorms, attention, pooling, head), its intermediate tensors
// are packed into one device arena planned for max_batch (arena.h), weights are uploaded once
// in the run precision, and each batch bucket (powers of two up to max_batch) is recorded once
// into a CUDA graph and replayed. Exposed for tests and tools (arena size, chosen GEMMs).
#pragma once

#include <string>
#include <vector>

#include "gpu/cuda_engine.h"

namespace vit::gpu {

class CudaEngine : public Engine {
 public:
  // Device bytes of the activation arena (planned for max_batch) and of the weights.
  virtual int64_t arena_bytes() const = 0;
  virtual int64_t weight_bytes() const = 0;
  // Multi-line description: nodes, arena plan, the GEMM implementation chosen per bucket.
  virtual std::string report() const = 0;
  // Bucket batch sizes (ascending) and whether each one currently replays a CUDA graph.
  virtual std::vector<int> buckets() const = 0;
  virtual bool bucket_uses_graph(int bucket) const = 0;
};

}  // namespace vit::gpu
