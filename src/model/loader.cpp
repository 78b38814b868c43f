// vit-infer: load_model. Finds the weights (+ config.json / preprocessor_config.json),
// detects the layout from the tensor names (timm, HF ViT, original JAX .npz), resolves the
// ViTConfig (arch name < config.json < tensor shapes < overrides; heads: override > config >
// arch name > JAX shapes > standard-width table), checks every tensor's presence and shape
// against it, and maps the weights onto the internal timm-oriented fp32 ViTWeights
// (HF q/k/v concatenated; JAX kernels transposed/flattened, vit-reference.md §2).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/npz.h"
#include "io/safetensors.h"
#include "model/config_sources.h"
#include "model/limits.h"
#include "model/model.h"

namespace vit {

namespace fs = std::filesystem;
using detail::ConfigHints;
using detail::ConfigKind;
using Shape = std::vector<int64_t>;

namespace {

std::string to_s(int64_t v) { return std::to_string(v); }

// ---- tensor sources --------------------------------------------------------------------

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual std::vector<std::string> names() const = 0;  // sorted
  virtual bool has(const std::string& n) const = 0;
  virtual Shape shape(const std::string& n) const = 0;
  virtual Tensor read(const std::string& n) const = 0;
};

class SafetensorsSource : public TensorSource {
 public:
  explicit SafetensorsSource(const std::string& path) : f_(path) {}
  std::vector<std::string> names() const override { return f_.names(); }
  bool has(const std::string& n) const override { return f_.has(n); }
  Shape shape(const std::string& n) const override { return f_.entry(n).shape; }
  Tensor read(const std::string& n) const override { return f_.read(n); }

 private:
  SafetensorsFile f_;
};

class NpzSource : public TensorSource {
 public:
  explicit NpzSource(const std::string& path) : path_(path), arrays_(read_npz(path)) {}
  std::vector<std::string> names() const override {
    std::vector<std::string> v;
    for (auto& kv : arrays_) v.push_back(kv.first);
    return v;
  }
  bool has(const std::string& n) const override { return arrays_.count(n) != 0; }
  Shape shape(const std::string& n) const override { return at(n).shape; }
  Tensor read(const std::string& n) const override { return at(n); }

 private:
  const Tensor& at(const std::string& n) const {
    auto it = arrays_.find(n);
    if (it == arrays_.end()) fail(ErrorCode::kInternal, path_ + ": no array '" + n + "'");
    return it->second;
  }
  std::string path_;
  std::map<std::string, Tensor> arrays_;
};

bool is_zip(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char m[4] = {};
  f.read(m, 4);
  return f.gcount() == 4 && m[0] == 'P' && m[1] == 'K' && m[2] == 3 && m[3] == 4;
}

std::string ext_of(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e;
}

struct Located {
  std::string weights;
  std::string dir;
};

Located locate(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail(ErrorCode::kIo, "model path does not exist: " + path);
  if (!fs::is_directory(st)) return {path, fs::path(path).parent_path().string()};
  if (fs::is_regular_file(fs::path(path) / "model.safetensors")) {
    return {(fs::path(path) / "model.safetensors").string(), path};
  }
  std::vector<std::string> st_files, npz_files;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    if (!e.is_regular_file()) continue;
    const std::string x = ext_of(e.path());
    if (x == ".safetensors") st_files.push_back(e.path().string());
    if (x == ".npz") npz_files.push_back(e.path().string());
  }
  if (ec) fail(ErrorCode::kIo, "cannot list directory " + path + ": " + ec.message());
  std::sort(st_files.begin(), st_files.end());
  std::sort(npz_files.begin(), npz_files.end());
  auto pick = [&](const std::vector<std::string>& v, const char* kind) -> Located {
    if (v.size() > 1) {
      std::string list;
      for (size_t i = 0; i < v.size() && i < 5; ++i) list += (i ? ", " : "") + fs::path(v[i]).filename().string();
      fail(ErrorCode::kInvalidArgument, path + " holds " + to_s(static_cast<int64_t>(v.size())) + " " + kind +
                                            " files (" + list + (v.size() > 5 ? ", ..." : "") +
                                            "); pass the weights file itself (sharded checkpoints are not supported)");
    }
    return {v[0], path};
  };
  if (!st_files.empty()) return pick(st_files, ".safetensors");
  if (!npz_files.empty()) return pick(npz_files, ".npz");
  fail(ErrorCode::kIo, "no model.safetensors, *.safetensors or *.npz weights in directory " + path);
}

// [rows, cols] -> [cols, rows]
Tensor transpose2d(const Tensor& t, int64_t rows, int64_t cols) {
  Tensor o({cols, rows});
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) o.data[c * rows + r] = t.data[r * cols + c];
  }
  return o;
}

// The warning for a dual-tower checkpoint whose text tower (n tensors) is left unread.
std::string text_tower_unused(const std::string& file, const std::string& what, size_t n) {
  return file + ": " + what + ": its text tower (" + std::to_string(n) +
         " tensors) is not used; the image tower runs, its embeddings are the image features";
}

// A checkpoint with tensors the model does not read (a dual-tower CLIPModel's text tower): those
// names hidden, so that "every tensor present, none extra" applies to the image tower.
class FilteredSource : public TensorSource {
 public:
  FilteredSource(std::unique_ptr<TensorSource> inner, const std::vector<std::string>& hidden_prefixes)
      : inner_(std::move(inner)), prefixes_(hidden_prefixes) {}
  std::vector<std::string> names() const override {
    std::vector<std::string> v;
    for (std::string& n : inner_->names())
      if (!hidden(n)) v.push_back(std::move(n));
    return v;
  }
  bool has(const std::string& n) const override { return !hidden(n) && inner_->has(n); }
  Shape shape(const std::string& n) const override { return inner_->shape(n); }
  Tensor read(const std::string& n) const override { return inner_->read(n); }
  bool hidden(const std::string& n) const {
    for (const std::string& p : prefixes_)
      if (n.compare(0, p.size(), p) == 0) return true;
    return false;
  }

 private:
  std::unique_ptr<TensorSource> inner_;
  std::vector<std::string> prefixes_;
};

// An open_clip checkpoint (open_clip_model.safetensors: OpenAI's and LAION's CLIP layout, the image
// tower under visual.* beside the text tower), presented under timm's names as timm's own
// _convert_openai_clip maps them: conv1 -> patch_embed.proj, class_embedding -> cls_token,
// positional_embedding -> pos_embed, ln_pre -> norm_pre, transformer.resblocks.N.{ln_1, attn.in_proj,
// attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj, ls_1, ls_2} -> blocks.N.{norm1, attn.qkv, attn.proj,
// norm2, mlp.fc1, mlp.fc2, ls1, ls2}, ln_post -> norm (fc_norm with final_ln_after_pool), and the
// projection visual.proj [D, E] (x @ proj) -> visual_projection.weight [E, D]. The text tower is not
// listed. Names it has no mapping for keep their open_clip name (and are reported as unexpected).
class OpenClipSource : public TensorSource {
 public:
  static bool detect(const std::vector<std::string>& names) {
    return std::binary_search(names.begin(), names.end(), std::string("visual.conv1.weight")) &&
           std::binary_search(names.begin(), names.end(),
                              std::string("visual.transformer.resblocks.0.attn.in_proj_weight"));
  }
  OpenClipSource(std::unique_ptr<TensorSource> inner, bool ln_post_after_pool, const std::string& file)
      : inner_(std::move(inner)) {
    static const std::pair<const char*, const char*> kBlock[] = {
        {"ln_1.", "norm1."},          {"ln_2.", "norm2."},           {"attn.in_proj_weight", "attn.qkv.weight"},
        {"attn.in_proj_bias", "attn.qkv.bias"}, {"attn.out_proj.", "attn.proj."}, {"mlp.c_fc.", "mlp.fc1."},
        {"mlp.c_proj.", "mlp.fc2."},  {"ls_1.gamma", "ls1.gamma"},   {"ls_2.gamma", "ls2.gamma"}};
    for (const std::string& n : inner_->names()) {
      if (n.compare(0, 7, "visual.") != 0) {
        ++text_;
        continue;
      }
      const std::string r = n.substr(7);
      const auto with = [&](const std::string& pre, const std::string& to) {
        return r.compare(0, pre.size(), pre) == 0 ? to + r.substr(pre.size()) : std::string();
      };
      if (r.compare(0, 10, "attn_pool.") == 0 || r.compare(0, 21, "attn_pool_contrastive") == 0)
        fail(ErrorCode::kUnsupported, file + ": open_clip's attentional pooler ('" + n + "', CoCa) is not supported by vit-infer");
      if (r.compare(0, 6, "trunk.") == 0)
        fail(ErrorCode::kUnsupported, file + ": an open_clip image tower built on a timm trunk ('" + n +
                                          "') is not supported by vit-infer (load the trunk's timm checkpoint)");
      Entry e{n, Entry::kAsIs};
      std::string t;
      if (r == "conv1.weight") t = "patch_embed.proj.weight";
      else if (r == "class_embedding") t = "cls_token", e.how = Entry::kLead2;
      else if (r == "positional_embedding") t = "pos_embed", e.how = Entry::kLead1;
      else if (r == "proj") t = "visual_projection.weight", e.how = Entry::kTranspose;
      else if (!(t = with("ln_pre.", "norm_pre.")).empty()) {
      } else if (!(t = with("ln_post.", ln_post_after_pool ? "fc_norm." : "norm.")).empty()) {
      } else if (r.compare(0, 22, "transformer.resblocks.") == 0) {
        const size_t dot = r.find('.', 22);
        const std::string idx = r.substr(22, dot == std::string::npos ? std::string::npos : dot - 22);
        const std::string rest = dot == std::string::npos ? std::string() : r.substr(dot + 1);
        for (const auto& [from, to] : kBlock)
          if (rest.compare(0, std::strlen(from), from) == 0) t = "blocks." + idx + "." + to + rest.substr(std::strlen(from));
      }
      map_[t.empty() ? n : t] = e;
    }
  }
  // Tensors outside visual.* (the text tower, logit_scale).
  size_t text_tensors() const { return text_; }
  std::vector<std::string> names() const override {
    std::vector<std::string> v;
    for (const auto& [n, e] : map_) v.push_back(n);
    return v;
  }
  bool has(const std::string& n) const override { return map_.count(n) > 0; }
  Shape shape(const std::string& n) const override {
    const Entry& e = map_.at(n);
    Shape s = inner_->shape(e.src);
    if (e.how == Entry::kLead1) s.insert(s.begin(), 1);
    if (e.how == Entry::kLead2) s.insert(s.begin(), 2, 1);
    if (e.how == Entry::kTranspose && s.size() == 2) std::swap(s[0], s[1]);
    return s;
  }
  Tensor read(const std::string& n) const override {
    const Entry& e = map_.at(n);
    Tensor t = inner_->read(e.src);
    if (e.how == Entry::kTranspose && t.shape.size() == 2) return transpose2d(t, t.shape[0], t.shape[1]);
    t.shape = shape(n);
    return t;
  }

 private:
  struct Entry {
    std::string src;
    enum How { kAsIs, kLead1, kLead2, kTranspose } how;
  };
  std::unique_ptr<TensorSource> inner_;
  std::map<std::string, Entry> map_;
  size_t text_ = 0;
};

std::unique_ptr<TensorSource> open_source(const std::string& path) {
  const std::string x = ext_of(path);
  if (x == ".npz" || (x != ".safetensors" && is_zip(path))) return std::make_unique<NpzSource>(path);
  return std::make_unique<SafetensorsSource>(path);
}

// ---- layouts ---------------------------------------------------------------------------

// The HF model families whose layouts map onto the internal model (tensor names differ,
// the math is the ViT's with the family's ViTConfig flags).
enum class HFFamily { kViT, kDeiT, kDinov2, kCLIP };

const char* hf_family_name(HFFamily f) {
  switch (f) {
    case HFFamily::kViT: return "ViT";
    case HFFamily::kDeiT: return "DeiT";
    case HFFamily::kDinov2: return "DINOv2";
    case HFFamily::kCLIP: return "CLIP vision";
  }
  return "?";
}

struct LayoutInfo {
  WeightLayout layout = WeightLayout::kTimm;
  std::string prefix;  // HF: the base model's attribute ("vit.", "deit.", "dinov2.", "vision_model.") or ""
  HFFamily hf = HFFamily::kViT;
  bool hf_swiglu = false;  // HF DINOv2 use_swiglu_ffn: the MLP is mlp.weights_in / mlp.weights_out
  bool timm_split_glu = false;  // timm SwiGLU (aimv2): mlp.fc1_g / mlp.fc1_x, concatenated at load
  bool mlp_bias = true;  // HF Aimv2 mlp_bias: the ffn's gate / up / down Linears have biases
};

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

std::string name_list(const std::vector<std::string>& v, size_t max_n = 5) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max_n; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > max_n) s += ", ... (" + to_s(static_cast<int64_t>(v.size())) + " in all)";
  return s;
}

// ---- the attention-pool head (map) and transformers' SiglipVisionModel -------------------------
// Kept together, apart from the plain layouts' code, so that other HF layouts merge cleanly.

