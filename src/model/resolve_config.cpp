// vit-infer (internal): the resolve steps that fix the architecture (resolve.h): the layout row,
// the sizes from the tensor shapes, the head count, eps and biases, pooling, the row's features
// and the activation. Every step reads the row's names, never a layout by name.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/limits.h"
#include "model/resolve.h"

namespace vit::detail {

std::string to_s(int64_t v) { return std::to_string(v); }

std::string name_list(const std::vector<std::string>& v, size_t max_n) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max_n; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > max_n) s += ", ... (" + to_s(static_cast<int64_t>(v.size())) + " in all)";
  return s;
}

Shape need_shape(const TensorSource& src, const std::string& name, size_t rank, const std::string& file) {
  if (!src.has(name)) fail(ErrorCode::kFormat, file + ": missing tensor '" + name + "'");
  Shape s = src.shape(name);
  if (s.size() != rank) {
    fail(ErrorCode::kFormat, file + ": tensor '" + name + "' has shape " + shape_str(s) + ", expected rank " +
                                 to_s(static_cast<int64_t>(rank)));
  }
  return s;
}

int model_dim(const Shape& s, size_t i, int64_t lo, int64_t hi, const char* what, const std::string& tensor,
              const std::string& file) {
  const int64_t v = s[i];
  if (v < lo || v > hi) {
    fail(ErrorCode::kFormat, file + ": tensor '" + tensor + "' has shape " + shape_str(s) + ": " + what + " " +
                                 to_s(v) + " is outside " + to_s(lo) + ".." + to_s(hi));
  }
  return static_cast<int>(v);
}

void note_conflict(std::vector<std::string>* warnings, const ConfigHints& h, const std::optional<int>& said, int actual,
                   const char* what) {
  if (said && *said != actual) {
    warnings->push_back(h.path + " says " + what + " " + std::to_string(*said) + " but the tensors have " +
                        std::to_string(actual) + "; using the tensors");
  }
}

void check_overrides(const ConfigOverrides& ov, const std::string& file) {
  if (ov.ln_eps && !(*ov.ln_eps > 0.0f)) {
    fail(ErrorCode::kInvalidArgument, "ln_eps must be positive, got " + std::to_string(*ov.ln_eps));
  }
  if (ov.image_size && *ov.image_size <= 0) {
    fail(ErrorCode::kInvalidArgument, "image size must be positive, got " + to_s(*ov.image_size));
  }
  if (ov.image_size && *ov.image_size > limits::kMaxImageSide) {
    fail(ErrorCode::kInvalidArgument, "image size " + to_s(*ov.image_size) + " is larger than the limit of " +
                                          to_s(limits::kMaxImageSide) + " pixels a side (" + file + ")");
  }
}

// --arch beats the config's own `architecture`; an unknown --arch is an error, an unknown config
// one only fills nothing.
void resolve_arch_name(LoadState* s) {
  if (s->ov.architecture) {
    s->arch_name = *s->ov.architecture;
    if (!config_from_arch_name(s->arch_name, &s->arch)) {
      fail(ErrorCode::kInvalidArgument,
           "unknown architecture '" + s->arch_name +
               "' (expected vit_{tiny,small,base,large,huge}_patch{8,14,16,32}_{224,384}[.tag])");
    }
    s->have_arch = true;
  } else if (s->hints().architecture) {
    s->arch_name = *s->hints().architecture;
    s->have_arch = config_from_arch_name(s->arch_name, &s->arch);
  }
}

void detect_layout(LoadState* s) {
  const NameIndex ix(s->src().names());
  for (const LayoutRow* row : layouts()) {
    Match m;
    if (!row->detect(ix, &m)) continue;
    s->row = row;
    s->match = std::move(m);
    s->names = row->names(s->match);
    if (row->reject) row->reject(ix, s->match, s->file());
    return;
  }
  const bool none = ix.forms() == 0;
  fail(none ? ErrorCode::kUnsupported : ErrorCode::kFormat,
       s->file() + ": cannot tell the weight layout (expected timm names such as patch_embed.proj.weight, HF "
                   "[vit. / deit. / dinov2. / vision_model.]embeddings.*, or JAX embedding/kernel; " +
           (none ? std::string("found none") : std::string("found a mix")) + "); tensors: " + name_list(ix.names()));
}

