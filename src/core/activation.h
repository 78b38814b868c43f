// vit-infer: the one table of activations {enum, name, title, the names configs spell them with},
// like core/precision.h. Config parsing (timm act_layer, HF hidden_act, open_clip), the graph's
// `act` op and GEMM epilogues, every backend (the reference, the fast CPU rows and oneDNN post-ops,
// the CUDA kernels and the emulator), the op tests and `vit-infer info` read it; the formulas are
// core/activation_math.h, one for host and device. Adding an activation: its row here and its
// formula there (docs/ARCHITECTURE.md, "Adding an activation"). A leaf header: kernels include it.
#pragma once

#include <cstdint>
#include <cstring>

namespace vit {

// GELU exact erf (timm / HF default), GELU tanh approximation (torch approximate='tanh', SigLIP),
// quick-GELU x * sigmoid(1.702 x) (OpenAI CLIP), SiLU x * sigmoid(x) (the gate of a SwiGLU MLP).
enum class Activation : uint8_t { kGeluErf, kGeluTanh, kQuickGelu, kSilu };

struct ActivationInfo {
  Activation act;
  const char* name;   // timm's act_layer name: op-case names, reports
  const char* title;  // `vit-infer info`
  // The spellings accepted in a timm config (act_layer) and an HF one (hidden_act, ACT2FN names);
  // null-terminated. The HF forms that compute something else ("gelu_fast") are not listed.
  const char* timm_names[4];
  const char* hf_names[4];
};

inline constexpr ActivationInfo kActivations[] = {
    {Activation::kGeluErf, "gelu", "GELU (erf)", {"gelu"}, {"gelu", "gelu_python"}},
    {Activation::kGeluTanh, "gelu_tanh", "GELU (tanh)", {"gelu_tanh"}, {"gelu_pytorch_tanh", "gelu_new"}},
    {Activation::kQuickGelu, "quick_gelu", "quick-GELU", {"quick_gelu"}, {"quick_gelu"}},
    {Activation::kSilu, "silu", "SiLU", {"silu", "swish", "SiLU"}, {"silu", "swish"}},  // nn.SiLU as a class
};
inline constexpr int kActivationCount = static_cast<int>(sizeof kActivations / sizeof kActivations[0]);
static_assert(static_cast<int>(Activation::kSilu) + 1 == kActivationCount, "a row per Activation, in enum order");

inline const ActivationInfo& activation_info(Activation a) { return kActivations[static_cast<int>(a)]; }
inline const char* activation_name(Activation a) { return activation_info(a).name; }
inline const char* activation_title(Activation a) { return activation_info(a).title; }

// The row a timm act_layer / an HF hidden_act spells, or null.
inline const ActivationInfo* find_activation(const char* spelling, bool hf) {
  for (const ActivationInfo& i : kActivations)
    for (const char* const* n = hf ? i.hf_names : i.timm_names; *n; ++n)
      if (std::strcmp(*n, spelling) == 0) return &i;
  return nullptr;
}

}  // namespace vit
