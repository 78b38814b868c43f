// vit-infer: parsing of the JSON configuration files that ship beside checkpoints:
// HF ViTConfig config.json, HF ViTImageProcessor preprocessor_config.json, and the timm
// hub config.json written by timm.models._hub.save_config_for_hf
// ({architecture, num_classes, num_features, global_pool, label_names, model_args, pretrained_cfg}).
// Unknown keys are ignored; keys that select a variant we do not run are rejected.
#include "model/config_sources.h"

#include <cmath>
#include <fstream>
#include <map>

#include "core/error.h"

namespace vit::detail {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& path, const std::string& key, const std::string& what) {
  fail(ErrorCode::kFormat, path + ": '" + key + "' " + what);
}

int get_int(const json& j, const std::string& key, const std::string& path) {
  const json& v = j.at(key);
  if (!v.is_number_integer() && !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>())) {
    bad(path, key, "must be an integer, got " + v.dump());
  }
  const double d = v.get<double>();
  if (d < 0 || d > 1e9) bad(path, key, "is out of range: " + v.dump());
  return static_cast<int>(d);
}

double get_num(const json& j, const std::string& key, const std::string& path) {
  const json& v = j.at(key);
  if (!v.is_number()) bad(path, key, "must be a number, got " + v.dump());
  return v.get<double>();
}

bool get_bool(const json& j, const std::string& key, const std::string& path) {
  const json& v = j.at(key);
  if (!v.is_boolean()) bad(path, key, "must be true/false, got " + v.dump());
  return v.get<bool>();
}

std::string get_str(const json& j, const std::string& key, const std::string& path) {
  const json& v = j.at(key);
  if (!v.is_string()) bad(path, key, "must be a string, got " + v.dump());
  return v.get<std::string>();
}

bool has(const json& j, const char* key) { return j.is_object() && j.contains(key) && !j.at(key).is_null(); }

// An int or a [h, w] pair (timm img_size, HF image_size).
void get_hw(const json& j, const std::string& key, const std::string& path, int* h, int* w) {
  const json& v = j.at(key);
  if (v.is_array()) {
    if (v.size() != 2 || !v[0].is_number_integer() || !v[1].is_number_integer()) {
      bad(path, key, "must be an integer or [h, w], got " + v.dump());
    }
    *h = v[0].get<int>();
    *w = v[1].get<int>();
  } else {
    *h = *w = get_int(j, key, path);
  }
  if (*h <= 0 || *w <= 0) bad(path, key, "must be positive, got " + v.dump());
}

int get_square(const json& j, const std::string& key, const std::string& path) {
  int h = 0, w = 0;
  get_hw(j, key, path, &h, &w);
  if (h != w) fail(ErrorCode::kUnsupported, path + ": non-square " + key + " " + j.at(key).dump() + " is not supported");
  return h;
}

std::array<float, 3> get_rgb(const json& j, const std::string& key, const std::string& path) {
  const json& v = j.at(key);
  std::array<float, 3> out{};
  if (v.is_number()) {
    out.fill(v.get<float>());
    return out;
  }
  if (!v.is_array() || (v.size() != 3 && v.size() != 1)) bad(path, key, "must be a list of 3 numbers, got " + v.dump());
  for (size_t i = 0; i < 3; ++i) {
    const json& e = v[v.size() == 1 ? 0 : i];
    if (!e.is_number()) bad(path, key, "must be a list of 3 numbers, got " + v.dump());
    out[i] = e.get<float>();
  }
  return out;
}

[[noreturn]] void unsupported(const std::string& path, const std::string& what) {
  fail(ErrorCode::kUnsupported, path + ": " + what + " is not supported by vit-infer");
}

std::optional<GlobalPool> parse_pool(const std::string& s, const std::string& path) {
  if (s == "token") return GlobalPool::kToken;
  if (s == "avg") return GlobalPool::kAvg;
  unsupported(path, "global_pool '" + s + "' (only 'token' and 'avg')");
}