namespace {

// Largest block index + 1 for names "<pre><N><sep...>".
int count_blocks(const std::vector<std::string>& names, const std::string& pre) {
  int depth = 0;
  for (const std::string& n : names) {
    if (!starts_with(n, pre)) continue;
    size_t i = pre.size(), j = i;
    while (j < n.size() && std::isdigit(static_cast<unsigned char>(n[j]))) ++j;
    // More than 6 digits is no block index we could hold; such a name ends up "unexpected".
    if (j == i || j - i > 6 || j >= n.size() || (n[j] != '.' && n[j] != '/')) continue;
    depth = std::max(depth, std::stoi(n.substr(i, j - i)) + 1);
  }
  return depth;
}

// A module's name without its ".weight" (for messages).
std::string module_of(const Module& m) {
  const std::string sfx = ".weight";
  const std::string& w = m.w;
  return w.size() > sfx.size() && w.compare(w.size() - sfx.size(), sfx.size(), sfx) == 0 ? w.substr(0, w.size() - sfx.size())
                                                                                          : w;
}

// The MLP's width, and whether it is gated (SwiGLU): by its names (separate gate / value Linears)
// or by its shapes, fc1 [2I, D] feeding fc2 [D, I] (a plain MLP's fc1 rows equal fc2's input
// width). config.json (timm mlp_layer, HF use_swiglu_ffn) must agree.
void resolve_mlp(const LoadState& s, int ax_out, ViTConfig* cfg) {
  const TensorSource& src = s.src();
  const LayoutNames& n = s.names;
  const ConfigHints& hints = s.hints();
  const std::string& file = s.file();
  const bool split = !n.block.fc1_gate.w.empty();
  const std::string fc1 = n.in_block(0, split ? n.block.fc1_gate.w : n.block.fc1.w);  // a gate's rows: the width
  cfg->mlp_hidden = model_dim(need_shape(src, fc1, 2, file), ax_out, 1, limits::kMaxMlp, "mlp width", fc1, file);
  if (split) {
    cfg->glu = true;
    if (hints.glu && !*hints.glu) {
      fail(ErrorCode::kFormat, file + ": " + hints.path + " says a plain MLP but the tensors hold " +
                                   module_of(n.block.fc1_gate) + " / " + module_of(n.block.fc1_value) + " (a SwiGLU MLP)");
    }
    return;
  }
  const std::string fc2 = n.in_block(0, n.block.fc2.w);
  if (!src.has(fc2)) return;
  const Shape f2 = need_shape(src, fc2, 2, file);
  const int64_t fc2_in = f2[n.conv == Convention::kJax ? 0 : 1];
  cfg->glu = fc2_in > 0 && fc2_in * 2 == cfg->mlp_hidden;
  if (cfg->glu) cfg->mlp_hidden /= 2;
  if (hints.glu && *hints.glu != cfg->glu) {
    fail(ErrorCode::kFormat, file + ": " + hints.path + " says " + (*hints.glu ? "a gated (SwiGLU) MLP" : "a plain MLP") +
                                 " but '" + fc1 + "' " + shape_str(need_shape(src, fc1, 2, file)) + " and '" + fc2 +
                                 "' " + shape_str(f2) + " are " +
                                 (cfg->glu ? "a gated one (fc1 twice fc2's input width)" : "a plain one"));
  }
}

// config.json's model_type must name the HF family the tensors are laid out for.
void check_hf_family(const LoadState& s) {
  const ConfigHints& hints = s.hints();
  if (!s.row->hf_family || !hints.hf_model_type) return;
  const std::string& mt = *hints.hf_model_type;
  const char* said = kHFViTLayout.hf_family;  // the ViT row takes the model types no other names
  for (const LayoutRow* r : layouts()) {
    if (r->hf_family && std::find(r->model_types.begin(), r->model_types.end(), mt) != r->model_types.end()) {
      said = r->hf_family;
    }
  }
  if (std::string(said) != s.row->hf_family) {
    fail(ErrorCode::kFormat, hints.path + " says model_type '" + mt + "' (HF " + said + ") but " + s.file() +
                                 " holds the HF " + s.row->hf_family + " layout (prefix '" + s.match.prefix + "')");
  }
}

}  // namespace

