// vit-infer (internal): the HF family layout rows whose models are the ViT's math with the
// family's flags: ViTModel / ViTForImageClassification, DeiT (+ WithTeacher), Dinov2 (+
// WithRegisters, ForImageClassification, use_swiglu_ffn), CLIPVisionModel (+ WithProjection, and a
// whole CLIPModel's image tower). Each is told by its base-model prefix or a tensor only its layout
// has; separate q / k / v Linears; config.json's model_type must name the family the tensors are.
#include "core/error.h"
#include "model/limits.h"
#include "model/resolve.h"

namespace vit::detail {

namespace {

// pooler.dense: the tanh pooler of bare ViTModel / DeiTModel; mask_token: masked-image modelling
// (DINOv2 training); position_ids: an index buffer older CLIP checkpoints saved.
std::vector<std::string> ignored_names(const std::string& p) {
  return {p + "pooler.dense.weight", p + "pooler.dense.bias", p + "embeddings.mask_token", p + "embeddings.position_ids"};
}

// The HF ViT form of the names, which DeiT and DINOv2 share but for their blocks' and extra names.
LayoutNames vit_names(const std::string& p) {
  LayoutNames n;
  n.cls = p + "embeddings.cls_token";
  n.pos = p + "embeddings.position_embeddings";
  n.patch = torch_module(p + "embeddings.patch_embeddings.projection");
  n.norm = torch_module(p + "layernorm");
  n.head = torch_module("classifier");
  n.block_prefix = p + "encoder.layer.";
  BlockNames& b = n.block;
  b.ln1 = torch_module("layernorm_before");
  b.ln2 = torch_module("layernorm_after");
  b.q = torch_module("attention.attention.query");
  b.k = torch_module("attention.attention.key");
  b.v = torch_module("attention.attention.value");
  b.proj = torch_module("attention.output.dense");
  b.fc1 = torch_module("intermediate.dense");
  b.fc2 = torch_module("output.dense");
  n.ignored = ignored_names(p);
  return n;
}

void reject_attention_pool(const NameIndex& ix, const std::string& file) {
  for (const std::string& n : ix.names()) {
    if (starts_with(n, "head.") || starts_with(n, "pooler.attention") || n.find(".head.attention.") != std::string::npos) {
      unsupported_variant(file, "an attention-pooling head (SigLIP's)", n);
    }
  }
}

void reject(const NameIndex& ix, const Match&, const std::string& file) { reject_attention_pool(ix, file); }

// What every HF family row sets: the class the config names, and that the layout fixes
// no_embed_class; the register count a config states that the tensors contradict.
RowResolved common(const ResolveCtx& x, ViTConfig* cfg) {
  note_conflict(x.warnings, x.hints, x.hints.reg_tokens, cfg->reg_tokens, "num_register_tokens");
  if (x.hints.hf_class) cfg->hf_class = *x.hints.hf_class;
  RowResolved r;
  r.fixed_no_embed_class = true;
  return r;
}

// ---- ViT: the plain form; another size resamples the table as ViTEmbeddings does ---------------

bool detect_vit(const NameIndex& ix, Match* m) {
  const std::string* p = ix.hf_only_prefix();
  if (!p) return false;
  m->prefix = *p;
  return true;
}

LayoutNames names_vit(const Match& m) { return vit_names(m.prefix); }

// ViTEmbeddings.interpolate_pos_encoding: bicubic without antialias, from the checkpoint's table.
RowResolved resolve_vit(const ResolveCtx& x, ViTConfig* cfg) {
  cfg->pos_rule = PosResample::kHF;
  return common(x, cfg);
}

// ---- DeiT: a distillation token (a second head only in the WithTeacher class) -----------------

bool detect_deit(const NameIndex& ix, Match* m) {
  if (!detect_vit(ix, m)) return false;
  if (m->prefix != "deit." && !ix.has(m->prefix + "embeddings.distillation_token")) return false;
  m->teacher = ix.has("cls_classifier.weight");
  return true;
}

LayoutNames names_deit(const Match& m) {
  LayoutNames n = vit_names(m.prefix);
  n.dist = m.prefix + "embeddings.distillation_token";
  if (m.teacher) {
    n.head = torch_module("cls_classifier");
    n.head_dist = torch_module("distillation_classifier");
  }
  return n;
}

RowResolved resolve_deit(const ResolveCtx& x, ViTConfig* cfg) {
  cfg->dist_token = true;
  cfg->dist_head = !x.n.head_dist.w.empty();
  cfg->pos_rule = PosResample::kHF;
  return common(x, cfg);
}

// ---- DINOv2: LayerScale always, registers (not in the table), the [C, 2D] classifier ----------

bool detect_dinov2(const NameIndex& ix, Match* m) {
  if (!detect_vit(ix, m)) return false;
  const std::string& p = m->prefix;
  if (!starts_with(p, "dinov2") && !ix.has(p + "encoder.layer.0.norm1.weight") &&
      !ix.has(p + "encoder.layer.0.layer_scale1.lambda1") && !ix.has(p + "embeddings.register_tokens")) {
    return false;
  }
  m->swiglu = ix.any_with(p + "encoder.layer.0.mlp.weights_in.");
  return true;
}

LayoutNames names_dinov2(const Match& m) {
  LayoutNames n = vit_names(m.prefix);
  n.reg = m.prefix + "embeddings.register_tokens";
  BlockNames& b = n.block;
  b.ln1 = torch_module("norm1");
  b.ln2 = torch_module("norm2");
  // Dinov2SwiGLUFFN: [2I, D] gate | value, [D, I].
  b.fc1 = torch_module(m.swiglu ? "mlp.weights_in" : "mlp.fc1");
  b.fc2 = torch_module(m.swiglu ? "mlp.weights_out" : "mlp.fc2");
  b.ls1 = "layer_scale1.lambda1";
  b.ls2 = "layer_scale2.lambda1";
  return n;
}

void reject_dinov2(const NameIndex& ix, const Match& m, const std::string& file) {
  reject(ix, m, file);
  for (const std::string& n : ix.names()) {
    if (n.find(".mlp.w12.") != std::string::npos) {
      unsupported_variant(file, "the fused SwiGLU MLP of the original DINOv2 code (mlp.w12 / mlp.w3; transformers' "
                                "Dinov2Model names it mlp.weights_in / mlp.weights_out)", n);
    }
  }
}

RowResolved resolve_dinov2(const ResolveCtx& x, ViTConfig* cfg) {
  const std::string& reg = x.n.reg;
  cfg->reg_tokens = x.src.has(reg) ? model_dim(need_shape(x.src, reg, 3, x.file), 1, 1, limits::kMaxPatches,
                                               "register tokens", reg, x.file)
                                   : 0;
  RowResolved r = common(x, cfg);
  cfg->no_embed_class = cfg->reg_tokens > 0;  // after the loader folds the cls row's position into the token
  r.pos_has_cls_row_only = cfg->reg_tokens > 0;
  // Dinov2ForImageClassification: its classifier is [C, 2D] (concat(cls, mean of patches)).
  cfg->head_cls_mean = cfg->num_classes > 0;
  cfg->layer_scale = true;  // Dinov2Layer always has layer_scale1/2
  if (x.m.swiglu) cfg->act = Activation::kSilu;  // Dinov2SwiGLUFFN: SiLU whatever hidden_act says
  // Dinov2WithRegisters' own interpolate_pos_encoding passes antialias=True: timm's rule.
  const bool antialiased = cfg->reg_tokens > 0 || x.hints.hf_model_type.value_or("") == "dinov2_with_registers";
  cfg->pos_rule = antialiased ? PosResample::kTimm : PosResample::kHF;
  return r;
}

// BitImageProcessor: shorter side 256, crop 224, bicubic, ImageNet mean / std.
PreprocessConfig preprocess_dinov2(int h, int w) {
  return hf_shortest_edge_crop(h, w, 256, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f});
}

// ---- CLIP vision: pre-norm, no patch bias, post_layernorm on the pooled row, the projection ----

bool detect_clip(const NameIndex& ix, Match* m) {
  if (!detect_vit(ix, m)) return false;
  const std::string& p = m->prefix;
  return ix.has(p + "embeddings.class_embedding") || ix.any_with(p + "encoder.layers.") || p == "vision_model.";
}

LayoutNames names_clip(const Match& m) {
  const std::string& p = m.prefix;
  LayoutNames n = clip_encoder_names(p);
  n.cls = p + "embeddings.class_embedding";  // [D]; the table [1 + N, D]
  n.patch = {p + "embeddings.patch_embedding.weight", ""};
  n.norm_pre = torch_module(p + "pre_layrnorm");  // sic: HF's name
  n.norm = torch_module(p + "post_layernorm");    // on the pooled cls row only
  n.proj = "visual_projection.weight";            // WithProjection only
  n.ignored = ignored_names(p);
  return n;
}

RowResolved resolve_clip(const ResolveCtx& x, ViTConfig* cfg) {
  const RowResolved r = common(x, cfg);
  cfg->pre_norm = true;
  cfg->features_before_norm = true;
  cfg->patch_bias = false;
  cfg->pos_rule = PosResample::kHF;
  const std::string& proj = x.n.proj;
  if (x.src.has(proj)) {
    cfg->proj_dim = model_dim(need_shape(x.src, proj, 2, x.file), 0, 1, limits::kMaxHidden, "projection width", proj, x.file);
    note_conflict(x.warnings, x.hints, x.hints.proj_dim, cfg->proj_dim, "projection_dim");
  } else if (x.hints.hf_class == std::optional<std::string>("CLIPModel")) {
    // A whole CLIPModel's image embeddings are its projection's: never run as a bare tower.
    fail(ErrorCode::kFormat, x.file + ": " + x.hints.path + " says a whole CLIPModel, but its image projection '" + proj +
                                 "' is missing");
  }
  return r;
}

// CLIPImageProcessor: shorter side 224, centre crop 224, bicubic, OpenAI CLIP mean / std.
PreprocessConfig preprocess_clip(int h, int w) { return hf_shortest_edge_crop(h, w, 224, kClipMean, kClipStd); }

}  // namespace

