// vit-infer: parsing of the JSON configuration files that ship beside checkpoints:
// HF ViTConfig config.json, HF ViTImageProcessor preprocessor_config.json, and the timm
// hub config.json written by timm.models._hub.save_config_for_hf
// ({architecture, num_classes, num_features, global_pool, label_names, model_args, pretrained_cfg}).
// Unknown keys are ignored; keys that select a variant we do not run are rejected. Every
// number used as a size is range-checked against model/limits.h before it is converted, and
// values quoted in messages are clipped (brief()), so a hostile file cannot make a message
// (or a recursive dump()) unbounded.
#include "model/config_sources.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

#include "core/error.h"
#include "model/limits.h"

namespace vit::detail {

using nlohmann::json;

namespace {

constexpr size_t kMaxQuoted = 100;  // characters of a value quoted in a message

// A user string for a message: at most kMaxQuoted characters.
std::string clip(const std::string& s) {
  if (s.size() <= kMaxQuoted) return s;
  return s.substr(0, kMaxQuoted - 3) + "...";
}

// Bounded JSON rendering: stops descending after a few levels and once the text is long, so
// its recursion and output are bounded whatever the value (json::dump() recurses once per
// nesting level and prints everything).
void brief_into(const json& v, std::string* out, int depth) {
  if (out->size() > kMaxQuoted) return;
  if (v.is_array() || v.is_object()) {
    const bool obj = v.is_object();
    *out += obj ? '{' : '[';
    if (depth >= 8 && !v.empty()) {
      *out += "...";
    } else {
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (out->size() > kMaxQuoted) break;
        if (!first) *out += ", ";
        first = false;
        if (obj) *out += json(clip(it.key())).dump() + ": ";
        brief_into(it.value(), out, depth + 1);
      }
    }
    *out += obj ? '}' : ']';
  } else if (v.is_string()) {
    *out += json(clip(v.get_ref<const std::string&>())).dump();
  } else {
    *out += v.dump();
  }
}

std::string brief(const json& v) {
  std::string s;
  brief_into(v, &s, 0);
  return clip(s);
}

[[noreturn]] void bad(const std::string& path, const std::string& key, const std::string& what) {
  fail(ErrorCode::kFormat, path + ": '" + key + "' " + what);
}

// An integer (or an integral float such as 224.0) in [lo, hi], checked before conversion.
int int_value(const json& v, const std::string& key, const std::string& path, int lo, int hi) {
  if (!v.is_number_integer() && !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>())) {
    bad(path, key, "must be an integer, got " + brief(v));
  }
  bool ok = false;
  if (v.is_number_unsigned()) {
    ok = v.get<uint64_t>() >= static_cast<uint64_t>(std::max(lo, 0)) && v.get<uint64_t>() <= static_cast<uint64_t>(hi);
  } else if (v.is_number_integer()) {
    ok = v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
  } else {
    ok = v.get<double>() >= lo && v.get<double>() <= hi;
  }
  if (!ok) {
    bad(path, key, "is out of range: " + brief(v) + " (expected " + std::to_string(lo) + ".." + std::to_string(hi) + ")");
  }
  return static_cast<int>(v.get<double>());
}

constexpr int kAnyInt = 1000000000;  // a count with no size meaning (e.g. reg_tokens, resample)

int get_int(const json& j, const std::string& key, const std::string& path, int hi = kAnyInt) {
  return int_value(j.at(key), key, path, 0, hi);
}

double get_num(const json& j, const std::string& key, const std::string& path) {
  const json& v = j.at(key);
  if (!v.is_number()) bad(path, key, "must be a number, got " + brief(v));
  const double d = v.get<double>();
  if (!std::isfinite(d)) bad(path, key, "must be finite, got " + brief(v));
  return d;
}

// A number that must fit a float (and lie in [lo, hi]).
float get_float(const json& j, const std::string& key, const std::string& path, double lo = -FLT_MAX,
                double hi = FLT_MAX) {
  const double d = get_num(j, key, path);
  if (!(d >= lo && d <= hi)) {
    char range[64];
    std::snprintf(range, sizeof range, "%g..%g", lo, hi);
    bad(path, key, "is out of range: " + brief(j.at(key)) + " (expected " + range + ")");
  }
  return static_cast<float>(d);
}

bool get_bool(const json& j, const std::string& key, const std::string& path) {
  const json& v = j.at(key);
  if (!v.is_boolean()) bad(path, key, "must be true/false, got " + brief(v));
  return v.get<bool>();
}

std::string get_str(const json& j, const std::string& key, const std::string& path) {
  const json& v = j.at(key);
  if (!v.is_string()) bad(path, key, "must be a string, got " + brief(v));
  return v.get<std::string>();
}

// A timm / open_clip interpolation name: Pillow's filters by the names timm's str_to_interp_mode takes.
std::string checked_interpolation(const std::string& in, const std::string& where) {
  for (const char* n : {"bicubic", "bilinear", "nearest", "box", "hamming", "lanczos"})
    if (in == n) return in;
  fail(ErrorCode::kUnsupported, where + " '" + clip(in) +
                                    "' is not supported (bicubic, bilinear, nearest, box, hamming, lanczos)");
}

bool has(const json& j, const char* key) { return j.is_object() && j.contains(key) && !j.at(key).is_null(); }

// An int or a [h, w] pair (timm img_size, HF image_size), each in 1..hi.
void get_hw(const json& j, const std::string& key, const std::string& path, int hi, int* h, int* w) {
  const json& v = j.at(key);
  if (v.is_array()) {
    if (v.size() != 2 || !v[0].is_number_integer() || !v[1].is_number_integer()) {
      bad(path, key, "must be an integer or [h, w], got " + brief(v));
    }
    *h = int_value(v[0], key, path, 1, hi);
    *w = int_value(v[1], key, path, 1, hi);
  } else {
    *h = *w = int_value(v, key, path, 1, hi);
  }
}