// The shapes of the defining tensors. The conventions differ only in which axis holds what:
// JAX patch kernel [P, P, C, D] and Dense kernels [in, out]; PyTorch [D, C, P, P] and [out, in].
void resolve_sizes(LoadState* s, ViTConfig* cfg) {
  const TensorSource& src = s->src();
  const LayoutNames& n = s->names;
  const ConfigHints& hints = s->hints();
  const std::string& file = s->file();
  const bool jax = n.conv == Convention::kJax;
  const int ax_patch = jax ? 0 : 2, ax_in = jax ? 2 : 1, ax_hidden = jax ? 3 : 0, ax_out = jax ? 1 : 0;
  const Shape k = need_shape(src, n.patch.w, 4, file);
  if (k[ax_patch] != k[ax_patch + 1]) fail(ErrorCode::kUnsupported, file + ": non-square patch kernel " + shape_str(k));
  cfg->hidden = model_dim(k, ax_hidden, 1, limits::kMaxHidden, "width", n.patch.w, file);
  cfg->in_chans = model_dim(k, ax_in, 1, limits::kMaxInChans, "input channels", n.patch.w, file);
  cfg->patch = model_dim(k, ax_patch, 1, limits::kMaxPatch, "patch size", n.patch.w, file);
  resolve_mlp(*s, ax_out, cfg);
  cfg->num_classes = !n.head.w.empty() && src.has(n.head.w)
                         ? model_dim(need_shape(src, n.head.w, 2, file), ax_out, 0, limits::kMaxClasses, "classes",
                                     n.head.w, file)
                         : 0;
  cfg->depth = count_blocks(src.names(), n.block_prefix);
  if (cfg->depth == 0) fail(ErrorCode::kFormat, file + ": no transformer blocks (" + n.block_prefix + "0...)");
  if (cfg->depth > limits::kMaxDepth) {
    fail(ErrorCode::kFormat, file + ": block index " + to_s(cfg->depth - 1) + " (" + n.block_prefix + "...) is implausible");
  }
  // The stored table: prefix + gh*gw rows, at most limits::kMaxPatches + 1 (+ a distillation
  // token's row); [1, rows, D], or [rows, D] for an nn.Embedding (flat_tokens).
  const int extra = !n.dist.empty() && src.has(n.dist) ? 1 : 0;
  s->pos_rows = model_dim(need_shape(src, n.pos, n.flat_tokens ? 2 : 3, file), n.flat_tokens ? 0 : 1, 1,
                          limits::kMaxPatches + 1 + extra, "position rows", n.pos, file);
  check_hf_family(*s);
  std::vector<std::string>* warnings = s->warnings;
  note_conflict(warnings, hints, hints.hidden, cfg->hidden, "width");
  note_conflict(warnings, hints, hints.depth, cfg->depth, "depth");
  note_conflict(warnings, hints, hints.mlp_hidden, cfg->mlp_hidden, "mlp width");
  note_conflict(warnings, hints, hints.patch, cfg->patch, "patch size");
  note_conflict(warnings, hints, hints.num_classes, cfg->num_classes, "num_classes");
  // The architecture name only fills what config.json leaves out (timm writes e.g.
  // `vit_tiny_patch16_224` plus model_args embed_dim 96): a difference that model_args
  // explains is not worth a warning.
  const ViTConfig& arch = s->arch;
  const bool arch_conflict = (!hints.hidden && arch.hidden != cfg->hidden) ||
                             (!hints.depth && arch.depth != cfg->depth) || (!hints.patch && arch.patch != cfg->patch);
  if (s->have_arch && arch_conflict) {
    warnings->push_back("architecture '" + s->arch_name + "' does not match the tensors (width " + to_s(cfg->hidden) +
                        ", depth " + to_s(cfg->depth) + ", patch " + to_s(cfg->patch) + "); using the tensors");
  }
}

namespace {

int standard_heads(int width) {
  switch (width) {
    case 192: return 3;
    case 384: return 6;
    case 768: return 12;
    case 1024: return 16;
    case 1280: return 16;
    default: return 0;
  }
}

}  // namespace