// timm label_names: a list, or a dict {"<id>": name} when ids have gaps.
std::vector<std::string> parse_label_names(const json& v, const std::string& path, std::vector<std::string>* warnings) {
  std::vector<std::string> out;
  if (v.is_array()) {
    for (const json& e : v) {
      if (!e.is_string()) bad(path, "label_names", "must hold strings");
      out.push_back(e.get<std::string>());
    }
  } else if (v.is_object()) {
    std::map<long, std::string> m;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!it.value().is_string()) bad(path, "label_names", "must hold strings");
      try {
        m[std::stol(it.key())] = it.value().get<std::string>();
      } catch (const std::exception&) {
        bad(path, "label_names", "has a non-integer key '" + it.key() + "'");
      }
    }
    long expect = 0;
    for (auto& [k, s] : m) {
      if (k != expect++) {
        warnings->push_back(path + ": label_names ids are not 0..N-1; labels ignored");
        return {};
      }
      out.push_back(s);
    }
  } else {
    bad(path, "label_names", "must be a list or an object");
  }
  return out;
}

}  // namespace

json read_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::kIo, "cannot open " + path);
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    fail(ErrorCode::kFormat, path + ": invalid JSON: " + e.what());
  }
}

ConfigHints parse_hf_config(const json& j, const std::string& path) {
  if (!j.is_object()) fail(ErrorCode::kFormat, path + ": expected a JSON object");
  ConfigHints h;
  h.kind = ConfigKind::kHF;
  h.path = path;
  try {
    if (has(j, "model_type")) {
      const std::string mt = get_str(j, "model_type", path);
      if (mt != "vit") unsupported(path, "model_type '" + mt + "' (only 'vit')");
    }
    if (has(j, "hidden_act")) {
      const std::string act = get_str(j, "hidden_act", path);
      // HF ACT2FN: "gelu" and "gelu_python" are the exact erf form; "gelu_new",
      // "gelu_pytorch_tanh", "gelu_fast" are tanh approximations; others are not GELU.
      if (act != "gelu" && act != "gelu_python") {
        unsupported(path, "hidden_act '" + act + "' (only the exact-erf GELU 'gelu' / 'gelu_python')");
      }
    }
    if (has(j, "hidden_size")) h.hidden = get_int(j, "hidden_size", path);
    if (has(j, "num_hidden_layers")) h.depth = get_int(j, "num_hidden_layers", path);
    if (has(j, "num_attention_heads")) h.heads = get_int(j, "num_attention_heads", path);
    if (has(j, "intermediate_size")) h.mlp_hidden = get_int(j, "intermediate_size", path);
    // transformers' ViTConfig default; the eps is what makes HF logits differ from timm's.
    h.ln_eps = has(j, "layer_norm_eps") ? static_cast<float>(get_num(j, "layer_norm_eps", path)) : 1e-12f;
    if (has(j, "image_size")) {
      int ih = 0, iw = 0;
      get_hw(j, "image_size", path, &ih, &iw);
      h.image_h = ih;
      h.image_w = iw;
    }
    if (has(j, "patch_size")) h.patch = get_square(j, "patch_size", path);
    if (has(j, "num_channels")) h.in_chans = get_int(j, "num_channels", path);
    if (has(j, "qkv_bias")) h.qkv_bias = get_bool(j, "qkv_bias", path);
    h.pool = GlobalPool::kToken;  // ViTForImageClassification reads layernorm(x)[:, 0]
    h.final_norm = true;
    h.fc_norm = false;
    if (has(j, "id2label")) {
      const json& m = j.at("id2label");
      if (!m.is_object()) bad(path, "id2label", "must be an object");
      std::vector<std::string> labels(m.size());
      std::vector<bool> seen(m.size(), false);
      bool ok = true;
      for (auto it = m.begin(); it != m.end() && ok; ++it) {
        size_t pos = 0;
        long id = -1;
        try {
          id = std::stol(it.key(), &pos);
        } catch (const std::exception&) {
          pos = 0;
        }
        if (pos != it.key().size() || id < 0 || id >= static_cast<long>(labels.size()) || seen[id] ||
            !it.value().is_string()) {
          ok = false;
          break;
        }
        seen[id] = true;
        labels[id] = it.value().get<std::string>();
      }
      if (ok) {
        h.labels = std::move(labels);
      } else {
        h.warnings.push_back(path + ": id2label keys are not \"0\"..\"N-1\" with string values; labels ignored");
      }
    }
  } catch (const json::exception& e) {
    fail(ErrorCode::kFormat, path + ": " + e.what());
  }
  return h;
}

