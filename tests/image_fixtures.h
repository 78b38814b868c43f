// vit-infer tests: the image fixtures of tests/data/images (made by tools/make_image_fixtures.py):
// the manifest, the reference decoded pixels, and the preprocessing parameters of an entry.
// Shared by the CPU image tests and the GPU preprocessing tests.
#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

#include "image/decode.h"
#include "model/config.h"
#include "test_util.h"

namespace vit::test {

inline std::string img_path(const std::string& name) { return data_path("images/" + name); }

inline const nlohmann::json& manifest() {
  static const nlohmann::json m = [] {
    const auto bytes = read_file(img_path("manifest.json"));
    if (bytes.empty()) throw std::runtime_error("missing tests/data/images/manifest.json");
    return nlohmann::json::parse(bytes.begin(), bytes.end());
  }();
  return m;
}

// Pillow-decoded pixels of a fixture (the reference, so preprocessing tests do not depend on
// our decoder), or our decode where the fixture keeps only a hash (checked in test_image).
inline Image source_image(const std::string& file) {
  for (const auto& e : manifest()["decode"]) {
    if (e["file"] != file) continue;
    if (e.contains("ref")) {
      Image img;
      img.w = e["w"];
      img.h = e["h"];
      img.rgb = read_file(img_path(e["ref"]));
      if (img.rgb.size() != size_t(img.w) * img.h * 3) throw std::runtime_error("bad fixture " + file);
      return img;
    }
    return decode_image_file(img_path(file));
  }
  throw std::runtime_error("no decode entry for " + file);
}

// Manifest "hf_crop": HF CLIPImageProcessor / BitImageProcessor (Pillow backends).
inline PreprocessConfig hf_crop_config(const nlohmann::json& e);

inline PreprocessConfig config_from(const nlohmann::json& e) {
  PreprocessConfig c;
  for (int i = 0; i < 3; ++i) {
    c.mean[i] = e["mean"][i].get<float>();
    c.std[i] = e["std"][i].get<float>();
  }
  c.interpolation = e["interpolation"];
  return c;
}

inline PreprocessConfig hf_crop_config(const nlohmann::json& e) {
  PreprocessConfig c = config_from(e);
  c.resize = PreprocessConfig::Resize::kShortestEdgeCrop;
  c.shortest_edge = e["shortest_edge"];
  c.input_h = e["input_h"];
  c.input_w = e["input_w"];
  return c;
}

}  // namespace vit::test
