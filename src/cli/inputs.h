// vit-infer CLI: where classification inputs come from. Every command-line INPUT expands to
// one or more InputItems: a file to itself, a directory to its image and .npy files
// (recursive, sorted), `@LIST` to the paths listed in the file LIST. Each item loads to a
// float tensor [n, C, H, W] (n >= 1 rows, already normalised for the model), or, for an
// image file, to its decoded RGB8 pixels [h, w, 3] u8; failures throw vit::Error naming the
// file and the problem. Items are immutable after expansion: load()/decode() may run on
// several threads at once (the classify pipeline's decode workers).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "image/decode.h"
#include "model/config.h"
#include "vit/vit.h"

namespace vitcli {

// What the model expects of every row, and how to prepare an image for it.
struct InputSpec {
  int channels = 3, height = 224, width = 224;
  vit_preprocess_info preprocess{};
  // The model images are decoded and preprocessed for (vit_model_decode_image /
  // vit_model_preprocess_image); required by image items.
  const vit_model* model = nullptr;
  // > 0: arrays of another height x width are taken when both are multiples of `patch` and at
  // most max_size (--max-image-size; they run at their own size); 0: the model's size only.
  int max_size = 0, patch = 16;
};

class InputItem {
 public:
  virtual ~InputItem() = default;
  // The name results and errors are reported under (the path as given / found).
  virtual const std::string& name() const noexcept = 0;
  // [n, C, H, W] fp32 with n >= 1. Throws vit::Error (kIo, kFormat, kInvalidArgument, ...).
  virtual vit::Tensor load(const InputSpec& spec) const = 0;
  // An image file: decode() gives its pixels, for preprocessing elsewhere (on the GPU).
  virtual bool is_image() const noexcept { return false; }
  // [h, w, 3] u8 RGB, refused over the decode limits (image/decode.h). Image items only.
  virtual vit::Image decode(const InputSpec& spec) const;
};

using InputList = std::vector<std::unique_ptr<InputItem>>;

// Expands the INPUT arguments in order:
//   FILE   an image (PNG / JPEG, by content) or a .npy array (by extension or magic)
//   DIR    its files, recursively, sorted by path; kept: *.npy, *.png, *.jpg, *.jpeg (any
//          case) and files of other names whose first bytes are PNG / JPEG / NPY; names
//          starting with '.' (hidden files, macOS ._* forks) are skipped
//   @LIST  one path (FILE or DIR) per line of the text file LIST; blank lines and lines
//          starting with '#' are skipped; relative paths are relative to the current
//          directory, as on the command line
// Never throws for a bad argument: an argument that cannot be used becomes an item whose
// load() throws, so it is reported in sequence. `notes` (may be null) receives remarks for
// the log (files a directory listing skipped).
InputList expand_inputs(const std::vector<std::string>& args, std::vector<std::string>* notes = nullptr);

// True when this build can decode image files (always, since src/image is part of libvit).
bool image_inputs_supported() noexcept;

// --- provided by image_input.cpp ---------------------------------------------------------
// An item that decodes + preprocesses one image file to [1, C, H, W].
std::unique_ptr<InputItem> make_image_item(const std::string& path);
// Whether a file name looks like an image this build decodes (by extension).
bool is_image_path(const std::string& path);
// An image file decoded as `model`'s framework reads it (vit_model_decode_image), and RGB8
// pixels preprocessed as the model says (vit_model_preprocess_image: out [3, H, W] fp32 at the
// model's size). Throw vitpp::Error / vit::Error naming the file.
vit::Image decode_for_model(const vit_model* model, const std::string& path);
void preprocess_for_model(const vit_model* model, const vit::Image& img, float* out_chw);

}  // namespace vitcli
