// vit-infer CLI: image-file inputs (PNG / JPEG, recognised by content). Decoding and
// preprocessing are the library's, for the model at hand (vit_model_decode_image: its
// framework's transparency rule; vit_model_preprocess_image: its resize / crop / normalise);
// this file only adapts them to InputItem: load() gives the normalised [1, 3, H, W] fp32 row,
// decode() the raw [h, w, 3] u8 pixels for device-side preprocessing. Decoding refuses images
// over DecodeLimits' pixel cap.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "cli/inputs.h"
#include "core/error.h"
#include "core/tensor.h"
#include "image/decode.h"
#include "vit/vit.hpp"

namespace vitcli {

bool is_image_path(const std::string& path) {
  std::string ext;
  size_t dot = path.find_last_of('.');
  if (dot == std::string::npos) return false;
  ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == "jpg" || ext == "jpeg" || ext == "png";
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) vit::fail(vit::ErrorCode::kIo, path + ": cannot open image file: " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) vit::fail(vit::ErrorCode::kIo, path + ": read error");
  return bytes;
}

vit::Image decode_for_model(const vit_model* model, const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  vit_image img{};
  vitpp::detail::check(vit_model_decode_image(model, bytes.data(), bytes.size(), path.c_str(), &img));
  vit::Image out;
  out.w = img.width;
  out.h = img.height;
  out.rgb.assign(img.rgb, img.rgb + static_cast<size_t>(img.width) * img.height * 3);
  vit_image_free(&img);
  return out;
}

void preprocess_for_model(const vit_model* model, const vit::Image& img, float* out_chw) {
  const vit_image view{img.rgb.data(), img.w, img.h};
  vitpp::detail::check(vit_model_preprocess_image(model, &view, out_chw));
}

vit::Image InputItem::decode(const InputSpec&) const {
  vit::fail(vit::ErrorCode::kInternal, name() + ": not an image input (decode() called on a non-image item)");
}

namespace {

class ImageItem final : public InputItem {
 public:
  explicit ImageItem(std::string path) : path_(std::move(path)) {}
  const std::string& name() const noexcept override { return path_; }
  bool is_image() const noexcept override { return true; }

  vit::Image decode(const InputSpec& spec) const override {
    if (!spec.model) vit::fail(vit::ErrorCode::kInternal, path_ + ": no model to decode the image for");
    return decode_for_model(spec.model, path_);
  }

  vit::Tensor load(const InputSpec& spec) const override {
    if (spec.channels != 3)
      vit::fail(vit::ErrorCode::kUnsupported, path_ + ": the model takes " + std::to_string(spec.channels) +
                                                  " input channels; images decode to RGB (3)");
    const vit::Image img = decode(spec);
    vit::Tensor t({1, 3, spec.height, spec.width});  // [1, 3, H, W] fp32
    try {
      preprocess_for_model(spec.model, img, t.ptr());
    } catch (const std::exception& e) {
      vit::fail(vit::ErrorCode::kInvalidArgument, path_ + ": " + e.what());
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
