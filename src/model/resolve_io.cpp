// vit-infer (internal): the last resolve steps (resolve.h): the labels (a labels file, else the
// config's) and the preprocessing (a timm / open_clip pretrained_cfg, else preprocessor_config.json,
// else the layout's family default), made to produce exactly the run size.
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/resolve.h"

namespace vit::detail {

namespace {

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

}  // namespace

void resolve_labels(const LoadState& s, ViTConfig* cfg) {
  const ConfigHints& hints = s.hints();
  if (s.ov.labels_file) {
    const std::string& lf = *s.ov.labels_file;
    cfg->labels = read_labels_file(lf);
    if (static_cast<int>(cfg->labels.size()) != cfg->num_classes) {
      fail(ErrorCode::kInvalidArgument, "labels file " + lf + " has " + to_s(static_cast<int64_t>(cfg->labels.size())) +
                                            " lines but the model has " + to_s(cfg->num_classes) + " classes");
    }
  } else if (!hints.labels.empty()) {
    if (static_cast<int>(hints.labels.size()) == cfg->num_classes) {
      cfg->labels = hints.labels;
    } else if (cfg->num_classes > 0) {
      s.warnings->push_back(hints.path + " has " + to_s(static_cast<int64_t>(hints.labels.size())) +
                            " labels but the model has " + to_s(cfg->num_classes) + " classes; labels ignored");
    }
  }
}

void resolve_preprocess(const LoadState& s, ViTConfig* cfg) {
  const ConfigHints& hints = s.hints();
  const std::filesystem::path pre_path = std::filesystem::path(s.ck.dir.empty() ? "." : s.ck.dir) / "preprocessor_config.json";
  bool pp_from_file = false;  // a preprocessor_config.json size that may disagree with the model
  if ((hints.kind == ConfigKind::kTimm || hints.kind == ConfigKind::kOpenClip) && hints.preprocess) {
    cfg->preprocess = *hints.preprocess;
  } else if (std::filesystem::is_regular_file(pre_path)) {
    cfg->preprocess = hf_default_preprocess(cfg->image_h, cfg->image_w);
    apply_hf_preprocessor(read_json_file(pre_path.string()), pre_path.string(), &cfg->preprocess, s.warnings);
    pp_from_file = true;
  } else {
    cfg->preprocess = s.row->preprocess(cfg->image_h, cfg->image_w);
  }
  PreprocessConfig& pp = cfg->preprocess;
  // The engine runs at the run size, so preprocessing must produce exactly that.
  if (pp_from_file && !s.ov.image_size && (pp.input_h != cfg->image_h || pp.input_w != cfg->image_w)) {
    s.warnings->push_back("preprocessing size " + to_s(pp.input_h) + "x" + to_s(pp.input_w) +
                          " differs from the model input " + to_s(cfg->image_h) + "x" + to_s(cfg->image_w) +
                          "; using the model input");
  }
  // Another run size keeps the crop's share of the resize (DINOv2's 224 of 256 at 448: 512).
  pp = pp.at_output_size(cfg->image_h, cfg->image_w);
}

}  // namespace vit::detail