// SiglipVisionModel names: "[vision_model.]embeddings.patch_embedding.weight" (singular, unlike
// ViT's embeddings.patch_embeddings.projection), encoder.layers.N.*, post_layernorm, head.*.
bool detect_hf_siglip(const std::vector<std::string>& names, LayoutInfo* L) {
  for (const char* p : {"vision_model.", ""}) {
    if (std::find(names.begin(), names.end(), std::string(p) + "embeddings.patch_embedding.weight") != names.end()) {
      // CLIPVisionModel names its conv the same: SigLIP is the one without a class embedding.
      if (std::find(names.begin(), names.end(), std::string(p) + "embeddings.class_embedding") != names.end()) continue;
      *L = {WeightLayout::kHFSiglip, p, HFFamily::kViT};
      return true;
    }
  }
  return false;
}

// Aimv2VisionModel names: "[vision_model.]embeddings.patch_embed.weight" with embeddings.rms_norm,
// encoder.layers.N.{rms_norm1, attention.{q,k,v,out}_proj, rms_norm2, ffn.{gate,up,down}_proj},
// rms_norm, head.{cls_token, k_proj, v_proj, output_proj}.
bool detect_hf_aimv2(const std::vector<std::string>& names, LayoutInfo* L) {
  const auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  for (const char* p : {"vision_model.", ""}) {
    if (has(std::string(p) + "embeddings.patch_embed.weight") && has(std::string(p) + "embeddings.rms_norm.weight")) {
      *L = {WeightLayout::kHFAimv2, p, HFFamily::kViT};
      L->mlp_bias = has(std::string(p) + "encoder.layers.0.ffn.gate_proj.bias");
      return true;
    }
  }
  return false;
}

// HF base-model prefixes: ViTForImageClassification "vit.", DeiT* "deit.", Dinov2For* "dinov2." /
// "dinov2_with_registers.", CLIPVisionModel(WithProjection) "vision_model."; bare models none.
constexpr const char* kHFPrefixes[] = {"vit.", "deit.", "dinov2.", "dinov2_with_registers.", "vision_model.", ""};

LayoutInfo detect_layout(const std::vector<std::string>& names, const std::string& file) {
  if (LayoutInfo s; detect_hf_siglip(names, &s)) return s;
  if (LayoutInfo a; detect_hf_aimv2(names, &a)) return a;
  bool timm = false, jax = false;
  std::set<std::string> hf_prefixes;
  for (const std::string& n : names) {
    if (n == "patch_embed.proj.weight" || starts_with(n, "blocks.") || n == "cls_token" || n == "pos_embed") timm = true;
    for (const char* pc : kHFPrefixes) {
      const std::string p = pc;
      if (starts_with(n, p + "embeddings.") || starts_with(n, p + "encoder.layer.") || starts_with(n, p + "encoder.layers.")) {
        hf_prefixes.insert(p);
        break;
      }
    }
    if (n == "embedding/kernel" || starts_with(n, "Transformer/")) jax = true;
  }
  const int kinds = timm + !hf_prefixes.empty() + jax;
  if (kinds != 1 || hf_prefixes.size() > 1) {
    fail(kinds == 0 ? ErrorCode::kUnsupported : ErrorCode::kFormat,
         file + ": cannot tell the weight layout (expected timm names such as patch_embed.proj.weight, HF "
                "[vit. / deit. / dinov2. / vision_model.]embeddings.*, or JAX embedding/kernel; " +
             (kinds == 0 ? std::string("found none") : std::string("found a mix")) + "); tensors: " + name_list(names));
  }
  if (timm) {
    LayoutInfo t{WeightLayout::kTimm, "", HFFamily::kViT};
    t.timm_split_glu = std::find(names.begin(), names.end(), "blocks.0.mlp.fc1_g.weight") != names.end();
    return t;
  }
  if (jax) return {WeightLayout::kJax, "", HFFamily::kViT};
  LayoutInfo L{WeightLayout::kHF, *hf_prefixes.begin(), HFFamily::kViT};
  const std::string& p = L.prefix;
  const std::set<std::string> all(names.begin(), names.end());
  const auto any_with = [&](const std::string& pre) {
    auto it = all.lower_bound(pre);
    return it != all.end() && starts_with(*it, pre);
  };
  // Each family by a tensor only its layout has (or its base-model prefix).
  if (all.count(p + "embeddings.class_embedding") || any_with(p + "encoder.layers.") || p == "vision_model.") {
    L.hf = HFFamily::kCLIP;
  } else if (starts_with(p, "dinov2") || all.count(p + "encoder.layer.0.norm1.weight") ||
             all.count(p + "encoder.layer.0.layer_scale1.lambda1") || all.count(p + "embeddings.register_tokens")) {
    L.hf = HFFamily::kDinov2;
    L.hf_swiglu = any_with(p + "encoder.layer.0.mlp.weights_in.");
  } else if (p == "deit." || all.count(p + "embeddings.distillation_token")) {
    L.hf = HFFamily::kDeiT;
  }
  return L;
}

// Without a preprocessor_config.json, each HF family's own processor as its hub checkpoints set
// it: CLIPImageProcessor (shorter side 224, centre crop 224, bicubic, OpenAI CLIP mean / std),
// DINOv2's BitImageProcessor (shorter side 256, crop 224, bicubic, ImageNet mean / std),
// SiglipImageProcessor (bicubic squash, mean = std = 0.5); the rest keep ViTImageProcessor's
// bilinear squash. Sizes scale with the crop (set to the run size by the caller).
void hf_family_preprocess(const LayoutInfo& L, PreprocessConfig* pp) {
  const int crop = pp->input_h;
  auto shortest_crop = [&](int edge_at_224) {
    pp->resize = PreprocessConfig::Resize::kShortestEdgeCrop;
    pp->shortest_edge = static_cast<int>(std::lround(edge_at_224 * (crop / 224.0)));
    pp->interpolation = "bicubic";
  };
  if (L.layout == WeightLayout::kHFSiglip) {
    pp->interpolation = "bicubic";
  } else if ((L.layout == WeightLayout::kHF && L.hf == HFFamily::kCLIP) || L.layout == WeightLayout::kHFAimv2) {
    // apple/aimv2-* ship CLIPImageProcessor with OpenAI CLIP's mean / std.
    shortest_crop(224);
    pp->mean = {0.48145466f, 0.4578275f, 0.40821073f};
    pp->std = {0.26862954f, 0.26130258f, 0.27577711f};
  } else if (L.layout == WeightLayout::kHF && L.hf == HFFamily::kDinov2) {
    shortest_crop(256);
    pp->mean = {0.485f, 0.456f, 0.406f};
    pp->std = {0.229f, 0.224f, 0.225f};
  }
}

// The per-block tensor names (without ".weight" / ".bias") of each HF family.
struct HFBlockNames {
  const char *ln1, *ln2, *q, *k, *v, *proj, *fc1, *fc2;
  const char *ls1, *ls2;  // LayerScale (DINOv2 layer_scale{1,2}.lambda1), else null
};

HFBlockNames hf_block_names(const LayoutInfo& L) {
  switch (L.hf) {
    case HFFamily::kCLIP:
      return {"layer_norm1", "layer_norm2", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
              "self_attn.out_proj", "mlp.fc1", "mlp.fc2", nullptr, nullptr};
    case HFFamily::kDinov2:
      return {"norm1",
              "norm2",
              "attention.attention.query",
              "attention.attention.key",
              "attention.attention.value",
              "attention.output.dense",
              L.hf_swiglu ? "mlp.weights_in" : "mlp.fc1",  // Dinov2SwiGLUFFN: [2I, D] gate | value, [D, I]
              L.hf_swiglu ? "mlp.weights_out" : "mlp.fc2",
              "layer_scale1.lambda1",
              "layer_scale2.lambda1"};
    case HFFamily::kViT:
    case HFFamily::kDeiT:
      break;
  }
  return {"layernorm_before", "layernorm_after", "attention.attention.query", "attention.attention.key",
          "attention.attention.value", "attention.output.dense", "intermediate.dense", "output.dense", nullptr, nullptr};
}

// The HF tensors outside the blocks, per family.
struct HFNames {
  std::string cls, pos, patch_w, patch_b, norm, block_prefix;  // norm: final (ViT) / post_layernorm (CLIP)
  std::string dist, reg, pre_norm, proj;                       // empty where the family has none
  std::string head, head_dist;                                 // without ".weight" / ".bias"
};

// DeiT's teacher head pair exists only in DeiTForImageClassificationWithTeacher checkpoints.
bool hf_deit_teacher(const TensorSource& src) { return src.has("cls_classifier.weight"); }

HFNames hf_names(const LayoutInfo& L, bool deit_teacher) {
  const std::string& p = L.prefix;
  HFNames n;
  if (L.hf == HFFamily::kCLIP) {
    n.cls = p + "embeddings.class_embedding";        // [D]
    n.pos = p + "embeddings.position_embedding.weight";  // [1 + N, D] (an nn.Embedding)
    n.patch_w = p + "embeddings.patch_embedding.weight";  // no bias
    n.pre_norm = p + "pre_layrnorm";                 // sic: HF's name
    n.norm = p + "post_layernorm";                   // on the pooled cls row only
    n.block_prefix = p + "encoder.layers.";
    n.proj = "visual_projection.weight";             // WithProjection only
    return n;
  }
  n.cls = p + "embeddings.cls_token";
  n.pos = p + "embeddings.position_embeddings";
  n.patch_w = p + "embeddings.patch_embeddings.projection.weight";
  n.patch_b = p + "embeddings.patch_embeddings.projection.bias";
  n.norm = p + "layernorm";
  n.block_prefix = p + "encoder.layer.";
  n.head = "classifier";
  if (L.hf == HFFamily::kDeiT) {
    n.dist = p + "embeddings.distillation_token";
    if (deit_teacher) {
      n.head = "cls_classifier";
      n.head_dist = "distillation_classifier";
    }
  }
  if (L.hf == HFFamily::kDinov2) n.reg = p + "embeddings.register_tokens";
  return n;
}

// Largest block index + 1 for names "<pre><N><post...>".
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

[[noreturn]] void unsupported_variant(const std::string& file, const std::string& what, const std::string& tensor) {
  fail(ErrorCode::kUnsupported, file + ": " + what + " is not supported by vit-infer (tensor '" + tensor + "')");
}

// For a timm block tensor "blocks.<digits>.<rest>" sets *rest and returns true. A plain scan:
// names are untrusted, and std::regex recurses once per character (a 100k-digit index
// overflowed the stack).
bool timm_block_rest(const std::string& n, std::string* rest) {
  static const std::string pre = "blocks.";
  if (!starts_with(n, pre)) return false;
  size_t j = pre.size();
  while (j < n.size() && std::isdigit(static_cast<unsigned char>(n[j]))) ++j;
  if (j == pre.size() || j >= n.size() || n[j] != '.') return false;
  *rest = n.substr(j + 1);
  return true;
}

// Refusals by name of what the attention pool can carry and the engine does not compute.
void reject_attn_pool_variants(const std::string& n, const std::string& file) {
  if (starts_with(n, "attn_pool.q_norm.") || starts_with(n, "attn_pool.k_norm.")) {
    unsupported_variant(file, "qk_norm in the attention-pool head", n);
  }
  if (n == "attn_pool.pos_embed") {
    unsupported_variant(file, "a position embedding in the attention-pool head (pos_embed='abs')", n);
  }
}

void reject_variants(const TensorSource& src, const LayoutInfo& L, const std::string& file) {
  for (const std::string& n : src.names()) {
    if (L.layout == WeightLayout::kTimm) {
      std::string rest;
      if (timm_block_rest(n, &rest)) {
        if (starts_with(rest, "attn.q_norm.") || starts_with(rest, "attn.k_norm.")) unsupported_variant(file, "qk_norm", n);
        if (starts_with(rest, "mlp.w12.")) unsupported_variant(file, "a fused SwiGLU MLP (mlp.w12 / mlp.w3)", n);
        if (starts_with(rest, "norm.") || starts_with(rest, "attn.norm.") || starts_with(rest, "mlp.norm.")) {
          unsupported_variant(file, "norms inside the block (scale_attn_norm / scale_mlp_norm / residual-post blocks)", n);
        }
        if (starts_with(rest, "attn_out_proj.") || starts_with(rest, "in_proj.") || starts_with(rest, "attns.") ||
            starts_with(rest, "ffns.")) {
          unsupported_variant(file, "parallel blocks (ParallelScalingBlock / ParallelThingsBlock)", n);
        }
      }
      if (starts_with(n, "patch_embed.backbone.")) {
        unsupported_variant(file, "a hybrid CNN stem (HybridEmbed: the ResNet / R26 / R50 + ViT hybrids)", n);
      }
      reject_attn_pool_variants(n, file);
    } else if (L.layout == WeightLayout::kHF) {
      if (starts_with(n, "head.") || starts_with(n, "pooler.attention") || n.find(".head.attention.") != std::string::npos) {
        unsupported_variant(file, "an attention-pooling head (SigLIP's)", n);
      }
      if (L.hf == HFFamily::kDinov2 && n.find(".mlp.w12.") != std::string::npos) {
        unsupported_variant(file, "the fused SwiGLU MLP of the original DINOv2 code (mlp.w12 / mlp.w3; transformers' "
                                  "Dinov2Model names it mlp.weights_in / mlp.weights_out)", n);
      }
    } else {
      if (starts_with(n, "pre_logits/")) {
        unsupported_variant(file, "the pre_logits layer of in21k-only JAX checkpoints (use a fine-tuned checkpoint)", n);
      }
    }
  }
  if (L.layout == WeightLayout::kJax && !src.has("cls") && src.has("embedding/kernel")) {
    fail(ErrorCode::kUnsupported, file + ": no 'cls' array: JAX models without a class token (classifier='gap') are "
                                         "not supported by vit-infer");
  }
}

