// vit-infer (internal): the resolve steps of the grid and the run size (resolve.h): the stored
// position table's grid, the size the engine runs at (override > config > architecture name >
// the stored grid), its limits, and the position table resampled to it.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "model/limits.h"
#include "model/config_sources.h"
#include "model/resolve.h"

namespace vit::detail {

namespace {

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

// The stored position grid. Rows = prefix (cls, dist, registers; none for no_embed_class) + gh*gw;
// the config's grid preferred when it fits.
void resolve_ckpt_grid(LoadState* s, int hint_h, int hint_w, ViTConfig* cfg) {
  const ConfigHints& hints = s->hints();
  const int64_t pos_rows = s->pos_rows;
  const int prefix = cfg->prefix_tokens();
  const auto fits = [&](int64_t rows) {
    return rows > 0 && ((hint_h > 0 && hint_w > 0 && static_cast<int64_t>(hint_h / cfg->patch) * (hint_w / cfg->patch) == rows) ||
                        isqrt_exact(rows) > 0);
  };
  if (s->row_resolved.fixed_no_embed_class) {
    // The row set it.
  } else if (hints.no_embed_class) {
    cfg->no_embed_class = *hints.no_embed_class;
  } else {
    cfg->no_embed_class = prefix > 0 && !fits(pos_rows - prefix) && fits(pos_rows);  // a table without prefix rows
  }
  s->pos_prefix = cfg->no_embed_class ? 0 : prefix;  // of the internal table (w.pos)
  // Of the stored table: HF DINOv2-with-registers stores the cls row (folded into the token by
  // map_weights) but no register rows.
  const int stored_prefix = s->row_resolved.pos_has_cls_row_only && cfg->reg_tokens > 0 ? 1 : s->pos_prefix;
  const int64_t n_patch_rows = pos_rows - stored_prefix;
  if (hint_h > 0 && hint_w > 0 && static_cast<int64_t>(hint_h / cfg->patch) * (hint_w / cfg->patch) == n_patch_rows) {
    cfg->ckpt_grid_h = hint_h / cfg->patch;
    cfg->ckpt_grid_w = hint_w / cfg->patch;
  } else if (const int g = isqrt_exact(n_patch_rows); g > 0) {
    cfg->ckpt_grid_h = cfg->ckpt_grid_w = g;
  } else {
    fail(ErrorCode::kFormat, s->file() + ": cannot infer the patch grid from position table '" + s->names.pos + "' with " +
                                 to_s(pos_rows) + " rows (expected " + to_s(stored_prefix) + " prefix row(s) + gh*gw" +
                                 (cfg->no_embed_class ? ", no_embed_class" : "") + ")");
  }
}

}  // namespace

void resolve_grid(LoadState* s, ViTConfig* cfg) {
  const ConfigHints& hints = s->hints();
  const ConfigOverrides& ov = s->ov;
  const std::string& file = s->file();
  const std::string& pos = s->names.pos;
  const int hint_h = hints.image_h ? *hints.image_h : s->have_arch ? s->arch.image_h : 0;
  const int hint_w = hints.image_w ? *hints.image_w : s->have_arch ? s->arch.image_w : 0;
  resolve_ckpt_grid(s, hint_h, hint_w, cfg);
  int cfg_h = ov.image_size ? *ov.image_size : hint_h;
  int cfg_w = ov.image_size ? *ov.image_size : hint_w;
  const int patch = cfg->patch;
  // A config size that contradicts the stored table (e.g. img_size 1000000 for a 4x4 grid) is
  // not taken silently: the run size still comes from it (timm builds the model at its
  // img_size and resamples the checkpoint's table to it), within the limits checked below.
  if (!ov.image_size && hint_h > 0 && hint_w > 0 &&
      (static_cast<int64_t>(hint_h / patch) != cfg->ckpt_grid_h || static_cast<int64_t>(hint_w / patch) != cfg->ckpt_grid_w)) {
    const std::string said_by = hints.image_h ? hints.path : "architecture '" + s->arch_name + "'";
    s->warnings->push_back(said_by + " says image size " + to_s(hint_h) + "x" + to_s(hint_w) + " but position table '" +
                           pos + "' holds a " + to_s(cfg->ckpt_grid_h) + "x" + to_s(cfg->ckpt_grid_w) + " grid (" +
                           to_s(static_cast<int64_t>(cfg->ckpt_grid_h) * patch) + "x" +
                           to_s(static_cast<int64_t>(cfg->ckpt_grid_w) * patch) + " at patch " + to_s(patch) +
                           "): running at " + to_s(hint_h) + "x" + to_s(hint_w) + " with the table resampled");
  }
  // An HF checkpoint runs at the size its image processor produces, as transformers does: the
  // processor's pixel_values go to the model, which interpolates its position table on every
  // forward (DINOv2: always; ViT / DeiT / CLIP / SigLIP / AIMv2: with interpolate_pos_encoding=True,
  // without which transformers refuses another size). facebook/dinov2-* ship image_size 518 with
  // a 224 crop. Said once; --image-size still wins.
  const std::filesystem::path pre_path =
      std::filesystem::path(s->ck.dir.empty() ? "." : s->ck.dir) / "preprocessor_config.json";
  const bool hf_row = std::string(s->row->name).rfind("hf", 0) == 0;
  bool size_from_processor = false;
  if (!ov.image_size && hf_row && hints.kind == ConfigKind::kHF && std::filesystem::is_regular_file(pre_path)) {
    // The size it would run at otherwise: config.json's, else the stored table's grid.
    const int64_t base_h = cfg_h > 0 ? cfg_h : static_cast<int64_t>(cfg->ckpt_grid_h) * patch;
    const int64_t base_w = cfg_w > 0 ? cfg_w : static_cast<int64_t>(cfg->ckpt_grid_w) * patch;
    PreprocessConfig pp = hf_default_preprocess(static_cast<int>(std::min<int64_t>(base_h, limits::kMaxImageSide)),
                                                static_cast<int>(std::min<int64_t>(base_w, limits::kMaxImageSide)));
    std::vector<std::string> ignored;  // said again when the preprocessing is resolved (resolve_io.cpp)
    apply_hf_preprocessor(read_json_file(pre_path.string()), pre_path.string(), &pp, &ignored);
    if (pp.input_h != base_h || pp.input_w != base_w) {
      const bool always = s->row->hf_family && std::string(s->row->hf_family) == "DINOv2";
      const std::string cls = hints.hf_class.value_or(std::string(s->row->name));
      s->warnings->push_back((cfg_h > 0 ? hints.path + " says image_size " : std::string("the position table gives ")) +
                             to_s(base_h) + "x" + to_s(base_w) + " but " + pre_path.filename().string() + " produces " +
                             to_s(pp.input_h) + "x" + to_s(pp.input_w) + ": running at " + to_s(pp.input_h) + "x" +
                             to_s(pp.input_w) + " as transformers does, the position table interpolated as " + cls +
                             "'s interpolate_pos_encoding does" +
                             (always ? " on every forward"
                                     : " (transformers runs another size only with interpolate_pos_encoding=True)"));
      size_from_processor = true;
    }
    cfg_h = pp.input_h;
    cfg_w = pp.input_w;
  }
  // Where the run size comes from, for the messages below.
  std::string size_from = ov.image_size ? std::string("the image size override")
                          : size_from_processor ? pre_path.string()
                          : hints.image_h ? hints.path
                          : s->have_arch  ? "architecture '" + s->arch_name + "'"
                                          : std::string();
  if (cfg_h <= 0 || cfg_w <= 0) {
    // The stored grid at the patch size (int64: both factors come from tensor shapes).
    const int64_t h = static_cast<int64_t>(cfg->ckpt_grid_h) * patch, w = static_cast<int64_t>(cfg->ckpt_grid_w) * patch;
    if (h > limits::kMaxImageSide || w > limits::kMaxImageSide) {
      fail(ErrorCode::kFormat, file + ": position table '" + pos + "' (" + to_s(cfg->ckpt_grid_h) + "x" +
                                   to_s(cfg->ckpt_grid_w) + " grid) at patch size " + to_s(patch) + " implies a " +
                                   to_s(h) + "x" + to_s(w) + " input, larger than the limit of " +
                                   to_s(limits::kMaxImageSide) + " pixels a side");
    }
    cfg_h = static_cast<int>(h);
    cfg_w = static_cast<int>(w);
    size_from = "position table '" + pos + "'";
  }
  // A size that is not a multiple of the patch runs as timm's and HF's stride-P patch conv does:
  // the grid is floor(size / P) and the last size % P pixel rows / columns are not read
  // (timm vit_so400m_patch14_siglip_384: 384 px at patch 14, a 27x27 grid over 378 px).
  if (cfg_h < patch || cfg_w < patch) {
    fail(ov.image_size ? ErrorCode::kInvalidArgument : ErrorCode::kFormat,
         "image size " + to_s(cfg_h) + "x" + to_s(cfg_w) + " (from " + size_from + ") is smaller than the patch size " +
             to_s(patch) + " (" + file + ")");
  }
  if (cfg_h % patch != 0 || cfg_w % patch != 0) {
    s->warnings->push_back("image size " + to_s(cfg_h) + "x" + to_s(cfg_w) + " is not a multiple of the patch size " +
                           to_s(patch) + ": the patch grid is " + to_s(cfg_h / patch) + "x" + to_s(cfg_w / patch) +
                           " and the last " + to_s(cfg_h % patch) + " pixel row(s) / " + to_s(cfg_w % patch) +
                           " column(s) are not read, as timm's and HF's stride-" + to_s(patch) + " patch conv");
  }
  // Run-size limits (model/limits.h): a caller's override is an invalid argument, a file's
  // size a format error naming the file.
  const int64_t run_patches = static_cast<int64_t>(cfg_h / patch) * (cfg_w / patch);
  if (cfg_h > limits::kMaxImageSide || cfg_w > limits::kMaxImageSide || run_patches > limits::kMaxPatches) {
    fail(ov.image_size ? ErrorCode::kInvalidArgument : ErrorCode::kFormat,
         "image size " + to_s(cfg_h) + "x" + to_s(cfg_w) + " (from " + size_from + ") at patch size " + to_s(patch) +
             " gives " + to_s(run_patches) + " patches; the limits are " + to_s(limits::kMaxImageSide) +
             " pixels a side and " + to_s(limits::kMaxPatches) + " patches (" + file + ")");
  }
  cfg->image_h = cfg_h;
  cfg->image_w = cfg_w;
}

// The table at the run size, resampled by the family's rule (cfg.pos_rule). HF resamples the
// stored table on every forward: other run sizes start from it (pos_embed_at), so it is kept as
// pos_ckpt. Then the embed's prefix rows in timm's concatenation order (cls, dist, registers),
// unless the prefix is the cls token alone (the graph reads w.cls then).
void resolve_pos_table(const LoadState& s, Model* m) {
  const ViTConfig& cfg = m->cfg;
  ViTWeights& w = m->w;
  if (cfg.grid_h() != cfg.ckpt_grid_h || cfg.grid_w() != cfg.ckpt_grid_w) {
    Tensor resampled =
        resample_pos_embed(w.pos, cfg.ckpt_grid_h, cfg.ckpt_grid_w, cfg.grid_h(), cfg.grid_w(), s.pos_prefix, cfg.pos_rule);
    if (cfg.pos_rule == PosResample::kHF) w.pos_ckpt = std::move(w.pos);
    w.pos = std::move(resampled);
  }
  if (!(cfg.class_token && cfg.prefix_tokens() == 1)) {
    std::vector<Tensor> rows;
    if (cfg.class_token) rows.push_back(w.cls);
    if (cfg.dist_token) rows.push_back(w.dist);
    if (cfg.reg_tokens > 0) rows.push_back(w.reg);
    w.prefix = Tensor();
    w.prefix.shape = {static_cast<int64_t>(cfg.prefix_tokens()), static_cast<int64_t>(cfg.hidden)};
    for (const Tensor& r : rows) w.prefix.data.insert(w.prefix.data.end(), r.data.begin(), r.data.end());
  }
}

}  // namespace vit::detail
