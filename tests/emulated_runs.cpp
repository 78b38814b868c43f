// vit-infer tests: the emulator's whole-model runs, one per family and precision (see
// emulated_runs.h for the rule). Each row: the family, its set, EVERY fixture of it in that set
// (the first three are the ones the emulator runs, fp32 / fp16 / bf16 in that order; the rest run
// on a GPU and in the CPU golden tests), and whether the sanitizer build runs it too.
#include "emulated_runs.h"

#include "golden_cases.h"

namespace vit::test {

const std::vector<EmulatedFamily>& emulated_families() {
  static const std::vector<EmulatedFamily> t = {
      // The plain ViT in every layout (timm, HF ViTForImageClassification / ViTModel, JAX npz), with
      // token and avg pooling, head dims 24 / 64 / 80, LayerScale, resampled tables, f16 / bf16
      // weights, 197 tokens. Also the CLI's three emulated runs (test_cli_cuda).
      {"ViT (timm / HF / JAX layouts)", kGoldenSet,
       {"timm_token", "hf_cls", "jax_npz", "timm_avg", "timm_hd24", "timm_hd80", "timm_layerscale", "hf_bare",
        "resample", "resample_down", "f16", "bf16", "timm_197"},
       true},
      {"registers (reg_tokens, no_embed_class)", kFamilySet, {"fam_reg_noembedcls", "fam_reg4_gap_ls", "fam_reg_avg"},
       false},
      {"DINOv2 (LayerScale, registers, no_embed_class; HF Dinov2*, the cls + patch-mean classifier)", kFamilySet,
       {"fam_dinov2_reg4", "hf_dinov2_cls", "hf_dinov2_reg", "hf_dinov2", "hf_dinov2_48", "hf_dinov2_reg_24",
        "hf_dinov2_reg_cls"},
       true},
      {"SwiGLU MLP (DINOv2 giants)", kFamilySet, {"fam_swiglu_dinov2", "hf_dinov2_swiglu", "fam_swiglu_reg4"}, false},
      {"no class token (avg / max / avgmax pooling, SigLIP gap)", kFamilySet,
       {"fam_gap_nocls", "fam_max", "fam_avgmax_tanh", "fam_siglip_gap"},
       false},
      {"CLIP towers (norm_pre, no patch bias, quick-GELU, projection; HF CLIP*, open_clip)", kFamilySet,
       {"fam_clip_quickgelu", "hf_clip_proj", "oc_openai", "fam_clip", "hf_clip", "hf_clip_model", "hf_clip_proj_56",
        "oc_avg_ls"},
       false},
      {"attention-pool head (SigLIP map towers, latent_len, registers + map; HF Siglip*)", kFamilySet,
       {"fam_siglip_map", "hf_siglip_vision", "fam_map_latent2", "fam_reg4_map", "fam_siglip2_map_tanh",
        "hf_siglip_vision_56", "hf_siglip_model"},
       false},
      {"AIMv2 (RMSNorm, SwiGLU, attention-pool head with the cls query)", kFamilySet,
       {"fam_aimv2", "hf_aimv2_vision", "hf_aimv2_vision_bias"},
       false},
      {"DeiT (distillation token: two heads, or the cls head only)", kFamilySet,
       {"fam_deit_distilled", "hf_deit_cls", "hf_deit_teacher", "hf_deit_bare", "hf_deit_teacher_48"},
       true},
      {"ResPostBlock (norms after the branches) and pool_include_prefix (map / avg over the prefix rows too)",
       kFamilySet, {"fam_respost", "fam_prefix_map", "fam_prefix_avg"}, false},
      {"plain-ViT variants (tanh-GELU / no qkv bias / no final norm; a grid that leaves pixels unread)", kFamilySet,
       {"fam_nonorm", "fam_patch_floor"},
       false},
      // Per-run sizes: the CUDA engine's size states, weight segments and buckets (the position
      // tables are resampled on the host by build_vit, the same code for every backend: the CPU
      // Dynamic/* tests check each fixture's framework rule).
      {"per-run sizes (timm dynamic_img_size, HF interpolate_pos_encoding)", kDynamicSet,
       {"dyn_vit", "dyn_hf_dinov2_reg", "dyn_siglip_map", "dyn_reg4_gap", "dyn_hf_dinov2", "dyn_hf_siglip",
        "dyn_hf_vit"},
       false},
  };
  return t;
}

std::string GoldenRun::test_name() const {
  return precisions.size() == 1 ? name + "_" + precision_name(precisions[0]) : name;
}

bool sanitizer_build() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

std::vector<GoldenRun> golden_runs(const std::string& set, bool emulated) {
  std::vector<GoldenRun> out;
  if (!emulated) {
    for (const std::string& name : list_golden_cases(set))
      out.push_back({set, name, std::vector<Precision>(std::begin(kCudaPrecisions), std::end(kCudaPrecisions)), ""});
    return out;
  }
  for (const EmulatedFamily& f : emulated_families()) {
    if (f.set != set || f.cases.empty() || (sanitizer_build() && !f.asan)) continue;
    size_t i = 0;
    for (Precision p : kCudaPrecisions) out.push_back({set, f.cases[i++ % f.cases.size()], {p}, f.name});
  }
  return out;
}

}  // namespace vit::test