// The tensor names of one layout, for the pieces the loader needs to look at first.
struct Names {
  std::string patch_w, patch_b, cls, pos, fc1_b0, head_w, head_b, qkv_bias0, norm_w;
  std::string block_prefix;
  std::string fc2_b0;  // block 0's second MLP matrix: its input width says whether the MLP is gated
};

Names defining_names(const LayoutInfo& L, bool deit_teacher) {
  Names n;
  switch (L.layout) {
    case WeightLayout::kTimm:
      n = {"patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "pos_embed", "blocks.0.mlp.fc1.weight",
           "head.weight", "head.bias", "blocks.0.attn.qkv.bias", "norm.weight", "blocks.", "blocks.0.mlp.fc2.weight"};
      if (L.timm_split_glu) {
        n.fc1_b0 = "blocks.0.mlp.fc1_g.weight";  // the gate's rows: the MLP width
        n.fc2_b0.clear();                         // gated by its names, not by the shapes
      }
      break;
    case WeightLayout::kHF: {
      const HFNames h = hf_names(L, deit_teacher);
      const HFBlockNames b = hf_block_names(L);
      n = {h.patch_w, h.patch_b, h.cls, h.pos, h.block_prefix + "0." + b.fc1 + ".weight",
           h.head.empty() ? std::string() : h.head + ".weight", h.head.empty() ? std::string() : h.head + ".bias",
           h.block_prefix + "0." + b.q + ".bias", h.norm + ".weight", h.block_prefix,
           h.block_prefix + "0." + b.fc2 + ".weight"};
      break;
    }
    case WeightLayout::kJax:
      n = {"embedding/kernel", "embedding/bias", "cls", "Transformer/posembed_input/pos_embedding",
           "Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel", "head/kernel", "head/bias",
           "Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/bias", "Transformer/encoder_norm/scale",
           "Transformer/encoderblock_", ""};
      break;
    case WeightLayout::kHFSiglip: {  // no cls token, no classifier: those names are left empty
      const std::string& p = L.prefix;
      n = {p + "embeddings.patch_embedding.weight", p + "embeddings.patch_embedding.bias", "",
           p + "embeddings.position_embedding.weight", p + "encoder.layers.0.mlp.fc1.weight", "", "",
           p + "encoder.layers.0.self_attn.q_proj.bias", p + "post_layernorm.weight", p + "encoder.layers.", ""};
      break;
    }
    case WeightLayout::kHFAimv2: {  // no cls token, no classifier; gated by its names (gate_proj / up_proj)
      const std::string& p = L.prefix;
      n = {p + "embeddings.patch_embed.weight", p + "embeddings.patch_embed.bias", "",
           p + "embeddings.position_embedding.weight", p + "encoder.layers.0.ffn.gate_proj.weight", "", "",
           p + "encoder.layers.0.attention.q_proj.bias", p + "rms_norm.weight", p + "encoder.layers.", ""};
      break;
    }
  }
  return n;
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

// A tensor dimension that becomes a model size (width, patch, ...): checked against its
// limit (model/limits.h) before the cast to int, so that e.g. 2^32 + 8 is not read as 8.
int model_dim(const Shape& s, size_t i, int64_t lo, int64_t hi, const char* what, const std::string& tensor,
              const std::string& file) {
  const int64_t v = s[i];
  if (v < lo || v > hi) {
    fail(ErrorCode::kFormat, file + ": tensor '" + tensor + "' has shape " + shape_str(s) + ": " + what + " " +
                                 to_s(v) + " is outside " + to_s(lo) + ".." + to_s(hi));
  }
  return static_cast<int>(v);
}

// ---- the attention-pool head and SiglipVisionModel (continued) ---------------------------------

// The head's tensor names in a layout (timm AttentionPoolLatent / HF SiglipMultiheadAttentionPoolingHead).
struct AttnPoolNames {
  std::string latent, fc1_w, q_bias;  // q_bias: timm attn_pool.q.bias, HF in_proj_bias (Aimv2: k_proj.bias)
};
AttnPoolNames attn_pool_names(const LayoutInfo& L) {
  if (L.layout == WeightLayout::kHFAimv2) {  // Aimv2AttentionPoolingHead: no q projection, no MLP
    const std::string h = L.prefix + "head.";
    return {h + "cls_token", "", h + "k_proj.bias"};
  }
  if (L.layout == WeightLayout::kHFSiglip) {
    const std::string h = L.prefix + "head.";
    return {h + "probe", h + "mlp.fc1.weight", h + "attention.in_proj_bias"};
  }
  return {"attn_pool.latent", "attn_pool.mlp.fc1.weight", "attn_pool.q.bias"};
}

bool has_attn_pool(const TensorSource& src, const LayoutInfo& L) {
  return (L.layout == WeightLayout::kTimm || L.layout == WeightLayout::kHFSiglip || L.layout == WeightLayout::kHFAimv2) &&
         src.has(attn_pool_names(L).latent);
}

// The head's sizes from its tensors: latent rows L (timm latent [1, L, D]; HF probe [1, 1, D]),
// MLP width, q / kv bias.
void resolve_attn_pool(const TensorSource& src, const LayoutInfo& L, ViTConfig* cfg, const std::string& file) {
  const AttnPoolNames an = attn_pool_names(L);
  cfg->map_latent_len =
      model_dim(need_shape(src, an.latent, 3, file), 1, 1, limits::kMaxPatches, "latent rows", an.latent, file);
  cfg->map_mlp_hidden =
      an.fc1_w.empty() ? 0 : model_dim(need_shape(src, an.fc1_w, 2, file), 0, 1, limits::kMaxMlp, "mlp width", an.fc1_w, file);
  cfg->map_qkv_bias = L.layout == WeightLayout::kHFSiglip || src.has(an.q_bias);
  cfg->map_query_proj = L.layout != WeightLayout::kHFAimv2;
}

// Every tensor of the head, source name -> stored shape.
void expected_attn_pool(const LayoutInfo& L, const ViTConfig& c, std::map<std::string, Shape>* e) {
  const int64_t D = c.hidden, M = c.map_mlp_hidden;
  if (L.layout == WeightLayout::kHFAimv2) {
    const std::string h = L.prefix + "head.";
    (*e)[h + "cls_token"] = {1, c.map_latent_len, D};
    for (const char* m : {"k_proj", "v_proj"}) {
      (*e)[h + m + ".weight"] = {D, D};
      if (c.map_qkv_bias) (*e)[h + m + ".bias"] = {D};
    }
    (*e)[h + "output_proj.weight"] = {D, D};
    (*e)[h + "output_proj.bias"] = {D};
    return;
  }
  if (L.layout == WeightLayout::kHFSiglip) {
    const std::string h = L.prefix + "head.";
    (*e)[h + "probe"] = {1, c.map_latent_len, D};
    (*e)[h + "attention.in_proj_weight"] = {3 * D, D};
    (*e)[h + "attention.in_proj_bias"] = {3 * D};
    (*e)[h + "attention.out_proj.weight"] = {D, D};
    (*e)[h + "attention.out_proj.bias"] = {D};
    (*e)[h + "layernorm.weight"] = (*e)[h + "layernorm.bias"] = {D};
    (*e)[h + "mlp.fc1.weight"] = {M, D};
    (*e)[h + "mlp.fc1.bias"] = {M};
    (*e)[h + "mlp.fc2.weight"] = {D, M};
    (*e)[h + "mlp.fc2.bias"] = {D};
    return;
  }
  (*e)["attn_pool.latent"] = {1, c.map_latent_len, D};
  (*e)["attn_pool.q.weight"] = {D, D};
  (*e)["attn_pool.kv.weight"] = {2 * D, D};
  if (c.map_qkv_bias) {
    (*e)["attn_pool.q.bias"] = {D};
    (*e)["attn_pool.kv.bias"] = {2 * D};
  }
  (*e)["attn_pool.proj.weight"] = {D, D};
  (*e)["attn_pool.proj.bias"] = {D};
  (*e)["attn_pool.norm.weight"] = (*e)["attn_pool.norm.bias"] = {D};
  (*e)["attn_pool.mlp.fc1.weight"] = {M, D};
  (*e)["attn_pool.mlp.fc1.bias"] = {M};
  (*e)["attn_pool.mlp.fc2.weight"] = {D, M};
  (*e)["attn_pool.mlp.fc2.bias"] = {D};
}

// SiglipVisionModel's encoder, source name -> stored shape (no class token; the position table is
// an nn.Embedding [N, D]; post_layernorm is the final norm; every Linear has a bias).
void expected_hf_siglip(const LayoutInfo& L, const ViTConfig& c, int64_t pos_rows, std::map<std::string, Shape>* e) {
  const std::string& p = L.prefix;
  const int64_t D = c.hidden, I = c.mlp_hidden;
  (*e)[p + "embeddings.patch_embedding.weight"] = {D, c.in_chans, c.patch, c.patch};
  (*e)[p + "embeddings.patch_embedding.bias"] = {D};
  (*e)[p + "embeddings.position_embedding.weight"] = {pos_rows, D};
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = p + "encoder.layers." + std::to_string(i) + ".";
    for (const char* q : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      (*e)[b + "self_attn." + q + ".weight"] = {D, D};
      (*e)[b + "self_attn." + q + ".bias"] = {D};
    }
    (*e)[b + "layer_norm1.weight"] = (*e)[b + "layer_norm1.bias"] = {D};
    (*e)[b + "layer_norm2.weight"] = (*e)[b + "layer_norm2.bias"] = {D};
    (*e)[b + "mlp.fc1.weight"] = {I, D};
    (*e)[b + "mlp.fc1.bias"] = {I};
    (*e)[b + "mlp.fc2.weight"] = {D, I};
    (*e)[b + "mlp.fc2.bias"] = {D};
  }
  (*e)[p + "post_layernorm.weight"] = (*e)[p + "post_layernorm.bias"] = {D};
}

// Aimv2VisionModel's encoder, source name -> stored shape (no class token; the position table is
// an nn.Embedding [N, D]; RMSNorm weights only; biases per qkv_bias (q / k / v and out_proj) and
// mlp_bias).
void expected_hf_aimv2(const LayoutInfo& L, const ViTConfig& c, int64_t pos_rows, std::map<std::string, Shape>* e) {
  const std::string& p = L.prefix;
  const int64_t D = c.hidden, I = c.mlp_hidden;
  (*e)[p + "embeddings.patch_embed.weight"] = {D, c.in_chans, c.patch, c.patch};
  (*e)[p + "embeddings.patch_embed.bias"] = {D};
  (*e)[p + "embeddings.rms_norm.weight"] = {D};
  (*e)[p + "embeddings.position_embedding.weight"] = {pos_rows, D};
  auto lin = [&](const std::string& n, int64_t out, int64_t in, bool bias) {
    (*e)[n + ".weight"] = {out, in};
    if (bias) (*e)[n + ".bias"] = {out};
  };
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = p + "encoder.layers." + std::to_string(i) + ".";
    for (const char* q : {"q_proj", "k_proj", "v_proj"}) lin(b + "attention." + q, D, D, c.qkv_bias);
    lin(b + "attention.out_proj", D, D, c.proj_bias);
    lin(b + "ffn.gate_proj", I, D, L.mlp_bias);
    lin(b + "ffn.up_proj", I, D, L.mlp_bias);
    lin(b + "ffn.down_proj", D, I, L.mlp_bias);
    (*e)[b + "rms_norm1.weight"] = (*e)[b + "rms_norm2.weight"] = {D};
  }
  (*e)[p + "rms_norm.weight"] = {D};
}

