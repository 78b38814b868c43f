// vit-infer CLI: where classification inputs come from. Every command-line INPUT expands to
// one or more InputItems (a directory to its image files); each item loads to a float
// tensor [n, C, H, W] (n >= 1 rows, already normalised for the model) or throws vit::Error
// naming the file and the problem. .npy arrays are read as they are; image files are
// decoded and preprocessed by src/image when that module is part of the build.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "vit/vit.h"

namespace vitcli {

// What the model expects of every row, and how to prepare an image for it.
struct InputSpec {
  int channels = 3, height = 224, width = 224;
  vit_preprocess_info preprocess{};
};

class InputItem {
 public:
  virtual ~InputItem() = default;
  // The name results and errors are reported under (the path as given / found).
  virtual const std::string& name() const noexcept = 0;
  // [n, C, H, W] fp32 with n >= 1. Throws vit::Error (kIo, kFormat, kInvalidArgument, ...).
  virtual vit::Tensor load(const InputSpec& spec) const = 0;
};

using InputList = std::vector<std::unique_ptr<InputItem>>;

// Expands the INPUT arguments in order. Never throws for a bad argument: an argument that
// cannot be used becomes an item whose load() throws, so it is reported in sequence.
InputList expand_inputs(const std::vector<std::string>& args);

// True when this build can decode image files (src/image present).
bool image_inputs_supported() noexcept;

// --- provided by image_input.cpp ---------------------------------------------------------
// An item that decodes + preprocesses one image file to [1, C, H, W]. Only called when
// image_inputs_supported().
std::unique_ptr<InputItem> make_image_item(const std::string& path);
// Whether a file name looks like an image this build decodes (by extension).
bool is_image_path(const std::string& path);

}  // namespace vitcli
