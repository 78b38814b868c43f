// vit-infer (internal): opening a checkpoint (checkpoint.h): locating the files, the config
// beside the weights, the tensor sources and their adapters.
#include "model/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "io/npz.h"
#include "io/safetensors.h"
#include "model/limits.h"

namespace vit::detail {

namespace fs = std::filesystem;

Tensor transpose2d(const Tensor& t, int64_t rows, int64_t cols) {
  Tensor o({cols, rows});
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) o.data[c * rows + r] = t.data[r * cols + c];
  }
  return o;
}


namespace {

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
      fail(ErrorCode::kInvalidArgument, path + " holds " + std::to_string(v.size()) + " " + kind +
                                            " files (" + list + (v.size() > 5 ? ", ..." : "") +
                                            "); pass the weights file itself (sharded checkpoints are not supported)");
    }
    return {v[0], path};
  };
  if (!st_files.empty()) return pick(st_files, ".safetensors");
  if (!npz_files.empty()) return pick(npz_files, ".npz");
  fail(ErrorCode::kIo, "no model.safetensors, *.safetensors or *.npz weights in directory " + path);
}

// The config beside the weights: open_clip's own for its weights file (open_clip_model.safetensors)
// or when it is the only config, else config.json.
ConfigHints read_hints(const std::string& file, const std::string& dir, std::vector<std::string>* warnings) {
  const fs::path base(dir.empty() ? "." : dir);
  const fs::path cfg_path = base / "config.json", oc_path = base / "open_clip_config.json";
  const bool oc_weights = fs::path(file).filename().string().rfind("open_clip", 0) == 0;
  ConfigHints hints;
  if (fs::is_regular_file(oc_path) && (oc_weights || !fs::is_regular_file(cfg_path))) {
    hints = parse_open_clip_config(read_json_file(oc_path.string()), oc_path.string());
  } else if (fs::is_regular_file(cfg_path)) {
    hints = parse_config_json(read_json_file(cfg_path.string()), cfg_path.string());
  } else {
    return hints;
  }
  warnings->insert(warnings->end(), hints.warnings.begin(), hints.warnings.end());
  return hints;
}

}  // namespace

Checkpoint find_checkpoint(const std::string& path, std::vector<std::string>* warnings) {
  const Located loc = locate(path);
  Checkpoint ck;
  ck.file = loc.weights;
  ck.dir = loc.dir;
  ck.hints = read_hints(ck.file, ck.dir, warnings);
  return ck;
}

void open_tensors(Checkpoint* ckp, const ConfigOverrides& ov, std::vector<std::string>* warnings) {
  Checkpoint& ck = *ckp;
  const std::string& file = ck.file;
  ConfigHints& hints = ck.hints;
  std::unique_ptr<TensorSource> src = open_source(file);
  if (OpenClipSource::detect(src->names())) {
    auto oc = std::make_unique<OpenClipSource>(std::move(src), hints.ln_post_after_pool, file);
    ck.open_clip = true;
    if (oc->text_tensors() > 0) warnings->push_back(text_tower_unused(file, "open_clip CLIP", oc->text_tensors()));
    if (hints.kind != ConfigKind::kOpenClip) {
      // timm's openai / laion CLIP towers: LayerNorm eps 1e-5, QuickGELU for OpenAI's own weights.
      if (!hints.ln_eps) hints.ln_eps = 1e-5f;
      if (!hints.act && !ov.architecture)
        warnings->push_back(file + ": an open_clip checkpoint without open_clip_config.json: GELU (erf) assumed; "
                                   "OpenAI's own CLIP weights use QuickGELU (pass --arch vit_base_patch16_clip_quickgelu_224 "
                                   "or the like, or keep the open_clip_config.json beside it)");
    }
    src = std::move(oc);
  }
  if (!hints.ignored_prefixes.empty()) {
    const size_t all = src->names().size();
    src = std::make_unique<FilteredSource>(std::move(src), hints.ignored_prefixes);
    const size_t kept = src->names().size();
    if (kept < all) warnings->push_back(text_tower_unused(file, hints.hf_class.value_or("a dual-tower model"), all - kept));
  }
  for (const std::string& n : src->names()) {
    if (n.size() > limits::kMaxTensorName) {
      fail(ErrorCode::kFormat, file + ": tensor name of " + std::to_string(n.size()) + " characters ('" + n.substr(0, 40) +
                                   "...') is longer than the limit of " + std::to_string(limits::kMaxTensorName));
    }
  }
  ck.src = std::move(src);
}

}  // namespace vit::detail