// Every tensor the resolved config implies, source name -> expected stored shape.
std::map<std::string, Shape> expected_tensors(const LayoutInfo& L, const ViTConfig& c, int64_t pos_rows) {
  std::map<std::string, Shape> e;
  const int64_t D = c.hidden, I = c.mlp_hidden, C = c.num_classes, P = c.patch, Ci = c.in_chans;
  const int64_t I1 = c.glu ? 2 * I : I;  // fc1's rows: the gate and value halves of a gated MLP
  const int64_t H = c.heads, hd = c.hidden / c.heads;
  if (L.layout == WeightLayout::kTimm) {
    if (c.class_token) e["cls_token"] = {1, 1, D};
    if (c.dist_token) e["dist_token"] = {1, 1, D};
    if (c.reg_tokens > 0) e["reg_token"] = {1, c.reg_tokens, D};
    e["pos_embed"] = {1, pos_rows, D};
    e["patch_embed.proj.weight"] = {D, Ci, P, P};
    if (c.patch_bias) e["patch_embed.proj.bias"] = {D};
    // A norm's tensors: weight and bias, or the weight alone (RmsNorm).
    auto norm = [&](const std::string& n) {
      e[n + ".weight"] = {D};
      if (!c.rms_norm) e[n + ".bias"] = {D};
    };
    // A Linear's: weight, and its bias unless proj_bias=False took it (attn.proj and the MLP).
    auto lin = [&](const std::string& n, Shape w) {
      const int64_t out = w[0];
      e[n + ".weight"] = std::move(w);
      if (c.proj_bias) e[n + ".bias"] = {out};
    };
    if (c.embed_norm) norm("patch_embed.norm");
    if (c.pre_norm) norm("norm_pre");
    for (int i = 0; i < c.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i) + ".";
      norm(b + "norm1");
      e[b + "attn.qkv.weight"] = {3 * D, D};
      if (c.qkv_bias) e[b + "attn.qkv.bias"] = {3 * D};
      lin(b + "attn.proj", {D, D});
      norm(b + "norm2");
      if (L.timm_split_glu) {
        lin(b + "mlp.fc1_g", {I, D});
        lin(b + "mlp.fc1_x", {I, D});
      } else {
        lin(b + "mlp.fc1", {I1, D});
      }
      lin(b + "mlp.fc2", {D, I});
      if (c.layer_scale) e[b + "ls1.gamma"] = e[b + "ls2.gamma"] = {D};
    }
    if (c.final_norm) norm("norm");
    if (c.fc_norm) norm("fc_norm");
    if (C > 0) {
      e["head.weight"] = {C, D};
      e["head.bias"] = {C};
      if (c.dist_token) {
        e["head_dist.weight"] = {C, D};
        e["head_dist.bias"] = {C};
      }
    }
    if (c.proj_dim > 0) e["visual_projection.weight"] = {c.proj_dim, D};  // open_clip (OpenClipSource)
  } else if (L.layout == WeightLayout::kHF) {
    const HFNames h = hf_names(L, c.dist_token && c.dist_head);
    const HFBlockNames bn = hf_block_names(L);
    const bool clip = L.hf == HFFamily::kCLIP;
    e[h.cls] = clip ? Shape{D} : Shape{1, 1, D};
    e[h.pos] = clip ? Shape{pos_rows, D} : Shape{1, pos_rows, D};
    e[h.patch_w] = {D, Ci, P, P};
    if (c.patch_bias) e[h.patch_b] = {D};
    if (c.dist_token) e[h.dist] = {1, 1, D};
    if (c.reg_tokens > 0) e[h.reg] = {1, c.reg_tokens, D};
    if (c.pre_norm) e[h.pre_norm + ".weight"] = e[h.pre_norm + ".bias"] = {D};
    for (int i = 0; i < c.depth; ++i) {
      const std::string b = h.block_prefix + std::to_string(i) + ".";
      for (const char* q : {bn.q, bn.k, bn.v}) {
        e[b + q + ".weight"] = {D, D};
        if (c.qkv_bias) e[b + q + ".bias"] = {D};
      }
      e[b + bn.proj + ".weight"] = {D, D};
      e[b + bn.proj + ".bias"] = {D};
      e[b + bn.ln1 + ".weight"] = e[b + bn.ln1 + ".bias"] = {D};
      e[b + bn.ln2 + ".weight"] = e[b + bn.ln2 + ".bias"] = {D};
      e[b + bn.fc1 + ".weight"] = {I1, D};
      e[b + bn.fc1 + ".bias"] = {I1};
      e[b + bn.fc2 + ".weight"] = {D, I};
      e[b + bn.fc2 + ".bias"] = {D};
      if (c.layer_scale) e[b + bn.ls1] = e[b + bn.ls2] = {D};
    }
    e[h.norm + ".weight"] = e[h.norm + ".bias"] = {D};
    if (c.proj_dim > 0) e[h.proj] = {c.proj_dim, D};
    if (C > 0) {
      e[h.head + ".weight"] = {C, c.head_cls_mean ? 2 * D : D};
      e[h.head + ".bias"] = {C};
      if (c.dist_token && c.dist_head) {
        e[h.head_dist + ".weight"] = {C, D};
        e[h.head_dist + ".bias"] = {C};
      }
    }
  } else if (L.layout == WeightLayout::kJax) {
    e["embedding/kernel"] = {P, P, Ci, D};
    e["embedding/bias"] = {D};
    e["cls"] = {1, 1, D};
    e["Transformer/posembed_input/pos_embedding"] = {1, pos_rows, D};
    for (int i = 0; i < c.depth; ++i) {
      const std::string b = "Transformer/encoderblock_" + std::to_string(i) + "/";
      const std::string a = b + "MultiHeadDotProductAttention_1/";
      e[b + "LayerNorm_0/scale"] = e[b + "LayerNorm_0/bias"] = {D};
      for (const char* q : {"query", "key", "value"}) {
        e[a + q + "/kernel"] = {D, H, hd};
        if (c.qkv_bias) e[a + q + "/bias"] = {H, hd};
      }
      e[a + "out/kernel"] = {H, hd, D};
      e[a + "out/bias"] = {D};
      e[b + "LayerNorm_2/scale"] = e[b + "LayerNorm_2/bias"] = {D};
      e[b + "MlpBlock_3/Dense_0/kernel"] = {D, I};
      e[b + "MlpBlock_3/Dense_0/bias"] = {I};
      e[b + "MlpBlock_3/Dense_1/kernel"] = {I, D};
      e[b + "MlpBlock_3/Dense_1/bias"] = {D};
    }
    e["Transformer/encoder_norm/scale"] = e["Transformer/encoder_norm/bias"] = {D};
    if (C > 0) {
      e["head/kernel"] = {D, C};
      e["head/bias"] = {C};
    }
  } else if (L.layout == WeightLayout::kHFSiglip) {
    expected_hf_siglip(L, c, pos_rows, &e);
  } else if (L.layout == WeightLayout::kHFAimv2) {
    expected_hf_aimv2(L, c, pos_rows, &e);
  }
  if (c.pool == GlobalPool::kMap) expected_attn_pool(L, c, &e);
  return e;
}

// Tensors a layout may carry that play no part in classification.
bool ignored_tensor(const LayoutInfo& L, const std::string& n) {
  if (L.layout != WeightLayout::kHF) return false;
  // pooler.dense: the tanh pooler of bare ViTModel / DeiTModel; mask_token: masked-image
  // modelling (DINOv2 training); position_ids: an index buffer older CLIP checkpoints saved.
  return n == L.prefix + "pooler.dense.weight" || n == L.prefix + "pooler.dense.bias" ||
         n == L.prefix + "embeddings.mask_token" || n == L.prefix + "embeddings.position_ids";
}

void check_tensors(const TensorSource& src, const LayoutInfo& L, const std::map<std::string, Shape>& expect,
                   const std::string& file) {
  std::vector<std::string> missing, extra;
  for (const auto& [n, s] : expect) {
    if (!src.has(n)) missing.push_back(n);
  }
  if (!missing.empty()) {
    fail(ErrorCode::kFormat, file + ": missing " + to_s(static_cast<int64_t>(missing.size())) + " tensor(s) (" +
                                 layout_name(L.layout) + " layout): " + name_list(missing));
  }
  for (const std::string& n : src.names()) {
    if (!expect.count(n) && !ignored_tensor(L, n)) extra.push_back(n);
  }
  if (!extra.empty()) {
    fail(ErrorCode::kFormat, file + ": unexpected " + to_s(static_cast<int64_t>(extra.size())) + " tensor(s) (" +
                                 layout_name(L.layout) + " layout): " + name_list(extra));
  }
  for (const auto& [n, s] : expect) {
    const Shape got = src.shape(n);
    if (got != s) {
      fail(ErrorCode::kFormat, file + ": tensor '" + n + "' has shape " + shape_str(got) + ", expected " +
                                   shape_str(s));
    }
  }
}

// ---- weight mapping --------------------------------------------------------------------

Tensor reshaped(Tensor t, Shape s) {
  t.shape = std::move(s);
  return t;
}

Tensor concat_rows(const std::vector<Tensor>& parts, Shape shape) {
  Tensor o;
  o.shape = std::move(shape);
  for (const Tensor& p : parts) o.data.insert(o.data.end(), p.data.begin(), p.data.end());
  return o;
}

class Reader {
 public:
  Reader(const TensorSource& src, std::vector<std::string>* warnings) : src_(src), warnings_(warnings) {}
  Tensor operator()(const std::string& name) const {
    Tensor t = src_.read(name);
    int64_t bad = 0;
    for (float v : t.data) bad += !std::isfinite(v);
    if (bad) {
      warnings_->push_back("tensor '" + name + "' holds " + to_s(bad) + " NaN/Inf value(s) of " + to_s(t.numel()));
    }
    return t;
  }

 private:
  const TensorSource& src_;
  std::vector<std::string>* warnings_;
};

// The modules of an HF-style block with separate q / k / v Linears, relative to the block prefix
// (each names a module: ".weight" / ".bias" are appended).
struct SplitQkvNames {
  const char *ln1, *q, *k, *v, *proj, *ln2, *fc1, *fc2;
};

// blocks[i] from "<pre><i>.<module>.{weight,bias}", q / k / v concatenated into one QKV.
void read_split_qkv_blocks(const Reader& rd, const std::string& pre, const SplitQkvNames& n, int64_t D, int depth,
                           bool qkv_bias, std::vector<BlockWeights>* blocks) {
  blocks->resize(static_cast<size_t>(depth));
  for (int i = 0; i < depth; ++i) {
    const std::string b = pre + std::to_string(i) + ".";
    auto W = [&](const char* m) { return rd(b + m + ".weight"); };
    auto B = [&](const char* m) { return rd(b + m + ".bias"); };
    BlockWeights& k = (*blocks)[static_cast<size_t>(i)];
    k.ln1_w = W(n.ln1);
    k.ln1_b = B(n.ln1);
    k.qkv_w = concat_rows({W(n.q), W(n.k), W(n.v)}, {3 * D, D});
    k.qkv_b = qkv_bias ? concat_rows({B(n.q), B(n.k), B(n.v)}, {3 * D}) : Tensor({3 * D});
    k.proj_w = W(n.proj);
    k.proj_b = B(n.proj);
    k.ln2_w = W(n.ln2);
    k.ln2_b = B(n.ln2);
    k.fc1_w = W(n.fc1);
    k.fc1_b = B(n.fc1);
    k.fc2_w = W(n.fc2);
    k.fc2_b = B(n.fc2);
  }
}

void map_timm(const Reader& rd, const ViTConfig& c, const LayoutInfo& L, ViTWeights* w) {
  const int64_t D = c.hidden, I = c.mlp_hidden;
  // RmsNorm has no bias and proj_bias=False Linears none: zeros, which add nothing.
  auto nb = [&](const std::string& n) { return c.rms_norm ? Tensor({D}) : rd(n + ".bias"); };
  auto pb = [&](const std::string& n, int64_t out) { return c.proj_bias ? rd(n + ".bias") : Tensor({out}); };
  w->patch_w = reshaped(rd("patch_embed.proj.weight"), {D, static_cast<int64_t>(c.in_chans) * c.patch * c.patch});
  w->patch_b = c.patch_bias ? rd("patch_embed.proj.bias") : Tensor({D});  // CLIP: no conv bias (zeros add nothing)
  if (c.embed_norm) {
    w->patch_norm_w = rd("patch_embed.norm.weight");
    w->patch_norm_b = nb("patch_embed.norm");
  }
  if (c.class_token) w->cls = reshaped(rd("cls_token"), {D});
  if (c.dist_token) w->dist = reshaped(rd("dist_token"), {D});
  if (c.reg_tokens > 0) w->reg = reshaped(rd("reg_token"), {c.reg_tokens, D});
  if (c.pre_norm) {
    w->norm_pre_w = rd("norm_pre.weight");
    w->norm_pre_b = nb("norm_pre");
  }
  Tensor pos = rd("pos_embed");
  const int64_t rows = pos.shape[1];
  w->pos = reshaped(std::move(pos), {rows, D});
  w->blocks.resize(c.depth);
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    BlockWeights& k = w->blocks[i];
    k.ln1_w = rd(b + "norm1.weight");
    k.ln1_b = nb(b + "norm1");
    k.qkv_w = rd(b + "attn.qkv.weight");
    k.qkv_b = c.qkv_bias ? rd(b + "attn.qkv.bias") : Tensor({3 * D});
    k.proj_w = rd(b + "attn.proj.weight");
    k.proj_b = pb(b + "attn.proj", D);
    k.ln2_w = rd(b + "norm2.weight");
    k.ln2_b = nb(b + "norm2");
    if (L.timm_split_glu) {  // timm SwiGLU: act(fc1_g x) * fc1_x x, as one [2I, D] fc1, gate rows first
      k.fc1_w = concat_rows({rd(b + "mlp.fc1_g.weight"), rd(b + "mlp.fc1_x.weight")}, {2 * I, D});
      k.fc1_b = concat_rows({pb(b + "mlp.fc1_g", I), pb(b + "mlp.fc1_x", I)}, {2 * I});
    } else {
      k.fc1_w = rd(b + "mlp.fc1.weight");
      k.fc1_b = pb(b + "mlp.fc1", c.glu ? 2 * I : I);
    }
    k.fc2_w = rd(b + "mlp.fc2.weight");
    k.fc2_b = pb(b + "mlp.fc2", D);
    if (c.layer_scale) {
      k.ls1 = rd(b + "ls1.gamma");
      k.ls2 = rd(b + "ls2.gamma");
    }
  }
  if (c.final_norm) {
    w->norm_w = rd("norm.weight");
    w->norm_b = nb("norm");
  }
  if (c.fc_norm) {
    w->fc_norm_w = rd("fc_norm.weight");
    w->fc_norm_b = nb("fc_norm");
  }
  if (c.num_classes > 0) {
    w->head_w = rd("head.weight");
    w->head_b = rd("head.bias");
    if (c.dist_token) {
      w->head_dist_w = rd("head_dist.weight");
      w->head_dist_b = rd("head_dist.bias");
    }
  }
  if (c.proj_dim > 0) w->proj_w = rd("visual_projection.weight");  // open_clip's visual.proj (OpenClipSource)
}