int get_square(const json& j, const std::string& key, const std::string& path, int hi) {
  int h = 0, w = 0;
  get_hw(j, key, path, hi, &h, &w);
  if (h != w) fail(ErrorCode::kUnsupported, path + ": non-square " + key + " " + brief(j.at(key)) + " is not supported");
  return h;
}

std::array<float, 3> get_rgb(const json& j, const std::string& key, const std::string& path) {
  const json& v = j.at(key);
  auto one = [&](const json& e) {
    if (!e.is_number()) bad(path, key, "must be a list of 3 numbers, got " + brief(v));
    const double d = e.get<double>();
    if (!(std::fabs(d) <= 1e6)) bad(path, key, "holds an implausible value: " + brief(v));
    return static_cast<float>(d);
  };
  std::array<float, 3> out{};
  if (v.is_number()) {
    out.fill(one(v));
    return out;
  }
  if (!v.is_array() || (v.size() != 3 && v.size() != 1)) bad(path, key, "must be a list of 3 numbers, got " + brief(v));
  for (size_t i = 0; i < 3; ++i) out[i] = one(v[v.size() == 1 ? 0 : i]);
  return out;
}

// Normalisation std: divided by, so zero is no std.
std::array<float, 3> get_std(const json& j, const std::string& key, const std::string& path) {
  const std::array<float, 3> s = get_rgb(j, key, path);
  for (float x : s) {
    if (x == 0.0f) bad(path, key, "must be non-zero, got " + brief(j.at(key)));
  }
  return s;
}

// LayerNorm eps: added to a variance; 0, negative or >= 1 is no eps.
float get_eps(const json& j, const std::string& key, const std::string& path) {
  const float e = get_float(j, key, path, 0.0, 1.0);
  if (!(e > 0.0f)) bad(path, key, "must be positive, got " + brief(j.at(key)));
  return e;
}

[[noreturn]] void unsupported(const std::string& path, const std::string& what) {
  fail(ErrorCode::kUnsupported, path + ": " + what + " is not supported by vit-infer");
}

std::optional<GlobalPool> parse_pool(const std::string& s, const std::string& path) {
  // map: the attention-pool head (attn_pool.* tensors), named but not offered.
  if (const GlobalPoolInfo* p = find_global_pool(s.c_str())) return p->pool;
  std::string names;
  for (int i = 0; i + 1 < kGlobalPoolCount; ++i)
    names += std::string(i == 0 ? "" : i + 2 == kGlobalPoolCount ? " and " : ", ") + "'" + kGlobalPools[i].name + "'";
  unsupported(path, "global_pool '" + clip(s) + "' (only " + names + ")");
}

// timm act_layer names (timm.layers.create_act): the MLP activations the engine runs.
// The constructor arguments of every timm ViT entrypoint (tools/gen_timm_archs.py), by name.
struct TimmArch {
  const char* name;
  const char* args;  // JSON object, timm's key names
};
constexpr TimmArch kTimmArchs[] = {
#include "model/timm_archs.inc"
};

}  // namespace

const char* timm_entrypoint_args(const std::string& architecture) {
  const std::string a = timm_entrypoint_name(architecture);
  if (a.empty()) return nullptr;
  for (const TimmArch& t : kTimmArchs)
    if (a == t.name) return t.args;
  return nullptr;
}

namespace {

// "a, b and c" (each quoted when `quote`): the spellings the activation table accepts, for messages.
std::string activation_spellings(bool hf, bool quote) {
  std::vector<std::string> v;
  for (const ActivationInfo& i : kActivations)
    for (const char* const* n = hf ? i.hf_names : i.timm_names; *n; ++n)
      if (hf || n == i.timm_names) v.push_back(quote ? "'" + std::string(*n) + "'" : std::string(*n));
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i == 0 ? "" : i + 1 == v.size() ? " and " : ", ") + v[i];
  return s;
}

Activation parse_act(const json& a, const std::string& path) {
  const std::string s = a.is_string() ? a.get<std::string>() : std::string();
  if (const ActivationInfo* i = find_activation(s.c_str(), false)) return i->act;
  unsupported(path, "act_layer=" + brief(a) + " (only " + activation_spellings(false, false) + ")");
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
        bad(path, "label_names", "has a non-integer key '" + clip(it.key()) + "'");
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

// HF ACT2FN names of the GELU forms the engine runs: "gelu" / "gelu_python" are the exact erf
// form; "gelu_pytorch_tanh" and "gelu_new" the tanh approximation (the same formula);
// "quick_gelu" x * sigmoid(1.702 x); "silu" / "swish" x * sigmoid(x) (AIMv2's SwiGLU gate). Others
// ("gelu_fast" evaluates tanh differently, relu, ...) are refused by name.
Activation parse_hf_act(const std::string& act, const std::string& path) {
  if (const ActivationInfo* i = find_activation(act.c_str(), true)) return i->act;
  unsupported(path, "hidden_act '" + clip(act) + "' (only " + activation_spellings(true, true) + ")");
}

// transformers' SiglipVisionConfig (model_type "siglip_vision_model"): no class token, the
// attention-pool head on post_layernorm(x) (vision_use_head, default true), its own defaults
// (layer_norm_eps 1e-6, hidden_act gelu_pytorch_tanh) where the file leaves them out.
void apply_siglip_vision(const json& j, const std::string& path, ConfigHints* h) {
  if (has(j, "vision_use_head") && !get_bool(j, "vision_use_head", path)) {
    unsupported(path, "vision_use_head=false (a SigLIP tower without its pooling head has no pooled output)");
  }
  if (!has(j, "layer_norm_eps")) h->ln_eps = 1e-6f;
  if (!has(j, "hidden_act")) h->act = Activation::kGeluTanh;
  h->pool = GlobalPool::kMap;
  h->class_token = false;
  h->final_norm = true;  // post_layernorm
}

// transformers' Aimv2VisionConfig (model_type "aimv2_vision_model", apple/aimv2-*): RMSNorm
// (rms_norm_eps, default 1e-5) on the patch embeddings, in every block and at the end, a SwiGLU
// MLP (silu), no class token, biases per qkv_bias / mlp_bias (both default false: the loader
// reads them from the tensors), and the attention-pool head when use_head (default true; without
// it the tokens are pooled avg, as timm's aimv2_* do). is_native (2D sin-cos positions) is refused.
void apply_aimv2_vision(const json& j, const std::string& path, ConfigHints* h) {
  if (has(j, "is_native") && get_bool(j, "is_native", path)) {
    unsupported(path, "is_native=true (AIMv2 native resolution: 2D sin-cos positions computed per image size)");
  }
  h->ln_eps = has(j, "rms_norm_eps") ? get_eps(j, "rms_norm_eps", path) : 1e-5f;
  if (!has(j, "hidden_act")) h->act = Activation::kSilu;
  h->glu = true;
  h->rms_norm = true;
  h->embed_norm = true;
  h->class_token = false;
  h->final_norm = true;  // rms_norm
  h->qkv_bias = has(j, "qkv_bias") && get_bool(j, "qkv_bias", path);
  h->pool = !has(j, "use_head") || get_bool(j, "use_head", path) ? GlobalPool::kMap : GlobalPool::kAvg;
}

}  // namespace