ConfigHints parse_timm_config(const json& j, const std::string& path) {
  if (!j.is_object()) fail(ErrorCode::kFormat, path + ": expected a JSON object");
  ConfigHints h;
  h.kind = ConfigKind::kTimm;
  h.path = path;
  h.ln_eps = 1e-6f;  // timm ViT: partial(nn.LayerNorm, eps=1e-6)
  try {
    // The architecture name's defaults are applied by the loader, below model_args and
    // below a --arch override; here it is only recorded.
    if (has(j, "architecture")) h.architecture = get_str(j, "architecture", path);
    // Legacy single-dict configs carry the pretrained_cfg fields at the top level.
    const json& pc = j.contains("pretrained_cfg") ? j.at("pretrained_cfg") : j;
    if (!pc.is_object()) bad(path, "pretrained_cfg", "must be an object");

    if (has(j, "num_classes")) {
      h.num_classes = get_int(j, "num_classes", path);
    } else if (has(pc, "num_classes")) {
      h.num_classes = get_int(pc, "num_classes", path);
    }
    if (has(j, "num_features") && !h.hidden) h.hidden = get_int(j, "num_features", path);
    if (has(j, "global_pool")) h.pool = parse_pool(get_str(j, "global_pool", path), path);

    // Labels: label_names (ids -> names, e.g. synsets), label_descriptions (name -> text).
    const json* ln = has(j, "label_names") ? &j.at("label_names") : has(pc, "label_names") ? &pc.at("label_names") : nullptr;
    if (ln) {
      h.labels = parse_label_names(*ln, path, &h.warnings);
      const json* ld = has(j, "label_descriptions")    ? &j.at("label_descriptions")
                       : has(pc, "label_descriptions") ? &pc.at("label_descriptions")
                                                       : nullptr;
      if (ld && ld->is_object()) {
        for (std::string& l : h.labels) {
          auto it = ld->find(l);
          if (it != ld->end() && it->is_string()) l = it->get<std::string>();
        }
      }
    }

    // Preprocessing (timm data config). ViT defaults where a key is absent.
    PreprocessConfig pp;
    if (has(pc, "input_size")) {
      const json& v = pc.at("input_size");
      if (!v.is_array() || v.size() != 3 || !v[1].is_number_integer() || !v[2].is_number_integer()) {
        bad(path, "pretrained_cfg.input_size", "must be [C, H, W], got " + v.dump());
      }
      h.image_h = v[1].get<int>();
      h.image_w = v[2].get<int>();
      if (v[0].is_number_integer()) h.in_chans = v[0].get<int>();
    }
    if (has(pc, "interpolation")) {
      const std::string in = get_str(pc, "interpolation", path);
      if (in == "bicubic" || in == "bilinear") {
        pp.interpolation = in;
      } else {
        h.warnings.push_back(path + ": interpolation '" + in + "' is not supported; using bicubic");
      }
    }
    if (has(pc, "crop_pct")) pp.crop_pct = static_cast<float>(get_num(pc, "crop_pct", path));
    if (has(pc, "crop_mode")) {
      const std::string cm = get_str(pc, "crop_mode", path);
      if (cm == "squash") {
        pp.resize = PreprocessConfig::Resize::kDirect;
      } else if (cm != "center") {
        h.warnings.push_back(path + ": crop_mode '" + cm + "' is not supported; using center");
      }
    }
    if (has(pc, "mean")) pp.mean = get_rgb(pc, "mean", path);
    if (has(pc, "std")) pp.std = get_rgb(pc, "std", path);
    h.preprocess = pp;

    // model_args: the non-default constructor arguments; they describe the saved weights.
    if (has(j, "model_args")) {
      const json& ma = j.at("model_args");
      if (!ma.is_object()) bad(path, "model_args", "must be an object");
      const std::string mp = path + " model_args";
      auto truthy = [&](const char* k) { return has(ma, k) && ma.at(k).is_boolean() && ma.at(k).get<bool>(); };
      if (has(ma, "reg_tokens") && get_int(ma, "reg_tokens", mp) > 0) {
        unsupported(path, "register tokens (reg_tokens=" + ma.at("reg_tokens").dump() + ")");
      }
      if (has(ma, "init_values")) unsupported(path, "LayerScale (init_values=" + ma.at("init_values").dump() + ")");
      if (truthy("no_embed_class")) unsupported(path, "no_embed_class=True");
      if (has(ma, "class_token") && !get_bool(ma, "class_token", mp)) unsupported(path, "class_token=False");
      if (truthy("pre_norm")) unsupported(path, "pre_norm=True (norm_pre)");
      if (truthy("qk_norm")) unsupported(path, "qk_norm=True");
      if (truthy("scale_attn_norm")) unsupported(path, "scale_attn_norm=True");
      if (truthy("scale_mlp_norm")) unsupported(path, "scale_mlp_norm=True");
      if (truthy("pool_include_prefix")) unsupported(path, "pool_include_prefix=True");
      if (has(ma, "proj_bias") && !get_bool(ma, "proj_bias", mp)) unsupported(path, "proj_bias=False");
      if (has(ma, "embed_norm_layer")) unsupported(path, "embed_norm_layer=" + ma.at("embed_norm_layer").dump());
      if (has(ma, "pos_embed")) {
        const std::string pe = get_str(ma, "pos_embed", mp);
        if (pe != "learn") unsupported(path, "pos_embed='" + pe + "'");
      }
      if (has(ma, "act_layer")) {
        const json& a = ma.at("act_layer");
        if (!a.is_string() || a.get<std::string>() != "gelu") unsupported(path, "act_layer=" + a.dump() + " (only gelu)");
      }
      if (has(ma, "norm_layer")) {
        const json& a = ma.at("norm_layer");
        if (!a.is_string() || (a.get<std::string>() != "layernorm" && a.get<std::string>() != "LayerNorm")) {
          unsupported(path, "norm_layer=" + a.dump() + " (only LayerNorm)");
        }
      }
      if (has(ma, "global_pool")) h.pool = parse_pool(get_str(ma, "global_pool", mp), path);
      if (has(ma, "embed_dim")) h.hidden = get_int(ma, "embed_dim", mp);
      if (has(ma, "depth")) h.depth = get_int(ma, "depth", mp);
      if (has(ma, "num_heads")) h.heads = get_int(ma, "num_heads", mp);
      if (has(ma, "patch_size")) h.patch = get_square(ma, "patch_size", mp);
      if (has(ma, "in_chans")) h.in_chans = get_int(ma, "in_chans", mp);
      if (has(ma, "num_classes")) h.num_classes = get_int(ma, "num_classes", mp);
      if (has(ma, "qkv_bias")) h.qkv_bias = get_bool(ma, "qkv_bias", mp);
      if (has(ma, "final_norm")) h.final_norm = get_bool(ma, "final_norm", mp);
      if (has(ma, "fc_norm")) h.fc_norm = get_bool(ma, "fc_norm", mp);
      if (has(ma, "img_size") && !has(pc, "input_size")) {
        int ih = 0, iw = 0;
        get_hw(ma, "img_size", mp, &ih, &iw);
        h.image_h = ih;
        h.image_w = iw;
      }
    }
    if (h.pool && !h.fc_norm) h.fc_norm = (*h.pool == GlobalPool::kAvg);  // timm: fc_norm=None -> avg pools use it
  } catch (const json::exception& e) {
    fail(ErrorCode::kFormat, path + ": " + e.what());
  }
  if (h.preprocess) {
    if (h.image_h) h.preprocess->input_h = *h.image_h;
    if (h.image_w) h.preprocess->input_w = *h.image_w;
  }
  return h;
}

