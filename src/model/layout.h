// vit-infer (internal): checkpoint layouts as rows. A layout is one LayoutRow (layout_*.cpp): how
// to tell it from the tensor names (detect), its tensor names for every piece of the internal
// model (names: LayoutNames), the variants it refuses by name (reject), the features its tensors
// and config imply (resolve), and its family's defaults (eps, activation, preprocessing). The
// loader runs the same resolve steps for every row (resolve.h); the expected tensors and shapes
// and the mapping onto the timm-oriented ViTWeights follow from the names (layout_tensors.cpp),
// so a row holds no code of its own for them. kLayouts (layouts.cpp) is the table, in detection
// order. How to add one: docs/ARCHITECTURE.md, "Adding a checkpoint layout".
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/config_sources.h"

namespace vit::detail {

class TensorSource;  // model/tensor_source.h

// The tensor names of a checkpoint (sorted), with the lookups detection needs, and the markers of
// the three base name forms: timm's (patch_embed.proj.weight, blocks.*, cls_token, pos_embed),
// an HF base-model prefix ("vit.", "deit.", "dinov2.", "dinov2_with_registers.", "vision_model.",
// or none) before embeddings.* / encoder.layer(s).*, and JAX's (embedding/kernel, Transformer/*).
class NameIndex {
 public:
  explicit NameIndex(std::vector<std::string> names);
  const std::vector<std::string>& names() const { return names_; }
  bool has(const std::string& n) const { return set_.count(n) != 0; }
  bool any_with(const std::string& prefix) const;  // a name starting with prefix
  bool timm_marked() const { return timm_; }
  bool jax_marked() const { return jax_; }
  const std::set<std::string>& hf_prefixes() const { return hf_prefixes_; }
  // The one HF base-model prefix when the names are in HF's form alone (no timm or JAX marker, a
  // single prefix), else null: what the HF family rows detect on.
  const std::string* hf_only_prefix() const;
  // Markers of none / more than one form: the detection error says which.
  int forms() const { return int{timm_} + int{!hf_prefixes_.empty()} + int{jax_}; }

 private:
  std::vector<std::string> names_;
  std::set<std::string> set_;
  bool timm_ = false, jax_ = false;
  std::set<std::string> hf_prefixes_;
};

// What a row's detect found in one checkpoint, beyond "it is this layout".
struct Match {
  std::string prefix;       // HF: the base model's attribute ("vit.", "vision_model.", ...) or ""
  bool teacher = false;     // HF DeiTForImageClassificationWithTeacher: cls_classifier + distillation_classifier
  bool swiglu = false;      // HF DINOv2 use_swiglu_ffn: mlp.weights_in / weights_out, SiLU whatever hidden_act says
  bool split_glu = false;   // timm SwiGLU (aimv2): the gate and value Linears mlp.fc1_g / mlp.fc1_x
  std::optional<bool> mlp_bias;  // HF Aimv2 mlp_bias; unset: the MLP's biases follow cfg.proj_bias
};

// A module's tensors: its weight and its bias (empty: none).
struct Module {
  std::string w, b;
};
// "<m>.weight" / "<m>.bias", the PyTorch names.
inline Module torch_module(const std::string& m) { return {m + ".weight", m + ".bias"}; }

// How a layout stores Linears and the patch kernel: PyTorch [out, in] and OIHW; JAX (flax) Dense
// kernels [in, out], attention kernels [D, H, hd] / [H, hd, D] with [H, hd] biases, HWIO patches.
enum class Convention { kTorch, kJax };

// One block's tensors, relative to "<block_prefix><i><block_sep>". The QKV is one fused Linear
// (qkv, rows q | k | v) or three (q, k, v); fc1 one Linear (a gated MLP's [2I, D], gate rows
// first, told by the shapes) or the gate and value halves (fc1_gate, fc1_value). ls1 / ls2 are
// LayerScale tensors (no .weight suffix).
struct BlockNames {
  Module ln1, ln2, qkv, q, k, v, proj, fc1, fc1_gate, fc1_value, fc2;
  std::string ls1, ls2;
};

// The attention-pool head (global_pool 'map'): its latent query [1, L, D], then either q [D, D] +
// kv [2D, D] (timm AttentionPoolLatent), in_proj [3D, D] rows q | k | v (HF nn.MultiheadAttention:
// always with its bias), or k + v [D, D] with no q at all (HF Aimv2: the latent is the query as it
// is); proj; norm and the MLP (fc1, fc2) where the head has them.
struct AttnPoolNames {
  std::string latent;
  Module q, kv, in_proj, k, v, proj, norm, fc1, fc2;
};

// Every tensor name of a layout (empty: the layout has no such piece). cls / dist / reg / pos are
// stored [1, n, D] (timm, HF, JAX), or with flat_tokens cls [D] and pos [rows, D] (nn.Embedding:
// HF CLIP / SigLIP / AIMv2).
struct LayoutNames {
  Convention conv = Convention::kTorch;
  bool flat_tokens = false;
  Module patch, patch_norm, norm_pre, norm, fc_norm, head, head_dist;
  std::string cls, dist, reg, pos, proj;  // proj: the bias-free image projection [E, D]
  std::string block_prefix, block_sep = ".";
  BlockNames block;
  AttnPoolNames attn_pool;
  // A tensor whose axis 1 is the head count (JAX's query kernel [D, H, hd]); empty: the shapes do
  // not say.
  std::string heads_tensor;
  // Tensors the layout may carry that play no part in the forward (HF's tanh pooler, mask token, ...).
  std::vector<std::string> ignored;