json read_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::kIo, "cannot open " + path);
  // The depth check runs inside the parser (as the safetensors header parser does): a value
  // nested 100k deep must be refused before it is built, since dump() and parts of nlohmann
  // recurse once per level.
  const auto depth_limit = [&](int depth, json::parse_event_t, json&) -> bool {
    if (depth > limits::kMaxJsonDepth) {
      fail(ErrorCode::kFormat, path + ": invalid JSON: nested deeper than " + std::to_string(limits::kMaxJsonDepth) +
                                   " levels");
    }
    return true;
  };
  try {
    return json::parse(f, depth_limit);
  } catch (const json::exception& e) {
    fail(ErrorCode::kFormat, path + ": invalid JSON: " + e.what());
  }
}

namespace {

// HF CLIPModel / SiglipModel (model_type "clip" / "siglip"): the image tower as the vision model
// its vision_config describes (CLIPVisionModelWithProjection with the top-level projection_dim:
// the embeddings are get_image_features' image_embeds; SiglipVisionModel: pooler_output, the
// head), the text tower's tensors ignored.
ConfigHints parse_hf_dual_tower(const json& j, const std::string& mt, const std::string& path) {
  const bool clip_model = mt == "clip";
  if (!has(j, "vision_config") || !j.at("vision_config").is_object()) {
    fail(ErrorCode::kFormat, path + ": model_type '" + mt + "' (a whole " + (clip_model ? "CLIPModel" : "SiglipModel") +
                                 ") has no vision_config object");
  }
  json v = j.at("vision_config");
  v["model_type"] = clip_model ? "clip_vision_model" : "siglip_vision_model";
  v.erase("architectures");
  ConfigHints h = parse_hf_config(v, path + " (vision_config)");
  h.path = path;
  h.hf_class = clip_model ? "CLIPModel" : "SiglipModel";
  if (has(j, "architectures")) {
    const json& a = j.at("architectures");
    if (a.is_array() && !a.empty() && a[0].is_string()) h.hf_class = clip(a[0].get<std::string>());
  }
  if (clip_model) {
    // CLIPConfig.projection_dim (default 512) is the visual projection's width.
    h.proj_dim = has(j, "projection_dim") ? get_int(j, "projection_dim", path, limits::kMaxHidden) : 512;
    h.ignored_prefixes = {"text_model.", "text_projection.", "logit_scale"};
  } else {
    h.ignored_prefixes = {"text_model.", "logit_scale", "logit_bias"};
  }
  return h;
}

}  // namespace