ConfigHints parse_config_json(const json& j, const std::string& path) {
  if (!j.is_object()) fail(ErrorCode::kFormat, path + ": expected a JSON object");
  if (j.contains("architecture") || j.contains("pretrained_cfg")) return parse_timm_config(j, path);
  if (j.contains("model_type") || j.contains("hidden_size") || j.contains("num_hidden_layers")) {
    return parse_hf_config(j, path);
  }
  fail(ErrorCode::kFormat, path + ": neither a HF ViT config (model_type, hidden_size, ...) nor a timm config "
                                  "(architecture, pretrained_cfg)");
}

PreprocessConfig hf_default_preprocess(int h, int w) {
  PreprocessConfig pp;
  pp.resize = PreprocessConfig::Resize::kDirect;
  pp.interpolation = "bilinear";
  pp.crop_pct = 1.0f;
  pp.input_h = h;
  pp.input_w = w;
  pp.mean = {0.5f, 0.5f, 0.5f};
  pp.std = {0.5f, 0.5f, 0.5f};
  pp.rescale = 1.0f / 255.0f;
  return pp;
}

void apply_hf_preprocessor(const json& j, const std::string& path, PreprocessConfig* pp,
                           std::vector<std::string>* warnings) {
  if (!j.is_object()) fail(ErrorCode::kFormat, path + ": expected a JSON object");
  try {
    pp->resize = PreprocessConfig::Resize::kDirect;
    pp->crop_pct = 1.0f;
    if (has(j, "do_resize") && !get_bool(j, "do_resize", path)) {
      warnings->push_back(path + ": do_resize=false; images are still resized to the model input size");
    }
    if (has(j, "size")) {
      const json& s = j.at("size");
      if (s.is_number_integer()) {
        pp->input_h = pp->input_w = s.get<int>();
      } else if (s.is_object() && has(s, "height") && has(s, "width")) {
        pp->input_h = get_int(s, "height", path);
        pp->input_w = get_int(s, "width", path);
      } else if (s.is_object() && has(s, "shortest_edge")) {
        pp->input_h = pp->input_w = get_int(s, "shortest_edge", path);
        warnings->push_back(path + ": size {shortest_edge} treated as a square resize");
      } else {
        bad(path, "size", "must be an integer or {height, width}, got " + s.dump());
      }
    }
    if (has(j, "resample")) {
      // PIL.Image.Resampling: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming.
      const int r = get_int(j, "resample", path);
      if (r == 2) {
        pp->interpolation = "bilinear";
      } else if (r == 3) {
        pp->interpolation = "bicubic";
      } else {
        warnings->push_back(path + ": resample=" + std::to_string(r) + " is not supported; using bilinear");
        pp->interpolation = "bilinear";
      }
    }
    const bool do_rescale = has(j, "do_rescale") ? get_bool(j, "do_rescale", path) : true;
    const double factor = has(j, "rescale_factor") ? get_num(j, "rescale_factor", path) : 1.0 / 255.0;
    pp->rescale = do_rescale ? static_cast<float>(factor) : 1.0f;
    const bool do_normalize = has(j, "do_normalize") ? get_bool(j, "do_normalize", path) : true;
    if (do_normalize) {
      if (has(j, "image_mean")) pp->mean = get_rgb(j, "image_mean", path);
      if (has(j, "image_std")) pp->std = get_rgb(j, "image_std", path);
    } else {
      pp->mean = {0.0f, 0.0f, 0.0f};
      pp->std = {1.0f, 1.0f, 1.0f};
    }
  } catch (const json::exception& e) {
    fail(ErrorCode::kFormat, path + ": " + e.what());
  }
}

}  // namespace vit::detail
