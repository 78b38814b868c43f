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
  int top_k = 5;
  int batch = 8;
  int threads = 0;
  std::string logits_out;
  std::string embeddings_out;
  std::vector<std::string> inputs;
};

int run_classify(const ClassifyOptions& o);
int run_info(const ModelOptions& o);

// "vit-infer: error: <msg>" on stderr.
void log_error(const std::string& msg);
void log_info(const std::string& msg);

}  // namespace vitcli
