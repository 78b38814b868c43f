// vit-infer: the model configuration every loader resolves to, and where each field
// comes from (HF config.json, timm config.json, timm architecture names, tensor shapes,
// command-line overrides). Resolution (src/model/loader.cpp): the architecture name
// (--arch, else config.json's `architecture`) only fills what config.json leaves unsaid;
// tensor shapes then fix width/depth/mlp/patch/classes/channels; overrides win last.
// Heads: override > config > arch name > JAX kernel shape > standard width (192..1280).
// Image size: override > config > arch name > stored pos grid * patch.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "core/activation.h"  // Activation: the table of activations
#include "core/pool.h"        // GlobalPool: the table of poolings

namespace vit {

// How a position table is resampled: timm's resample_abs_pos_embed (F.interpolate bicubic,
// antialias=True, align_corners=False; also HF Dinov2WithRegisters' interpolate_pos_encoding), or
// HF's interpolate_pos_encoding of DeiT / CLIP / DINOv2 / SigLIP: the same without antialias, i.e.
// PyTorch's upsample_bicubic2d with a = -0.75.
enum class PosResample { kTimm, kHF };


// How an image becomes the model input (timm pretrained_cfg / HF preprocessor_config).
struct PreprocessConfig {
  // kShortestThenCrop: timm (shorter side to floor(size / crop_pct), torchvision centre crop);
  // kDirect: resize straight to resize_h x resize_w (HF size {height, width}, JAX / open_clip squash),
  // then, when that is not the input size, HF's centre crop to it (DeiTImageProcessor: 256, crop 224);
  // kShortestEdgeCrop: HF CLIPImageProcessor / BitImageProcessor (DINOv2): shorter side to
  // shortest_edge (the longer capped at longest_edge when > 0: transformers'
  // get_size_with_aspect_ratio), centre crop to the input size with HF's offsets ((size - crop) // 2);
  // kCropOnly: HF do_resize=false: HF's centre crop (zero padding) of the image as it is.
  enum class Resize { kShortestThenCrop, kDirect, kShortestEdgeCrop, kCropOnly };
  Resize resize = Resize::kShortestThenCrop;
  int shortest_edge = 0;  // kShortestEdgeCrop (crop_pct is unused there; the C API reports input_h / shortest_edge)
  int longest_edge = 0;   // kShortestEdgeCrop: 0, or the cap on the longer side
  int resize_h = 0, resize_w = 0;  // kDirect: 0 = the input size (no crop)
  // PIL filter name: "bicubic" | "bilinear" | "nearest" | "box" | "hamming" | "lanczos"
  std::string interpolation = "bicubic";
  float crop_pct = 0.9f;
  int input_h = 224, input_w = 224;
  std::array<float, 3> mean{0.5f, 0.5f, 0.5f};
  std::array<float, 3> std{0.5f, 0.5f, 0.5f};
  double rescale = 1.0 / 255.0;  // HF rescale_factor as written (x in fp64 * factor, then fp32)
  // HF do_convert_rgb (transformers' convert_to_rgb): transparency (an alpha channel, a PNG tRNS)
  // composited onto white with Pillow's alpha_composite; false: dropped, as Pillow's convert("RGB").
  bool alpha_on_white = false;
  // Another output size h x w for the same rule (--image-size, a run at another size): the resize
  // keeps its share of the crop (DINOv2's 256 for a 224 crop gives 512 for 448).
  PreprocessConfig at_output_size(int h, int w) const;
};

struct ViTConfig {
  // Architecture.
  int image_h = 224, image_w = 224;  // the size the engine runs at
  int patch = 16;
  int in_chans = 3;
  int hidden = 768;       // D
  int depth = 12;
  int heads = 12;
  int mlp_hidden = 3072;  // I
  int num_classes = 1000; // 0: no classifier (bare HF ViTModel / timm num_classes=0)
  float ln_eps = 1e-6f;
  GlobalPool pool = GlobalPool::kToken;
  bool final_norm = true;  // LayerNorm over all tokens before pooling (timm `norm`)
  bool fc_norm = false;    // LayerNorm after pooling (timm `fc_norm`, avg pooling)
  bool qkv_bias = true;
  Activation act = Activation::kGeluErf;
  // Gated MLP (SwiGLU: timm mlp_layer=SwiGLUPacked, the DINOv2 giants; HF DINOv2
  // use_swiglu_ffn): fc1 is [2I, D], its output's first half the gate, y = fc2(act(gate) * value);
  // mlp_hidden (I) is fc2's input width. The loader puts the gate half first whatever the file's order.
  bool glu = false;
  // timm norm_layer=RmsNorm (aimv2): every norm is RMSNorm (weight only); the biases read as zeros.
  bool rms_norm = false;
  // timm embed_norm_layer (aimv2): a norm on the patch embeddings (after the conv and its bias,
  // before the position table), patch_embed.norm.
  bool embed_norm = false;
  // timm proj_bias=False (aimv2): attn.proj and the MLP Linears have no bias (read as zeros).
  bool proj_bias = true;
  // Prefix tokens, in timm's concatenation order: cls (class_token), dist (DeiT distilled),
  // then reg_tokens registers; the patch rows follow them.
  bool class_token = true;
  bool dist_token = false;  // DeiT distilled: head_dist on the dist row; output = mean of both heads
  // With dist_token: true = the dist row feeds head_dist and both outputs are the mean of the
  // cls and dist paths (timm distilled, HF DeiTForImageClassificationWithTeacher); false = the
  // dist token only takes part in attention and the cls row alone is pooled (HF
  // DeiTForImageClassification / DeiTModel).
  bool dist_head = true;
  int reg_tokens = 0;
  bool no_embed_class = false;  // the position table has no prefix rows (added before the concat)
  bool pre_norm = false;        // LayerNorm norm_pre after the embedding (CLIP towers)
  bool patch_bias = true;       // the patch conv has a bias (CLIP's has none)
  bool layer_scale = false;  // timm init_values: each block's branches scaled by ls1 / ls2.gamma
  // timm block_fn=ResPostBlock: each block's norm after its branch, x + norm1(attn(x)), then
  // x + norm2(mlp(x)) (the same tensor names as the pre-norm Block; only config.json tells).
  bool res_post = false;
  // timm pool_include_prefix: the avg / max / avgmax pool and the attention-pool head read every
  // token, the prefix rows (cls, registers) too, not only the patch rows.
  bool pool_include_prefix = false;
  // > 0: the pooled row is projected by a bias-free [proj_dim, D] Linear and that is the
  // embeddings output (HF CLIPVisionModelWithProjection: image_embeds = visual_projection(pooled)).
  int proj_dim = 0;
  // HF CLIP vision towers: post_layernorm normalises the pooled row only, so their
  // last_hidden_state (the features output) is the tokens before it; timm's CLIP towers and every
  // other model return the tokens after the final norm (forward_features).
  bool features_before_norm = false;
  // HF Dinov2ForImageClassification: the classifier reads concat(normed cls row, mean of the
  // normed patch rows), run as the two halves of its [C, 2D] weight: head(cls) + head_mean(mean).
  bool head_cls_mean = false;
  // The attention-pool head (pool == kMap): latent query rows (timm attn_pool.latent [1, L, D],
  // HF probe [1, 1, D]; row 0 is the pooled output), the head's MLP width (0: no norm and MLP
  // after proj, HF Aimv2AttentionPoolingHead), and whether its q / kv Linears have biases.
  int map_latent_len = 0;
  int map_mlp_hidden = 0;
  bool map_qkv_bias = true;
  // The head projects its latent with a q Linear (timm, SigLIP); HF Aimv2AttentionPoolingHead
  // uses its cls_token as the query as it is (the loader gives it an identity q).
  bool map_query_proj = true;

