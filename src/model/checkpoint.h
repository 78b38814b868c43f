// vit-infer (internal): the first resolve steps, opening a checkpoint. Finds the weights file (a
// path, or the one weights file of a directory), reads the config beside it (open_clip_config.json,
// else config.json) into ConfigHints, and opens the tensors as a TensorSource (host fp32 from
// safetensors or .npz) behind the source adapters its names and hints call for: OpenClipSource
// presents open_clip's image tower under timm's names, FilteredSource hides a dual-tower
// checkpoint's text tower. The layouts (layout.h) then see one set of names.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/config_sources.h"

namespace vit::detail {

using Shape = std::vector<int64_t>;

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual std::vector<std::string> names() const = 0;  // sorted
  virtual bool has(const std::string& n) const = 0;
  virtual Shape shape(const std::string& n) const = 0;
  virtual Tensor read(const std::string& n) const = 0;
};

// [rows, cols] -> [cols, rows]
Tensor transpose2d(const Tensor& t, int64_t rows, int64_t cols);

struct Checkpoint {
  std::string file;          // the weights file read
  std::string dir;           // where config.json / preprocessor_config.json are looked for
  ConfigHints hints;         // what the config file said (kind kNone without one)
  std::unique_ptr<TensorSource> src;
  bool open_clip = false;    // adapted from open_clip's own layout
};

// Finds the weights file and reads the config beside it. Throws vit::Error naming the path: no such
// path, no weights in a directory, several weights files, an unreadable config. The config's
// warnings go to *warnings.
Checkpoint find_checkpoint(const std::string& path, std::vector<std::string>* warnings);
// Opens ck->src with the adapters its names and hints call for (open_clip: eps 1e-5 unless its
// config says, hints->ln_eps set). Throws for a tensor name over limits::kMaxTensorName. Warnings
// (an unused text tower, an open_clip file's activation assumed) go to *warnings.
void open_tensors(Checkpoint* ck, const ConfigOverrides& ov, std::vector<std::string>* warnings);

}  // namespace vit::detail
