// vit-infer: load_model, as a sequence of named resolve steps (model/resolve.h). The checkpoint is
// found and opened behind its source adapters (checkpoint.cpp), its layout is the first row of the
// layout table that claims its tensor names (layout.h, layouts.cpp), and the ViTConfig is resolved
// step by step (arch name < config.json < tensor shapes < overrides; heads: override > config >
// arch name > the layout's shapes > standard-width table); every tensor is then checked for
// presence and shape against it and mapped onto the internal timm-oriented fp32 ViTWeights
// (layout_tensors.cpp), the position table resampled to the run size.
#include "model/model.h"
#include "model/resolve.h"

namespace vit {

std::shared_ptr<const Model> load_model(const std::string& path, const ConfigOverrides& ov) {
  auto model = std::make_shared<Model>();
  std::vector<std::string>& warnings = model->warnings;
  detail::LoadState s(ov, detail::find_checkpoint(path, &warnings), &warnings);
  model->source_path = s.file();
  detail::resolve_arch_name(&s);
  detail::check_overrides(ov, s.file());
  detail::open_tensors(&s.ck, ov, &warnings);
  detail::detect_layout(&s);

  ViTConfig& cfg = model->cfg;
  cfg.layout = s.row->name;
  cfg.architecture = s.arch_name.empty() && s.ck.open_clip ? "open_clip" : s.arch_name;  // family(): a CLIP tower
  detail::resolve_sizes(&s, &cfg);
  detail::resolve_heads(&s, &cfg);
  detail::resolve_norm_and_bias(&s, &cfg);
  detail::resolve_pool(&s, &cfg);
  detail::resolve_features(&s, &cfg);
  detail::resolve_grid(&s, &cfg);

  // Every tensor present, none extra, every shape right; then read.
  detail::check_tensors(s.src(), *s.row, s.names, detail::expected_tensors(s.names, s.match, cfg, s.pos_rows), s.file());
  detail::map_weights(s.src(), s.names, s.match, cfg, s.row_resolved, &model->w, &warnings);
  s.ck.src.reset();  // unmap before resampling: the weights are copied out
  detail::resolve_pos_table(s, model.get());
  detail::resolve_labels(s, &cfg);
  detail::resolve_preprocess(s, &cfg);
  return model;
}

}  // namespace vit