void map_hf(const Reader& rd, const ViTConfig& c, const LayoutInfo& L, ViTWeights* w) {
  const int64_t D = c.hidden;
  const HFNames h = hf_names(L, c.dist_token && c.dist_head);
  const HFBlockNames bn = hf_block_names(L);
  w->patch_w = reshaped(rd(h.patch_w), {D, static_cast<int64_t>(c.in_chans) * c.patch * c.patch});
  w->patch_b = c.patch_bias ? rd(h.patch_b) : Tensor({D});  // CLIP: no conv bias (zeros add nothing)
  w->cls = reshaped(rd(h.cls), {D});
  if (c.dist_token) w->dist = reshaped(rd(h.dist), {D});
  if (c.reg_tokens > 0) w->reg = reshaped(rd(h.reg), {c.reg_tokens, D});
  if (c.pre_norm) {
    w->norm_pre_w = rd(h.pre_norm + ".weight");
    w->norm_pre_b = rd(h.pre_norm + ".bias");
  }
  Tensor pos = rd(h.pos);
  const int64_t rows = pos.numel() / D;
  w->pos = reshaped(std::move(pos), {rows, D});
  if (c.reg_tokens > 0) {
    // HF Dinov2WithRegisters: (cls, patches) + table, then the registers go in after cls. As the
    // internal model: the cls row's position folded into the token, the patch rows a
    // no_embed_class table, prefix (cls', registers): the same sums.
    for (int64_t d = 0; d < D; ++d) w->cls.data[d] += w->pos.data[d];
    w->pos.data.erase(w->pos.data.begin(), w->pos.data.begin() + D);
    w->pos.shape = {rows - 1, D};
  }
  w->blocks.resize(c.depth);
  auto qkv = [&](const std::string& b, const char* sfx, Shape s) {
    return concat_rows({rd(b + bn.q + sfx), rd(b + bn.k + sfx), rd(b + bn.v + sfx)}, std::move(s));
  };
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = h.block_prefix + std::to_string(i) + ".";
    BlockWeights& k = w->blocks[i];
    k.ln1_w = rd(b + bn.ln1 + ".weight");
    k.ln1_b = rd(b + bn.ln1 + ".bias");
    k.qkv_w = qkv(b, ".weight", {3 * D, D});
    k.qkv_b = c.qkv_bias ? qkv(b, ".bias", {3 * D}) : Tensor({3 * D});
    k.proj_w = rd(b + bn.proj + ".weight");
    k.proj_b = rd(b + bn.proj + ".bias");
    k.ln2_w = rd(b + bn.ln2 + ".weight");
    k.ln2_b = rd(b + bn.ln2 + ".bias");
    k.fc1_w = rd(b + bn.fc1 + ".weight");
    k.fc1_b = rd(b + bn.fc1 + ".bias");
    k.fc2_w = rd(b + bn.fc2 + ".weight");
    k.fc2_b = rd(b + bn.fc2 + ".bias");
    if (c.layer_scale) {
      k.ls1 = rd(b + bn.ls1);
      k.ls2 = rd(b + bn.ls2);
    }
  }
  w->norm_w = rd(h.norm + ".weight");
  w->norm_b = rd(h.norm + ".bias");
  if (c.proj_dim > 0) w->proj_w = rd(h.proj);
  if (c.num_classes > 0 && c.head_cls_mean) {
    // [C, 2D] -> the cls half [C, D] and the patch-mean half [C, D].
    const Tensor hw = rd(h.head + ".weight");
    const int64_t C = c.num_classes;
    w->head_w = Tensor({C, D});
    w->head_mean_w = Tensor({C, D});
    for (int64_t r = 0; r < C; ++r) {
      std::copy_n(hw.data.begin() + r * 2 * D, D, w->head_w.data.begin() + r * D);
      std::copy_n(hw.data.begin() + r * 2 * D + D, D, w->head_mean_w.data.begin() + r * D);
    }
    w->head_b = rd(h.head + ".bias");
  } else if (c.num_classes > 0) {
    w->head_w = rd(h.head + ".weight");
    w->head_b = rd(h.head + ".bias");
    if (c.dist_token && c.dist_head) {
      w->head_dist_w = rd(h.head_dist + ".weight");
      w->head_dist_b = rd(h.head_dist + ".bias");
    }
  }
}

void map_jax(const Reader& rd, const ViTConfig& c, ViTWeights* w) {
  const int64_t D = c.hidden, I = c.mlp_hidden, P = c.patch, Ci = c.in_chans, C = c.num_classes;
  {
    // HWIO [P, P, C, D] -> OIHW [D, C, P, P] flattened to [D, C*P*P].
    const Tensor k = rd("embedding/kernel");
    w->patch_w = Tensor({D, Ci * P * P});
    for (int64_t py = 0; py < P; ++py)
      for (int64_t px = 0; px < P; ++px)
        for (int64_t ci = 0; ci < Ci; ++ci)
          for (int64_t d = 0; d < D; ++d) {
            w->patch_w.data[d * Ci * P * P + (ci * P + py) * P + px] = k.data[((py * P + px) * Ci + ci) * D + d];
          }
  }
  w->patch_b = rd("embedding/bias");
  w->cls = reshaped(rd("cls"), {D});
  Tensor pos = rd("Transformer/posembed_input/pos_embedding");
  const int64_t rows = pos.shape[1];
  w->pos = reshaped(std::move(pos), {rows, D});
  w->blocks.resize(c.depth);
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = "Transformer/encoderblock_" + std::to_string(i) + "/";
    const std::string a = b + "MultiHeadDotProductAttention_1/";
    BlockWeights& k = w->blocks[i];
    k.ln1_w = rd(b + "LayerNorm_0/scale");
    k.ln1_b = rd(b + "LayerNorm_0/bias");
    // q/k/v kernels (D, heads, hd): flatten(1) -> [D_in, D_out], transpose -> [D_out, D_in].
    k.qkv_w = concat_rows({transpose2d(rd(a + "query/kernel"), D, D), transpose2d(rd(a + "key/kernel"), D, D),
                           transpose2d(rd(a + "value/kernel"), D, D)},
                          {3 * D, D});
    k.qkv_b = c.qkv_bias ? concat_rows({rd(a + "query/bias"), rd(a + "key/bias"), rd(a + "value/bias")}, {3 * D})
                         : Tensor({3 * D});
    // out kernel (heads, hd, D) = [D_in, D_out] -> [D_out, D_in].
    k.proj_w = transpose2d(rd(a + "out/kernel"), D, D);
    k.proj_b = rd(a + "out/bias");
    k.ln2_w = rd(b + "LayerNorm_2/scale");
    k.ln2_b = rd(b + "LayerNorm_2/bias");
    k.fc1_w = transpose2d(rd(b + "MlpBlock_3/Dense_0/kernel"), D, I);
    k.fc1_b = rd(b + "MlpBlock_3/Dense_0/bias");
    k.fc2_w = transpose2d(rd(b + "MlpBlock_3/Dense_1/kernel"), I, D);
    k.fc2_b = rd(b + "MlpBlock_3/Dense_1/bias");
  }
  w->norm_w = rd("Transformer/encoder_norm/scale");
  w->norm_b = rd("Transformer/encoder_norm/bias");
  if (C > 0) {
    w->head_w = transpose2d(rd("head/kernel"), D, C);
    w->head_b = rd("head/bias");
  }
}

// SiglipVisionModel -> the internal weights (q/k/v concatenated as for HF ViT).
void map_hf_siglip(const Reader& rd, const ViTConfig& c, const std::string& p, ViTWeights* w) {
  const int64_t D = c.hidden;
  w->patch_w =
      reshaped(rd(p + "embeddings.patch_embedding.weight"), {D, static_cast<int64_t>(c.in_chans) * c.patch * c.patch});
  w->patch_b = rd(p + "embeddings.patch_embedding.bias");
  w->pos = rd(p + "embeddings.position_embedding.weight");  // [N, D]: no prefix rows
  static const SplitQkvNames kSiglip = {"layer_norm1",       "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                        "self_attn.out_proj", "layer_norm2",      "mlp.fc1",          "mlp.fc2"};
  read_split_qkv_blocks(rd, p + "encoder.layers.", kSiglip, D, c.depth, true, &w->blocks);
  w->norm_w = rd(p + "post_layernorm.weight");
  w->norm_b = rd(p + "post_layernorm.bias");
}

// Aimv2VisionModel -> the internal weights: q / k / v concatenated, the SwiGLU's gate_proj and
// up_proj as one [2I, D] fc1 (gate rows first: act(gate x) * up x), zeros for every absent bias
// (RMSNorm, qkv_bias / mlp_bias false).
void map_hf_aimv2(const Reader& rd, const ViTConfig& c, const LayoutInfo& L, ViTWeights* w) {
  const std::string& p = L.prefix;
  const int64_t D = c.hidden, I = c.mlp_hidden;
  auto bias = [&](const std::string& n, int64_t out, bool has) { return has ? rd(n + ".bias") : Tensor({out}); };
  w->patch_w = reshaped(rd(p + "embeddings.patch_embed.weight"), {D, static_cast<int64_t>(c.in_chans) * c.patch * c.patch});
  w->patch_b = rd(p + "embeddings.patch_embed.bias");
  w->patch_norm_w = rd(p + "embeddings.rms_norm.weight");
  w->patch_norm_b = Tensor({D});
  w->pos = rd(p + "embeddings.position_embedding.weight");  // [N, D]: no prefix rows
  w->blocks.resize(static_cast<size_t>(c.depth));
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = p + "encoder.layers." + std::to_string(i) + ".", a = b + "attention.", f = b + "ffn.";
    BlockWeights& k = w->blocks[static_cast<size_t>(i)];
    k.ln1_w = rd(b + "rms_norm1.weight");
    k.ln1_b = Tensor({D});
    k.qkv_w = concat_rows({rd(a + "q_proj.weight"), rd(a + "k_proj.weight"), rd(a + "v_proj.weight")}, {3 * D, D});
    k.qkv_b = concat_rows({bias(a + "q_proj", D, c.qkv_bias), bias(a + "k_proj", D, c.qkv_bias),
                           bias(a + "v_proj", D, c.qkv_bias)},
                          {3 * D});
    k.proj_w = rd(a + "out_proj.weight");
    k.proj_b = bias(a + "out_proj", D, c.proj_bias);
    k.ln2_w = rd(b + "rms_norm2.weight");
    k.ln2_b = Tensor({D});
    k.fc1_w = concat_rows({rd(f + "gate_proj.weight"), rd(f + "up_proj.weight")}, {2 * I, D});
    k.fc1_b = concat_rows({bias(f + "gate_proj", I, L.mlp_bias), bias(f + "up_proj", I, L.mlp_bias)}, {2 * I});
    k.fc2_w = rd(f + "down_proj.weight");
    k.fc2_b = bias(f + "down_proj", D, L.mlp_bias);
  }
  w->norm_w = rd(p + "rms_norm.weight");
  w->norm_b = Tensor({D});
}

// Rows [r0, r0 + n) of a [rows, cols] tensor (or of a vector when cols == 1).
Tensor row_slice(const Tensor& t, int64_t r0, int64_t n, int64_t cols) {
  Tensor o(cols == 1 ? Shape{n} : Shape{n, cols});
  std::copy(t.data.begin() + r0 * cols, t.data.begin() + (r0 + n) * cols, o.data.begin());
  return o;
}

