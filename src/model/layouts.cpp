// vit-infer (internal): the table of checkpoint layouts (layout.h), in detection order, and what
// the rows share: the name index and the HF processors' defaults.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/layout.h"

namespace vit::detail {

// Specific layouts before the general ones: SigLIP's and AIMv2's HF names also carry the HF
// prefix markers, and the HF ViT row takes whatever HF layout the other HF rows do not claim.
const std::vector<const LayoutRow*>& layouts() {
  static const std::vector<const LayoutRow*> kLayouts = {
      &kHFSiglipLayout, &kHFAimv2Layout, &kTimmLayout,  &kJaxLayout,
      &kHFClipLayout,   &kHFDinov2Layout, &kHFDeiTLayout, &kHFViTLayout,
  };
  return kLayouts;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

void unsupported_variant(const std::string& file, const std::string& what, const std::string& tensor) {
  fail(ErrorCode::kUnsupported, file + ": " + what + " is not supported by vit-infer (tensor '" + tensor + "')");
}

// HF base-model prefixes: ViTForImageClassification "vit.", DeiT* "deit.", Dinov2For* "dinov2." /
// "dinov2_with_registers.", CLIPVisionModel(WithProjection) "vision_model."; bare models none.
constexpr const char* kHFPrefixes[] = {"vit.", "deit.", "dinov2.", "dinov2_with_registers.", "vision_model.", ""};

NameIndex::NameIndex(std::vector<std::string> names) : names_(std::move(names)), set_(names_.begin(), names_.end()) {
  for (const std::string& n : names_) {
    if (n == "patch_embed.proj.weight" || starts_with(n, "blocks.") || n == "cls_token" || n == "pos_embed") timm_ = true;
    for (const char* pc : kHFPrefixes) {
      const std::string p = pc;
      if (starts_with(n, p + "embeddings.") || starts_with(n, p + "encoder.layer.") || starts_with(n, p + "encoder.layers.")) {
        hf_prefixes_.insert(p);
        break;
      }
    }
    if (n == "embedding/kernel" || starts_with(n, "Transformer/")) jax_ = true;
  }
}

bool NameIndex::any_with(const std::string& prefix) const {
  auto it = set_.lower_bound(prefix);
  return it != set_.end() && starts_with(*it, prefix);
}

const std::string* NameIndex::hf_only_prefix() const {
  return forms() == 1 && hf_prefixes_.size() == 1 ? &*hf_prefixes_.begin() : nullptr;
}

LayoutNames clip_encoder_names(const std::string& p) {
  LayoutNames n;
  n.flat_tokens = true;
  n.pos = p + "embeddings.position_embedding.weight";
  n.block_prefix = p + "encoder.layers.";
  BlockNames& b = n.block;
  b.ln1 = torch_module("layer_norm1");
  b.ln2 = torch_module("layer_norm2");
  b.q = torch_module("self_attn.q_proj");
  b.k = torch_module("self_attn.k_proj");
  b.v = torch_module("self_attn.v_proj");
  b.proj = torch_module("self_attn.out_proj");
  b.fc1 = torch_module("mlp.fc1");
  b.fc2 = torch_module("mlp.fc2");
  return n;
}

PreprocessConfig hf_shortest_edge_crop(int h, int w, int edge_at_224, const std::array<float, 3>& mean,
                                       const std::array<float, 3>& std) {
  PreprocessConfig pp = hf_default_preprocess(h, w);
  // Sizes scale with the crop (set to the run size by the caller).
  pp.resize = PreprocessConfig::Resize::kShortestEdgeCrop;
  pp.shortest_edge = static_cast<int>(std::lround(edge_at_224 * (pp.input_h / 224.0)));
  pp.interpolation = "bicubic";
  pp.mean = mean;
  pp.std = std;
  return pp;
}

}  // namespace vit::detail
