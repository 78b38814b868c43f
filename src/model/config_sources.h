// vit-infer (internal): what the JSON files beside a checkpoint say about the model.
// HF config.json / preprocessor_config.json and timm hub config.json are parsed into
// ConfigHints, whose unset optionals mean "the file did not say". The loader layers these
// under the tensor shapes and the ConfigOverrides (see model/config.h for the order).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"

namespace vit::detail {

enum class ConfigKind { kNone, kHF, kTimm };

struct ConfigHints {
  ConfigKind kind = ConfigKind::kNone;
  std::string path;  // the config.json these came from (for messages)
  std::optional<std::string> architecture;  // timm `architecture`
  std::optional<int> hidden, depth, heads, mlp_hidden, patch, in_chans, num_classes;
  std::optional<int> image_h, image_w;
  std::optional<float> ln_eps;
  std::optional<GlobalPool> pool;
  std::optional<bool> fc_norm, final_norm, qkv_bias;
  std::optional<Activation> act;
  std::optional<bool> class_token, no_embed_class;
  std::optional<int> reg_tokens;
  std::vector<std::string> labels;  // empty: none given
  std::optional<PreprocessConfig> preprocess;
  std::vector<std::string> warnings;
};

// Reads and parses a JSON file; throws vit::Error(kIo / kFormat) naming the path, also for
// nesting deeper than limits::kMaxJsonDepth (model/limits.h).
nlohmann::json read_json_file(const std::string& path);

// HF ViTConfig (model_type "vit") and SiglipVisionConfig ("siglip_vision_model": no class
// token, map pooling). Throws kUnsupported for other model types and for hidden_act values
// other than the GELU forms the engine runs (erf, tanh, quick).
ConfigHints parse_hf_config(const nlohmann::json& j, const std::string& path);

// timm hub config.json (architecture, num_classes, global_pool, label_names,
// pretrained_cfg, model_args). Throws kUnsupported naming variants we do not run
// (qk-norm, SwiGLU / other act_layer, parallel blocks, ...). The families' own
// defaults that timm keeps in the model entrypoint rather than in model_args come from the
// architecture name: `_clip_` towers LayerNorm eps 1e-5, `quickgelu` towers quick-GELU.
ConfigHints parse_timm_config(const nlohmann::json& j, const std::string& path);

// Detects HF vs timm from the keys and dispatches; kFormat if it is neither.
ConfigHints parse_config_json(const nlohmann::json& j, const std::string& path);

// HF ViTImageProcessor preprocessor_config.json on top of `pp` (Resize::kDirect).
void apply_hf_preprocessor(const nlohmann::json& j, const std::string& path, PreprocessConfig* pp,
                           std::vector<std::string>* warnings);

// The HF ViTImageProcessor defaults: bilinear squash to the model size, x/255, mean=std=0.5.
PreprocessConfig hf_default_preprocess(int h, int w);

}  // namespace vit::detail
