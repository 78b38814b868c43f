// vit-infer CLI: image-file inputs (jpg/png). Decoding and preprocessing belong to
// src/image (decode.h, preprocess.h); this file only adapts them to InputItem. When that
// module is not part of the source tree the CLI reports image inputs as unsupported.
#include <algorithm>
#include <cctype>

#include "cli/inputs.h"
#include "core/error.h"
#include "core/tensor.h"

#if __has_include("image/decode.h") && __has_include("image/preprocess.h")
#define VIT_CLI_HAVE_IMAGE 1
#include "image/decode.h"
#include "image/preprocess.h"
#endif

namespace vitcli {

bool is_image_path(const std::string& path) {
  std::string ext;
  size_t dot = path.find_last_of('.');
  if (dot == std::string::npos) return false;
  ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == "jpg" || ext == "jpeg" || ext == "png";
}

#ifdef VIT_CLI_HAVE_IMAGE
namespace {

// The model's preprocessing (from the C API) at the model's run size, as src/image wants it.
vit::PreprocessConfig to_preprocess_config(const InputSpec& spec) {
  vit::PreprocessConfig c;
  const vit_preprocess_info& p = spec.preprocess;
  c.resize = p.resize == VIT_RESIZE_DIRECT ? vit::PreprocessConfig::Resize::kDirect
                                           : vit::PreprocessConfig::Resize::kShortestThenCrop;
  c.interpolation = p.interpolation == VIT_INTERP_BILINEAR ? "bilinear" : "bicubic";
  c.crop_pct = p.crop_pct;
  c.input_h = spec.height;
  c.input_w = spec.width;
  for (int k = 0; k < 3; ++k) {
    c.mean[k] = p.mean[k];
    c.std[k] = p.std[k];
  }
  c.rescale = p.rescale;
  return c;
}

class ImageItem final : public InputItem {
 public:
  explicit ImageItem(std::string path) : path_(std::move(path)) {}
  const std::string& name() const noexcept override { return path_; }

  vit::Tensor load(const InputSpec& spec) const override {
    if (spec.channels != 3)
      vit::fail(vit::ErrorCode::kUnsupported, path_ + ": the model takes " + std::to_string(spec.channels) +
                                                  " input channels; images decode to RGB (3)");
    vit::Image img = vit::decode_image_file(path_);
    vit::Tensor t({1, 3, spec.height, spec.width});  // [1, 3, H, W] fp32
    vit::preprocess_image(img, to_preprocess_config(spec), t.ptr());
    return t;
  }

 private:
  std::string path_;
};

}  // namespace

bool image_inputs_supported() noexcept { return true; }
std::unique_ptr<InputItem> make_image_item(const std::string& path) { return std::make_unique<ImageItem>(path); }
#else
bool image_inputs_supported() noexcept { return false; }
std::unique_ptr<InputItem> make_image_item(const std::string& path) {
  vit::fail(vit::ErrorCode::kUnsupported, path + ": image inputs not supported yet");
}
#endif

}  // namespace vitcli
