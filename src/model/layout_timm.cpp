// vit-infer (internal): the timm layout row (timm's VisionTransformer state dict, and open_clip's
// through OpenClipSource). Its features are told by which tensors are there (model_args vary):
// prefix tokens, norm_pre, the patch bias, fc_norm vs norm, LayerScale, the RMSNorm / embed-norm /
// proj_bias=False of aimv2, the visual projection; config.json only where the tensors cannot say.
#include "core/error.h"
#include "model/limits.h"
#include "model/resolve.h"

namespace vit::detail {

namespace {

bool detect(const NameIndex& ix, Match* m) {
  if (ix.forms() != 1 || !ix.timm_marked()) return false;
  m->split_glu = ix.has("blocks.0.mlp.fc1_g.weight");
  return true;
}

LayoutNames names(const Match& m) {
  LayoutNames n;
  n.patch = torch_module("patch_embed.proj");
  n.patch_norm = torch_module("patch_embed.norm");
  n.norm_pre = torch_module("norm_pre");
  n.norm = torch_module("norm");
  n.fc_norm = torch_module("fc_norm");
  n.head = torch_module("head");
  n.head_dist = torch_module("head_dist");
  n.cls = "cls_token";
  n.dist = "dist_token";
  n.reg = "reg_token";
  n.pos = "pos_embed";
  n.proj = "visual_projection.weight";  // open_clip's visual.proj (OpenClipSource)
  n.block_prefix = "blocks.";
  BlockNames& b = n.block;
  b.ln1 = torch_module("norm1");
  b.qkv = torch_module("attn.qkv");
  b.proj = torch_module("attn.proj");
  b.ln2 = torch_module("norm2");
  if (m.split_glu) {  // timm SwiGLU: act(fc1_g x) * fc1_x x
    b.fc1_gate = torch_module("mlp.fc1_g");
    b.fc1_value = torch_module("mlp.fc1_x");
  } else {
    b.fc1 = torch_module("mlp.fc1");
  }
  b.fc2 = torch_module("mlp.fc2");
  b.ls1 = "ls1.gamma";
  b.ls2 = "ls2.gamma";
  AttnPoolNames& a = n.attn_pool;  // AttentionPoolLatent
  a.latent = "attn_pool.latent";
  a.q = torch_module("attn_pool.q");
  a.kv = torch_module("attn_pool.kv");
  a.proj = torch_module("attn_pool.proj");
  a.norm = torch_module("attn_pool.norm");
  a.fc1 = torch_module("attn_pool.mlp.fc1");
  a.fc2 = torch_module("attn_pool.mlp.fc2");
  return n;
}

// For a block tensor "blocks.<digits>.<rest>" sets *rest and returns true. A plain scan: names
// are untrusted, and std::regex recurses once per character (a 100k-digit index overflowed the
// stack).
bool block_rest(const std::string& n, std::string* rest) {
  static const std::string pre = "blocks.";
  if (!starts_with(n, pre)) return false;
  size_t j = pre.size();
  while (j < n.size() && std::isdigit(static_cast<unsigned char>(n[j]))) ++j;
  if (j == pre.size() || j >= n.size() || n[j] != '.') return false;
  *rest = n.substr(j + 1);
  return true;
}

void reject(const NameIndex& ix, const Match&, const std::string& file) {
  for (const std::string& n : ix.names()) {
    std::string rest;
    if (block_rest(n, &rest)) {
      if (starts_with(rest, "attn.q_norm.") || starts_with(rest, "attn.k_norm.")) unsupported_variant(file, "qk_norm", n);
      if (starts_with(rest, "mlp.w12.")) unsupported_variant(file, "a fused SwiGLU MLP (mlp.w12 / mlp.w3)", n);
      if (starts_with(rest, "norm.") || starts_with(rest, "attn.norm.") || starts_with(rest, "mlp.norm.")) {
        unsupported_variant(file, "norms inside the block (scale_attn_norm / scale_mlp_norm / residual-post blocks)", n);
      }
      if (starts_with(rest, "attn_out_proj.") || starts_with(rest, "in_proj.") || starts_with(rest, "attns.") ||
          starts_with(rest, "ffns.")) {
        unsupported_variant(file, "parallel blocks (ParallelScalingBlock / ParallelThingsBlock)", n);
      }
    }
    if (starts_with(n, "patch_embed.backbone.")) {
      unsupported_variant(file, "a hybrid CNN stem (HybridEmbed: the ResNet / R26 / R50 + ViT hybrids)", n);
    }
    // What the attention pool can carry and the engine does not compute.
    if (starts_with(n, "attn_pool.q_norm.") || starts_with(n, "attn_pool.k_norm.")) {
      unsupported_variant(file, "qk_norm in the attention-pool head", n);
    }
    if (n == "attn_pool.pos_embed") {
      unsupported_variant(file, "a position embedding in the attention-pool head (pos_embed='abs')", n);
    }
  }
}

// The final norm: timm's global_pool avg with fc_norm makes `norm` Identity and normalises after
// pooling; without fc_norm tensors the final norm runs over all tokens before pooling.
void resolve_norms(const ResolveCtx& x, ViTConfig* cfg) {
  const bool has_norm = x.src.has("norm.weight"), has_fc = x.src.has("fc_norm.weight");
  if (has_norm && has_fc) fail(ErrorCode::kFormat, x.file + ": holds both norm.* and fc_norm.* (timm uses one or the other)");
  cfg->fc_norm = has_fc;
  cfg->final_norm = has_fc ? false : (has_norm || x.hints.final_norm.value_or(true));
}

RowResolved resolve(const ResolveCtx& x, ViTConfig* cfg) {
  const TensorSource& src = x.src;
  const ConfigHints& hints = x.hints;
  const std::string& file = x.file;
  cfg->layer_scale = src.has("blocks.0.ls1.gamma");
  resolve_norms(x, cfg);
  cfg->class_token = src.has("cls_token");
  cfg->dist_token = src.has("dist_token");
  cfg->reg_tokens = src.has("reg_token") ? model_dim(need_shape(src, "reg_token", 3, file), 1, 1, limits::kMaxPatches,
                                                     "register tokens", "reg_token", file)
                                         : 0;
  cfg->pre_norm = src.has("norm_pre.weight");
  cfg->patch_bias = src.has("patch_embed.proj.bias");
  // open_clip's image projection (OpenClipSource: visual.proj as visual_projection.weight [E, D]):
  // the embeddings are the projected image features, as encode_image gives them.
  if (src.has("visual_projection.weight")) {
    cfg->proj_dim = model_dim(need_shape(src, "visual_projection.weight", 2, file), 0, 1, limits::kMaxHidden,
                              "projection width", "visual_projection.weight", file);
    note_conflict(x.warnings, hints, hints.proj_dim, cfg->proj_dim, "embed_dim");
  }
  // aimv2: RmsNorm everywhere (as config.json / the entrypoint says: a missing norm bias alone
  // stays an error), a norm on the patch embeddings, no proj / MLP biases.
  cfg->rms_norm = hints.rms_norm.value_or(false);
  cfg->embed_norm = src.has("patch_embed.norm.weight");
  if (hints.embed_norm && *hints.embed_norm != cfg->embed_norm) {
    fail(ErrorCode::kFormat, file + ": " + hints.path + " says embed_norm_layer " +
                                 (*hints.embed_norm ? "is set" : "is not") + " but the tensors " +
                                 (cfg->embed_norm ? "hold" : "lack") + " patch_embed.norm.weight");
  }
  cfg->proj_bias = hints.proj_bias ? *hints.proj_bias : src.has("blocks.0.attn.proj.bias");
  cfg->res_post = hints.res_post.value_or(false);
  cfg->pool_include_prefix = hints.pool_include_prefix.value_or(false);
  if (hints.class_token && *hints.class_token != cfg->class_token) {
    x.warnings->push_back(hints.path + " says class_token " + (*hints.class_token ? "true" : "false") +
                          " but the tensors " + (cfg->class_token ? "hold" : "lack") + " cls_token; using the tensors");
  }
  if (hints.reg_tokens && *hints.reg_tokens != cfg->reg_tokens) {
    note_conflict(x.warnings, hints, hints.reg_tokens, cfg->reg_tokens, "reg_tokens");
  }
  if (cfg->dist_token && !cfg->class_token) {
    fail(ErrorCode::kFormat, file + ": holds dist_token but no cls_token (DeiT distilled has both)");
  }
  return {};
}

// timm ViT _cfg: bicubic, crop_pct 0.9, mean = std = 0.5 (the run size is set by the caller).
PreprocessConfig preprocess(int, int) { return PreprocessConfig{}; }

}  // namespace

const LayoutRow kTimmLayout = {
    "timm", nullptr, {}, nullptr, detect, names, reject, resolve, 1e-6f, Activation::kGeluErf, preprocess,
};

}  // namespace vit::detail
