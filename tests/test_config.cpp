// vit-infer tests: ViTConfig helpers (parameter / FLOP counts against published numbers,
// architecture-name table, describe) and the JSON config parsers (HF config.json,
// preprocessor_config.json, timm hub config.json) in isolation.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"
#include "model/config_sources.h"
#include "model/layout.h"
#include "test_util.h"

namespace vit {
namespace {

using nlohmann::json;

template <class F>
void expect_error(F&& f, ErrorCode code, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected " << error_code_name(code) << " containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << e.what();
  }
}

ViTConfig arch(const std::string& name) {
  ViTConfig c;
  c.hidden = c.depth = c.heads = c.mlp_hidden = c.patch = -1;  // poison: the table must set them
  EXPECT_TRUE(config_from_arch_name(name, &c)) << name;
  return c;
}

TEST(Config, Names) {
  EXPECT_STREQ(global_pool_name(GlobalPool::kToken), "token");
  EXPECT_STREQ(global_pool_name(GlobalPool::kAvg), "avg");
}

// Every row of the layout table is complete, and the HF rows answer to distinct model types.
TEST(Config, LayoutTableRowsComplete) {
  std::set<std::string> model_types;
  size_t hf_rows = 0;
  for (const detail::LayoutRow* r : detail::layouts()) {
    SCOPED_TRACE(r->name);
    ASSERT_NE(r->name, nullptr);
    EXPECT_TRUE(r->detect && r->names && r->resolve && r->preprocess);
    EXPECT_GT(r->default_eps, 0.0f);
    const detail::LayoutNames n = r->names(detail::Match{});
    EXPECT_FALSE(n.patch.w.empty());
    EXPECT_FALSE(n.pos.empty());
    EXPECT_FALSE(n.block_prefix.empty());
    EXPECT_FALSE(n.block.fc2.w.empty());
    if (!r->hf_family) continue;
    ++hf_rows;
    for (const std::string& mt : r->model_types) EXPECT_TRUE(model_types.insert(mt).second) << mt;
  }
  EXPECT_EQ(hf_rows, 4u);
  EXPECT_EQ(detail::layouts().back(), &detail::kHFViTLayout);  // the HF catch-all comes last
}

// Exact parameter counts: sum(p.numel() for p in timm.create_model(name).parameters()),
// timm 1.0.31. ViT-L/16 is the published 304.33M (rounded).
TEST(Config, ParamCountsMatchTimm) {
  EXPECT_EQ(arch("vit_base_patch16_224").param_count(), 86567656);
  EXPECT_EQ(arch("vit_base_patch16_384").param_count(), 86859496);
  EXPECT_EQ(arch("vit_small_patch16_224").param_count(), 22050664);
  EXPECT_EQ(arch("vit_base_patch32_224").param_count(), 88224232);
  EXPECT_EQ(arch("vit_tiny_patch16_224").param_count(), 5717416);
  EXPECT_NEAR(arch("vit_large_patch16_224").param_count() / 1e6, 304.33, 0.005);
  ViTConfig nohead = arch("vit_base_patch16_224");
  nohead.num_classes = 0;
  EXPECT_EQ(nohead.param_count(), 86567656 - (1000 * 768 + 1000));
}

// FLOPs = 2 x matmul MACs. The published GMACs (vit-reference.md §7) also count small
// non-matmul terms, so allow 1%; a missing term (e.g. attention, ~3.4% for B/16) fails.
TEST(Config, FlopsMatchPublished) {
  const ViTConfig b16 = arch("vit_base_patch16_224");
  EXPECT_EQ(b16.tokens(), 197);
  EXPECT_NEAR(b16.flops_per_image() / 35.2e9, 1.0, 0.005);
  EXPECT_NEAR(arch("vit_base_patch16_384").flops_per_image() / 2e9 / 55.54, 1.0, 0.01);
  EXPECT_NEAR(arch("vit_small_patch16_224").flops_per_image() / 2e9 / 4.61, 1.0, 0.01);
  EXPECT_NEAR(arch("vit_base_patch32_224").flops_per_image() / 2e9 / 4.41, 1.0, 0.01);
  EXPECT_NEAR(arch("vit_large_patch16_224").flops_per_image() / 2e9 / 61.6, 1.0, 0.01);
  EXPECT_NEAR(arch("vit_large_patch16_384").flops_per_image() / 2e9 / 191.2, 1.0, 0.01);
}

TEST(Config, ArchNamesFullFamily) {
  struct S {
    const char* name;
    int width, depth, heads;
  } sizes[] = {{"tiny", 192, 12, 3}, {"small", 384, 12, 6}, {"base", 768, 12, 12}, {"large", 1024, 24, 16},
               {"huge", 1280, 32, 16}};
  for (const S& s : sizes) {
    for (int p : {8, 14, 16, 32}) {
      for (int r : {224, 384}) {
        const std::string name = std::string("vit_") + s.name + "_patch" + std::to_string(p) + "_" + std::to_string(r);
        if (r % p != 0) {  // patch14 @ 384 does not exist
          EXPECT_FALSE(config_from_arch_name(name, nullptr)) << name;
          continue;
        }
        const ViTConfig c = arch(name);
        EXPECT_EQ(c.hidden, s.width) << name;
        EXPECT_EQ(c.depth, s.depth) << name;
        EXPECT_EQ(c.heads, s.heads) << name;
        EXPECT_EQ(c.mlp_hidden, 4 * s.width) << name;
        EXPECT_EQ(c.patch, p) << name;
        EXPECT_EQ(c.image_h, r) << name;
        EXPECT_EQ(c.image_w, r) << name;
        EXPECT_EQ(c.preprocess.input_h, r) << name;
      }
    }
  }
  EXPECT_EQ(arch("vit_huge_patch14_224").head_dim(), 80);
}

TEST(Config, ArchNamesWithTags) {
  const ViTConfig c = arch("vit_base_patch16_224.augreg2_in21k_ft_in1k");
  EXPECT_EQ(c.hidden, 768);
  EXPECT_EQ(c.architecture, "vit_base_patch16_224.augreg2_in21k_ft_in1k");
  EXPECT_EQ(arch("timm/vit_small_patch16_384.augreg_in21k_ft_in1k").image_h, 384);
  EXPECT_EQ(arch("vit_large_patch16_384.orig_in21k_ft_in1k").depth, 24);
}

TEST(Config, ArchNamesRejected) {
  for (const char* bad : {"", "vit", "vit_base", "vit_base_patch16", "vit_medium_patch16_224", "vit_giant_patch14_224",
                          "vit_base_patch16_256", "vit_base_patch15_224", "vit_base_patch16_224_miil",
                          "vit_base_patch16_clip_224", "deit_base_patch16_224", "vit_base_patch16_224.",
                          "vit_base_patch14_384", "vit_base_patch16_rpn_224", "VIT_BASE_PATCH16_224",
                          " vit_base_patch16_224", "vit_base_patch16_224_in21k"}) {
    ViTConfig c;
    const int hidden = c.hidden = 123;
    EXPECT_FALSE(config_from_arch_name(bad, &c)) << "'" << bad << "'";
    EXPECT_EQ(c.hidden, hidden) << "a rejected name must leave the config alone: " << bad;
  }
}

TEST(Config, Describe) {
  ViTConfig c = arch("vit_base_patch16_224");
  c.image_h = c.image_w = 384;
  const std::string d = c.describe();
  for (const char* frag : {"vit_base_patch16_224", "timm", "384", "24x24", "577 tokens", "resampled from 14x14",
                           "width 768", "depth 12", "heads 12", "head dim 64", "mlp 3072", "1e-06", "token",
                           "1000", "bicubic", "0.900"}) {
    EXPECT_NE(d.find(frag), std::string::npos) << "'" << frag << "' not in:\n" << d;
  }
  EXPECT_GE(std::count(d.begin(), d.end(), '\n'), 5);
}

// ---- JSON parsers ------------------------------------------------------------------------

TEST(ConfigJson, HfConfig) {
  json j = {{"model_type", "vit"},
            {"architectures", {"ViTForImageClassification"}},
            {"hidden_size", 48},
            {"num_hidden_layers", 3},
            {"num_attention_heads", 6},
            {"intermediate_size", 100},
            {"hidden_act", "gelu"},
            {"image_size", 40},
            {"patch_size", 8},
            {"num_channels", 3},
            {"qkv_bias", false},
            {"encoder_stride", 16},  // harmless unknown key
            {"id2label", {{"1", "dog"}, {"0", "cat"}, {"2", "emu"}}}};
  auto h = detail::parse_hf_config(j, "cfg.json");
  EXPECT_EQ(h.kind, detail::ConfigKind::kHF);
  EXPECT_EQ(h.hidden, 48);
  EXPECT_EQ(h.depth, 3);
  EXPECT_EQ(h.heads, 6);
  EXPECT_EQ(h.mlp_hidden, 100);
  EXPECT_EQ(h.image_h, 40);
  EXPECT_EQ(h.image_w, 40);
  EXPECT_EQ(h.patch, 8);
  EXPECT_EQ(h.qkv_bias, false);
  EXPECT_FLOAT_EQ(*h.ln_eps, 1e-12f);  // transformers' default when absent
  EXPECT_EQ(h.labels, (std::vector<std::string>{"cat", "dog", "emu"}));

  j["layer_norm_eps"] = 1e-5;
  j["hidden_act"] = "gelu_python";
  j["image_size"] = {32, 48};
  h = detail::parse_hf_config(j, "cfg.json");
  EXPECT_FLOAT_EQ(*h.ln_eps, 1e-5f);
  EXPECT_EQ(h.image_h, 32);
  EXPECT_EQ(h.image_w, 48);

  j["id2label"] = {{"0", "cat"}, {"2", "emu"}};  // a gap: ignored with a warning
  h = detail::parse_hf_config(j, "cfg.json");
  EXPECT_TRUE(h.labels.empty());
  ASSERT_EQ(h.warnings.size(), 1u);
  EXPECT_NE(h.warnings[0].find("id2label"), std::string::npos);
}

TEST(ConfigJson, HfConfigRejects) {
  for (const char* act : {"gelu_fast", "relu", "mish"}) {
    expect_error([&] { detail::parse_hf_config({{"model_type", "vit"}, {"hidden_act", act}}, "c.json"); },
                 ErrorCode::kUnsupported, act);
  }
  // SiLU (AIMv2's gate; ACT2FN "silu" / "swish") is an activation the MLP kernels have.
  for (const char* act : {"silu", "swish"})
    EXPECT_EQ(*detail::parse_hf_config({{"model_type", "vit"}, {"hidden_act", act}}, "c.json").act, Activation::kSilu);
  // Aimv2VisionConfig: its defaults where the file leaves them out.
  const detail::ConfigHints a = detail::parse_hf_config({{"model_type", "aimv2_vision_model"}}, "c.json");
  EXPECT_FLOAT_EQ(*a.ln_eps, 1e-5f);
  EXPECT_EQ(*a.act, Activation::kSilu);
  EXPECT_TRUE(*a.glu && *a.rms_norm && *a.embed_norm);
  EXPECT_FALSE(*a.class_token);
  EXPECT_FALSE(*a.qkv_bias);
  EXPECT_EQ(*a.pool, GlobalPool::kMap);
  EXPECT_EQ(*detail::parse_hf_config({{"model_type", "aimv2_vision_model"}, {"use_head", false}}, "c.json").pool,
            GlobalPool::kAvg);
  // The HF families the loader maps are accepted; a whole CLIPModel / SiglipModel is its vision
  // tower (vision_config; CLIP's projection_dim, default 512; the text tower's names ignored), and
  // malformed without a vision_config; other models are refused by name, as is quick-GELU outside
  // the CLIP tower. DINOv2's SwiGLU FFN is a gated MLP with SiLU, whatever hidden_act says
  // (transformers hard-codes it).
  for (const char* mt : {"deit", "dinov2", "dinov2_with_registers", "clip_vision_model"}) {
    EXPECT_EQ(*detail::parse_hf_config({{"model_type", mt}}, "c.json").hf_model_type, mt);
  }
  expect_error([] { detail::parse_hf_config({{"model_type", "siglip"}}, "c.json"); }, ErrorCode::kFormat,
               "no vision_config");
  expect_error([] { detail::parse_hf_config({{"model_type", "clip"}}, "c.json"); }, ErrorCode::kFormat,
               "a whole CLIPModel");
  {
    const json whole = {{"model_type", "clip"},
                        {"architectures", {"CLIPModel"}},
                        {"projection_dim", 24},
                        {"vision_config", {{"hidden_size", 64}, {"hidden_act", "quick_gelu"}, {"model_type", "clip"}}}};
    const detail::ConfigHints c = detail::parse_hf_config(whole, "c.json");
    EXPECT_EQ(c.hf_model_type, "clip_vision_model");
    EXPECT_EQ(c.hf_class, "CLIPModel");
    EXPECT_EQ(c.proj_dim, 24);
    EXPECT_EQ(c.hidden, 64);
    EXPECT_EQ(c.act, Activation::kQuickGelu);
    EXPECT_EQ(c.ignored_prefixes, (std::vector<std::string>{"text_model.", "text_projection.", "logit_scale"}));
    EXPECT_EQ(detail::parse_hf_config({{"model_type", "clip"}, {"vision_config", json::object()}}, "c.json").proj_dim, 512);
    const detail::ConfigHints sg = detail::parse_hf_config({{"model_type", "siglip"}, {"vision_config", json::object()}}, "c.json");
    EXPECT_EQ(sg.hf_model_type, "siglip_vision_model");
    EXPECT_EQ(sg.hf_class, "SiglipModel");
    EXPECT_FALSE(sg.proj_dim.has_value());
  }
  const json no_head = {{"model_type", "siglip_vision_model"}, {"vision_use_head", false}};
  expect_error([&] { detail::parse_hf_config(no_head, "c.json"); }, ErrorCode::kUnsupported, "vision_use_head");
  expect_error([] { detail::parse_hf_config({{"model_type", "beit"}}, "c.json"); }, ErrorCode::kUnsupported, "beit");
  const detail::ConfigHints sw =
      detail::parse_hf_config({{"model_type", "dinov2"}, {"use_swiglu_ffn", true}, {"hidden_act", "gelu"}}, "c.json");
  EXPECT_TRUE(sw.glu.value_or(false));
  EXPECT_EQ(sw.act, Activation::kSilu);
  EXPECT_FALSE(detail::parse_hf_config({{"model_type", "dinov2"}, {"use_swiglu_ffn", false}}, "c.json").glu.has_value());
  const detail::ConfigHints clip = detail::parse_hf_config(
      {{"model_type", "clip_vision_model"}, {"hidden_act", "quick_gelu"}, {"projection_dim", 512},
       {"architectures", {"CLIPVisionModelWithProjection"}}}, "c.json");
  EXPECT_EQ(clip.act, Activation::kQuickGelu);
  EXPECT_EQ(clip.proj_dim, 512);
  EXPECT_EQ(clip.hf_class, "CLIPVisionModelWithProjection");
  EXPECT_FLOAT_EQ(*clip.ln_eps, 1e-5f);  // CLIPVisionConfig's default
  EXPECT_FLOAT_EQ(*detail::parse_hf_config({{"model_type", "dinov2"}}, "c.json").ln_eps, 1e-6f);
  EXPECT_FLOAT_EQ(*detail::parse_hf_config({{"model_type", "deit"}}, "c.json").ln_eps, 1e-12f);
  expect_error([] { detail::parse_hf_config({{"hidden_size", "big"}}, "c.json"); }, ErrorCode::kFormat, "hidden_size");
  expect_error([] { detail::parse_config_json({{"foo", 1}}, "c.json"); }, ErrorCode::kFormat, "c.json");
}

// The GELU forms transformers names (ACT2FN) that the engine runs.
TEST(ConfigJson, HfActivations) {
  const std::pair<const char*, Activation> acts[] = {{"gelu", Activation::kGeluErf},
                                                     {"gelu_python", Activation::kGeluErf},
                                                     {"gelu_pytorch_tanh", Activation::kGeluTanh},
                                                     {"gelu_new", Activation::kGeluTanh},
                                                     {"quick_gelu", Activation::kQuickGelu}};
  for (const auto& [name, act] : acts) {
    const detail::ConfigHints h = detail::parse_hf_config({{"model_type", "vit"}, {"hidden_act", name}}, "c.json");
    ASSERT_TRUE(h.act) << name;
    EXPECT_EQ(*h.act, act) << name;
  }
}

// transformers' SiglipVisionConfig: no class token, map pooling, its own defaults.
TEST(ConfigJson, HfSiglipVision) {
  detail::ConfigHints h = detail::parse_config_json(
      {{"model_type", "siglip_vision_model"}, {"hidden_size", 768}, {"num_attention_heads", 12}}, "c.json");
  EXPECT_EQ(h.kind, detail::ConfigKind::kHF);
  EXPECT_EQ(h.pool, GlobalPool::kMap);
  EXPECT_EQ(h.class_token, false);
  EXPECT_EQ(h.act, Activation::kGeluTanh);  // SiglipVisionConfig's default hidden_act
  EXPECT_FLOAT_EQ(*h.ln_eps, 1e-6f);
  EXPECT_EQ(h.heads, 12);
  h = detail::parse_hf_config({{"model_type", "siglip_vision_model"}, {"hidden_act", "gelu"}, {"layer_norm_eps", 1e-5}},
                              "c.json");
  EXPECT_EQ(h.act, Activation::kGeluErf);
  EXPECT_FLOAT_EQ(*h.ln_eps, 1e-5f);
}

TEST(ConfigJson, HfPreprocessor) {
  PreprocessConfig pp = detail::hf_default_preprocess(224, 224);
  EXPECT_EQ(pp.resize, PreprocessConfig::Resize::kDirect);
  EXPECT_EQ(pp.interpolation, "bilinear");
  std::vector<std::string> w;
  detail::apply_hf_preprocessor({{"do_resize", true},
                                 {"size", {{"height", 384}, {"width", 320}}},
                                 {"resample", 3},
                                 {"do_rescale", true},
                                 {"rescale_factor", 0.5},
                                 {"do_normalize", true},
                                 {"image_mean", {0.485, 0.456, 0.406}},
                                 {"image_std", {0.229, 0.224, 0.225}}},
                                "p.json", &pp, &w);
  EXPECT_EQ(pp.input_h, 384);
  EXPECT_EQ(pp.input_w, 320);
  EXPECT_EQ(pp.interpolation, "bicubic");
  EXPECT_FLOAT_EQ(pp.rescale, 0.5f);
  EXPECT_FLOAT_EQ(pp.mean[1], 0.456f);
  EXPECT_FLOAT_EQ(pp.std[2], 0.225f);
  EXPECT_TRUE(w.empty());
  // Old ViTFeatureExtractor style: size as an int; no rescale / no normalize.
  detail::apply_hf_preprocessor({{"size", 200}, {"resample", 2}, {"do_rescale", false}, {"do_normalize", false}},
                                "p.json", &pp, &w);
  EXPECT_EQ(pp.input_h, 200);
  EXPECT_EQ(pp.interpolation, "bilinear");
  EXPECT_FLOAT_EQ(pp.rescale, 1.0f);
  EXPECT_FLOAT_EQ(pp.mean[0], 0.0f);
  EXPECT_FLOAT_EQ(pp.std[0], 1.0f);
}

// Verbatim output of timm 1.0.31 save_config_for_hf for
// create_model('vit_small_patch16_224', global_pool='avg', fc_norm=True, img_size=160, num_classes=10).
const char* kTimmConfig = R"({
  "architecture": "vit_small_patch16_224",
  "num_classes": 10,
  "num_features": 384,
  "global_pool": "avg",
  "model_args": {"global_pool": "avg", "fc_norm": true, "img_size": [160, 160], "num_classes": 10, "in_chans": 3},
  "pretrained_cfg": {
    "tag": "augreg_in21k_ft_in1k", "custom_load": false, "input_size": [3, 160, 160], "fixed_input_size": true,
    "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center", "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5], "num_classes": 10, "pool_size": null, "first_conv": "patch_embed.proj",
    "classifier": "head", "license": "apache-2.0"
  }
})";

