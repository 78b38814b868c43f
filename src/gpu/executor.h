// vit-infer: the CUDA executor behind make_cuda_engine. A forward graph of ops is built from the
// ViTConfig (patchify, GEMMs, LayerNorms, attention, pooling, head), its intermediate tensors
// are packed into one device arena (arena.h, planned per batch bucket: powers of two up to
// max_batch) that grows lazily to the largest bucket run, weights are uploaded once in the run
// precision, and each bucket is recorded once into a CUDA graph and replayed (re-recorded when
// the arena moves). Exposed for tests and tools (arena size, chosen GEMMs).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "gpu/cuda_types.h"

namespace vit::gpu {

class CudaEngine : public Engine {
 public:
  // Device bytes of the activation arena allocated now (0 before the first run; it grows to the
  // largest bucket run) and of the weights.
  virtual int64_t arena_bytes() const = 0;
  // Planned arena bytes of the bucket that serves `batch` (1..max_batch); no allocation.
  virtual int64_t arena_bytes_for(int batch) const = 0;
  virtual int64_t weight_bytes() const = 0;
  // Multi-line description: nodes, arena plan, the GEMM implementation chosen per bucket.
  virtual std::string report() const = 0;
  // Bucket batch sizes (ascending) and whether each one currently replays a CUDA graph.
  virtual std::vector<int> buckets() const = 0;
  virtual bool bucket_uses_graph(int bucket) const = 0;
  // Per GEMM node of the bucket, in graph order: (node name, "cublaslt" | "wgmma" | "mma_sync").
  // Empty until the bucket's first run chose them. The choice (GemmChoice) only ever selects an
  // implementation whose result agreed with the reference (cuBLASLt, else mma.sync) on a random
  // input of the node's shape, except under a forced --gemm custom, where it warns.
  virtual std::vector<std::pair<std::string, std::string>> gemm_choices(int bucket) const = 0;
  virtual GemmPickStats gemm_pick_stats() const = 0;

  // Device-resident run: d_images [batch, C, H, W] fp32 on the engine's device, d_logits
  // [batch, classes] fp32 on the device ([batch, D] pooled embeddings when num_classes == 0; may
  // be null). 1 <= batch <= max_batch. Enqueued on the engine's stream (CudaEngineOptions::stream):
  // a device-to-device copy of the images into the arena, the bucket's graph (or plain launches),
  // a device-to-device copy of the outputs. No host copies, no synchronisation: the caller orders
  // its own work after it on that stream. Neither buffer may be touched until then. The first
  // run of a bucket may grow the arena (synchronising the stream first; kOutOfMemory when it
  // does not fit) and capture the bucket's graph.
  virtual void run_device(const float* d_images, int batch, float* d_logits) = 0;
  // Runs the nodes of the bucket serving `batch` without the graph, `reps` times (after one
  // warm-up pass), with an event pair around each node, on whatever the arena holds (timings
  // only; outputs are not defined). Returns the mean ms per node in graph order. Synchronises.
  virtual std::vector<NodeTiming> profile_nodes(int batch, int reps) = 0;
};

// make_cuda_engine (cuda_engine.h) with test hooks.
std::unique_ptr<Engine> make_cuda_engine(std::shared_ptr<const Model> model, const CudaEngineOptions& opt,
                                         const CudaTestHooks& hooks);

}  // namespace vit::gpu
