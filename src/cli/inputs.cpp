// vit-infer CLI: input expansion (files, recursive directories, @list files) and the .npy
// input. An .npy input holds already preprocessed float rows, [B, C, H, W] or a single
// [C, H, W]; it must match the model's channels and run size exactly (no resizing is done on
// arrays). What a file is comes from its first bytes where the name does not say.
#include "cli/inputs.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>

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

enum class Sniff { kUnknown, kNpy, kImage };

// The first bytes of a file: NPY magic, or an image format the decoder handles.
Sniff sniff(const std::string& path) {
  uint8_t head[16] = {};
  std::ifstream f(path, std::ios::binary);
  if (!f) return Sniff::kUnknown;
  f.read(reinterpret_cast<char*>(head), sizeof head);
  const size_t n = static_cast<size_t>(f.gcount());
  if (n >= 6 && std::memcmp(head, "\x93NUMPY", 6) == 0) return Sniff::kNpy;
  vit::ImageFormat fmt = vit::detect_image_format(head, n);
  return fmt == vit::ImageFormat::kPng || fmt == vit::ImageFormat::kJpeg ? Sniff::kImage : Sniff::kUnknown;
}

// Image formats that a directory may hold but the decoder does not handle: skipped, with a
// note, since a user would expect them to be classified.
bool looks_like_unsupported_image(const std::string& p) {
  for (const char* ext : {".gif", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".avif", ".jxl"})
    if (ends_with_ci(p, ext)) return true;
  return false;
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
    const bool own = t.shape[2] == spec.height && t.shape[3] == spec.width;
    const auto other_ok = [&](int64_t side) {
      return side >= spec.patch && side % spec.patch == 0 && side <= spec.max_size;
    };
    if (t.shape[1] != spec.channels || (!own && !(spec.max_size > 0 && other_ok(t.shape[2]) && other_ok(t.shape[3])))) {
      const std::string others =
          spec.max_size > 0 ? " (or another size: sides multiples of the patch " + std::to_string(spec.patch) +
                                  ", at most --max-image-size " + std::to_string(spec.max_size) + ")"
                            : "";
      vit::fail(ErrorCode::kInvalidArgument,
                path_ + ": array shape " + vit::shape_str(t.shape) + " does not match the model input " + want + others);
    }
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

// A file named explicitly (argument or list line): .npy by name or magic, else an image; a
// file that is neither fails in the image decoder, whose message says what it is.
std::unique_ptr<InputItem> item_for_file(const std::string& path) {
  if (ends_with_ci(path, ".npy") || sniff(path) == Sniff::kNpy) return std::make_unique<NpyItem>(path);
  return make_image_item(path);
}

// A directory, recursively: the files that are inputs by name or content, sorted by path so
// the output order does not depend on the file system.
void expand_directory(const std::string& dir, InputList& out, std::vector<std::string>* notes) {
  std::vector<std::pair<std::string, bool>> files;  // (path, is .npy)
  size_t skipped = 0;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  std::string list_error;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string fname = it->path().filename().string();
    if (!fname.empty() && fname[0] == '.') {  // hidden: skip it (and a hidden directory's tree)
      if (it->is_directory(ec)) it.disable_recursion_pending();
      ec.clear();
      continue;
    }
    std::error_code ec2;
    if (!it->is_regular_file(ec2)) continue;  // directories recurse; devices, sockets, broken links skipped
    const std::string p = it->path().string();
    if (ends_with_ci(p, ".npy")) {
      files.emplace_back(p, true);
    } else if (is_image_path(p)) {
      files.emplace_back(p, false);  // by name: a broken one is reported, not skipped
    } else if (Sniff k = sniff(p); k != Sniff::kUnknown) {
      files.emplace_back(p, k == Sniff::kNpy);
    } else if (looks_like_unsupported_image(p)) {
      ++skipped;  // other files (notes, JSON sidecars) are skipped silently
    }
  }
  if (ec) list_error = ec.message();
  std::sort(files.begin(), files.end());
  for (const auto& [f, npy] : files) {
    if (npy) {
      out.push_back(std::make_unique<NpyItem>(f));
    } else {
      out.push_back(make_image_item(f));
    }
  }
  if (!list_error.empty()) {
    out.push_back(std::make_unique<ErrorItem>(dir, ErrorCode::kIo, dir + ": cannot list directory: " + list_error));
  } else if (files.empty()) {
    out.push_back(std::make_unique<ErrorItem>(
        dir, ErrorCode::kInvalidArgument, dir + ": directory holds no .npy arrays or PNG/JPEG images"));
  }
  if (notes && skipped > 0)
    notes->push_back(dir + ": skipped " + std::to_string(skipped) +
                     " image file(s) in formats this build does not decode (only PNG and JPEG)");
}

void expand_one(const std::string& arg, InputList& out, std::vector<std::string>* notes) {
  std::error_code ec;
  if (fs::is_directory(arg, ec)) {
    expand_directory(arg, out, notes);
  } else {
    // Missing files are reported by the item's load(), with the reader's message.
    out.push_back(item_for_file(arg));
  }
}

void expand_list(const std::string& list, InputList& out, std::vector<std::string>* notes) {
  std::ifstream f(list);
  if (!f) {
    out.push_back(std::make_unique<ErrorItem>("@" + list, ErrorCode::kIo,
                                              "@" + list + ": cannot open list file: " + std::strerror(errno)));
    return;
  }
  std::string line;
  size_t used = 0;
  while (std::getline(f, line)) {
    // Trim surrounding white space (CRLF files, indented lists).
    size_t b = 0, e = line.size();
    while (b < e && std::isspace(static_cast<unsigned char>(line[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(line[e - 1]))) --e;
    if (b == e || line[b] == '#') continue;
    expand_one(line.substr(b, e - b), out, notes);
    ++used;
  }
  if (f.bad()) {
    out.push_back(std::make_unique<ErrorItem>("@" + list, ErrorCode::kIo, "@" + list + ": read error"));
  } else if (used == 0) {
    out.push_back(std::make_unique<ErrorItem>("@" + list, ErrorCode::kInvalidArgument,
                                              "@" + list + ": list file names no inputs"));
  }
}

}  // namespace

InputList expand_inputs(const std::vector<std::string>& args, std::vector<std::string>* notes) {
  InputList out;
  for (const std::string& arg : args) {
    if (arg.size() > 1 && arg[0] == '@') {
      expand_list(arg.substr(1), out, notes);
    } else {
      expand_one(arg, out, notes);
    }
  }
  return out;
}

}  // namespace vitcli
