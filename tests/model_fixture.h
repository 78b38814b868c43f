// vit-infer tests: a fully random in-memory ViT (every tensor random, including LayerNorm
// weights around 1 and non-zero biases), shared by the CPU and GPU engine tests.
// Weights follow src/model/model.h: Linear [out, in], pos [T, D], cls [D].
#pragma once

#include <cstdint>
#include <memory>

#include "model/model.h"

namespace vit::test {

// Builds a Model for `cfg` (any pooling, final_norm / fc_norm flags, num_classes >= 0) from a
// deterministic RNG seeded with `seed`. Value ranges, with s = scale:
//   Linear / patch weights  U(-a, a), a = s * sqrt(3 / fan_in)  (std s / sqrt(fan_in): activations
//                           stay O(1) at any width when s ~ 1)
//   Linear biases           U(-0.2 s, 0.2 s)
//   cls, pos                U(-s, s)
//   LayerNorm weight / bias U(0.8, 1.2) / U(-0.2, 0.2)
// norm.* exist only when cfg.final_norm, fc_norm.* only when cfg.fc_norm, head.* only when
// cfg.num_classes > 0 (matching what the loaders produce).
std::shared_ptr<Model> random_model(const ViTConfig& cfg, uint64_t seed, float scale = 1.0f);

// A small config: image h x w, the given patch / width / heads / depth, mlp = 2 * hidden.
ViTConfig small_config(int image_h, int image_w, int patch, int hidden, int heads, int depth,
                       int num_classes);

}  // namespace vit::test