// Heads: override > config > architecture name > the layout's shapes > standard width.
void resolve_heads(LoadState* s, ViTConfig* cfg) {
  const ConfigHints& hints = s->hints();
  const std::string& file = s->file();
  const std::string& ht = s->names.heads_tensor;
  if (s->ov.heads) {
    cfg->heads = *s->ov.heads;
  } else if (hints.heads) {
    cfg->heads = *hints.heads;
  } else if (s->have_arch && s->arch.hidden == cfg->hidden) {
    cfg->heads = s->arch.heads;
  } else if (!ht.empty()) {
    cfg->heads = model_dim(need_shape(s->src(), ht, 3, file), 1, 1, limits::kMaxHeads, "heads", ht, file);
  } else if (standard_heads(cfg->hidden)) {
    cfg->heads = standard_heads(cfg->hidden);
    // A guess (right for the standard Ti/S/B/L/H ViTs): said, since a wrong count runs silently.
    s->warnings->push_back(file + ": " + to_s(cfg->heads) + " attention heads assumed for width " + to_s(cfg->hidden) +
                           " (the standard ViT's; no config or known architecture names them; --heads overrides)");
  } else {
    fail(ErrorCode::kInvalidArgument, file + ": cannot determine the number of attention heads for width " +
                                          to_s(cfg->hidden) + " (not in config.json or the architecture name); pass --heads");
  }
  if (cfg->heads <= 0 || cfg->hidden % cfg->heads != 0) {
    fail(ErrorCode::kInvalidArgument, "the head count " + to_s(cfg->heads) + " does not divide the width " +
                                          to_s(cfg->hidden) + " (" + file + ")");
  }
}

// LayerNorm eps: override > config > the layout's default; the qkv bias: the config when it says,
// else the tensors (then checked like any other).
void resolve_norm_and_bias(LoadState* s, ViTConfig* cfg) {
  const ConfigHints& hints = s->hints();
  cfg->ln_eps = s->ov.ln_eps ? *s->ov.ln_eps : hints.ln_eps ? *hints.ln_eps : s->row->default_eps;
  const BlockNames& b = s->names.block;
  const std::string& qb = !b.qkv.w.empty() ? b.qkv.b : b.q.b;
  cfg->qkv_bias = hints.qkv_bias ? *hints.qkv_bias : !qb.empty() && s->src().has(s->names.in_block(0, qb));
}

// Pooling: a checkpoint holding the attention-pool head pools with it unless told otherwise; the
// head's sizes from its tensors (latent rows L: timm latent [1, L, D], HF probe [1, 1, D]; the MLP
// width; q / kv biases).
void resolve_pool(LoadState* s, ViTConfig* cfg) {
  const TensorSource& src = s->src();
  const AttnPoolNames& a = s->names.attn_pool;
  const std::string& file = s->file();
  const bool has_head = !a.latent.empty() && src.has(a.latent);
  cfg->pool = s->ov.pool ? *s->ov.pool : s->hints().pool ? *s->hints().pool : has_head ? GlobalPool::kMap : GlobalPool::kToken;
  if (cfg->pool != GlobalPool::kMap) return;
  if (a.latent.empty()) {
    fail(ErrorCode::kUnsupported, file + ": map pooling (the attention-pool head) with the " + s->row->name +
                                      " layout: only timm attn_pool.*, HF SiglipVisionModel and Aimv2VisionModel "
                                      "head.* checkpoints carry that head");
  }
  cfg->map_latent_len =
      model_dim(need_shape(src, a.latent, 3, file), 1, 1, limits::kMaxPatches, "latent rows", a.latent, file);
  cfg->map_mlp_hidden =
      a.fc1.w.empty() ? 0 : model_dim(need_shape(src, a.fc1.w, 2, file), 0, 1, limits::kMaxMlp, "mlp width", a.fc1.w, file);
  // nn.MultiheadAttention's in_proj always has its bias; else the q (or, without q, the k) bias says.
  cfg->map_qkv_bias = !a.in_proj.w.empty() || src.has(!a.q.w.empty() ? a.q.b : a.k.b);
  cfg->map_query_proj = !a.q.w.empty() || !a.in_proj.w.empty();
}

// The row's features, after the activation (config > the layout's default) so that a row may fix
// it (HF DINOv2's SwiGLU: SiLU whatever hidden_act says); then a model without a class token pools
// avg, as timm refuses class_token=False with 'token'.
void resolve_features(LoadState* s, ViTConfig* cfg) {
  const ConfigHints& hints = s->hints();
  cfg->act = hints.act.value_or(s->row->default_act);
  if (s->row->family) cfg->layout_family = s->row->family;
  s->row_resolved = s->row->resolve(s->ctx(), cfg);
  if (!cfg->class_token && cfg->pool == GlobalPool::kToken) {
    if (s->ov.pool || hints.pool) {
      fail(ErrorCode::kInvalidArgument, s->file() + ": global_pool 'token' needs a class token, and this model has none "
                                                    "(class_token=False); use avg / avgmax / max pooling");
    }
    cfg->pool = GlobalPool::kAvg;
  }
}

}  // namespace vit::detail
