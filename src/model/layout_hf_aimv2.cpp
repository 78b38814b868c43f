// vit-infer (internal): the layout row of transformers' Aimv2VisionModel (apple/aimv2-*):
// "[vision_model.]embeddings.patch_embed" + embeddings.rms_norm, no class token, the position
// table an nn.Embedding [N, D], encoder.layers.N.{rms_norm1, attention.{q,k,v,out}_proj,
// rms_norm2, ffn.{gate,up,down}_proj} (SwiGLU, gate first), rms_norm; biases as qkv_bias /
// mlp_bias say; the head (Aimv2AttentionPoolingHead: the raw cls_token as the query, k_proj /
// v_proj, output_proj, no norm or MLP).
#include "model/resolve.h"

namespace vit::detail {

namespace {

bool detect(const NameIndex& ix, Match* m) {
  for (const char* pc : {"vision_model.", ""}) {
    const std::string p = pc;
    if (ix.has(p + "embeddings.patch_embed.weight") && ix.has(p + "embeddings.rms_norm.weight")) {
      m->prefix = p;
      m->mlp_bias = ix.has(p + "encoder.layers.0.ffn.gate_proj.bias");
      return true;
    }
  }
  return false;
}

LayoutNames names(const Match& m) {
  const std::string& p = m.prefix;
  LayoutNames n = clip_encoder_names(p);  // [N, D] table: no prefix rows; its own blocks
  n.patch = torch_module(p + "embeddings.patch_embed");
  n.patch_norm = {p + "embeddings.rms_norm.weight", ""};
  n.norm = {p + "rms_norm.weight", ""};
  BlockNames& b = n.block;
  b.ln1 = {"rms_norm1.weight", ""};
  b.ln2 = {"rms_norm2.weight", ""};
  b.q = torch_module("attention.q_proj");
  b.k = torch_module("attention.k_proj");
  b.v = torch_module("attention.v_proj");
  b.proj = torch_module("attention.out_proj");
  b.fc1 = {};
  b.fc1_gate = torch_module("ffn.gate_proj");
  b.fc1_value = torch_module("ffn.up_proj");
  b.fc2 = torch_module("ffn.down_proj");
  const std::string h = p + "head.";
  AttnPoolNames& a = n.attn_pool;
  a.latent = h + "cls_token";
  a.k = torch_module(h + "k_proj");
  a.v = torch_module(h + "v_proj");
  a.proj = torch_module(h + "output_proj");
  return n;
}

// Aimv2VisionEmbeddings: rms_norm(patch_embed(x)) + pos, no prefix tokens; RMSNorm everywhere;
// out_proj's bias follows qkv_bias (the tensors say).
RowResolved resolve(const ResolveCtx& x, ViTConfig* cfg) {
  cfg->class_token = false;
  cfg->rms_norm = true;
  cfg->embed_norm = true;
  cfg->proj_bias = x.src.has(x.n.in_block(0, x.n.block.proj.b));
  return {};
}

// apple/aimv2-* ship CLIPImageProcessor with OpenAI CLIP's mean / std.
PreprocessConfig preprocess(int h, int w) { return hf_shortest_edge_crop(h, w, 224, kClipMean, kClipStd); }

}  // namespace

// Aimv2VisionConfig: rms_norm_eps 1e-5, SiLU (the SwiGLU gate).
const LayoutRow kHFAimv2Layout = {
    "hf-aimv2", nullptr, {}, "AIMv2", detect, names, nullptr, resolve, 1e-5f, Activation::kSilu, preprocess,
};

}  // namespace vit::detail
