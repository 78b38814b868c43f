// vit-infer: the engine interface every backend (CPU reference, CUDA) implements.
// Inputs and outputs are host fp32 buffers; a GPU engine copies them itself.
#pragma once

#include <atomic>
#include <memory>

#include "model/model.h"

namespace vit {

struct RunOutputs {
  float* logits = nullptr;      // [B, C]            (C = num_classes; skipped if null)
  float* embeddings = nullptr;  // [B, D]            pooled features fed to the head
  float* attention = nullptr;   // [B, heads, T, T]  last block's softmax probabilities
};

class Engine {
 public:
  virtual ~Engine() = default;
  // images: [B, C, H, W] fp32, already normalised, at cfg.image_h x cfg.image_w.
  // `cancel` (may be null) is polled between layers; when set the run throws kCancelled.
  virtual void run(const float* images, int batch, const RunOutputs& out,
                   const std::atomic<bool>* cancel = nullptr) = 0;
  virtual const char* name() const noexcept = 0;
};

// The fp32 CPU reference. threads <= 0: all hardware threads.
std::unique_ptr<Engine> make_cpu_engine(std::shared_ptr<const Model> model, int threads = 0);

}  // namespace vit
