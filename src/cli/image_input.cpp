// vit-infer CLI: image-file inputs (PNG / JPEG, recognised by content). Decoding and
// preprocessing belong to src/image (decode.h, preprocess.h); this file only adapts them to
// InputItem: load() gives the normalised [1, 3, H, W] fp32 row, decode() the raw [h, w, 3] u8
// pixels for device-side preprocessing. Decoding refuses images over DecodeLimits' pixel cap.
#include <algorithm>
#include <cctype>
#include <cmath>

#include "cli/inputs.h"
#include "core/error.h"
#include "core/tensor.h"
#include "image/decode.h"
#include "image/preprocess.h"

namespace vitcli {

bool is_image_path(const std::string& path) {
  std::string ext;
  size_t dot = path.find_last_of('.');
  if (dot == std::string::npos) return false;
  ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == "jpg" || ext == "jpeg" || ext == "png";
}

vit::PreprocessConfig to_preprocess_config(const InputSpec& spec) {
  vit::PreprocessConfig c;
  const vit_preprocess_info& p = spec.preprocess;
  c.resize = p.resize == VIT_RESIZE_DIRECT                    ? vit::PreprocessConfig::Resize::kDirect
             : p.resize == VIT_RESIZE_SHORTEST_EDGE_THEN_CROP ? vit::PreprocessConfig::Resize::kShortestEdgeCrop
                                                              : vit::PreprocessConfig::Resize::kShortestThenCrop;
  c.interpolation = p.interpolation == VIT_INTERP_BILINEAR ? "bilinear" : "bicubic";
  c.crop_pct = p.crop_pct;
  c.input_h = spec.height;
  c.input_w = spec.width;
  if (c.resize == vit::PreprocessConfig::Resize::kShortestEdgeCrop && p.crop_pct > 0.0f)
    c.shortest_edge = static_cast<int>(std::lround(spec.height / static_cast<double>(p.crop_pct)));
  for (int k = 0; k < 3; ++k) {
    c.mean[k] = p.mean[k];
    c.std[k] = p.std[k];
  }
  c.rescale = p.rescale;
  return c;
}

vit::Image InputItem::decode() const {
  vit::fail(vit::ErrorCode::kInternal, name() + ": not an image input (decode() called on a non-image item)");
}

namespace {

class ImageItem final : public InputItem {
 public:
  explicit ImageItem(std::string path) : path_(std::move(path)) {}
  const std::string& name() const noexcept override { return path_; }
  bool is_image() const noexcept override { return true; }

  vit::Image decode() const override { return vit::decode_image_file(path_); }

  vit::Tensor load(const InputSpec& spec) const override {
    if (spec.channels != 3)
      vit::fail(vit::ErrorCode::kUnsupported, path_ + ": the model takes " + std::to_string(spec.channels) +
                                                  " input channels; images decode to RGB (3)");
    vit::Image img = decode();
    vit::Tensor t({1, 3, spec.height, spec.width});  // [1, 3, H, W] fp32
    try {
      vit::preprocess_image(img, to_preprocess_config(spec), t.ptr());
    } catch (const vit::Error& e) {
      vit::fail(e.code(), path_ + ": " + e.what());
    }
    return t;
  }

 private:
  std::string path_;
};

}  // namespace

bool image_inputs_supported() noexcept { return true; }
std::unique_ptr<InputItem> make_image_item(const std::string& path) { return std::make_unique<ImageItem>(path); }

}  // namespace vitcli
