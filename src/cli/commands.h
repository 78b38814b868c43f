// vit-infer CLI: the options of each subcommand and their entry points. Model and session
// go through the public C API (vit.hpp) so the program exercises the shipped library.
// Exit status: 0 success, 1 a failure (model load, a bad input, a run), 2 bad usage.
#pragma once

#include <string>
#include <vector>

#include "vit/vit.hpp"

namespace vitcli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Options shared by every subcommand that loads a model.
struct ModelOptions {
  std::string model;
  std::string arch;
  int image_size = 0;
  int heads = 0;
  float eps = 0.0f;
  std::string pool;  // "" | "token" | "avg"
  std::string labels;
  bool json = false;

  vit_load_params load_params() const;  // pointers valid while *this lives
};

struct ClassifyOptions {
  ModelOptions m;
  std::string device = "cpu";
  std::string precision = "fp32";
  std::string gemm = "auto";
  bool reference = false;  // --reference: the fp32 CPU reference engine (= --gemm reference)
  int top_k = 5;
  int batch = 8;
  int threads = 0;
  std::string logits_out;
  std::string embeddings_out;
  std::string features_out;
  std::string int8_calibration;  // --int8-calibration: the file (default: next to the model)
  int max_image_size = 0;    // > 0: .npy arrays at other sizes (multiples of the patch, sides <= this) run at theirs
  int tome = 0;              // > 0: token merging (ToMe), tokens merged per block
  int decode_threads = 0;    // decode + preprocess workers; 0 = hardware threads
  bool no_progress = false;  // the stderr progress bar (drawn only when stderr is a tty)
  std::vector<std::string> inputs;
};

// `vit-infer calibrate`: the int8 calibration file of a model (src/cli/calibrate.cpp).
struct CalibrateOptions {
  ModelOptions m;
  std::vector<std::string> images;  // files, directories, @lists
  std::string out;                  // default: int8_calibration.json next to the model
  int limit = 0;                    // the first N inputs only (0: all)
  int batch = 8;
  int threads = 0;
  bool no_progress = false;
};

int run_classify(const ClassifyOptions& o);
int run_calibrate(const CalibrateOptions& o);
int run_info(const ModelOptions& o);
// `vit-infer bench ARGS...`: exec the vit-bench harness with ARGS (see src/cli/bench.cpp).
int run_bench(const std::vector<std::string>& args);

// When --model is absent: the bundled demo model, from $VIT_INFER_MODEL, else
// <exe dir>/../models/demo (a build tree inside the source tree), else the installed
// <datadir>/vit-infer/models/demo. Sets m.model and returns true, or logs an error naming
// every place looked at and returns false. A given --model is left alone.
bool resolve_default_model(ModelOptions& m);
// A data file shipped with the program (e.g. "imagenet1k_labels.txt"): <exe dir>/../data/NAME,
// else <datadir>/vit-infer/NAME. Empty when neither exists.
std::string find_data_file(const std::string& name);

// "vit-infer: error: <msg>" on stderr.
// The run precisions (core/precision.h): the names --precision accepts, and a name's C value.
std::vector<std::string> precision_choices();
vit_precision precision_value(const std::string& name);

void log_error(const std::string& msg);
void log_info(const std::string& msg);

}  // namespace vitcli
