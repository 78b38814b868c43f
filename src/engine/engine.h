// vit-infer: the engine interface every backend (CPU reference, CUDA) implements; a leaf the
// backends depend on (src/cpu and src/gpu both derive from it, neither depends on the other).
// Inputs and outputs are host fp32 buffers; a GPU engine copies them itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "model/model.h"

namespace vit {

// A caller-owned interleaved RGB8 image, [h, w, 3] uint8 row-major (no padding between
// rows); borrowed for the duration of a call. Input of Engine::run_images.
struct ImageView {
  const uint8_t* rgb = nullptr;
  int w = 0, h = 0;
};

struct RunOutputs {
  float* logits = nullptr;      // [B, C]            (C = num_classes; skipped if null)
  float* embeddings = nullptr;  // [B, D]            pooled features fed to the head
  float* features = nullptr;    // [B, T, D]         final tokens after the final norm (forward_features)
  float* attention = nullptr;   // [B, heads, T, T]  last block's softmax probabilities
  // [depth, B, T, T] head-mean probabilities of every block (layer-major so that one
  // layer's maps for the whole batch are contiguous); attention maps / rollout read it.
  float* attention_layers = nullptr;
};

// Every image non-empty with pixels, checked before any work so that a bad one fails the call
// cheaply: vit::Error(kInvalidArgument) "<who>: image i is empty (w x h[, pixels NULL])".
void check_images(const ImageView* images, int n, const char* who);

class Engine {
 public:
  virtual ~Engine() = default;
  // images: [B, C, H, W] fp32, already normalised, at cfg.image_h x cfg.image_w.
  // `cancel` (may be null) is polled between layers; when set the run throws kCancelled.
  virtual void run(const float* images, int batch, const RunOutputs& out,
                   const std::atomic<bool>* cancel = nullptr) = 0;
  // The same at run size h x w pixels: the model's own, or another that
  // ViTConfig::check_run_size accepts (multiples of the patch; the caller bounds the size). The
  // position table is resampled as the model's framework does per forward; each size's graph is
  // built at its first run and cached (a bounded number of sizes: the least recently used one is
  // dropped). T in the outputs' shapes is the size's token count, prefix + (h / P) * (w / P).
  virtual void run_at(const float* images, int batch, int h, int w, const RunOutputs& out,
                      const std::atomic<bool>* cancel = nullptr) = 0;
  // Raw RGB8 images in, same outputs as run(): each image is resized / cropped / normalised
  // per `pp` (image/preprocess.h, bit-exact Pillow + timm/HF sizing) into slot i of a
  // [n, 3, pp.input_h, pp.input_w] batch, which then runs at that size (run_at). The model must
  // take 3 channels, 1 <= n <= the engine's max batch.
  // Default (src/engine/engine.cpp): preprocess on the host, in parallel over the images, then
  // run(). A GPU engine overrides it to preprocess on the device (GpuPreprocessor).
  // Throws vit::Error naming image i for a bad image (0-sized, null pixels).
  virtual void run_images(const ImageView* images, int n, const PreprocessConfig& pp, const RunOutputs& out,
                          const std::atomic<bool>* cancel = nullptr);
  virtual const char* name() const noexcept = 0;
};

}  // namespace vit