ConfigHints parse_hf_config(const json& j, const std::string& path) {
  if (!j.is_object()) fail(ErrorCode::kFormat, path + ": expected a JSON object");
  ConfigHints h;
  h.kind = ConfigKind::kHF;
  h.path = path;
  try {
    std::string mt = "vit";
    if (has(j, "model_type")) {
      mt = get_str(j, "model_type", path);
      if (mt == "aimv2") {
        unsupported(path, "model_type 'aimv2' (a whole AIMv2 model, text tower included; save its "
                          "Aimv2VisionModel, model_type 'aimv2_vision_model')");
      }
      if (mt == "clip" || mt == "siglip") return parse_hf_dual_tower(j, mt, path);
      if (mt != "vit" && mt != "deit" && mt != "dinov2" && mt != "dinov2_with_registers" && mt != "clip_vision_model" &&
          mt != "siglip_vision_model" && mt != "aimv2_vision_model") {
        unsupported(path, "model_type '" + clip(mt) +
                              "' (only 'vit', 'deit', 'dinov2', 'dinov2_with_registers', 'clip_vision_model', "
                              "'siglip_vision_model', 'aimv2_vision_model')");
      }
      h.hf_model_type = mt;
    }
    const bool siglip = mt == "siglip_vision_model";
    if (has(j, "architectures")) {
      const json& a = j.at("architectures");
      if (a.is_array() && !a.empty() && a[0].is_string()) h.hf_class = clip(a[0].get<std::string>());
    }
    if (has(j, "hidden_act")) h.act = parse_hf_act(get_str(j, "hidden_act", path), path);
    if (has(j, "use_swiglu_ffn") && get_bool(j, "use_swiglu_ffn", path)) {
      // Dinov2SwiGLUFFN: weights_in [2I, D] -> silu(first half) * second half -> weights_out,
      // SiLU whatever hidden_act says (transformers hard-codes it).
      h.glu = true;
      h.act = Activation::kSilu;
    }
    if (has(j, "projection_dim")) h.proj_dim = get_int(j, "projection_dim", path, limits::kMaxHidden);
    if (has(j, "num_register_tokens")) h.reg_tokens = get_int(j, "num_register_tokens", path, limits::kMaxPatches);
    if (has(j, "hidden_size")) h.hidden = get_int(j, "hidden_size", path, limits::kMaxHidden);
    if (has(j, "num_hidden_layers")) h.depth = get_int(j, "num_hidden_layers", path, limits::kMaxDepth);
    if (has(j, "num_attention_heads")) h.heads = get_int(j, "num_attention_heads", path, limits::kMaxHeads);
    if (has(j, "intermediate_size")) h.mlp_hidden = get_int(j, "intermediate_size", path, limits::kMaxMlp);
    // Each config class's default; the eps is what makes HF ViT logits differ from timm's.
    const float eps_default = mt == "clip_vision_model" ? 1e-5f : mt.rfind("dinov2", 0) == 0 ? 1e-6f : 1e-12f;
    h.ln_eps = has(j, "layer_norm_eps") ? get_eps(j, "layer_norm_eps", path) : eps_default;
    if (has(j, "image_size")) {
      int ih = 0, iw = 0;
      get_hw(j, "image_size", path, limits::kMaxImageSide, &ih, &iw);
      h.image_h = ih;
      h.image_w = iw;
    }
    if (has(j, "patch_size")) h.patch = get_square(j, "patch_size", path, limits::kMaxPatch);
    if (has(j, "num_channels")) h.in_chans = get_int(j, "num_channels", path, limits::kMaxInChans);
    if (has(j, "qkv_bias")) h.qkv_bias = get_bool(j, "qkv_bias", path);
    h.pool = GlobalPool::kToken;  // the classifiers read layernorm(x)[:, 0] (CLIP: post_layernorm(x[:, 0]))
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
    if (siglip) apply_siglip_vision(j, path, &h);
    if (mt == "aimv2_vision_model") apply_aimv2_vision(j, path, &h);
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
      h.num_classes = get_int(j, "num_classes", path, limits::kMaxClasses);
    } else if (has(pc, "num_classes")) {
      h.num_classes = get_int(pc, "num_classes", path, limits::kMaxClasses);
    }
    if (has(j, "num_features") && !h.hidden) h.hidden = get_int(j, "num_features", path, limits::kMaxHidden);
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
      const std::string key = "pretrained_cfg.input_size";
      if (!v.is_array() || v.size() != 3 || !v[1].is_number_integer() || !v[2].is_number_integer()) {
        bad(path, key, "must be [C, H, W], got " + brief(v));
      }
      h.image_h = int_value(v[1], key + " H", path, 1, limits::kMaxImageSide);
      h.image_w = int_value(v[2], key + " W", path, 1, limits::kMaxImageSide);
      if (v[0].is_number_integer()) h.in_chans = int_value(v[0], key + " C", path, 1, limits::kMaxInChans);
    }
    if (has(pc, "interpolation")) {
      pp.interpolation = checked_interpolation(get_str(pc, "interpolation", path), path + " pretrained_cfg.interpolation");
    }
    // The resize before the centre crop is size / crop_pct: published values are 0.75..1.0;
    // outside [0.5, 2] the resized image would be absurd (crop_pct 1e-9: 2e11 pixels a side).
    if (has(pc, "crop_pct")) pp.crop_pct = get_float(pc, "crop_pct", path, 0.5, 2.0);
    if (has(pc, "crop_mode")) {
      const std::string cm = get_str(pc, "crop_mode", path);
      if (cm == "squash") {
        pp.resize = PreprocessConfig::Resize::kDirect;
      } else if (cm != "center") {
        fail(ErrorCode::kUnsupported, path + ": pretrained_cfg.crop_mode '" + clip(cm) +
                                          "' is not supported (\"center\" or \"squash\")");
      }
    }
    if (has(pc, "mean")) pp.mean = get_rgb(pc, "mean", path);
    if (has(pc, "std")) pp.std = get_std(pc, "std", path);
    h.preprocess = pp;

    // The constructor arguments: the architecture's entrypoint's own (timm_archs.inc: what timm's
    // source fixes, e.g. num_heads 16 for vit_base_patch16_gap_224), then config.json's
    // model_args over them (the non-default arguments its creator passed); they describe the
    // saved weights.
    json merged = json::object();
    bool have_args = false, said_eps = false;
    if (h.architecture) {
      if (const char* ep = timm_entrypoint_args(*h.architecture)) {
        merged = json::parse(ep);
        have_args = true;
      }
    }
    if (has(j, "model_args")) {
      const json& given = j.at("model_args");
      if (!given.is_object()) bad(path, "model_args", "must be an object");
      for (auto it = given.begin(); it != given.end(); ++it) merged[it.key()] = it.value();
      have_args = true;
    }
    if (have_args) {
      const json& ma = merged;
      const std::string mp = path + " model_args";
      auto truthy = [&](const char* k) { return has(ma, k) && ma.at(k).is_boolean() && ma.at(k).get<bool>(); };
      if (has(ma, "reg_tokens")) h.reg_tokens = get_int(ma, "reg_tokens", mp, limits::kMaxPatches);
      if (has(ma, "no_embed_class")) h.no_embed_class = get_bool(ma, "no_embed_class", mp);
      if (has(ma, "class_token")) h.class_token = get_bool(ma, "class_token", mp);
      // pre_norm: the norm_pre tensors decide (checked like every other tensor).
      if (truthy("qk_norm")) unsupported(path, "qk_norm=True");
      if (has(ma, "mlp_layer")) {
        // SwiGLUPacked: timm's GluMlp with gate_last=False, one fc1 whose first half is the gate
        // (act(x1) * x2); the act is the model's act_layer (SiLU in the DINOv2 giants). GluMlp
        // itself (the gate in the second half) and SwiGLU (separate fc1_g / fc1_x, aimv2 with
        // RmsNorm) are refused by name.
        const json& m = ma.at("mlp_layer");
        const std::string ms = m.is_string() ? m.get<std::string>() : std::string();
        if (ms == "SwiGLUPacked" || ms == "SwiGLU" || ms == "Mlp") {
          h.glu = ms != "Mlp";  // SwiGLU: separate fc1_g / fc1_x (aimv2), concatenated at load
        } else {
          unsupported(path, "mlp_layer=" + brief(m) + " (only Mlp, SwiGLUPacked and SwiGLU)");
        }
      }
      if (has(ma, "block_fn")) {
        // Block (pre-norm) and ResPostBlock (norm after each branch) share their tensors; the
        // parallel blocks (ParallelThingsBlock, ParallelScalingBlock, DiffParallelScalingBlock) do not run.
        const json& bf = ma.at("block_fn");
        const std::string b = bf.is_string() ? bf.get<std::string>() : std::string();
        if (b == "ResPostBlock" || b == "Block") {
          h.res_post = b == "ResPostBlock";
        } else {
          unsupported(path, "block_fn=" + brief(bf) + " (only Block and ResPostBlock; not the parallel blocks)");
        }
      }
      if (truthy("scale_attn_norm")) unsupported(path, "scale_attn_norm=True");
      if (truthy("scale_mlp_norm")) unsupported(path, "scale_mlp_norm=True");
      if (has(ma, "pool_include_prefix")) h.pool_include_prefix = get_bool(ma, "pool_include_prefix", mp);
      if (has(ma, "proj_bias")) h.proj_bias = get_bool(ma, "proj_bias", mp);
      if (has(ma, "backbone")) unsupported(path, "a hybrid CNN stem (backbone=" + brief(ma.at("backbone")) + ")");
      if (has(ma, "embed_args")) unsupported(path, "embed_args=" + brief(ma.at("embed_args")) + " (a custom patch stem)");
      if (has(ma, "attn_layer") && !(ma.at("attn_layer").is_string() && ma.at("attn_layer").get<std::string>() == "attn"))
        unsupported(path, "attn_layer=" + brief(ma.at("attn_layer")) + " (only the standard attention)");
      if (has(ma, "norm_eps")) {
        h.ln_eps = get_float(ma, "norm_eps", mp, 0.0, 1.0);
        said_eps = true;
      }
      if (has(ma, "pos_embed")) {
        const std::string pe = get_str(ma, "pos_embed", mp);
        if (pe != "learn") unsupported(path, "pos_embed='" + clip(pe) + "'");
      }
      if (has(ma, "act_layer")) h.act = parse_act(ma.at("act_layer"), path);
      // LayerNorm or RmsNorm (aimv2; timm's 'rmsnorm'), for every norm; an embed_norm_layer (the
      // patch embeddings' norm) of the same kind.
      auto norm_kind = [&](const char* key) {
        const json& a = ma.at(key);
        const std::string s = a.is_string() ? a.get<std::string>() : std::string();
        if (s == "layernorm" || s == "LayerNorm") return false;
        if (s == "rmsnorm" || s == "RmsNorm") return true;
        unsupported(path, std::string(key) + "=" + brief(a) + " (only LayerNorm and RmsNorm)");
      };
      if (has(ma, "norm_layer")) h.rms_norm = norm_kind("norm_layer");
      if (has(ma, "embed_norm_layer") && !ma.at("embed_norm_layer").is_null()) {
        if (norm_kind("embed_norm_layer") != h.rms_norm.value_or(false)) {
          unsupported(path, "embed_norm_layer=" + brief(ma.at("embed_norm_layer")) + " of another kind than norm_layer");
        }
        h.embed_norm = true;
      }
      if (has(ma, "global_pool")) h.pool = parse_pool(get_str(ma, "global_pool", mp), path);
      if (has(ma, "embed_dim")) h.hidden = get_int(ma, "embed_dim", mp, limits::kMaxHidden);
      if (has(ma, "depth")) h.depth = get_int(ma, "depth", mp, limits::kMaxDepth);
      if (has(ma, "num_heads")) h.heads = get_int(ma, "num_heads", mp, limits::kMaxHeads);
      if (has(ma, "patch_size")) h.patch = get_square(ma, "patch_size", mp, limits::kMaxPatch);
      if (has(ma, "in_chans")) h.in_chans = get_int(ma, "in_chans", mp, limits::kMaxInChans);
      if (has(ma, "num_classes")) h.num_classes = get_int(ma, "num_classes", mp, limits::kMaxClasses);
      if (has(ma, "qkv_bias")) h.qkv_bias = get_bool(ma, "qkv_bias", mp);
      if (has(ma, "final_norm")) h.final_norm = get_bool(ma, "final_norm", mp);
      if (has(ma, "fc_norm")) h.fc_norm = get_bool(ma, "fc_norm", mp);
      if (has(ma, "img_size") && !has(pc, "input_size")) {
        int ih = 0, iw = 0;
        get_hw(ma, "img_size", mp, limits::kMaxImageSide, &ih, &iw);
        h.image_h = ih;
        h.image_w = iw;
      } else if (has(ma, "img_size") && h.image_h && h.image_w) {
        // pretrained_cfg.input_size decides; a model_args img_size that says otherwise (even an
        // absurd one) is reported with both values, never used for a size.
        const json& v = ma.at("img_size");
        const bool same = v.is_array() ? v.size() == 2 && v[0] == *h.image_h && v[1] == *h.image_w
                                       : v.is_number_integer() && v == *h.image_h && v == *h.image_w;
        if (!same) {
          h.warnings.push_back(path + ": model_args.img_size " + brief(v) + " contradicts pretrained_cfg.input_size " +
                               std::to_string(*h.image_h) + "x" + std::to_string(*h.image_w) +
                               "; using the input size (the position table decides the stored grid)");
        }
      }
    }
    // timm: fc_norm=None -> use_fc_norm = global_pool in ('avg', 'avgmax', 'max') (not token, not map).
    if (h.pool && !h.fc_norm) h.fc_norm = (*h.pool != GlobalPool::kToken && *h.pool != GlobalPool::kMap);
    // Family defaults timm keeps in the entrypoint, not in model_args (see the header).
    if (h.architecture) {
      const std::string& a = *h.architecture;
      const bool said_norm = said_eps || (has(j, "model_args") && has(j.at("model_args"), "norm_layer"));
      if (a.find("_clip_") != std::string::npos && !said_norm) h.ln_eps = 1e-5f;
      if (a.find("quickgelu") != std::string::npos && !h.act) h.act = Activation::kQuickGelu;
      // (The SigLIP 2 towers' act_layer='gelu_tanh' comes from their entrypoints, timm_archs.inc.)
    }
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

