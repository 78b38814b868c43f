// vit-infer: ViTConfig helpers: parameter and FLOP counts, the human summary
// printed by `vit-infer info`, and the table of standard timm ViT architecture names
// (vit_{tiny,small,base,large,huge}_patch{8,14,16,32}_{224,384}[.tag]).
#include "model/config.h"

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>

#include "core/error.h"
#include "model/limits.h"

namespace vit {

void ViTConfig::check_run_size(int h, int w, int max_side, const char* who) const {
  if (h == image_h && w == image_w) return;
  const std::string size = std::to_string(h) + "x" + std::to_string(w);
  const std::string own = std::to_string(image_h) + "x" + std::to_string(image_w);
  auto bad = [&](const std::string& why) {
    fail(ErrorCode::kInvalidArgument, std::string(who) + ": run size " + size + " " + why);
  };
  if (max_side <= 0) bad("differs from the model's size " + own + " and this session runs that size only (its max_image_size is 0)");
  if (h < patch || w < patch) bad("is smaller than the patch size " + std::to_string(patch));
  if (h % patch != 0 || w % patch != 0)
    bad("is not a multiple of the patch size " + std::to_string(patch) + " (the model's own " + own +
        " is the only size that may leave pixels unread)");
  if (h > max_side || w > max_side)
    bad("exceeds the session's maximum image size " + std::to_string(max_side));
  if (static_cast<int64_t>(h / patch) * (w / patch) > limits::kMaxPatches)
    bad("has more than " + std::to_string(limits::kMaxPatches) + " patches");
}

std::string ViTConfig::family() const {
  const auto has = [&](const char* s) { return architecture.find(s) != std::string::npos; };
  const auto hf = [&](const char* s) { return hf_class.rfind(s, 0) == 0; };  // HF class name prefix
  if (dist_token) return dist_head ? "DeiT distilled" : "DeiT";
  if (!layout_family.empty()) return layout_family;
  if (has("siglip")) return "SigLIP tower";
  if (has("clip") || hf("CLIP") || (pre_norm && act == Activation::kQuickGelu)) return "CLIP tower";
  if (has("dinov2") || hf("Dinov2")) return "DINOv2";
  if (has("aimv2")) return "AIMv2";
  if (has("deit")) return "DeiT";
  if (reg_tokens > 0) return "ViT with registers";
  return "ViT";
}

std::vector<std::string> ViTConfig::variant_features() const {
  std::vector<std::string> f = graph_only_features();
  if (pool == GlobalPool::kMap) f.push_back("attention-pool head (global_pool 'map')");
  if (!class_token) f.push_back("no class token");
  if (dist_token) {
    f.push_back(dist_head ? "distillation token (mean of head and head_dist)" : "distillation token (cls head only)");
  }
  if (proj_dim > 0) f.push_back("visual projection to " + std::to_string(proj_dim) + " (embeddings = image_embeds)");
  if (head_cls_mean) f.push_back("classifier over concat(cls, mean of the patch tokens)");
  if (reg_tokens > 0) f.push_back(std::to_string(reg_tokens) + " register token(s)");
  if (no_embed_class && prefix_tokens() > 0) f.push_back("no_embed_class (position table without prefix rows)");
  if (pre_norm) f.push_back("pre-norm (norm_pre)");
  if (!patch_bias) f.push_back("no patch-embed bias");
  if (glu) f.push_back("SwiGLU MLP (gated, " + std::to_string(mlp_hidden) + " wide)");
  if (rms_norm) f.push_back("RMSNorm");
  if (embed_norm) f.push_back("patch-embedding norm");
  if (!proj_bias) f.push_back("no proj / MLP bias");
  if (act != Activation::kGeluErf) f.push_back(activation_title(act));
  if (pool == GlobalPool::kAvgMax || pool == GlobalPool::kMax) f.push_back(std::string("pool ") + global_pool_name(pool));
  if (layer_scale) f.push_back("LayerScale");
  if (res_post) f.push_back("residual-post norms (ResPostBlock)");
  if (pool_include_prefix && prefix_tokens() > 0 && pool != GlobalPool::kToken) f.push_back("pool over the prefix tokens too");
  if (!qkv_bias) f.push_back("no qkv bias");
  if (!final_norm) f.push_back("no final norm");
  if (fc_norm) f.push_back("fc_norm");
  return f;
}

std::vector<std::string> ViTConfig::graph_only_features() const {
  // Every family feature of issue 12 so far runs on the CUDA engine too (registers, no_embed_class,
  // no class token, avg / max / avgmax pooling, the attention-pool head, pre-norm, no patch bias,
  // the GELUs and SiLU, the SwiGLU MLP, DeiT's two heads, LayerScale, CLIP's projection, DINOv2's
  // cls + patch-mean classifier): a new graph feature whose CUDA kernels do not exist yet goes here
  // until they do, and the CUDA engine refuses it by name.
  return {};
}
int64_t ViTConfig::param_count() const noexcept {
  const int64_t D = hidden, I = mlp_hidden, C = num_classes;
  const int64_t kpp = static_cast<int64_t>(in_chans) * patch * patch;
  const int64_t nb = rms_norm ? D : 2 * D;      // one norm's parameters (RMSNorm: no bias)
  int64_t n = D * kpp + (patch_bias ? D : 0) + (embed_norm ? nb : 0);  // patch embedding
  n += static_cast<int64_t>(prefix_tokens()) * D;  // cls, dist, register tokens
  n += static_cast<int64_t>(pos_rows(num_patches())) * D;  // position table at the run size
  if (pre_norm) n += nb;
  const int64_t pb = proj_bias ? 1 : 0;
  int64_t block = 2 * nb;             // norm1, norm2
  block += 3 * D * D + (qkv_bias ? 3 * D : 0);
  block += D * D + pb * D;            // proj
  block += (glu ? 2 : 1) * (I * D + pb * I) + D * I + pb * D;  // fc1 (gate and value halves when gated), fc2
  if (layer_scale) block += 2 * D;    // ls1, ls2 gammas
  n += depth * block;
  if (final_norm) n += nb;
  if (fc_norm) n += nb;
  if (pool == GlobalPool::kMap) {
    const int64_t L = map_latent_len, M = map_mlp_hidden;
    const int64_t lin = map_query_proj ? 3 : 2;            // q (unless the latent is the query), k, v
    n += L * D + lin * D * D + (map_qkv_bias ? lin * D : 0);  // latent, q, kv
    n += D * D + D + (M > 0 ? 2 * D + M * D + M + D * M + D : 0);  // proj, norm, mlp
  }
  if (C > 0) n += (dist_token && dist_head ? 2 : 1) * (C * D + C);
  n += static_cast<int64_t>(proj_dim) * D;
  if (head_cls_mean) n += C * D;  // the patch-mean half of the classifier
  return n;
}

double ViTConfig::flops_per_image() const noexcept {
  // Multiply-accumulates of every matmul; FLOPs = 2 * MACs. LayerNorm, softmax, GELU and
  // the adds are O(T*D) and left out, as the published GMAC tables do.
  const double D = hidden, I = mlp_hidden, T = tokens(), N = num_patches();
  const double kpp = static_cast<double>(in_chans) * patch * patch;
  double macs = N * D * kpp;                // patch embedding
  double block = T * D * 3.0 * D;           // qkv
  block += 2.0 * T * T * D;                 // QK^T and PV over all heads
  block += T * D * D;                       // proj
  block += (glu ? 3.0 : 2.0) * T * D * I;   // fc1 (2I wide when gated), fc2
  macs += depth * block;
  if (pool == GlobalPool::kMap) {
    // kv over every token, then per latent row: attention over the patch rows, proj, MLP (the
    // latent's q projection is image-independent: computed once per session).
    const double L = map_latent_len;
    macs += T * D * 2.0 * D + 2.0 * L * N * D + L * (D * D + 2.0 * D * map_mlp_hidden);
  }
  macs += (dist_token && dist_head ? 2.0 : 1.0) * num_classes * D;  // head (and head_dist) on the pooled token
  macs += static_cast<double>(proj_dim) * D;                        // visual projection
  if (head_cls_mean) macs += static_cast<double>(num_classes) * D;  // the classifier's patch-mean half
  return 2.0 * macs;
}

std::string ViTConfig::describe() const {
  std::ostringstream s;
  char buf[64];
  s << "architecture : "
    << (!architecture.empty() ? architecture : !hf_class.empty() ? hf_class : std::string("(custom)")) << "  ["
    << layout << " layout]\n";
  s << "family       : " << family();
  const std::vector<std::string> feats = variant_features();
  for (size_t i = 0; i < feats.size(); ++i) s << (i ? ", " : " (") << feats[i];
  s << (feats.empty() ? "" : ")") << "\n";
  s << "input        : " << in_chans << " x " << image_h << " x " << image_w << ", patch " << patch << " -> "
    << grid_h() << "x" << grid_w() << " grid, " << tokens() << " tokens";
  if (prefix_tokens() != 1) s << " (" << prefix_tokens() << " prefix)";
  if (ckpt_grid_h != grid_h() || ckpt_grid_w != grid_w()) {
    s << " (pos-embed resampled from " << ckpt_grid_h << "x" << ckpt_grid_w << ")";
  }
  s << "\n";
  s << "encoder      : width " << hidden << ", depth " << depth << ", heads " << heads << " (head dim "
    << (heads > 0 ? hidden / heads : 0) << "), mlp " << mlp_hidden << (qkv_bias ? "" : ", no qkv bias")
    << (layer_scale ? ", LayerScale" : "") << "\n";
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(ln_eps));
  s << "norm/pool    : " << (rms_norm ? "RMSNorm" : "LayerNorm") << " eps " << buf << ", " << activation_title(act) << ", pool " << global_pool_name(pool)
    << (final_norm ? ", final norm" : "") << (fc_norm ? ", fc_norm" : "");
  if (pool == GlobalPool::kMap) {
    s << " (attention pool: " << map_latent_len << " latent row(s), " << heads << " heads, ";
    if (map_mlp_hidden > 0) s << "mlp " << map_mlp_hidden;
    else s << "no mlp";
    s << (map_qkv_bias ? "" : ", no q/kv bias") << ")";
  }
  s << "\n";
  if (proj_dim > 0) {
    s << "embeddings   : " << proj_dim << " (the projected image embedding, HF image_embeds = visual_projection(pooled))\n";
  }
  s << "classes      : " << num_classes;
  if (!labels.empty()) s << " (labels: " << labels.front() << ", ...)";
  s << "\n";
  std::snprintf(buf, sizeof buf, "%.2fM params, %.2f GFLOP/image", param_count() / 1e6, flops_per_image() / 1e9);
  s << "size         : " << buf << "\n";
  const PreprocessConfig& p = preprocess;
  s << "preprocess   : ";
  if (p.resize == PreprocessConfig::Resize::kDirect) {
    if (p.resize_h > 0 && (p.resize_h != p.input_h || p.resize_w != p.input_w))
      s << "resize to " << p.resize_h << "x" << p.resize_w << ", center crop ";
    else
      s << "resize to ";
    s << p.input_h << "x" << p.input_w;
  } else if (p.resize == PreprocessConfig::Resize::kShortestEdgeCrop) {
    s << "resize shorter side to " << p.shortest_edge;
    if (p.longest_edge > 0) s << " (longer side at most " << p.longest_edge << ")";
    s << ", center crop " << p.input_h << "x" << p.input_w;
  } else if (p.resize == PreprocessConfig::Resize::kCropOnly) {
    s << "no resize, center crop " << p.input_h << "x" << p.input_w;
  } else {
    std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(p.crop_pct));
    s << "resize shorter side (crop_pct " << buf << "), center crop " << p.input_h << "x" << p.input_w;
  }
  std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(p.rescale));
  s << " (" << p.interpolation << "), x*" << buf;
  if (p.alpha_on_white) s << ", transparency onto white";
  s << ", mean (" << p.mean[0] << ", " << p.mean[1] << ", " << p.mean[2] << "), std (" << p.std[0] << ", "
    << p.std[1] << ", " << p.std[2] << ")\n";
  return s.str();
}

