// vit-infer (internal): load_model's resolve steps, each a function of its own, in the order
// loader.cpp runs them: open the checkpoint (checkpoint.h), detect the layout row (layout.h),
// the architecture from the tensor shapes and the config (resolve_config.cpp: sizes, heads, eps,
// biases, pooling, the row's features, the activation), the grid and the run size
// (resolve_size.cpp), every tensor checked and mapped (layout_tensors.cpp), the position table at
// the run size, then labels and preprocessing (resolve_io.cpp). Precedence, as config.h says:
// overrides > config.json > tensor shapes > architecture name > the layout's defaults.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/layout.h"
#include "model/model.h"

namespace vit::detail {

// The checkpoint being resolved: its files and tensors, its layout row and names, the
// architecture name's config, and what the steps found that is not a ViTConfig field.
struct LoadState {
  LoadState(const ConfigOverrides& o, Checkpoint c, std::vector<std::string>* w) : ov(o), ck(std::move(c)), warnings(w) {}
  const ConfigOverrides& ov;
  Checkpoint ck;
  std::vector<std::string>* warnings;
  std::string arch_name;     // --arch, else config.json's architecture; may be empty
  bool have_arch = false;    // arch_name is a known architecture: `arch` holds its config
  ViTConfig arch;
  const LayoutRow* row = nullptr;
  Match match;
  LayoutNames names;
  RowResolved row_resolved;
  int64_t pos_rows = 0;      // rows of the stored position table
  int pos_prefix = 0;        // prefix rows of the internal table (w.pos)

  const std::string& file() const { return ck.file; }
  const ConfigHints& hints() const { return ck.hints; }
  const TensorSource& src() const { return *ck.src; }
  ResolveCtx ctx() const { return {*ck.src, match, names, ck.hints, ck.file, warnings}; }
};

// The steps (each throws vit::Error naming the file and the problem).
void check_overrides(const ConfigOverrides& ov, const std::string& file);
void resolve_arch_name(LoadState* s);
void detect_layout(LoadState* s);
void resolve_sizes(LoadState* s, ViTConfig* cfg);     // width, patch, MLP, classes, depth, stored table
void resolve_heads(LoadState* s, ViTConfig* cfg);
void resolve_norm_and_bias(LoadState* s, ViTConfig* cfg);
void resolve_pool(LoadState* s, ViTConfig* cfg);
void resolve_features(LoadState* s, ViTConfig* cfg);  // the row's hook, the activation, token pooling
void resolve_grid(LoadState* s, ViTConfig* cfg);      // stored grid, run size
void resolve_pos_table(const LoadState& s, Model* m);  // resampled to the run size, the prefix rows
void resolve_labels(const LoadState& s, ViTConfig* cfg);
void resolve_preprocess(const LoadState& s, ViTConfig* cfg);

// Every tensor the resolved config implies, name -> expected stored shape (layout_tensors.cpp).
std::map<std::string, Shape> expected_tensors(const LayoutNames& n, const Match& m, const ViTConfig& c,
                                              int64_t pos_rows);
// Every expected tensor present, none extra (but the layout's ignored ones), every shape right.
void check_tensors(const TensorSource& src, const LayoutRow& row, const LayoutNames& n,
                   const std::map<std::string, Shape>& expect, const std::string& file);
// The checkpoint's tensors -> the internal timm-oriented weights (NaN / Inf counted into *warnings).
void map_weights(const TensorSource& src, const LayoutNames& n, const Match& m, const ViTConfig& c,
                 const RowResolved& r, ViTWeights* w, std::vector<std::string>* warnings);

// Helpers the steps and the rows share.
std::string to_s(int64_t v);
std::string name_list(const std::vector<std::string>& v, size_t max_n = 5);
// The shape of a tensor that must be there with that rank.
Shape need_shape(const TensorSource& src, const std::string& name, size_t rank, const std::string& file);
// A tensor dimension that becomes a model size (width, patch, ...): checked against its limit
// (model/limits.h) before the cast to int, so that e.g. 2^32 + 8 is not read as 8.
int model_dim(const Shape& s, size_t i, int64_t lo, int64_t hi, const char* what, const std::string& tensor,
              const std::string& file);
// A config value the tensors contradict: a warning (the tensors win).
void note_conflict(std::vector<std::string>* warnings, const ConfigHints& h, const std::optional<int>& said,
                   int actual, const char* what);

}  // namespace vit::detail