ConfigHints parse_open_clip_config(const json& j, const std::string& path) {
  if (!j.is_object() || !has(j, "model_cfg") || !j.at("model_cfg").is_object())
    fail(ErrorCode::kFormat, path + ": expected an open_clip config (an object with a model_cfg object)");
  ConfigHints h;
  h.kind = ConfigKind::kOpenClip;
  h.path = path;
  try {
    const json& mc = j.at("model_cfg");
    const json vc = has(mc, "vision_cfg") ? mc.at("vision_cfg") : json::object();
    if (!vc.is_object()) bad(path, "model_cfg.vision_cfg", "must be an object");
    const std::string vp = path + " model_cfg.vision_cfg";
    auto truthy = [&](const char* k) { return has(vc, k) && vc.at(k).is_boolean() && vc.at(k).get<bool>(); };
    if (has(vc, "timm_model_name") && !vc.at("timm_model_name").is_null())
      unsupported(path, "an open_clip image tower built on a timm trunk (vision_cfg.timm_model_name '" +
                            clip(get_str(vc, "timm_model_name", vp)) + "')");
    if (truthy("attentional_pool")) unsupported(path, "open_clip's attentional pooler (vision_cfg.attentional_pool, CoCa)");
    for (const char* k : {"qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner", "scale_attn", "scale_fc"})
      if (truthy(k)) unsupported(path, std::string("open_clip vision_cfg.") + k);
    if (has(vc, "pos_embed_type") && get_str(vc, "pos_embed_type", vp) != "learnable")
      unsupported(path, "open_clip position embeddings of type '" + clip(get_str(vc, "pos_embed_type", vp)) + "'");
    h.hidden = has(vc, "width") ? get_int(vc, "width", vp, limits::kMaxHidden) : 768;
    h.depth = has(vc, "layers") ? get_int(vc, "layers", vp, limits::kMaxDepth) : 12;
    const int head_width = has(vc, "head_width") ? get_int(vc, "head_width", vp, limits::kMaxHidden) : 64;
    if (head_width <= 0 || *h.hidden % head_width != 0)
      bad(path, "model_cfg.vision_cfg.head_width", "must divide the width " + std::to_string(*h.hidden));
    h.heads = *h.hidden / head_width;
    if (has(vc, "patch_size")) h.patch = get_square(vc, "patch_size", vp, limits::kMaxPatch);
    if (has(vc, "image_size")) {
      int ih = 0, iw = 0;
      get_hw(vc, "image_size", vp, limits::kMaxImageSide, &ih, &iw);
      h.image_h = ih;
      h.image_w = iw;
    }
    const std::string pool = has(vc, "pool_type") ? get_str(vc, "pool_type", vp) : "tok";
    if (pool == "tok") {
      h.pool = GlobalPool::kToken;
    } else if (pool == "avg") {
      h.pool = GlobalPool::kAvg;
    } else {
      unsupported(path, "open_clip vision_cfg.pool_type '" + clip(pool) + "'");
    }
    h.ln_post_after_pool = truthy("final_ln_after_pool");
    h.final_norm = !h.ln_post_after_pool;
    h.fc_norm = h.ln_post_after_pool;
    h.ln_eps = 1e-5f;  // open_clip's LayerNorm: torch's default eps
    if (has(vc, "norm_kwargs") && vc.at("norm_kwargs").is_object() && has(vc.at("norm_kwargs"), "eps"))
      h.ln_eps = get_eps(vc.at("norm_kwargs"), "eps", vp + ".norm_kwargs");
    h.act = has(mc, "quick_gelu") && mc.at("quick_gelu").is_boolean() && mc.at("quick_gelu").get<bool>()
                ? Activation::kQuickGelu
                : Activation::kGeluErf;
    h.num_classes = 0;
    if (has(mc, "embed_dim")) h.proj_dim = get_int(mc, "embed_dim", path + " model_cfg", limits::kMaxHidden);
    // open_clip's eval transform: Resize(shorter side to image_size) + CenterCrop (torchvision), the
    // OpenAI CLIP mean / std unless preprocess_cfg says otherwise.
    PreprocessConfig pp;
    pp.resize = PreprocessConfig::Resize::kShortestThenCrop;
    pp.crop_pct = 1.0f;
    pp.interpolation = "bicubic";
    pp.mean = {0.48145466f, 0.4578275f, 0.40821073f};
    pp.std = {0.26862954f, 0.26130258f, 0.27577711f};
    if (has(j, "preprocess_cfg")) {
      const json& pc = j.at("preprocess_cfg");
      if (!pc.is_object()) bad(path, "preprocess_cfg", "must be an object");
      const std::string pp_path = path + " preprocess_cfg";
      if (has(pc, "mean")) pp.mean = get_rgb(pc, "mean", pp_path);
      if (has(pc, "std")) pp.std = get_std(pc, "std", pp_path);
      if (has(pc, "interpolation")) {
        pp.interpolation = checked_interpolation(get_str(pc, "interpolation", pp_path), pp_path + ".interpolation");
      }
      if (has(pc, "resize_mode")) {
        const std::string rm = get_str(pc, "resize_mode", pp_path);
        if (rm == "squash") pp.resize = PreprocessConfig::Resize::kDirect;
        else if (rm != "shortest")
          fail(ErrorCode::kUnsupported, pp_path + ".resize_mode '" + clip(rm) + "' is not supported (\"shortest\" or \"squash\")");
      }
    }
    h.preprocess = pp;
  } catch (const json::exception& e) {
    fail(ErrorCode::kFormat, path + ": " + e.what());
  }
  return h;
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
  pp.rescale = 1.0 / 255.0;
  return pp;
}