TEST(ConfigJson, TimmConfig) {
  auto h = detail::parse_config_json(json::parse(kTimmConfig), "t.json");
  EXPECT_EQ(h.kind, detail::ConfigKind::kTimm);
  EXPECT_EQ(h.architecture, "vit_small_patch16_224");
  EXPECT_EQ(h.num_classes, 10);
  EXPECT_EQ(h.hidden, 384);
  EXPECT_EQ(h.pool, GlobalPool::kAvg);
  EXPECT_EQ(h.fc_norm, true);
  EXPECT_EQ(h.image_h, 160);
  EXPECT_FLOAT_EQ(*h.ln_eps, 1e-6f);
  ASSERT_TRUE(h.preprocess.has_value());
  EXPECT_EQ(h.preprocess->resize, PreprocessConfig::Resize::kShortestThenCrop);
  EXPECT_EQ(h.preprocess->input_h, 160);
  EXPECT_FLOAT_EQ(h.preprocess->crop_pct, 0.9f);
  EXPECT_EQ(h.heads, 6);  // timm's entrypoint for vit_small_patch16_224 (timm_archs.inc)
  EXPECT_TRUE(h.warnings.empty());     // model_args.img_size agrees with input_size

  // A model_args.img_size that contradicts input_size (even an absurd one) is said, with both
  // values, and never becomes a size.
  const std::pair<json, const char*> contradicting[] = {{json(1000000), "1000000"}, {json{96, 128}, "[96, 128]"}};
  for (const auto& [bad_size, quoted] : contradicting) {
    json jb = json::parse(kTimmConfig);
    jb["model_args"]["img_size"] = bad_size;
    auto hb = detail::parse_config_json(jb, "t.json");
    EXPECT_EQ(hb.image_h, 160);
    EXPECT_EQ(hb.image_w, 160);
    ASSERT_EQ(hb.warnings.size(), 1u);
    EXPECT_NE(hb.warnings[0].find(std::string("model_args.img_size ") + quoted), std::string::npos) << hb.warnings[0];
    EXPECT_NE(hb.warnings[0].find("input_size 160x160"), std::string::npos) << hb.warnings[0];
  }

  // label_names as a list, with label_descriptions; squash crop; model_args dims.
  json j = json::parse(kTimmConfig);
  j["label_names"] = {"n1", "n2", "n3"};
  j["label_descriptions"] = {{"n1", "tench"}, {"n3", "goldfish"}};
  j["pretrained_cfg"]["crop_mode"] = "squash";
  j["pretrained_cfg"]["interpolation"] = "bilinear";
  j["pretrained_cfg"]["mean"] = {0.485, 0.456, 0.406};
  j["model_args"]["num_heads"] = 8;
  j["model_args"]["embed_dim"] = 256;
  j["model_args"]["qkv_bias"] = false;
  h = detail::parse_config_json(j, "t.json");
  EXPECT_EQ(h.labels, (std::vector<std::string>{"tench", "n2", "goldfish"}));
  EXPECT_EQ(h.preprocess->resize, PreprocessConfig::Resize::kDirect);
  EXPECT_EQ(h.preprocess->interpolation, "bilinear");
  EXPECT_FLOAT_EQ(h.preprocess->mean[0], 0.485f);
  EXPECT_EQ(h.heads, 8);
  EXPECT_EQ(h.hidden, 256);
  EXPECT_EQ(h.qkv_bias, false);

  // label_names as an {id: name} dict.
  j["label_names"] = {{"1", "b"}, {"0", "a"}, {"2", "c"}};
  j.erase("label_descriptions");
  EXPECT_EQ(detail::parse_config_json(j, "t.json").labels, (std::vector<std::string>{"a", "b", "c"}));

  // Legacy single-dict format (no pretrained_cfg).
  json legacy = {{"architecture", "vit_base_patch16_384"}, {"input_size", {3, 384, 384}}, {"crop_pct", 1.0},
                 {"num_classes", 1000}, {"labels", {"x"}}};
  h = detail::parse_config_json(legacy, "t.json");
  EXPECT_EQ(h.image_h, 384);
  EXPECT_FLOAT_EQ(h.preprocess->crop_pct, 1.0f);
}