// The attention-pool head -> AttnPoolWeights. HF's nn.MultiheadAttention in_proj rows are
// q | k | v, so q is rows 0..D and kv (k | v, as timm's kv Linear) rows D..3D.
void map_attn_pool(const Reader& rd, const LayoutInfo& L, const ViTConfig& c, AttnPoolWeights* w) {
  const int64_t D = c.hidden, Lq = c.map_latent_len;
  if (L.layout == WeightLayout::kHFAimv2) {
    // Aimv2AttentionPoolingHead: the raw cls_token is the query (q = identity, no bias: the
    // derived query latent I + 0 is the latent exactly), k / v projections, output_proj; no norm
    // and no MLP (map_mlp_hidden 0).
    const std::string h = L.prefix + "head.";
    w->latent = reshaped(rd(h + "cls_token"), {Lq, D});
    w->q_w = Tensor({D, D});
    for (int64_t i = 0; i < D; ++i) w->q_w.data[static_cast<size_t>(i * D + i)] = 1.0f;
    w->q_b = Tensor({D});
    w->kv_w = concat_rows({rd(h + "k_proj.weight"), rd(h + "v_proj.weight")}, {2 * D, D});
    w->kv_b = c.map_qkv_bias ? concat_rows({rd(h + "k_proj.bias"), rd(h + "v_proj.bias")}, {2 * D}) : Tensor({2 * D});
    w->proj_w = rd(h + "output_proj.weight");
    w->proj_b = rd(h + "output_proj.bias");
    return;
  }
  const bool hf = L.layout == WeightLayout::kHFSiglip;
  const std::string h = hf ? L.prefix + "head." : "attn_pool.";
  auto linear = [&](const char* m, Tensor* wt, Tensor* bt) {
    *wt = rd(h + m + ".weight");
    *bt = rd(h + m + ".bias");
  };
  w->latent = reshaped(rd(h + (hf ? "probe" : "latent")), {Lq, D});
  if (hf) {
    const Tensor in_w = rd(h + "attention.in_proj_weight"), in_b = rd(h + "attention.in_proj_bias");
    w->q_w = row_slice(in_w, 0, D, D);
    w->kv_w = row_slice(in_w, D, 2 * D, D);
    w->q_b = row_slice(in_b, 0, D, 1);
    w->kv_b = row_slice(in_b, D, 2 * D, 1);
  } else {
    w->q_w = rd(h + "q.weight");
    w->kv_w = rd(h + "kv.weight");
    w->q_b = c.map_qkv_bias ? rd(h + "q.bias") : Tensor({D});  // qkv_bias=False: zeros add nothing
    w->kv_b = c.map_qkv_bias ? rd(h + "kv.bias") : Tensor({2 * D});
  }
  linear(hf ? "attention.out_proj" : "proj", &w->proj_w, &w->proj_b);
  linear(hf ? "layernorm" : "norm", &w->norm_w, &w->norm_b);
  linear("mlp.fc1", &w->fc1_w, &w->fc1_b);
  linear("mlp.fc2", &w->fc2_w, &w->fc2_b);
}

// ---- config resolution -----------------------------------------------------------------

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

// sqrt(n) when n is a perfect square of at most 2^31 - 1, else -1.
int isqrt_exact(int64_t n) {
  // Bounded so that c * c below cannot overflow (a pos table of 2^63 - 1 rows did).
  if (n < 0 || n > (int64_t{1} << 62)) return -1;
  const int64_t r = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  for (int64_t c = std::max<int64_t>(0, r - 1); c <= r + 1; ++c) {
    if (c * c == n && c <= INT32_MAX) return static_cast<int>(c);
  }
  return -1;
}

std::vector<std::string> read_labels_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::kIo, "cannot open labels file " + path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
  }
  return out;
}

template <typename T>
void note_conflict(std::vector<std::string>* warnings, const ConfigHints& h, const std::optional<T>& said,
                   T actual, const char* what) {
  if (said && *said != actual) {
    warnings->push_back(h.path + " says " + what + " " + std::to_string(*said) + " but the tensors have " +
                        std::to_string(actual) + "; using the tensors");
  }
}

// config.json's model_type must name the family the tensors are laid out for.
void check_hf_family(const ConfigHints& hints, const LayoutInfo& L, const std::string& file) {
  if (!hints.hf_model_type) return;
  const std::string& mt = *hints.hf_model_type;
  const HFFamily said = mt == "deit"                                        ? HFFamily::kDeiT
                        : mt == "dinov2" || mt == "dinov2_with_registers" ? HFFamily::kDinov2
                        : mt == "clip_vision_model"                        ? HFFamily::kCLIP
                                                                           : HFFamily::kViT;
  if (said != L.hf) {
    fail(ErrorCode::kFormat, hints.path + " says model_type '" + mt + "' (HF " + hf_family_name(said) + ") but " + file +
                                 " holds the HF " + hf_family_name(L.hf) + " layout (prefix '" + L.prefix + "')");
  }
}

}  // namespace