  // Block i's name of a module (rel from `block`).
  std::string in_block(int i, const std::string& rel) const {
    return block_prefix + std::to_string(i) + block_sep + rel;
  }
};

// What a row's resolve hook is given: the checkpoint, what was detected, the config files' hints.
struct ResolveCtx {
  const TensorSource& src;
  const Match& m;
  const LayoutNames& n;
  const ConfigHints& hints;
  const std::string& file;
  std::vector<std::string>* warnings;
};

// What a row's resolve hook decides beyond ViTConfig fields.
struct RowResolved {
  // The layout fixes no_embed_class itself (HF families); otherwise config.json or the table's
  // row count say.
  bool fixed_no_embed_class = false;
  // HF Dinov2WithRegisters stores the cls row in its table but not the register rows: the loader
  // folds that row into the token (the internal table is then a no_embed_class one).
  bool pos_has_cls_row_only = false;
};

struct LayoutRow {
  const char* name;       // shown in messages and `vit-infer info` ("timm", "hf", "hf-siglip", ...)
  const char* hf_family;  // the HF family ("ViT", "DeiT", ...) for model_type checks; null: none
  // config.json model_type values that name this HF family (HF rows; the ViT row takes the rest).
  std::vector<std::string> model_types;
  // The family name the layout itself implies for `vit-infer info` (ViTConfig::layout_family), or null.
  const char* family;
  bool (*detect)(const NameIndex& names, Match* m);
  LayoutNames (*names)(const Match& m);
  // Refuses, naming the tensor, the variants of this layout the engine does not run; may be null.
  void (*reject)(const NameIndex& names, const Match& m, const std::string& file);
  // Sets the features the tensors / config imply: prefix tokens, norms, biases, LayerScale, the
  // classifier's form, the position-table rule (ViTConfig::pos_rule), and so on.
  RowResolved (*resolve)(const ResolveCtx& x, ViTConfig* cfg);
  float default_eps;            // LayerNorm eps when the config does not say
  Activation default_act;       // MLP activation when the config does not say
  // The preprocessing without a timm pretrained_cfg or a preprocessor_config.json, at h x w.
  PreprocessConfig (*preprocess)(int h, int w);
};

// The table, in detection order (the first row whose detect claims the names is the layout).
const std::vector<const LayoutRow*>& layouts();

// The rows (layout_*.cpp).
extern const LayoutRow kTimmLayout, kJaxLayout, kHFViTLayout, kHFDeiTLayout, kHFDinov2Layout, kHFClipLayout,
    kHFSiglipLayout, kHFAimv2Layout;

// Shared by the rows.
bool starts_with(const std::string& s, const std::string& p);
[[noreturn]] void unsupported_variant(const std::string& file, const std::string& what, const std::string& tensor);
// The names transformers' CLIP-style vision encoders share (CLIPVisionModel, SiglipVisionModel, and
// Aimv2VisionModel but for its blocks): the position table an nn.Embedding (flat_tokens) under
// "<p>embeddings.position_embedding", blocks "<p>encoder.layers.N.{layer_norm1,
// self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1, mlp.fc2}".
LayoutNames clip_encoder_names(const std::string& p);

// The shorter-side-then-crop form of HF's CLIPImageProcessor and DINOv2's BitImageProcessor (the
// others' is hf_default_preprocess, ViTImageProcessor's bilinear squash): shorter side to
// `edge_at_224` scaled with the crop, centre crop, bicubic.
PreprocessConfig hf_shortest_edge_crop(int h, int w, int edge_at_224, const std::array<float, 3>& mean,
                                       const std::array<float, 3>& std);
constexpr std::array<float, 3> kClipMean{0.48145466f, 0.4578275f, 0.40821073f};
constexpr std::array<float, 3> kClipStd{0.26862954f, 0.26130258f, 0.27577711f};

}  // namespace vit::detail