// timm global_pool 'map': no fc_norm (timm's use_fc_norm is avg / avgmax / max only).
TEST(ConfigJson, TimmMapPool) {
  json j = json::parse(kTimmConfig);
  j["global_pool"] = "map";
  j["model_args"]["global_pool"] = "map";
  j["model_args"].erase("fc_norm");  // fc_norm=None, timm's default
  detail::ConfigHints h = detail::parse_timm_config(j, "t.json");
  EXPECT_EQ(h.pool, GlobalPool::kMap);
  EXPECT_EQ(h.fc_norm, false);
}

TEST(ConfigJson, TimmConfigRejectsVariants) {
  struct C {
    json args;
    const char* frag;
  } cases[] = {
      {{{"qk_norm", true}}, "qk_norm"},
      {{{"global_pool", ""}}, "global_pool ''"},
      {{{"act_layer", "swiglu"}}, "act_layer=\"swiglu\""},
      {{{"act_layer", "relu"}}, "act_layer=\"relu\""},
      {{{"mlp_layer", "GluMlp"}}, "(only Mlp, SwiGLUPacked and SwiGLU)"},
      {{{"norm_layer", "BatchNorm"}}, "norm_layer=\"BatchNorm\" (only LayerNorm and RmsNorm)"},
      {{{"norm_layer", "LayerNorm"}, {"embed_norm_layer", "RmsNorm"}}, "of another kind than norm_layer"},
      {{{"block_fn", "ParallelScalingBlock"}}, "parallel"},
  };
  for (const C& c : cases) {
    json j = json::parse(kTimmConfig);
    j["model_args"].update(c.args);
    expect_error([&] { detail::parse_config_json(j, "t.json"); }, ErrorCode::kUnsupported, c.frag);
  }
  // timm SwiGLUPacked (the DINOv2 giants' entrypoints) with nn.SiLU: a gated MLP with SiLU.
  {
    json g = json::parse(kTimmConfig);
    g["model_args"].update({{"mlp_layer", "SwiGLUPacked"}, {"act_layer", "SiLU"}});
    const detail::ConfigHints h = detail::parse_config_json(g, "t.json");
    EXPECT_TRUE(h.glu.value_or(false));
    EXPECT_EQ(h.act, Activation::kSilu);
    const detail::ConfigHints giant =
        detail::parse_config_json({{"architecture", "timm/vit_giant_patch14_dinov2.lvd142m"}}, "t.json");
    EXPECT_TRUE(giant.glu.value_or(false));  // from the entrypoint table
    EXPECT_EQ(giant.act, Activation::kSilu);
    // aimv2 from its entrypoint: timm SwiGLU, RmsNorm (eps 1e-5) everywhere and on the patch
    // embeddings, no proj / MLP bias.
    const detail::ConfigHints aim = detail::parse_config_json({{"architecture", "aimv2_large_patch14_224"}}, "t.json");
    EXPECT_TRUE(aim.glu.value_or(false));
    EXPECT_TRUE(aim.rms_norm.value_or(false));
    EXPECT_TRUE(aim.embed_norm.value_or(false));
    EXPECT_FALSE(aim.proj_bias.value_or(true));
    EXPECT_FLOAT_EQ(aim.ln_eps.value_or(0.0f), 1e-5f);
  }
  // Harmless keys are fine: reg_tokens 0, init_values null, dynamic_img_size.
  json j = json::parse(kTimmConfig);
  j["model_args"].update({{"reg_tokens", 0}, {"init_values", nullptr}, {"dynamic_img_size", true}, {"foo", "bar"}});
  EXPECT_NO_THROW(detail::parse_config_json(j, "t.json"));
}

