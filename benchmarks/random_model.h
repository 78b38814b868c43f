// vit-infer benchmarks: a random-weight ViT built in memory for any ViTConfig, so that
// vit-bench can time an architecture (e.g. vit_base_patch16_224) without a checkpoint.
// Weights follow src/model/model.h (Linear [out, in], pos [T, D], cls [D]); every tensor is
// random and non-zero (LayerNorm weights around 1, biases small), so no kernel sees zeros.
#pragma once

#include <cstdint>
#include <memory>

#include "model/model.h"

namespace vit::bench {

// Linear / patch weights U(-a, a) with a = sqrt(3 / fan_in) (unit-variance activations),
// biases U(-0.1, 0.1), cls / pos U(-0.5, 0.5), LayerNorm weight U(0.8, 1.2), bias U(-0.1, 0.1).
std::shared_ptr<Model> random_vit(const ViTConfig& cfg, uint64_t seed);

}  // namespace vit::bench