const char* pil_resample_name(int code) noexcept {
  // PIL.Image.Resampling: 0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING.
  static const char* const kNames[] = {"nearest", "lanczos", "bilinear", "bicubic", "box", "hamming"};
  return code >= 0 && code <= 5 ? kNames[code] : nullptr;
}

namespace {

// The class attributes of transformers' image processors (5.x PilBackend subclasses, the same
// values as their torchvision twins) that ViT families ship: what a field absent from
// preprocessor_config.json means. size / crop_size as the class spells them (0 = unset).
struct HFProcessorClass {
  const char* name;
  int resample;                 // PIL code
  bool imagenet_standard;       // mean = std = 0.5 (IMAGENET_STANDARD); else OpenAI CLIP's
  int size_h, size_w, shortest; // size {height, width} or {shortest_edge}
  int crop;                     // crop_size {crop, crop}; 0: none
  bool do_center_crop, do_convert_rgb, default_to_square;
};

constexpr HFProcessorClass kHFProcessors[] = {
    // name                 resample  std0.5  size_h size_w shortest crop  crop   rgb    square
    {"ViTImageProcessor", 2, true, 224, 224, 0, 0, false, false, true},
    {"DeiTImageProcessor", 3, true, 256, 256, 0, 224, true, false, true},
    {"CLIPImageProcessor", 3, false, 0, 0, 224, 224, true, true, false},  // also AIMv2's
    {"BitImageProcessor", 3, false, 0, 0, 224, 224, true, true, false},   // DINOv2's
    {"SiglipImageProcessor", 3, true, 224, 224, 0, 0, false, true, false},
};

// The keys of a preprocessor_config.json that do not change pixels (bookkeeping, output format).
constexpr const char* kHFInertKeys[] = {"image_processor_type", "feature_extractor_type", "processor_class", "auto_map",
                                        "_processor_class", "return_tensors", "data_format", "input_data_format",
                                        "device", "disable_grouping", "model_input_names", "image_seq_length",
                                        "num_image_tokens", "image_processor_class", "do_pad", "pad_size"};

const HFProcessorClass* hf_processor_class(const json& j, const std::string& path) {
  std::string type;
  if (has(j, "image_processor_type")) {
    type = get_str(j, "image_processor_type", path);
  } else if (has(j, "feature_extractor_type")) {
    type = get_str(j, "feature_extractor_type", path);  // the pre-4.x name: ViTFeatureExtractor, ...
    const auto fe = type.rfind("FeatureExtractor");
    if (fe != std::string::npos && fe + 16 == type.size()) type = type.substr(0, fe) + "ImageProcessor";
  } else {
    return nullptr;
  }
  // The backend suffixes name the same processor (transformers 5: *Pil; 4.x: *Fast).
  for (const char* suffix : {"Pil", "Fast"}) {
    const size_t n = std::strlen(suffix);
    if (type.size() > n && type.compare(type.size() - n, n, suffix) == 0) type.resize(type.size() - n);
  }
  for (const HFProcessorClass& c : kHFProcessors)
    if (type == c.name) return &c;
  if (type == "Siglip2ImageProcessor")
    fail(ErrorCode::kUnsupported, path + ": image_processor_type 'Siglip2ImageProcessor' (NaFlex: a patch grid per "
                                         "image from max_num_patches) is not supported");
  std::string known;
  for (const HFProcessorClass& c : kHFProcessors) known += std::string(known.empty() ? "" : ", ") + c.name;
  fail(ErrorCode::kUnsupported, path + ": image_processor_type '" + clip(type) + "' is not supported (known: " + known + ")");
}

// A transformers size dict (get_size_dict): an int (square, or the shortest edge when the
// class does not default to square), [h, w], or one of the key sets ViT families use.
struct HFSize {
  int h = 0, w = 0, shortest = 0, longest = 0;
};

HFSize hf_size(const json& v, const std::string& key, const std::string& path, bool default_to_square) {
  HFSize s;
  auto side = [&](const json& x, const std::string& k) { return int_value(x, k, path, 1, limits::kMaxImageSide); };
  if (v.is_number()) {
    if (default_to_square) s.h = s.w = side(v, key);
    else s.shortest = side(v, key);
    return s;
  }
  if (v.is_array() && v.size() == 2) {
    s.h = side(v[0], key + "[0]");
    s.w = side(v[1], key + "[1]");
    return s;
  }
  if (!v.is_object()) bad(path, key, "must be an integer, [height, width] or a size dict, got " + brief(v));
  std::vector<std::string> keys;
  for (auto it = v.begin(); it != v.end(); ++it) keys.push_back(it.key());
  std::sort(keys.begin(), keys.end());
  auto is = [&](std::vector<std::string> want) {
    std::sort(want.begin(), want.end());
    return keys == want;
  };
  if (is({"height", "width"})) {
    s.h = side(v.at("height"), key + ".height");
    s.w = side(v.at("width"), key + ".width");
  } else if (is({"shortest_edge"})) {
    s.shortest = side(v.at("shortest_edge"), key + ".shortest_edge");
  } else if (is({"shortest_edge", "longest_edge"})) {
    s.shortest = side(v.at("shortest_edge"), key + ".shortest_edge");
    s.longest = side(v.at("longest_edge"), key + ".longest_edge");
  } else {
    // transformers' PIL resize itself raises for {longest_edge} alone; {max_height, max_width} and
    // {min_pixels, max_pixels} give each image its own size.
    fail(ErrorCode::kUnsupported, path + ": '" + key + "' " + brief(v) +
                                      " is not a size form the engine runs ({height, width}, {shortest_edge}, "
                                      "{shortest_edge, longest_edge})");
  }
  return s;
}

}  // namespace

