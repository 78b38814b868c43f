// vit-infer CLI: helpers shared by the subcommands (logging to stderr, load parameters, and
// the files the program finds by itself: the bundled demo model and shipped data files,
// looked up next to the executable, then in the install prefix).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <system_error>
#include <vector>

#include "cli/commands.h"
#include "core/precision.h"

#ifndef VIT_INSTALL_DATADIR
#define VIT_INSTALL_DATADIR "/usr/local/share/vit-infer"
#endif

namespace vitcli {

namespace fs = std::filesystem;

namespace {

// Directory of the running executable (/proc/self/exe), or empty if it cannot be read.
fs::path exe_dir() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : p.parent_path();
}

// A model directory the loader can open without flags: weights plus config.json.
bool is_model_dir(const fs::path& d) {
  std::error_code ec;
  return fs::is_regular_file(d / "model.safetensors", ec) && fs::is_regular_file(d / "config.json", ec);
}

}  // namespace

vit_load_params ModelOptions::load_params() const {
  vit_load_params p = vit_load_default_params();
  p.architecture = arch.empty() ? nullptr : arch.c_str();
  p.image_size = image_size;
  p.num_heads = heads;
  p.layer_norm_eps = eps;
  p.pool = pool == "token" ? VIT_POOL_TOKEN : pool == "avg" ? VIT_POOL_AVG : VIT_POOL_DEFAULT;
  p.labels_file = labels.empty() ? nullptr : labels.c_str();
  return p;
}

bool resolve_default_model(ModelOptions& m) {
  if (!m.model.empty()) return true;
  // An explicit environment setting wins and is not second-guessed: a wrong one is an error,
  // not a silent fall-back to some other model.
  if (const char* env = std::getenv("VIT_INFER_MODEL"); env && *env) {
    m.model = env;
    log_info("no --model given: using $VIT_INFER_MODEL = " + m.model);
    return true;
  }
  std::vector<fs::path> candidates;
  if (fs::path d = exe_dir(); !d.empty()) candidates.push_back((d / ".." / "models" / "demo").lexically_normal());
  candidates.push_back(fs::path(VIT_INSTALL_DATADIR) / "models" / "demo");
  std::string looked;
  for (const fs::path& c : candidates) {
    if (is_model_dir(c)) {
      m.model = c.string();
      log_info("no --model given: using the bundled demo model " + m.model);
      return true;
    }
    looked += "\n  " + c.string() + " (no model.safetensors + config.json)";
  }
  log_error("no --model given and no default model found. Pass --model PATH or set VIT_INFER_MODEL; looked in:" +
            looked + "\n(the demo model is made by tools/train_demo.py into models/demo)");
  return false;
}

std::string find_data_file(const std::string& name) {
  std::vector<fs::path> candidates;
  if (fs::path d = exe_dir(); !d.empty()) candidates.push_back((d / ".." / "data" / name).lexically_normal());
  candidates.push_back(fs::path(VIT_INSTALL_DATADIR) / name);
  for (const fs::path& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return c.string();
  }
  return {};
}

std::vector<std::string> precision_choices() {
  std::vector<std::string> v;
  for (const vit::PrecisionInfo& p : vit::kPrecisions) v.emplace_back(p.name);
  return v;
}

vit_precision precision_value(const std::string& name) {
  const vit::PrecisionInfo* p = vit::find_precision(name);
  return p ? static_cast<vit_precision>(p->c_value) : VIT_PRECISION_FP32;  // CLI11 has checked the name (precision_choices)
}

void log_error(const std::string& msg) { std::cerr << "vit-infer: error: " << msg << std::endl; }
void log_info(const std::string& msg) { std::cerr << "vit-infer: " << msg << std::endl; }

}  // namespace vitcli
