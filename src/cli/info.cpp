// vit-infer CLI: `info` prints the configuration the loader resolved (after overrides),
// the parameter count, the cost per image and any load warnings (also logged to stderr);
// --json prints one object.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"

namespace vitcli {

namespace {
const char* interpolation_name(vit_interpolation v) {
  switch (v) {
    case VIT_INTERP_BILINEAR: return "bilinear";
    case VIT_INTERP_NEAREST: return "nearest";
    case VIT_INTERP_BOX: return "box";
    case VIT_INTERP_HAMMING: return "hamming";
    case VIT_INTERP_LANCZOS: return "lanczos";
    default: return "bicubic";
  }
}
}  // namespace

int run_info(const ModelOptions& o_in) {
  ModelOptions o = o_in;
  if (!resolve_default_model(o)) return kExitFailure;
  vit_load_params lp = o.load_params();
  std::optional<vitpp::Model> model;
  vit_preprocess_info pp{};
  try {
    model.emplace(o.model, lp);
    pp = model->preprocess();
  } catch (const vitpp::Error& e) {
    log_error(e.what());
    return kExitFailure;
  }
  const vit_model_info& i = model->info();
  std::vector<std::string> warnings = model->warnings();
  // Also on stderr, as classify logs them: a NaN weight or a config conflict is seen even
  // when stdout goes to a file or a JSON consumer.
  for (const auto& w : warnings) log_info("warning: " + w);

  if (o.json) {
    nlohmann::json j;
    j["model"] = o.model;
    j["image_size"] = {i.image_height, i.image_width};
    j["patch_size"] = i.patch_size;
    j["in_chans"] = i.in_chans;
    j["hidden_size"] = i.hidden_size;
    j["embedding_size"] = model->embedding_size();
    j["depth"] = i.depth;
    j["num_heads"] = i.num_heads;
    j["head_dim"] = i.head_dim;
    j["mlp_size"] = i.mlp_size;
    j["num_classes"] = i.num_classes;
    j["num_tokens"] = i.num_tokens;
    j["layer_norm_eps"] = i.layer_norm_eps;
    j["pool"] = i.pool == VIT_POOL_AVG ? "avg" : "token";
    j["param_count"] = i.param_count;
    j["gflops_per_image"] = i.flops_per_image * 1e-9;
    j["has_labels"] = model->has_labels();
    j["preprocess"] = {
        {"resize", pp.resize == VIT_RESIZE_DIRECT                    ? "direct"
                   : pp.resize == VIT_RESIZE_SHORTEST_EDGE_THEN_CROP ? "shortest_edge_then_crop"
                   : pp.resize == VIT_RESIZE_OTHER                   ? "other (see description)"
                                                                     : "shortest_then_crop"},
        {"interpolation", interpolation_name(pp.interpolation)},
        {"crop_pct", pp.crop_pct},
        {"mean", {pp.mean[0], pp.mean[1], pp.mean[2]}},
        {"std", {pp.std[0], pp.std[1], pp.std[2]}},
        {"rescale", pp.rescale}};
    j["warnings"] = warnings;
    j["description"] = model->describe();
    std::cout << j.dump(2) << std::endl;
    return kExitOk;
  }

  std::cout << model->describe();
  if (!model->describe().empty() && model->describe().back() != '\n') std::cout << '\n';
  char buf[256];
  std::snprintf(buf, sizeof buf, "parameters: %lld (%.2fM)\n", static_cast<long long>(i.param_count),
                static_cast<double>(i.param_count) * 1e-6);
  std::cout << buf;
  std::snprintf(buf, sizeof buf, "GFLOPs per image: %.3f (at %dx%d, %d tokens)\n", i.flops_per_image * 1e-9,
                i.image_height, i.image_width, i.num_tokens);
  std::cout << buf;
  std::cout << "labels: " << (model->has_labels() ? "yes" : "none") << '\n';
  std::cout << "warnings: " << warnings.size() << '\n';
  for (const auto& w : warnings) std::cout << "  " << w << '\n';
  std::cout.flush();
  return kExitOk;
}

}  // namespace vitcli