// A hub config.json keeps in model_args only what its creator passed; the rest of the constructor
// arguments are in timm's entrypoint, which timm_archs.inc holds (tools/gen_timm_archs.py): the head
// count of vit_base_patch16_gap_224 is 16, not the 12 of every other base model, and its pool,
// class token and fc_norm come from there too; config model_args override the entrypoint's;
// the block kind (rpn: ResPostBlock) and pool_include_prefix come from there too; an entrypoint
// whose block we do not run (18x2: ParallelThingsBlock) is refused by name.
TEST(ConfigJson, TimmEntrypointArguments) {
  auto parse = [](const std::string& arch, json model_args) {
    json j = {{"architecture", arch}, {"num_classes", 10}};
    if (!model_args.is_null()) j["model_args"] = std::move(model_args);
    return detail::parse_config_json(j, "t.json");
  };
  auto h = parse("vit_base_patch16_gap_224", nullptr);
  EXPECT_EQ(h.heads, 16);
  EXPECT_EQ(h.class_token, false);
  EXPECT_EQ(h.fc_norm, false);
  EXPECT_EQ(h.pool, GlobalPool::kAvg);
  h = parse("timm/vit_medium_patch16_gap_256.sw_in12k_ft_in1k", nullptr);  // hub id with a tag
  EXPECT_EQ(h.heads, 8);
  EXPECT_EQ(h.qkv_bias, false);
  h = parse("vit_base_patch16_gap_224", {{"num_heads", 4}, {"depth", 1}});  // model_args win
  EXPECT_EQ(h.heads, 4);
  EXPECT_EQ(h.depth, 1);
  EXPECT_EQ(h.pool, GlobalPool::kAvg);
  h = parse("vit_base_patch16_clip_224", nullptr);  // nn.LayerNorm: eps 1e-5
  EXPECT_FLOAT_EQ(*h.ln_eps, 1e-5f);
  EXPECT_EQ(h.heads, 12);
  h = parse("vit_base_patch16_siglip_gap_224", nullptr);
  EXPECT_EQ(h.class_token, false);
  EXPECT_EQ(h.fc_norm, false);
  h = parse("vit_base_patch16_rpn_224", nullptr);
  EXPECT_EQ(h.res_post, true);
  EXPECT_EQ(h.pool, GlobalPool::kAvg);
  EXPECT_EQ(parse("vit_base_patch16_224", nullptr).res_post.value_or(false), false);
  h = parse("test_vit3", nullptr);
  EXPECT_EQ(h.pool_include_prefix, true);
  EXPECT_EQ(h.pool, GlobalPool::kMap);
  EXPECT_EQ(parse("test_vit3", {{"pool_include_prefix", false}}).pool_include_prefix, false);  // model_args win
  expect_error([&] { parse("vit_base_patch16_18x2_224", nullptr); }, ErrorCode::kUnsupported, "ParallelThingsBlock");
  expect_error([&] { parse("vit_base_patch16_224", {{"block_fn", 3}}); }, ErrorCode::kUnsupported, "block_fn=3");
  expect_error([&] { parse("vit_base_r50_s16_224", nullptr); }, ErrorCode::kUnsupported, "hybrid CNN stem");
  EXPECT_EQ(detail::timm_entrypoint_args("not_a_timm_model"), nullptr);
  EXPECT_NE(detail::timm_entrypoint_args("deit_base_distilled_patch16_224"), nullptr);
}

