// vit-infer CLI: `attention` - where a ViT looks. Runs one image through a CPU session asking
// for every block's head-mean attention (vit_outputs.attention_layers), computes the class
// token's last-block map and its attention rollout over the patch grid (image/attention_map.h)
// and writes them as a PNG (image | last-block overlay | rollout overlay) and/or JSON.
#pragma once

#include <string>

#include "cli/commands.h"

namespace CLI {
class App;
}

namespace vitcli {

struct AttentionOptions {
  ModelOptions m;  // --model and the model overrides, as classify has them
  std::string image;
  std::string out;            // PNG path; optional when --json is given
  std::string mode = "both";  // last | rollout | both
  std::string device = "cpu";
  std::string precision = "fp32";  // fp32 | fp16 | bf16 | int8 (cpu: fp32 | bf16 | int8)
  bool reference = false;          // cpu: the fp32 reference engine
  int threads = 0;
  float alpha = 0.6f;  // weight of the colormap in the blend
  int min_height = 224;  // the picture is scaled up (nearest) to at least this many rows
};

// Adds the attention-specific options (not the model options) to `cmd`.
void add_attention_options(CLI::App* cmd, AttentionOptions& o);
int run_attention(const AttentionOptions& o);

}  // namespace vitcli
