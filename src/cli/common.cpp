// vit-infer CLI: helpers shared by the subcommands (logging to stderr, load parameters).
#include <iostream>

#include "cli/commands.h"

namespace vitcli {

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

void log_error(const std::string& msg) { std::cerr << "vit-infer: error: " << msg << std::endl; }
void log_info(const std::string& msg) { std::cerr << "vit-infer: " << msg << std::endl; }

}  // namespace vitcli
