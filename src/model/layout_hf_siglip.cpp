// vit-infer (internal): the layout row of transformers' SiglipVisionModel (and a whole
// SiglipModel's image tower): "[vision_model.]embeddings.patch_embedding" (singular, unlike ViT's
// embeddings.patch_embeddings.projection), no class token, the position table an nn.Embedding
// [N, D], encoder.layers.N.*, post_layernorm, and the attention-pool head (head.probe, the
// nn.MultiheadAttention in_proj, layernorm, MLP): the output is pooler_output.
#include "model/resolve.h"

namespace vit::detail {

namespace {

bool detect(const NameIndex& ix, Match* m) {
  for (const char* p : {"vision_model.", ""}) {
    // CLIPVisionModel names its conv the same: SigLIP is the one without a class embedding.
    if (ix.has(std::string(p) + "embeddings.patch_embedding.weight") && !ix.has(std::string(p) + "embeddings.class_embedding")) {
      m->prefix = p;
      return true;
    }
  }
  return false;
}

LayoutNames names(const Match& m) {
  const std::string& p = m.prefix;
  LayoutNames n = clip_encoder_names(p);  // [N, D] table: no prefix rows
  n.patch = torch_module(p + "embeddings.patch_embedding");
  n.norm = torch_module(p + "post_layernorm");
  const std::string h = p + "head.";  // SiglipMultiheadAttentionPoolingHead
  AttnPoolNames& a = n.attn_pool;
  a.latent = h + "probe";
  a.in_proj = {h + "attention.in_proj_weight", h + "attention.in_proj_bias"};
  a.proj = torch_module(h + "attention.out_proj");
  a.norm = torch_module(h + "layernorm");
  a.fc1 = torch_module(h + "mlp.fc1");
  a.fc2 = torch_module(h + "mlp.fc2");
  return n;
}

RowResolved resolve(const ResolveCtx& x, ViTConfig* cfg) {
  cfg->class_token = false;  // SiglipVisionEmbeddings: patches + pos, no prefix tokens
  if (x.hints.hf_class) cfg->hf_class = *x.hints.hf_class;
  cfg->pos_rule = PosResample::kHF;  // DINOv2's interpolate_pos_encoding over a table without prefix rows
  return {};
}

// SiglipImageProcessor: a bicubic squash, mean = std = 0.5.
PreprocessConfig preprocess(int h, int w) {
  PreprocessConfig pp = hf_default_preprocess(h, w);
  pp.interpolation = "bicubic";
  return pp;
}

}  // namespace

// SiglipVisionConfig: eps 1e-6, gelu_pytorch_tanh.
const LayoutRow kHFSiglipLayout = {
    "hf-siglip", nullptr, {}, "SigLIP tower", detect, names, nullptr, resolve, 1e-6f, Activation::kGeluTanh, preprocess,
};

}  // namespace vit::detail