  // Provenance.
  // The checkpoint layout's name (a row of the layout table, model/layout.h): "timm", "hf", "jax",
  // "hf-siglip", "hf-aimv2", ...
  std::string layout = "timm";
  // The family the layout itself implies ("SigLIP tower", "AIMv2"), for family(); empty where the
  // layout spans families (timm, HF ViT / DeiT / DINOv2 / CLIP).
  std::string layout_family;
  std::string architecture;  // e.g. "vit_base_patch16_224" when known
  std::string hf_class;      // HF config.json architectures[0], e.g. "Dinov2Model"; empty if unsaid
  int ckpt_grid_h = 14, ckpt_grid_w = 14;  // patch grid of the stored position embeddings
  PosResample pos_rule = PosResample::kTimm;  // how this family resamples its table (other run sizes)

  std::vector<std::string> labels;  // id2label / label_names; may be empty
  PreprocessConfig preprocess;

  int head_dim() const noexcept { return hidden / heads; }
  // Width of the embeddings output: the projection's when there is one, else D.
  int embed_dim() const noexcept { return proj_dim > 0 ? proj_dim : hidden; }
  // This config at another run size (h x w pixels): the same model, its grid and token count at
  // that size. No check here: check_run_size says whether the size can be run.
  ViTConfig at_size(int h, int w) const {
    ViTConfig c = *this;
    c.image_h = h;
    c.image_w = w;
    return c;
  }
  // Throws vit::Error(kInvalidArgument) naming the size unless h x w can be a run size of this
  // model: its own size, or both sides multiples of the patch (timm's dynamic_img_size asserts
  // that too) within 1..max_side pixels. `who` prefixes the message.
  void check_run_size(int h, int w, int max_side, const char* who) const;
  int grid_h() const noexcept { return image_h / patch; }
  int grid_w() const noexcept { return image_w / patch; }
  int num_patches() const noexcept { return grid_h() * grid_w(); }
  int prefix_tokens() const noexcept { return int{class_token} + int{dist_token} + reg_tokens; }
  int tokens() const noexcept { return num_patches() + prefix_tokens(); }
  // Rows of the position table at a grid of `patches` patches.
  int pos_rows(int patches) const noexcept { return patches + (no_embed_class ? 0 : prefix_tokens()); }
  // The family ("ViT", "DeiT distilled", "CLIP tower", ...) and every feature that differs from
  // the plain timm ViT (e.g. "4 register tokens", "quick-GELU"), for `vit-infer info`.
  std::string family() const;
  std::vector<std::string> variant_features() const;
  // The variant features only the CPU backends run (the CUDA engine refuses a model naming them,
  // by family and feature); empty for the plain ViT and every family the CUDA engine runs.
  std::vector<std::string> graph_only_features() const;
  int64_t param_count() const noexcept;
  double flops_per_image() const noexcept;  // 2 * MACs, matmuls + attention

  std::string describe() const;  // multi-line, for `vit-infer info`
};

// Command-line / API overrides; unset fields keep what the files say.
struct ConfigOverrides {
  std::optional<std::string> architecture;  // a timm architecture name
  std::optional<int> image_size;            // run resolution (square); resamples pos-embed
  std::optional<int> heads;
  std::optional<float> ln_eps;
  std::optional<GlobalPool> pool;
  std::optional<std::string> labels_file;   // one label per line
};

// The standard timm ViT architecture names vit_{tiny,small,base,large,huge}_patch{8,14,16,32}
// _{224,384} (image size a multiple of the patch), optionally "timm/"-prefixed and with a
// pretrained tag after '.': fills hidden/depth/heads/mlp/patch/image size (and the matching
// ckpt grid and preprocess input size) and sets `architecture` to the name as given.
// Returns false, leaving *cfg untouched, if the name is not known. cfg may be null.
bool config_from_arch_name(const std::string& arch, ViTConfig* cfg);
// A timm architecture as named in configs and on the hub ("timm/<name>.<pretrained tag>") ->
// "<name>", the entrypoint; "" for "<name>." (an empty tag).
std::string timm_entrypoint_name(const std::string& arch);

}  // namespace vit