PreprocessConfig PreprocessConfig::at_output_size(int h, int w) const {
  PreprocessConfig p = *this;
  if (h == input_h && w == input_w) return p;
  auto scaled = [](int v, int to, int from) {
    return v > 0 ? static_cast<int>(std::lround(static_cast<double>(v) * to / from)) : v;
  };
  if (resize == Resize::kShortestEdgeCrop) {
    p.shortest_edge = scaled(shortest_edge, h, input_h);
    p.longest_edge = scaled(longest_edge, h, input_h);
  } else if (resize == Resize::kDirect && resize_h > 0) {
    p.resize_h = scaled(resize_h, h, input_h);
    p.resize_w = scaled(resize_w, w, input_w);
  }
  p.input_h = h;
  p.input_w = w;
  return p;
}

std::string timm_entrypoint_name(const std::string& arch_in) {
  std::string arch = arch_in;
  if (arch.rfind("timm/", 0) == 0) arch = arch.substr(5);  // a hub id "timm/<name>.<tag>"
  const size_t dot = arch.find('.');
  if (dot == std::string::npos) return arch;
  if (dot + 1 == arch.size()) return std::string();  // "name." with an empty tag
  return arch.substr(0, dot);
}

bool config_from_arch_name(const std::string& arch_in, ViTConfig* cfg) {
  const std::string arch = timm_entrypoint_name(arch_in);
  if (arch.empty()) return false;
  // "vit_<size>_patch<P>_<res>", matched against the finite table by plain comparison (the
  // name comes from config.json; no regex runs on untrusted text).
  struct Size {
    const char* name;
    int width, depth, heads;
  };
  static const Size sizes[] = {{"tiny", 192, 12, 3},
                               {"small", 384, 12, 6},
                               {"base", 768, 12, 12},
                               {"large", 1024, 24, 16},
                               {"huge", 1280, 32, 16}};
  const Size* size = nullptr;
  int patch = 0, res = 0;
  for (const Size& s : sizes) {
    for (int p : {8, 14, 16, 32}) {
      for (int r : {224, 384}) {
        if (arch == "vit_" + std::string(s.name) + "_patch" + std::to_string(p) + "_" + std::to_string(r)) {
          size = &s;
          patch = p;
          res = r;
        }
      }
    }
  }
  if (size == nullptr) return false;
  if (res % patch != 0) return false;  // e.g. patch14 at 384: no such model
  if (cfg) {
    cfg->hidden = size->width;
    cfg->depth = size->depth;
    cfg->heads = size->heads;
    cfg->mlp_hidden = 4 * size->width;
    cfg->patch = patch;
    cfg->image_h = cfg->image_w = res;
    cfg->ckpt_grid_h = cfg->ckpt_grid_w = res / patch;
    cfg->preprocess.input_h = cfg->preprocess.input_w = res;
    cfg->architecture = arch_in;
  }
  return true;
}

}  // namespace vit