std::shared_ptr<const Model> load_model(const std::string& path, const ConfigOverrides& ov) {
  const Located loc = locate(path);
  const std::string& file = loc.weights;
  auto model = std::make_shared<Model>();
  model->source_path = file;
  std::vector<std::string>& warnings = model->warnings;

  // Files beside the weights.
  ConfigHints hints;
  const fs::path cfg_path = fs::path(loc.dir.empty() ? "." : loc.dir) / "config.json";
  const fs::path pre_path = fs::path(loc.dir.empty() ? "." : loc.dir) / "preprocessor_config.json";
  // open_clip's own config: for its weights file (open_clip_model.safetensors), or the only config.
  const fs::path oc_path = fs::path(loc.dir.empty() ? "." : loc.dir) / "open_clip_config.json";
  const bool oc_weights = fs::path(file).filename().string().rfind("open_clip", 0) == 0;
  if (fs::is_regular_file(oc_path) && (oc_weights || !fs::is_regular_file(cfg_path))) {
    hints = detail::parse_open_clip_config(detail::read_json_file(oc_path.string()), oc_path.string());
    warnings.insert(warnings.end(), hints.warnings.begin(), hints.warnings.end());
  } else if (fs::is_regular_file(cfg_path)) {
    hints = detail::parse_config_json(detail::read_json_file(cfg_path.string()), cfg_path.string());
    warnings.insert(warnings.end(), hints.warnings.begin(), hints.warnings.end());
  }

  // Architecture name: --arch beats the config's own `architecture`.
  ViTConfig arch;
  bool have_arch = false;
  std::string arch_name;
  if (ov.architecture) {
    arch_name = *ov.architecture;
    if (!config_from_arch_name(arch_name, &arch)) {
      fail(ErrorCode::kInvalidArgument,
           "unknown architecture '" + arch_name +
               "' (expected vit_{tiny,small,base,large,huge}_patch{8,14,16,32}_{224,384}[.tag])");
    }
    have_arch = true;
  } else if (hints.architecture) {
    arch_name = *hints.architecture;
    have_arch = config_from_arch_name(arch_name, &arch);
  }

  std::unique_ptr<TensorSource> src = open_source(file);
  bool open_clip = false;
  if (OpenClipSource::detect(src->names())) {
    auto oc = std::make_unique<OpenClipSource>(std::move(src), hints.ln_post_after_pool, file);
    open_clip = true;
    if (oc->text_tensors() > 0) {
      warnings.push_back(text_tower_unused(file, "open_clip CLIP", oc->text_tensors()));
    }
    if (hints.kind != ConfigKind::kOpenClip) {
      // timm's openai / laion CLIP towers: LayerNorm eps 1e-5, QuickGELU for OpenAI's own weights.
      if (!hints.ln_eps) hints.ln_eps = 1e-5f;
      if (!hints.act && !ov.architecture)
        warnings.push_back(file + ": an open_clip checkpoint without open_clip_config.json: GELU (erf) assumed; "
                                  "OpenAI's own CLIP weights use QuickGELU (pass --arch vit_base_patch16_clip_quickgelu_224 "
                                  "or the like, or keep the open_clip_config.json beside it)");
    }
    src = std::move(oc);
  }
  if (!hints.ignored_prefixes.empty()) {
    const size_t all = src->names().size();
    src = std::make_unique<FilteredSource>(std::move(src), hints.ignored_prefixes);
    const size_t kept = src->names().size();
    if (kept < all) {
      warnings.push_back(text_tower_unused(file, hints.hf_class.value_or("a dual-tower model"), all - kept));
    }
  }
  const std::vector<std::string> names = src->names();
  for (const std::string& n : names) {
    if (n.size() > limits::kMaxTensorName) {
      fail(ErrorCode::kFormat, file + ": tensor name of " + to_s(static_cast<int64_t>(n.size())) +
                                   " characters ('" + n.substr(0, 40) + "...') is longer than the limit of " +
                                   to_s(static_cast<int64_t>(limits::kMaxTensorName)));
    }
  }
  const LayoutInfo L = detect_layout(names, file);
  reject_variants(*src, L, file);
  const Names N = defining_names(L, L.layout == WeightLayout::kHF && hf_deit_teacher(*src));

  ViTConfig cfg;
  cfg.layout = L.layout;
  cfg.architecture = arch_name.empty() && open_clip ? "open_clip" : arch_name;  // family(): a CLIP tower

  // Shapes of the defining tensors. The layouts differ only in which axis holds what:
  // JAX patch kernel [P, P, C, D] and Dense kernels [in, out]; timm/HF [D, C, P, P] and [out, in].
  const bool jax = L.layout == WeightLayout::kJax;
  const int ax_patch = jax ? 0 : 2, ax_in = jax ? 2 : 1, ax_hidden = jax ? 3 : 0, ax_out = jax ? 1 : 0;
  const Shape k = need_shape(*src, N.patch_w, 4, file);
  if (k[ax_patch] != k[ax_patch + 1]) fail(ErrorCode::kUnsupported, file + ": non-square patch kernel " + shape_str(k));
  cfg.hidden = model_dim(k, ax_hidden, 1, limits::kMaxHidden, "width", N.patch_w, file);
  cfg.in_chans = model_dim(k, ax_in, 1, limits::kMaxInChans, "input channels", N.patch_w, file);
  cfg.patch = model_dim(k, ax_patch, 1, limits::kMaxPatch, "patch size", N.patch_w, file);
  cfg.mlp_hidden = model_dim(need_shape(*src, N.fc1_b0, 2, file), ax_out, 1, limits::kMaxMlp, "mlp width", N.fc1_b0, file);
  // A gated MLP (SwiGLU) is told by its shapes: fc1 [2I, D] feeds fc2 [D, I] (a plain MLP's
  // fc1 rows equal fc2's columns). config.json (timm mlp_layer, HF use_swiglu_ffn) must agree.
  if (!N.fc2_b0.empty() && src->has(N.fc2_b0)) {
    const Shape f2 = need_shape(*src, N.fc2_b0, 2, file);
    cfg.glu = f2[1] > 0 && f2[1] * 2 == cfg.mlp_hidden;
    if (cfg.glu) cfg.mlp_hidden /= 2;
    if (hints.glu && *hints.glu != cfg.glu) {
      fail(ErrorCode::kFormat, file + ": " + hints.path + " says " + (*hints.glu ? "a gated (SwiGLU) MLP" : "a plain MLP") +
                                   " but '" + N.fc1_b0 + "' " + shape_str(need_shape(*src, N.fc1_b0, 2, file)) +
                                   " and '" + N.fc2_b0 + "' " + shape_str(f2) + " are " +
                                   (cfg.glu ? "a gated one (fc1 twice fc2's input width)" : "a plain one"));
    }
  }
  if (L.timm_split_glu) {
    cfg.glu = true;  // timm SwiGLU: the gate and value Linears are separate tensors
    if (hints.glu && !*hints.glu) {
      fail(ErrorCode::kFormat, file + ": " + hints.path + " says a plain MLP but the tensors hold mlp.fc1_g / mlp.fc1_x "
                                                          "(a SwiGLU MLP)");
    }
  }
  cfg.num_classes = src->has(N.head_w) ? model_dim(need_shape(*src, N.head_w, 2, file), ax_out, 0, limits::kMaxClasses,
                                                   "classes", N.head_w, file)
                                       : 0;
  cfg.depth = count_blocks(names, N.block_prefix);
  if (cfg.depth == 0) fail(ErrorCode::kFormat, file + ": no transformer blocks (" + N.block_prefix + "0...)");
  if (cfg.depth > limits::kMaxDepth) {
    fail(ErrorCode::kFormat, file + ": block index " + to_s(cfg.depth - 1) + " (" + N.block_prefix + "...) is implausible");
  }
  // The stored table: prefix + gh*gw rows, at most limits::kMaxPatches + 1 (HF DeiT: + its dist row). HF
  // CLIP and SigLIP keep it as an nn.Embedding [rows, D], the others as [1, rows, D].
  const bool hf = L.layout == WeightLayout::kHF;
  const bool pos_2d =
      (hf && L.hf == HFFamily::kCLIP) || L.layout == WeightLayout::kHFSiglip || L.layout == WeightLayout::kHFAimv2;
  const int64_t pos_rows = model_dim(need_shape(*src, N.pos, pos_2d ? 2 : 3, file), pos_2d ? 0 : 1, 1,
                                     limits::kMaxPatches + 1 + (hf && L.hf == HFFamily::kDeiT), "position rows", N.pos,
                                     file);
  if (hf) check_hf_family(hints, L, file);
  note_conflict(&warnings, hints, hints.hidden, cfg.hidden, "width");
  note_conflict(&warnings, hints, hints.depth, cfg.depth, "depth");
  note_conflict(&warnings, hints, hints.mlp_hidden, cfg.mlp_hidden, "mlp width");
  note_conflict(&warnings, hints, hints.patch, cfg.patch, "patch size");
  note_conflict(&warnings, hints, hints.num_classes, cfg.num_classes, "num_classes");
  // The architecture name only fills what config.json leaves out (timm writes e.g.
  // `vit_tiny_patch16_224` plus model_args embed_dim 96): a difference that model_args
  // explains is not worth a warning.
  const bool arch_conflict = (!hints.hidden && arch.hidden != cfg.hidden) ||
                             (!hints.depth && arch.depth != cfg.depth) || (!hints.patch && arch.patch != cfg.patch);
  if (have_arch && arch_conflict) {
    warnings.push_back("architecture '" + arch_name + "' does not match the tensors (width " + to_s(cfg.hidden) +
                       ", depth " + to_s(cfg.depth) + ", patch " + to_s(cfg.patch) + "); using the tensors");
  }

  // Heads: override > config > architecture name > JAX shapes > standard width.
  if (ov.heads) {
    cfg.heads = *ov.heads;
  } else if (hints.heads) {
    cfg.heads = *hints.heads;
  } else if (have_arch && arch.hidden == cfg.hidden) {
    cfg.heads = arch.heads;
  } else if (L.layout == WeightLayout::kJax) {
    const std::string q = "Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel";  // [D, H, hd]
    cfg.heads = model_dim(need_shape(*src, q, 3, file), 1, 1, limits::kMaxHeads, "heads", q, file);
  } else if (standard_heads(cfg.hidden)) {
    cfg.heads = standard_heads(cfg.hidden);
    // A guess (right for the standard Ti/S/B/L/H ViTs): said, since a wrong count runs silently.
    warnings.push_back(file + ": " + to_s(cfg.heads) + " attention heads assumed for width " + to_s(cfg.hidden) +
                       " (the standard ViT's; no config or known architecture names them; --heads overrides)");
  } else {
    fail(ErrorCode::kInvalidArgument, file + ": cannot determine the number of attention heads for width " +
                                          to_s(cfg.hidden) + " (not in config.json or the architecture name); pass --heads");
  }
  if (cfg.heads <= 0 || cfg.hidden % cfg.heads != 0) {
    fail(ErrorCode::kInvalidArgument, "the head count " + to_s(cfg.heads) + " does not divide the width " +
                                          to_s(cfg.hidden) + " (" + file + ")");
  }

  // LayerNorm eps: override > config (HF: 1e-12 when absent) > layout default.
  if (ov.ln_eps) {
    if (!(*ov.ln_eps > 0.0f)) fail(ErrorCode::kInvalidArgument, "ln_eps must be positive, got " + std::to_string(*ov.ln_eps));
    cfg.ln_eps = *ov.ln_eps;
  } else if (hints.ln_eps) {
    cfg.ln_eps = *hints.ln_eps;
  } else {
    // HF: each config class's default (ViTConfig / DeiTConfig 1e-12, Dinov2Config 1e-6,
    // CLIPVisionConfig 1e-5); timm / JAX 1e-6.
    cfg.ln_eps = L.layout == WeightLayout::kHFAimv2 ? 1e-5f  // Aimv2VisionConfig rms_norm_eps
                 : !hf                             ? 1e-6f
                 : L.hf == HFFamily::kDinov2       ? 1e-6f
                 : L.hf == HFFamily::kCLIP         ? 1e-5f
                                                   : 1e-12f;
  }

  // qkv bias: the config when it says, else the tensors (then checked like any other).
  cfg.qkv_bias = hints.qkv_bias ? *hints.qkv_bias : src->has(N.qkv_bias0);
  cfg.layer_scale = (L.layout == WeightLayout::kTimm && src->has("blocks.0.ls1.gamma")) ||
                    (hf && L.hf == HFFamily::kDinov2);  // HF Dinov2Layer always has layer_scale1/2

  // Pooling and the norms around it.
  // A checkpoint holding the attention-pool head pools with it unless told otherwise.
  cfg.pool = ov.pool      ? *ov.pool
             : hints.pool ? *hints.pool
                          : has_attn_pool(*src, L) ? GlobalPool::kMap : GlobalPool::kToken;
  if (cfg.pool == GlobalPool::kMap) {
    if (L.layout != WeightLayout::kTimm && L.layout != WeightLayout::kHFSiglip && L.layout != WeightLayout::kHFAimv2) {
      fail(ErrorCode::kUnsupported, file + ": map pooling (the attention-pool head) with the " +
                                        std::string(layout_name(L.layout)) + " layout: only timm attn_pool.*, HF "
                                        "SiglipVisionModel and Aimv2VisionModel head.* checkpoints carry that head");
    }
    resolve_attn_pool(*src, L, &cfg, file);
  }
  if (L.layout == WeightLayout::kTimm) {
    const bool has_norm = src->has("norm.weight"), has_fc = src->has("fc_norm.weight");
    if (has_norm && has_fc) {
      fail(ErrorCode::kFormat, file + ": holds both norm.* and fc_norm.* (timm uses one or the other)");
    }
    // timm: global_pool avg with fc_norm -> `norm` is Identity, fc_norm after pooling;
    // without fc_norm tensors the final norm runs over all tokens before pooling.
    cfg.fc_norm = has_fc;
    cfg.final_norm = has_fc ? false : (has_norm || hints.final_norm.value_or(true));
  } else {
    cfg.final_norm = true;
    cfg.fc_norm = false;
  }

  if (ov.image_size && *ov.image_size <= 0) {
    fail(ErrorCode::kInvalidArgument, "image size must be positive, got " + to_s(*ov.image_size));
  }
  if (ov.image_size && *ov.image_size > limits::kMaxImageSide) {
    fail(ErrorCode::kInvalidArgument, "image size " + to_s(*ov.image_size) + " is larger than the limit of " +
                                          to_s(limits::kMaxImageSide) + " pixels a side (" + file + ")");
  }

  // Prefix tokens and the embedding's variants, from the tensors (timm; HF / JAX keep the plain
  // cls-only layout).
  if (L.layout == WeightLayout::kTimm) {
    cfg.class_token = src->has("cls_token");
    cfg.dist_token = src->has("dist_token");
    cfg.reg_tokens = src->has("reg_token") ? model_dim(need_shape(*src, "reg_token", 3, file), 1, 1, limits::kMaxPatches,
                                                       "register tokens", "reg_token", file)
                                           : 0;
    cfg.pre_norm = src->has("norm_pre.weight");
    cfg.patch_bias = src->has("patch_embed.proj.bias");
    // open_clip's image projection (OpenClipSource: visual.proj as visual_projection.weight [E, D]):
    // the embeddings are the projected image features, as encode_image gives them.
    if (src->has("visual_projection.weight")) {
      cfg.proj_dim = model_dim(need_shape(*src, "visual_projection.weight", 2, file), 0, 1, limits::kMaxHidden,
                               "projection width", "visual_projection.weight", file);
      note_conflict(&warnings, hints, hints.proj_dim, cfg.proj_dim, "embed_dim");
    }
    // aimv2: RmsNorm everywhere (as config.json / the entrypoint says: a missing norm bias alone
    // stays an error), a norm on the patch embeddings, no proj / MLP biases.
    cfg.rms_norm = hints.rms_norm.value_or(false);
    cfg.embed_norm = src->has("patch_embed.norm.weight");
    if (hints.embed_norm && *hints.embed_norm != cfg.embed_norm) {
      fail(ErrorCode::kFormat, file + ": " + hints.path + " says embed_norm_layer " +
                                   (*hints.embed_norm ? "is set" : "is not") + " but the tensors " +
                                   (cfg.embed_norm ? "hold" : "lack") + " patch_embed.norm.weight");
    }
    cfg.proj_bias = hints.proj_bias ? *hints.proj_bias : src->has("blocks.0.attn.proj.bias");
    if (hints.class_token && *hints.class_token != cfg.class_token) {
      warnings.push_back(hints.path + " says class_token " + (*hints.class_token ? "true" : "false") +
                         " but the tensors " + (cfg.class_token ? "hold" : "lack") + " cls_token; using the tensors");
    }
    if (hints.reg_tokens && *hints.reg_tokens != cfg.reg_tokens) {
      note_conflict(&warnings, hints, hints.reg_tokens, cfg.reg_tokens, "reg_tokens");
    }
    if (cfg.dist_token && !cfg.class_token) {
      fail(ErrorCode::kFormat, file + ": holds dist_token but no cls_token (DeiT distilled has both)");
    }
  } else if (hf) {
    // HF: every family has a cls token; DeiT a distillation token (a second head only in the
    // WithTeacher class); DINOv2-with-registers its registers (not in the table); CLIP a
    // pre-norm and no patch bias, and a visual projection in the WithProjection class.
    const HFNames h = hf_names(L, hf_deit_teacher(*src));
    cfg.dist_token = L.hf == HFFamily::kDeiT;
    cfg.dist_head = cfg.dist_token && !h.head_dist.empty();
    cfg.reg_tokens = L.hf == HFFamily::kDinov2 && src->has(h.reg)
                         ? model_dim(need_shape(*src, h.reg, 3, file), 1, 1, limits::kMaxPatches, "register tokens", h.reg, file)
                         : 0;
    note_conflict(&warnings, hints, hints.reg_tokens, cfg.reg_tokens, "num_register_tokens");
    cfg.pre_norm = L.hf == HFFamily::kCLIP;
    cfg.features_before_norm = L.hf == HFFamily::kCLIP;
    cfg.patch_bias = L.hf != HFFamily::kCLIP;
    cfg.no_embed_class = cfg.reg_tokens > 0;  // after the loader folds the cls row's position into the token
    if (L.hf == HFFamily::kCLIP && src->has(h.proj)) {
      cfg.proj_dim = model_dim(need_shape(*src, h.proj, 2, file), 0, 1, limits::kMaxHidden, "projection width", h.proj, file);
      note_conflict(&warnings, hints, hints.proj_dim, cfg.proj_dim, "projection_dim");
    } else if (L.hf == HFFamily::kCLIP && hints.hf_class == std::optional<std::string>("CLIPModel")) {
      // A whole CLIPModel's image embeddings are its projection's: never run as a bare tower.
      fail(ErrorCode::kFormat, file + ": " + hints.path + " says a whole CLIPModel, but its image projection '" + h.proj +
                                   "' is missing");
    }
    if (hints.hf_class) cfg.hf_class = *hints.hf_class;
    // Dinov2ForImageClassification: its classifier is [C, 2D] (concat(cls, mean of patches)).
    cfg.head_cls_mean = L.hf == HFFamily::kDinov2 && cfg.num_classes > 0;
  } else if (L.layout == WeightLayout::kHFSiglip) {
    cfg.class_token = false;  // SiglipVisionEmbeddings: patches + pos, no prefix tokens
    if (hints.hf_class) cfg.hf_class = *hints.hf_class;
  } else if (L.layout == WeightLayout::kHFAimv2) {
    // Aimv2VisionEmbeddings: rms_norm(patch_embed(x)) + pos, no prefix tokens; RMSNorm
    // everywhere; a SwiGLU MLP; out_proj's bias follows qkv_bias (the tensors say).
    cfg.class_token = false;
    cfg.rms_norm = true;
    cfg.embed_norm = true;
    cfg.glu = true;
    cfg.proj_bias = src->has(L.prefix + "encoder.layers.0.attention.out_proj.bias");
    if (hints.glu && !*hints.glu) {
      fail(ErrorCode::kFormat, file + ": " + hints.path + " says a plain MLP but the tensors hold ffn.gate_proj / "
                                                          "ffn.up_proj (a SwiGLU MLP)");
    }
  }
  // HF CLIPVisionConfig's default activation is quick-GELU (OpenAI CLIP), SiglipVisionConfig's
  // gelu_pytorch_tanh; the rest erf GELU.
  cfg.act = hints.act.value_or(hf && L.hf == HFFamily::kCLIP              ? Activation::kQuickGelu
                               : L.layout == WeightLayout::kHFSiglip ? Activation::kGeluTanh
                               : L.layout == WeightLayout::kHFAimv2  ? Activation::kSilu
                                                                      : Activation::kGeluErf);
  if (L.hf_swiglu) cfg.act = Activation::kSilu;  // Dinov2SwiGLUFFN: SiLU whatever hidden_act says
  if (!cfg.class_token && cfg.pool == GlobalPool::kToken) {
    if (ov.pool || hints.pool) {
      fail(ErrorCode::kInvalidArgument, file + ": global_pool 'token' needs a class token, and this model has none "
                                               "(class_token=False); use avg / avgmax / max pooling");
    }
    cfg.pool = GlobalPool::kAvg;  // timm refuses class_token=False with 'token': such checkpoints pool avg
  }

  // Stored position grid. Rows = prefix (cls, dist, registers; none for no_embed_class) + gh*gw;
  // prefer the config's grid when it fits.
  const int prefix = cfg.prefix_tokens();
  {
    const int hh = hints.image_h ? *hints.image_h : have_arch ? arch.image_h : 0;
    const int hw = hints.image_w ? *hints.image_w : have_arch ? arch.image_w : 0;
    const auto fits = [&](int64_t rows) {
      return rows > 0 && ((hh > 0 && hw > 0 && static_cast<int64_t>(hh / cfg.patch) * (hw / cfg.patch) == rows) ||
                          isqrt_exact(rows) > 0);
    };
    if (hf) {
      // Set above from the family.
    } else if (hints.no_embed_class) {
      cfg.no_embed_class = *hints.no_embed_class;
    } else {
      cfg.no_embed_class = prefix > 0 && !fits(pos_rows - prefix) && fits(pos_rows);  // a table without prefix rows
    }
  }
  const int pos_prefix = cfg.no_embed_class ? 0 : prefix;  // of the internal table (w.pos)
  // Of the stored table: HF DINOv2-with-registers stores the cls row (folded into the token by
  // map_hf) but no register rows.
  const int stored_prefix = hf && cfg.reg_tokens > 0 ? 1 : pos_prefix;
  const int64_t n_patch_rows = pos_rows - stored_prefix;
  int cfg_h = ov.image_size ? *ov.image_size : hints.image_h ? *hints.image_h : have_arch ? arch.image_h : 0;
  int cfg_w = ov.image_size ? *ov.image_size : hints.image_w ? *hints.image_w : have_arch ? arch.image_w : 0;
  const int hint_h = hints.image_h ? *hints.image_h : have_arch ? arch.image_h : 0;
  const int hint_w = hints.image_w ? *hints.image_w : have_arch ? arch.image_w : 0;
  if (hint_h > 0 && hint_w > 0 && static_cast<int64_t>(hint_h / cfg.patch) * (hint_w / cfg.patch) == n_patch_rows) {
    cfg.ckpt_grid_h = hint_h / cfg.patch;
    cfg.ckpt_grid_w = hint_w / cfg.patch;
  } else if (const int g = isqrt_exact(n_patch_rows); g > 0) {
    cfg.ckpt_grid_h = cfg.ckpt_grid_w = g;
  } else {
    fail(ErrorCode::kFormat, file + ": cannot infer the patch grid from position table '" + N.pos + "' with " +
                                 to_s(pos_rows) + " rows (expected " + to_s(stored_prefix) + " prefix row(s) + gh*gw" +
                                 (cfg.no_embed_class ? ", no_embed_class" : "") + ")");
  }
  // A config size that contradicts the stored table (e.g. img_size 1000000 for a 4x4 grid) is
  // not taken silently: the run size still comes from it (timm builds the model at its
  // img_size and resamples the checkpoint's table to it), within the limits checked below.
  if (!ov.image_size && hint_h > 0 && hint_w > 0 &&
      (static_cast<int64_t>(hint_h / cfg.patch) != cfg.ckpt_grid_h || static_cast<int64_t>(hint_w / cfg.patch) != cfg.ckpt_grid_w)) {
    const std::string said_by = hints.image_h ? hints.path : "architecture '" + arch_name + "'";
    warnings.push_back(said_by + " says image size " + to_s(hint_h) + "x" + to_s(hint_w) + " but position table '" + N.pos +
                       "' holds a " + to_s(cfg.ckpt_grid_h) + "x" + to_s(cfg.ckpt_grid_w) + " grid (" +
                       to_s(static_cast<int64_t>(cfg.ckpt_grid_h) * cfg.patch) + "x" +
                       to_s(static_cast<int64_t>(cfg.ckpt_grid_w) * cfg.patch) + " at patch " + to_s(cfg.patch) +
                       "): running at " + to_s(hint_h) + "x" + to_s(hint_w) + " with the table resampled");
  }
  // Where the run size comes from, for the messages below.
  std::string size_from = ov.image_size ? std::string("the image size override")
                          : hints.image_h ? hints.path
                          : have_arch     ? "architecture '" + arch_name + "'"
                                          : std::string();
  if (cfg_h <= 0 || cfg_w <= 0) {
    // The stored grid at the patch size (int64: both factors come from tensor shapes).
    const int64_t h = static_cast<int64_t>(cfg.ckpt_grid_h) * cfg.patch, w = static_cast<int64_t>(cfg.ckpt_grid_w) * cfg.patch;
    if (h > limits::kMaxImageSide || w > limits::kMaxImageSide) {
      fail(ErrorCode::kFormat, file + ": position table '" + N.pos + "' (" + to_s(cfg.ckpt_grid_h) + "x" +
                                   to_s(cfg.ckpt_grid_w) + " grid) at patch size " + to_s(cfg.patch) + " implies a " +
                                   to_s(h) + "x" + to_s(w) + " input, larger than the limit of " +
                                   to_s(limits::kMaxImageSide) + " pixels a side");
    }
    cfg_h = static_cast<int>(h);
    cfg_w = static_cast<int>(w);
    size_from = "position table '" + N.pos + "'";
  }
  // A size that is not a multiple of the patch runs as timm's and HF's stride-P patch conv does:
  // the grid is floor(size / P) and the last size % P pixel rows / columns are not read
  // (timm vit_so400m_patch14_siglip_384: 384 px at patch 14, a 27x27 grid over 378 px).
  if (cfg_h < cfg.patch || cfg_w < cfg.patch) {
    fail(ov.image_size ? ErrorCode::kInvalidArgument : ErrorCode::kFormat,
         "image size " + to_s(cfg_h) + "x" + to_s(cfg_w) + " (from " + size_from + ") is smaller than the patch size " +
             to_s(cfg.patch) + " (" + file + ")");
  }
  if (cfg_h % cfg.patch != 0 || cfg_w % cfg.patch != 0) {
    warnings.push_back("image size " + to_s(cfg_h) + "x" + to_s(cfg_w) + " is not a multiple of the patch size " +
                       to_s(cfg.patch) + ": the patch grid is " + to_s(cfg_h / cfg.patch) + "x" + to_s(cfg_w / cfg.patch) +
                       " and the last " + to_s(cfg_h % cfg.patch) + " pixel row(s) / " + to_s(cfg_w % cfg.patch) +
                       " column(s) are not read, as timm's and HF's stride-" + to_s(cfg.patch) + " patch conv");
  }
  // Run-size limits (model/limits.h): a caller's override is an invalid argument, a file's
  // size a format error naming the file.
  const int64_t run_patches = static_cast<int64_t>(cfg_h / cfg.patch) * (cfg_w / cfg.patch);
  if (cfg_h > limits::kMaxImageSide || cfg_w > limits::kMaxImageSide || run_patches > limits::kMaxPatches) {
    fail(ov.image_size ? ErrorCode::kInvalidArgument : ErrorCode::kFormat,
         "image size " + to_s(cfg_h) + "x" + to_s(cfg_w) + " (from " + size_from + ") at patch size " +
             to_s(cfg.patch) + " gives " + to_s(run_patches) + " patches; the limits are " +
             to_s(limits::kMaxImageSide) + " pixels a side and " + to_s(limits::kMaxPatches) + " patches (" + file + ")");
  }
  cfg.image_h = cfg_h;
  cfg.image_w = cfg_w;

  // Every tensor present, none extra, every shape right.
  const std::map<std::string, Shape> expect = expected_tensors(L, cfg, pos_rows);
  check_tensors(*src, L, expect, file);

  const Reader rd(*src, &warnings);
  switch (L.layout) {
    case WeightLayout::kTimm: map_timm(rd, cfg, L, &model->w); break;
    case WeightLayout::kHF: map_hf(rd, cfg, L, &model->w); break;
    case WeightLayout::kJax: map_jax(rd, cfg, &model->w); break;
    case WeightLayout::kHFSiglip: map_hf_siglip(rd, cfg, L.prefix, &model->w); break;
    case WeightLayout::kHFAimv2: map_hf_aimv2(rd, cfg, L, &model->w); break;
  }
  if (cfg.pool == GlobalPool::kMap) map_attn_pool(rd, L, cfg, &model->w.attn_pool);
  src.reset();  // unmap before resampling: the weights are copied out
  // HF DeiT / CLIP / DINOv2 resample with their interpolate_pos_encoding (DINOv2 always, the
  // others when asked: the only way HF runs them at another size); the prefix rows are kept
  // (HF DINOv2-with-registers: its cls row is folded into the token, so there are none).
  // Dinov2WithRegisters' own copy passes antialias=True: timm's rule. SiglipVisionModel's
  // interpolate_pos_encoding is DINOv2's (bicubic, no antialias) over a table without prefix
  // rows. The HF ViT layout keeps timm's rule, as before.
  const bool hf_antialiased = L.hf == HFFamily::kDinov2 &&
                              (cfg.reg_tokens > 0 || hints.hf_model_type.value_or("") == "dinov2_with_registers");
  const bool hf_rule = (hf && L.hf != HFFamily::kViT && !hf_antialiased) || L.layout == WeightLayout::kHFSiglip;
  cfg.pos_rule = hf_rule ? PosResample::kHF : PosResample::kTimm;
  if (cfg.grid_h() != cfg.ckpt_grid_h || cfg.grid_w() != cfg.ckpt_grid_w) {
    Tensor resampled = resample_pos_embed(model->w.pos, cfg.ckpt_grid_h, cfg.ckpt_grid_w, cfg.grid_h(), cfg.grid_w(),
                                          pos_prefix, cfg.pos_rule);
    // HF resamples the stored table on every forward: other run sizes start from it (pos_embed_at).
    if (hf_rule) model->w.pos_ckpt = std::move(model->w.pos);
    model->w.pos = std::move(resampled);
  }
  // The embed's prefix rows, in timm's concatenation order (cls, dist, registers), unless the
  // prefix is the cls token alone (the graph reads w.cls then).
  if (!(cfg.class_token && cfg.prefix_tokens() == 1)) {
    ViTWeights& w = model->w;
    std::vector<Tensor> rows;
    if (cfg.class_token) rows.push_back(w.cls);
    if (cfg.dist_token) rows.push_back(w.dist);
    if (cfg.reg_tokens > 0) rows.push_back(w.reg);
    w.prefix = concat_rows(rows, {static_cast<int64_t>(cfg.prefix_tokens()), static_cast<int64_t>(cfg.hidden)});
  }

  // Labels: the config's, replaced by a labels file.
  if (ov.labels_file) {
    cfg.labels = read_labels_file(*ov.labels_file);
    if (static_cast<int>(cfg.labels.size()) != cfg.num_classes) {
      fail(ErrorCode::kInvalidArgument, "labels file " + *ov.labels_file + " has " +
                                            to_s(static_cast<int64_t>(cfg.labels.size())) + " lines but the model has " +
                                            to_s(cfg.num_classes) + " classes");
    }
  } else if (!hints.labels.empty()) {
    if (static_cast<int>(hints.labels.size()) == cfg.num_classes) {
      cfg.labels = hints.labels;
    } else if (cfg.num_classes > 0) {
      warnings.push_back(hints.path + " has " + to_s(static_cast<int64_t>(hints.labels.size())) + " labels but the model has " +
                         to_s(cfg.num_classes) + " classes; labels ignored");
    }
  }

  // Preprocessing: a timm pretrained_cfg, else HF preprocessor_config.json / defaults by layout.
  bool pp_from_file = false;  // a preprocessor_config.json size that may disagree with the model
  if ((hints.kind == ConfigKind::kTimm || hints.kind == ConfigKind::kOpenClip) && hints.preprocess) {
    cfg.preprocess = *hints.preprocess;
  } else if (fs::is_regular_file(pre_path)) {
    cfg.preprocess = detail::hf_default_preprocess(cfg.image_h, cfg.image_w);
    detail::apply_hf_preprocessor(detail::read_json_file(pre_path.string()), pre_path.string(), &cfg.preprocess,
                                  &warnings);
    pp_from_file = true;
  } else if (L.layout == WeightLayout::kTimm) {
    cfg.preprocess = PreprocessConfig{};  // timm ViT _cfg: bicubic, crop_pct 0.9, mean = std = 0.5
  } else {
    cfg.preprocess = detail::hf_default_preprocess(cfg.image_h, cfg.image_w);  // HF and JAX: bilinear squash
    hf_family_preprocess(L, &cfg.preprocess);
  }
  // The engine runs at the run size, so preprocessing must produce exactly that.
  if (pp_from_file && !ov.image_size && (cfg.preprocess.input_h != cfg.image_h || cfg.preprocess.input_w != cfg.image_w)) {
    warnings.push_back("preprocessing size " + to_s(cfg.preprocess.input_h) + "x" + to_s(cfg.preprocess.input_w) +
                       " differs from the model input " + to_s(cfg.image_h) + "x" + to_s(cfg.image_w) +
                       "; using the model input");
  }
  if (cfg.preprocess.resize == PreprocessConfig::Resize::kShortestEdgeCrop && cfg.preprocess.input_h != cfg.image_h) {
    // Another run size keeps the crop's share of the shorter side (DINOv2's 224 of 256 at 448: 512).
    cfg.preprocess.shortest_edge = static_cast<int>(std::lround(static_cast<double>(cfg.preprocess.shortest_edge) *
                                                                cfg.image_h / cfg.preprocess.input_h));
  }
  cfg.preprocess.input_h = cfg.image_h;
  cfg.preprocess.input_w = cfg.image_w;

  model->cfg = std::move(cfg);
  return model;
}

}  // namespace vit
