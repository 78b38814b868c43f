// vit-infer: the one internal model every checkpoint layout maps onto. Weights are host
// fp32, row-major, in timm's orientation: every Linear is [out, in] (y = x W^T + b).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace vit {

struct BlockWeights {
  Tensor ln1_w, ln1_b;   // [D]
  Tensor qkv_w;          // [3D, D]  rows: q | k | v, each head-major
  Tensor qkv_b;          // [3D]     (zeros when the checkpoint has no qkv bias)
  Tensor proj_w, proj_b; // [D, D], [D]
  Tensor ln2_w, ln2_b;   // [D]
  Tensor fc1_w, fc1_b;   // [I, D], [I]
  Tensor fc2_w, fc2_b;   // [D, I], [D]
  Tensor ls1, ls2;       // [D] LayerScale gammas (timm ls1/ls2.gamma); empty unless cfg.layer_scale
};

// The attention-pool head (cfg.pool == kMap), timm AttentionPoolLatent orientation. HF's
// nn.MultiheadAttention in_proj [3D, D] splits into q (rows 0..D) and kv (rows D..3D: k | v).
struct AttnPoolWeights {
  Tensor latent;           // [L, D] latent query rows (timm attn_pool.latent, HF probe)
  Tensor q_w, q_b;         // [D, D], [D]   (bias zeros without map_qkv_bias)
  Tensor kv_w, kv_b;       // [2D, D], [2D] rows k | v, each head-major
  Tensor proj_w, proj_b;   // [D, D], [D]
  Tensor norm_w, norm_b;   // [D]
  Tensor fc1_w, fc1_b;     // [M, D], [M]
  Tensor fc2_w, fc2_b;     // [D, M], [D]
};

struct ViTWeights {
  Tensor patch_w;  // [D, C*P*P]  (conv weight OIHW flattened: c, py, px)
  Tensor patch_b;  // [D]
  Tensor patch_norm_w, patch_norm_b;  // [D], empty unless cfg.embed_norm (RMSNorm: bias zeros)
  Tensor cls;      // [D]; empty without a class token
  Tensor dist;     // [D]; DeiT distilled only
  Tensor reg;      // [reg_tokens, D]; empty without registers
  Tensor prefix;   // [prefix_tokens, D]: cls, dist, reg rows concatenated; empty for cls alone
  Tensor pos;      // [pos_rows, D] (prefix rows first unless no_embed_class), resampled to the run size
  // The checkpoint's own table at cfg.ckpt_grid, kept only where the loader resampled it with HF's
  // rule: HF's interpolate_pos_encoding resamples the stored table on every forward, so other run
  // sizes start from it (timm's dynamic_img_size resamples the model's table, `pos`).
  Tensor pos_ckpt;
  Tensor norm_pre_w, norm_pre_b;  // [D], empty unless cfg.pre_norm
  std::vector<BlockWeights> blocks;
  Tensor norm_w, norm_b;        // [D], empty unless cfg.final_norm
  Tensor fc_norm_w, fc_norm_b;  // [D], empty unless cfg.fc_norm
  Tensor head_w, head_b;        // [C, D], [C]; empty when num_classes == 0
  Tensor head_dist_w, head_dist_b;  // [C, D], [C]; DeiT distilled only
  Tensor proj_w;                    // [proj_dim, D], no bias; empty unless cfg.proj_dim > 0
  Tensor head_mean_w;               // [C, D], no bias: the patch-mean half of the classifier (cfg.head_cls_mean)
  AttnPoolWeights attn_pool;        // empty unless cfg.pool == kMap
};

struct Model {
  ViTConfig cfg;
  ViTWeights w;
  std::string source_path;            // the weights file actually read
  std::vector<std::string> warnings;  // e.g. NaN/Inf weights, naming the tensor
};

// Loads a model from a weights file (.safetensors / .npz) or a directory holding one
// plus config.json (and preprocessor_config.json). Throws vit::Error naming the file and
// the problem: missing/extra tensors, shapes that disagree with the config, unsupported
// variants (register tokens, distillation, no_embed_class, ...).
std::shared_ptr<const Model> load_model(const std::string& path, const ConfigOverrides& ov = {});

// Bicubic resampling of the position-embedding grid exactly as `rule` says.
// pos: [prefix + gh*gw, D] (prefix slots first, kept as they are) -> [prefix + nh*nw, D].
Tensor resample_pos_embed(const Tensor& pos, int gh, int gw, int nh, int nw, int prefix = 1,
                          PosResample rule = PosResample::kTimm);

// The position table of `m` at a run grid of gh x gw patches, as the model's framework resamples
// it per forward (cfg.pos_rule): timm's dynamic_img_size from the model's table (`pos`, at the
// model's grid), HF's interpolate_pos_encoding from the checkpoint's. At the model's own grid,
// `pos` itself (a copy).
Tensor pos_embed_at(const Model& m, int gh, int gw);

}  // namespace vit