void apply_hf_preprocessor(const json& j, const std::string& path, PreprocessConfig* pp,
                           std::vector<std::string>* warnings) {
  if (!j.is_object()) fail(ErrorCode::kFormat, path + ": expected a JSON object");
  try {
    // The class's attributes first (a field the file leaves out, or writes as null, is the
    // class's), then the file's fields, as transformers' _set_attributes does.
    const HFProcessorClass* cls = hf_processor_class(j, path);
    HFSize size;
    HFSize crop;
    bool do_resize = true, do_center_crop = false, default_to_square = true;
    if (cls) {
      pp->interpolation = pil_resample_name(cls->resample);
      pp->mean = cls->imagenet_standard ? std::array<float, 3>{0.5f, 0.5f, 0.5f}
                                        : std::array<float, 3>{0.48145466f, 0.4578275f, 0.40821073f};
      pp->std = cls->imagenet_standard ? std::array<float, 3>{0.5f, 0.5f, 0.5f}
                                       : std::array<float, 3>{0.26862954f, 0.26130258f, 0.27577711f};
      size.h = cls->size_h;
      size.w = cls->size_w;
      size.shortest = cls->shortest;
      crop.h = crop.w = cls->crop;
      do_center_crop = cls->do_center_crop;
      pp->alpha_on_white = cls->do_convert_rgb;
      default_to_square = cls->default_to_square;
    } else {
      size.h = pp->input_h;  // no class named: the caller's defaults (ViTImageProcessor's, at the model size)
      size.w = pp->input_w;
      if (pp->resize == PreprocessConfig::Resize::kShortestEdgeCrop) {
        size = HFSize{};
        size.shortest = pp->shortest_edge;
        crop.h = pp->input_h;
        crop.w = pp->input_w;
        do_center_crop = true;
      }
    }
    pp->crop_pct = 1.0f;
    pp->rescale = 1.0 / 255.0;
    if (has(j, "default_to_square")) default_to_square = get_bool(j, "default_to_square", path);
    if (has(j, "do_resize")) do_resize = get_bool(j, "do_resize", path);
    if (has(j, "size")) size = hf_size(j.at("size"), "size", path, default_to_square);
    if (has(j, "do_center_crop")) do_center_crop = get_bool(j, "do_center_crop", path);
    if (has(j, "crop_size")) crop = hf_size(j.at("crop_size"), "crop_size", path, true);
    if (has(j, "resample")) {
      const json& r = j.at("resample");
      const char* name = r.is_number_integer() ? pil_resample_name(r.get<int>()) : nullptr;
      if (!name)
        fail(ErrorCode::kUnsupported, path + ": resample " + brief(r) +
                                          " is not a PIL filter (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)");
      pp->interpolation = name;
    }
    if (has(j, "do_rescale") && !get_bool(j, "do_rescale", path)) {
      pp->rescale = 1.0;
    } else if (has(j, "rescale_factor")) {
      const double f = get_num(j, "rescale_factor", path);
      if (!(f > 0.0 && f <= 1e6))
        bad(path, "rescale_factor", "is out of range: " + brief(j.at("rescale_factor")) + " (expected > 0 and <= 1e6)");
      pp->rescale = f;
    }
    if (has(j, "image_mean")) pp->mean = get_rgb(j, "image_mean", path);
    if (has(j, "image_std")) pp->std = get_std(j, "image_std", path);
    if (has(j, "do_normalize") && !get_bool(j, "do_normalize", path)) {
      pp->mean = {0.0f, 0.0f, 0.0f};
      pp->std = {1.0f, 1.0f, 1.0f};
    }
    if (has(j, "do_convert_rgb")) pp->alpha_on_white = get_bool(j, "do_convert_rgb", path);
    if (has(j, "do_pad") && get_bool(j, "do_pad", path))
      fail(ErrorCode::kUnsupported, path + ": do_pad=true (padding to pad_size) is not supported");
    for (const char* k : {"do_flip_channel_order", "do_reduce_labels", "do_color_quantize"})
      if (has(j, k) && j.at(k).is_boolean() && j.at(k).get<bool>())
        fail(ErrorCode::kUnsupported, path + ": " + k + "=true is not supported");
    // Anything else is not read: said once, so that nothing is silent.
    static const char* const kRead[] = {"default_to_square", "do_resize", "size", "do_center_crop", "crop_size",
                                        "resample", "do_rescale", "rescale_factor", "image_mean", "image_std",
                                        "do_normalize", "do_convert_rgb", "do_flip_channel_order",
                                        "do_reduce_labels", "do_color_quantize"};
    std::string unread;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      bool known = false;
      for (const char* r : kRead) known = known || k == r;
      for (const char* r : kHFInertKeys) known = known || k == r;
      if (!known && !it.value().is_null()) unread += (unread.empty() ? "" : ", ") + clip(k);
    }
    if (!unread.empty()) warnings->push_back(path + ": not read (no effect here): " + unread);

    // The output size: the crop's, else the resize's; a form that gives each image its own size
    // (transformers would return pixel arrays of different sizes) is refused.
    const bool has_crop = do_center_crop && crop.h > 0;
    if (do_center_crop && !(crop.h > 0 && crop.w > 0))
      bad(path, "crop_size", "must be {height, width} when do_center_crop is true, got " +
                                 (has(j, "crop_size") ? brief(j.at("crop_size")) : std::string("nothing")));
    if (!do_resize) {
      if (!has_crop)
        fail(ErrorCode::kUnsupported, path + ": do_resize=false without a centre crop keeps every image at its own "
                                             "size; the engine runs one size (set do_center_crop / crop_size)");
      pp->resize = PreprocessConfig::Resize::kCropOnly;
      pp->input_h = crop.h;
      pp->input_w = crop.w;
    } else if (size.h > 0) {
      pp->resize = PreprocessConfig::Resize::kDirect;
      pp->resize_h = size.h;
      pp->resize_w = size.w;
      pp->input_h = has_crop ? crop.h : size.h;
      pp->input_w = has_crop ? crop.w : size.w;
    } else {
      if (!has_crop)
        fail(ErrorCode::kUnsupported, path + ": size " + brief(has(j, "size") ? j.at("size") : json(size.shortest)) +
                                          " without a centre crop gives every image its own size; the engine runs "
                                          "one size (set do_center_crop / crop_size)");
      pp->resize = PreprocessConfig::Resize::kShortestEdgeCrop;
      pp->shortest_edge = size.shortest;
      pp->longest_edge = size.longest;
      pp->input_h = crop.h;
      pp->input_w = crop.w;
    }
  } catch (const json::exception& e) {
    fail(ErrorCode::kFormat, path + ": " + e.what());
  }
}

}  // namespace vit::detail
