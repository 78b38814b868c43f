// vit-infer tests: writes a random in-memory model (model_fixture.h) to disk the way a timm
// hub checkpoint looks: model.safetensors (timm tensor names, F32) + config.json
// (architecture, num_classes, model_args, pretrained_cfg, label_names). Shared by the C API
// and CLI tests. Tensor layouts: patch [D, C, P, P], cls [1, 1, D], pos [1, T, D].
// Also the CLI tests' common setup: such a checkpoint plus two good .npy inputs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "io/npy.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model_fixture.h"
#include "test_util.h"

namespace vit::test {

// Writes dir/model.safetensors and dir/config.json. with_labels: label_names "class_<i>".
inline void write_timm_checkpoint(const Model& m, const std::string& dir, bool with_labels = true) {
  const ViTConfig& c = m.cfg;
  const ViTWeights& w = m.w;
  std::vector<std::pair<std::string, Tensor>> owned;  // reshaped copies
  auto reshaped = [&](const std::string& name, const Tensor& t, std::vector<int64_t> shape) {
    Tensor r = t;
    r.shape = std::move(shape);
    owned.emplace_back(name, std::move(r));
  };
  const int64_t D = c.hidden;
  reshaped("patch_embed.proj.weight", w.patch_w, {D, c.in_chans, c.patch, c.patch});
  reshaped("cls_token", w.cls, {1, 1, D});
  reshaped("pos_embed", w.pos, {1, c.tokens(), D});

  std::vector<std::pair<std::string, const Tensor*>> list;
  for (auto& [n, t] : owned) list.emplace_back(n, &t);
  list.emplace_back("patch_embed.proj.bias", &w.patch_b);
  for (size_t i = 0; i < w.blocks.size(); ++i) {
    const BlockWeights& b = w.blocks[i];
    const std::string p = "blocks." + std::to_string(i) + ".";
    list.emplace_back(p + "norm1.weight", &b.ln1_w);
    list.emplace_back(p + "norm1.bias", &b.ln1_b);
    list.emplace_back(p + "attn.qkv.weight", &b.qkv_w);
    list.emplace_back(p + "attn.qkv.bias", &b.qkv_b);
    list.emplace_back(p + "attn.proj.weight", &b.proj_w);
    list.emplace_back(p + "attn.proj.bias", &b.proj_b);
    list.emplace_back(p + "norm2.weight", &b.ln2_w);
    list.emplace_back(p + "norm2.bias", &b.ln2_b);
    list.emplace_back(p + "mlp.fc1.weight", &b.fc1_w);
    list.emplace_back(p + "mlp.fc1.bias", &b.fc1_b);
    list.emplace_back(p + "mlp.fc2.weight", &b.fc2_w);
    list.emplace_back(p + "mlp.fc2.bias", &b.fc2_b);
  }
  if (c.final_norm) {
    list.emplace_back("norm.weight", &w.norm_w);
    list.emplace_back("norm.bias", &w.norm_b);
  }
  if (c.fc_norm) {
    list.emplace_back("fc_norm.weight", &w.fc_norm_w);
    list.emplace_back("fc_norm.bias", &w.fc_norm_b);
  }
  if (c.num_classes > 0) {
    list.emplace_back("head.weight", &w.head_w);
    list.emplace_back("head.bias", &w.head_b);
  }
  write_safetensors(dir + "/model.safetensors", list);

  nlohmann::json j;
  j["architecture"] = "vit_test_random";
  j["num_classes"] = c.num_classes;
  j["num_features"] = c.hidden;
  j["global_pool"] = c.pool == GlobalPool::kAvg ? "avg" : "token";
  j["model_args"] = {{"embed_dim", c.hidden},     {"depth", c.depth},
                     {"num_heads", c.heads},      {"patch_size", c.patch},
                     {"img_size", c.image_h},     {"num_classes", c.num_classes},
                     {"fc_norm", c.fc_norm}};
  j["pretrained_cfg"] = {{"input_size", {c.in_chans, c.image_h, c.image_w}},
                         {"interpolation", "bicubic"},
                         {"crop_pct", 0.9},
                         {"mean", {0.5, 0.5, 0.5}},
                         {"std", {0.5, 0.5, 0.5}}};
  if (with_labels && c.num_classes > 0) {
    std::vector<std::string> labels;
    for (int i = 0; i < c.num_classes; ++i) labels.push_back("class_" + std::to_string(i));
    j["label_names"] = labels;
  }
  std::ofstream(dir + "/config.json") << j.dump(2);
}

// A fresh directory holding a random model (model_fixture.h) written as above.
inline std::string write_random_checkpoint(const ViTConfig& cfg, uint64_t seed, bool with_labels = true) {
  const std::string dir = temp_dir();
  write_timm_checkpoint(*random_model(cfg, seed), dir, with_labels);
  return dir;
}

// A random checkpoint in <dir>/model (32x32 input, patch 8, width 32, 4 heads, depth 2,
// 10 classes, labelled) and good inputs: good1 = x1 [2, 3, 32, 32], good2 = x2 [3, 32, 32].
struct CliModelAndInputs {
  std::string dir, model, weights, good1, good2;
  std::vector<float> x1, x2;
};
inline CliModelAndInputs make_cli_model_and_inputs(uint64_t seed) {
  CliModelAndInputs f;
  f.dir = temp_dir();
  f.model = f.dir + "/model";
  std::filesystem::create_directories(f.model);
  write_timm_checkpoint(*random_model(small_config(32, 32, 8, 32, 4, 2, 10), seed), f.model);
  f.weights = f.model + "/model.safetensors";
  f.x1 = random_vec(2 * 3 * 32 * 32);
  f.x2 = random_vec(3 * 32 * 32);
  f.good1 = f.dir + "/good1.npy";
  f.good2 = f.dir + "/good2.npy";
  write_npy(f.good1, f.x1.data(), {2, 3, 32, 32});
  write_npy(f.good2, f.x2.data(), {3, 32, 32});
  return f;
}

}  // namespace vit::test