// The families' model_args (issue 12) become hints; the tensors then decide what they can.
TEST(ConfigJson, TimmConfigFamilies) {
  json j = json::parse(kTimmConfig);
  j["model_args"].update({{"reg_tokens", 4}, {"no_embed_class", true}, {"class_token", false},
                          {"global_pool", "avgmax"}, {"act_layer", "gelu_tanh"}});
  auto h = detail::parse_config_json(j, "t.json");
  EXPECT_EQ(h.reg_tokens, 4);
  EXPECT_EQ(h.no_embed_class, true);
  EXPECT_EQ(h.class_token, false);
  EXPECT_EQ(h.pool, GlobalPool::kAvgMax);
  EXPECT_EQ(h.fc_norm, true);  // timm: fc_norm=None -> the avg / avgmax / max pools use it
  EXPECT_EQ(h.act, Activation::kGeluTanh);
  j["model_args"]["global_pool"] = "max";
  j["model_args"]["act_layer"] = "quick_gelu";
  h = detail::parse_config_json(j, "t.json");
  EXPECT_EQ(h.pool, GlobalPool::kMax);
  EXPECT_EQ(h.act, Activation::kQuickGelu);
  // CLIP towers: timm keeps eps 1e-5 and quick-GELU in the entrypoint, not in model_args.
  json clip = json::parse(kTimmConfig);
  clip["architecture"] = "vit_base_patch16_clip_quickgelu_224";
  h = detail::parse_config_json(clip, "t.json");
  EXPECT_FLOAT_EQ(*h.ln_eps, 1e-5f);
  EXPECT_EQ(h.act, Activation::kQuickGelu);
  clip["architecture"] = "vit_base_patch16_clip_224";
  h = detail::parse_config_json(clip, "t.json");
  EXPECT_FLOAT_EQ(*h.ln_eps, 1e-5f);
  EXPECT_FALSE(h.act.has_value());  // erf GELU
  clip["model_args"]["act_layer"] = "gelu";  // model_args win over the name
  clip["architecture"] = "vit_base_patch16_clip_quickgelu_224";
  h = detail::parse_config_json(clip, "t.json");
  EXPECT_EQ(h.act, Activation::kGeluErf);
  // Plain names keep timm's 1e-6.
  h = detail::parse_config_json(json::parse(kTimmConfig), "t.json");
  EXPECT_FLOAT_EQ(*h.ln_eps, 1e-6f);
}

