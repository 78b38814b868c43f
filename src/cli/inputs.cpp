// vit-infer CLI: input expansion and the .npy input. An .npy input holds already
// preprocessed float rows, [B, C, H, W] or a single [C, H, W]; it must match the model's
// channels and run size exactly (no resizing is done on arrays).
#include "cli/inputs.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "io/npy.h"

namespace vitcli {

namespace fs = std::filesystem;
using vit::ErrorCode;

namespace {

bool ends_with_ci(const std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i) {
    char a = static_cast<char>(std::tolower(static_cast<unsigned char>(s[s.size() - suffix.size() + i])));
    if (a != suffix[i]) return false;
  }
  return true;
}

class NpyItem final : public InputItem {
 public:
  explicit NpyItem(std::string path) : path_(std::move(path)) {}
  const std::string& name() const noexcept override { return path_; }

  vit::Tensor load(const InputSpec& spec) const override {
    vit::Tensor t = vit::read_npy(path_);
    const std::string want = "[B, " + std::to_string(spec.channels) + ", " + std::to_string(spec.height) + ", " +
                             std::to_string(spec.width) + "] or [" + std::to_string(spec.channels) + ", " +
                             std::to_string(spec.height) + ", " + std::to_string(spec.width) + "]";
    if (t.shape.size() == 3) t.shape.insert(t.shape.begin(), 1);
    if (t.shape.size() != 4)
      vit::fail(ErrorCode::kInvalidArgument,
                path_ + ": array shape " + vit::shape_str(t.shape) + " is not an image batch; the model takes " + want);
    if (t.shape[1] != spec.channels || t.shape[2] != spec.height || t.shape[3] != spec.width)
      vit::fail(ErrorCode::kInvalidArgument,
                path_ + ": array shape " + vit::shape_str(t.shape) + " does not match the model input " + want);
    if (t.shape[0] < 1) vit::fail(ErrorCode::kInvalidArgument, path_ + ": array holds no images (batch 0)");
    return t;
  }

 private:
  std::string path_;
};

// An argument that cannot be used: reported, in order, when its turn comes.
class ErrorItem final : public InputItem {
 public:
  ErrorItem(std::string name, ErrorCode code, std::string msg)
      : name_(std::move(name)), code_(code), msg_(std::move(msg)) {}
  const std::string& name() const noexcept override { return name_; }
  vit::Tensor load(const InputSpec&) const override { vit::fail(code_, msg_); }

 private:
  std::string name_;
  ErrorCode code_;
  std::string msg_;
};

std::unique_ptr<InputItem> item_for_file(const std::string& path) {
  if (ends_with_ci(path, ".npy")) return std::make_unique<NpyItem>(path);
  if (image_inputs_supported()) return make_image_item(path);
  return std::make_unique<ErrorItem>(path, ErrorCode::kUnsupported,
                                     path + ": image inputs not supported yet (pass a preprocessed .npy array)");
}

}  // namespace

InputList expand_inputs(const std::vector<std::string>& args) {
  InputList out;
  for (const std::string& arg : args) {
    std::error_code ec;
    if (!fs::is_directory(arg, ec)) {
      // Missing files are reported by the item's load(), with the reader's message.
      out.push_back(item_for_file(arg));
      continue;
    }
    // A directory: its regular .npy and image files, non-recursive, sorted by name so the
    // output order does not depend on the file system.
    std::vector<std::string> files;
    for (fs::directory_iterator it(arg, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code ec2;
      if (!it->is_regular_file(ec2)) continue;
      std::string p = it->path().string();
      if (ends_with_ci(p, ".npy") || is_image_path(p)) files.push_back(p);
    }
    if (ec) {
      out.push_back(std::make_unique<ErrorItem>(arg, ErrorCode::kIo, arg + ": cannot list directory: " + ec.message()));
      continue;
    }
    std::sort(files.begin(), files.end());
    if (files.empty())
      out.push_back(std::make_unique<ErrorItem>(arg, ErrorCode::kInvalidArgument,
                                                arg + ": directory holds no .npy or image files"));
    for (const std::string& f : files) out.push_back(item_for_file(f));
  }
  return out;
}

}  // namespace vitcli