// HF's eps defaults are each config class's: ViTConfig / DeiTConfig 1e-12, Dinov2Config 1e-6,
// CLIPVisionConfig 1e-5 (with quick-GELU, OpenAI CLIP's); without a preprocessor config the rest
// keep ViTImageProcessor's bilinear squash.
const LayoutRow kHFViTLayout = {
    "hf", "ViT", {"vit"}, nullptr, detect_vit, names_vit, reject, resolve_vit, 1e-12f, Activation::kGeluErf,
    hf_default_preprocess,
};
const LayoutRow kHFDeiTLayout = {
    "hf", "DeiT", {"deit"}, nullptr, detect_deit, names_deit, reject, resolve_deit, 1e-12f, Activation::kGeluErf,
    hf_default_preprocess,
};
const LayoutRow kHFDinov2Layout = {
    "hf", "DINOv2", {"dinov2", "dinov2_with_registers"}, nullptr, detect_dinov2, names_dinov2, reject_dinov2,
    resolve_dinov2, 1e-6f, Activation::kGeluErf, preprocess_dinov2,
};
const LayoutRow kHFClipLayout = {
    "hf", "CLIP vision", {"clip_vision_model"}, nullptr, detect_clip, names_clip, reject, resolve_clip, 1e-5f,
    Activation::kQuickGelu, preprocess_clip,
};

}  // namespace vit::detail