// ---- hostile config files (fuzz/regressions/fuzz_config_json) ------------------------------

std::string write_text(const std::string& text) {
  const std::string path = test::temp_dir() + "/config.json";
  test::write_file(path, std::vector<uint8_t>(text.begin(), text.end()));
  return path;
}

std::string nested(int depth) {
  return R"({"model_type": "vit", "hidden_size": )" + std::string(depth, '[') + std::string(depth, ']') + "}";
}

TEST(ConfigJson, DeepNestingIsRefusedWhileParsing) {
  // Once a stack overflow: 100k levels, then dump() of the value in the error message.
  const std::string deep = write_text(nested(100000));
  expect_error([&] { detail::read_json_file(deep); }, ErrorCode::kFormat, "nested deeper than 128 levels");
  expect_error([&] { detail::read_json_file(deep); }, ErrorCode::kFormat, deep);
  // Within the limit the file parses, and the value quoted in the type error is clipped.
  const json j = detail::read_json_file(write_text(nested(120)));
  try {
    detail::parse_config_json(j, "c.json");
    ADD_FAILURE() << "a nested hidden_size was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'hidden_size' must be an integer, got [[[[[[[["), std::string::npos) << msg;
    EXPECT_LT(msg.size(), 200u) << msg;
  }
}

TEST(ConfigJson, QuotedValuesAreClipped) {
  const std::string big(1 << 20, 'x');
  for (const json& j : {json{{"model_type", big}}, json{{"model_type", "vit"}, {"hidden_size", big}},
                        json{{"model_type", "vit"}, {"hidden_act", big}},
                        json{{"model_type", "vit"}, {"hidden_size", json::array({big, big, big})}}}) {
    try {
      detail::parse_config_json(j, "c.json");
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("xxxxxxxx"), std::string::npos) << e.what();
      EXPECT_LT(std::string(e.what()).size(), 300u);
    }
  }
}

