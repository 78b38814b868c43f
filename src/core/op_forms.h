// vit-infer: the small enums that name an op's variant, shared by every backend (the CPU
// reference ops, the CUDA kernels, the emulator) so that one value means one thing everywhere.
// A leaf header: the kernels include it (kernels/ include leaf headers only).
#pragma once

#include <cstdint>

namespace vit {

// Which MLP activation: the exact erf GELU (timm / HF default), the tanh approximation (torch
// approximate='tanh', SigLIP), quick-GELU x * sigmoid(1.702 x) (OpenAI CLIP), or SiLU
// x * sigmoid(x) (the gate of DINOv2 giant's SwiGLU MLP).
enum class ActForm : uint8_t { kErf, kTanh, kQuick, kSilu };

// Token pooling x [T, D] -> [D]: row `first` alone (kRow: the cls / dist token), or over rows
// first..T-1 the mean, the max, or (mean + max) / 2 (timm 'avgmax').
enum class PoolMode : uint8_t { kRow, kMean, kMax, kAvgMax };

}  // namespace vit