TEST(ConfigJson, SizesAreRangeChecked) {
  struct C {
    json j;
    const char* frag;
  } hf[] = {
      {{{"hidden_size", 1LL << 40}}, "'hidden_size' is out of range: 1099511627776 (expected 0..16384)"},
      {{{"num_hidden_layers", 5000}}, "'num_hidden_layers' is out of range: 5000 (expected 0..1000)"},
      {{{"num_attention_heads", -1}}, "'num_attention_heads' is out of range: -1"},
      {{{"intermediate_size", 1e12}}, "'intermediate_size' is out of range"},
      {{{"image_size", 40000}}, "'image_size' is out of range: 40000 (expected 1..8192)"},
      {{{"image_size", {224, 1LL << 33}}}, "'image_size' is out of range: 8589934592"},
      {{{"image_size", 0}}, "'image_size' is out of range: 0 (expected 1..8192)"},
      {{{"patch_size", 4096}}, "'patch_size' is out of range: 4096 (expected 1..1024)"},
      {{{"num_channels", 100000}}, "'num_channels' is out of range"},
      {{{"layer_norm_eps", -1e-6}}, "'layer_norm_eps' is out of range"},
      {{{"layer_norm_eps", 0}}, "'layer_norm_eps' must be positive"},
  };
  for (const C& c : hf) {
    json j = c.j;
    j["model_type"] = "vit";
    expect_error([&] { detail::parse_config_json(j, "h.json"); }, ErrorCode::kFormat, c.frag);
    expect_error([&] { detail::parse_config_json(j, "h.json"); }, ErrorCode::kFormat, "h.json");
  }
  struct T {
    const char* where;
    json args;
    const char* frag;
  } timm[] = {
      {"pretrained_cfg", {{"input_size", {3, 1000000000, 1000000000}}},
       "'pretrained_cfg.input_size H' is out of range: 1000000000 (expected 1..8192)"},
      {"pretrained_cfg", {{"input_size", {3, 224, 40000}}}, "'pretrained_cfg.input_size W' is out of range: 40000"},
      {"pretrained_cfg", {{"input_size", {0, 224, 224}}}, "'pretrained_cfg.input_size C' is out of range: 0"},
      {"pretrained_cfg", {{"crop_pct", 1e-9}}, "'crop_pct' is out of range"},
      {"pretrained_cfg", {{"crop_pct", 100}}, "'crop_pct' is out of range"},
      {"pretrained_cfg", {{"std", {0.5, 0, 0.5}}}, "'std' must be non-zero"},
      {"pretrained_cfg", {{"mean", {0.5, 1e300, 0.5}}}, "'mean' holds an implausible value"},
      {"", {{"num_classes", 1LL << 31}}, "'num_classes' is out of range: 2147483648 (expected 0..1048576)"},
      {"", {{"num_features", 100000}}, "'num_features' is out of range"},
      {"model_args", {{"embed_dim", 1000000}}, "'embed_dim' is out of range: 1000000 (expected 0..16384)"},
      {"model_args", {{"depth", 100000}}, "'depth' is out of range"},
      {"model_args", {{"num_heads", 4096}}, "'num_heads' is out of range"},
      {"model_args", {{"patch_size", {16, 1LL << 40}}}, "'patch_size' is out of range"},
      {"model_args", {{"img_size", 1000000}}, "'img_size' is out of range: 1000000 (expected 1..8192)"},
      {"model_args", {{"num_classes", 1e10}}, "'num_classes' is out of range"},
  };
  for (const T& c : timm) {
    json j = json::parse(kTimmConfig);
    (*c.where ? j[c.where] : j).update(c.args);
    if (c.args.contains("img_size")) j["pretrained_cfg"].erase("input_size");  // input_size wins otherwise
    expect_error([&] { detail::parse_config_json(j, "t.json"); }, ErrorCode::kFormat, c.frag);
  }
  // The bounds themselves are accepted.
  json j = json::parse(kTimmConfig);
  j["pretrained_cfg"]["input_size"] = {3, 8192, 8192};
  j["model_args"]["embed_dim"] = 16384;
  EXPECT_EQ(detail::parse_config_json(j, "t.json").image_h, 8192);
  // HF preprocessor sizes.
  PreprocessConfig pp = detail::hf_default_preprocess(224, 224);
  std::vector<std::string> w;
  for (const json& size : {json(40000), json{{"height", 224}, {"width", 1LL << 33}}, json{{"shortest_edge", -5}}}) {
    expect_error([&] { detail::apply_hf_preprocessor({{"size", size}}, "p.json", &pp, &w); }, ErrorCode::kFormat,
                 "is out of range");
  }
  expect_error([&] { detail::apply_hf_preprocessor({{"image_std", 0}}, "p.json", &pp, &w); }, ErrorCode::kFormat,
               "'image_std' must be non-zero");
  expect_error([&] { detail::apply_hf_preprocessor({{"rescale_factor", 1e300}}, "p.json", &pp, &w); },
               ErrorCode::kFormat, "'rescale_factor' is out of range");
}

TEST(Config, ArchNameParserOnHostileNames) {
  // Matched by plain comparison, so any length is cheap and nothing matches by accident.
  EXPECT_FALSE(config_from_arch_name(std::string(1 << 20, 'v'), nullptr));
  EXPECT_FALSE(config_from_arch_name("vit_base_patch16_224" + std::string(100000, '4'), nullptr));
  EXPECT_FALSE(config_from_arch_name("vit_base_patch" + std::string(100000, '1') + "_224", nullptr));
  EXPECT_TRUE(config_from_arch_name("vit_base_patch16_224." + std::string(100000, 'x'), nullptr));
  EXPECT_TRUE(config_from_arch_name("vit_huge_patch14_224", nullptr));
  EXPECT_FALSE(config_from_arch_name("vit_huge_patch14_384", nullptr));
}

}  // namespace
}  // namespace vit
