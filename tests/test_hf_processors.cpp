// vit-infer tests: transformers' image processors field by field (tests/data/hf_processors, made
// by tools/make_hf_processor_fixtures.py with the PIL backend of the transformers version its
// case.json records). Each case's saved preprocessor_config.json is parsed as the loader parses
// it, its source file decoded by our decoder (transparency kept as Image::alpha) and run through
// preprocess_image: every value must equal transformers' pixel_values bit for bit. Then every
// value the parser does not know is an error naming the field and the value.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "image/decode.h"
#include "image/preprocess.h"
#include "model/config_sources.h"
#include "test_util.h"

namespace vit {
namespace {

using nlohmann::json;

std::string fixture(const std::string& name) { return test::data_path("hf_processors/" + name); }

json read_json(const std::string& path) {
  const auto b = test::read_file(path);
  if (b.empty()) throw std::runtime_error("missing fixture " + path);
  return json::parse(b.begin(), b.end());
}

PreprocessConfig parse(const json& j, std::vector<std::string>* warnings = nullptr) {
  std::vector<std::string> w;
  PreprocessConfig pp = detail::hf_default_preprocess(224, 224);
  detail::apply_hf_preprocessor(j, "preprocessor_config.json", &pp, warnings ? warnings : &w);
  return pp;
}

TEST(HFProcessors, EveryCaseBitExactWithThePilBackend) {
  const json meta = read_json(fixture("case.json"));
  ASSERT_TRUE(meta["versions"].contains("transformers"));
  int n = 0;
  for (const json& c : meta["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name + " (" + c["processor"].get<std::string>() + ", " + c["fields"].dump() + ")");
    const PreprocessConfig pp = parse(read_json(fixture(c["config"])));
    const int H = c["shape"][1], W = c["shape"][2];
    ASSERT_EQ(pp.input_h, H);
    ASSERT_EQ(pp.input_w, W);
    const auto ref_bytes = test::read_file(fixture(c["f32"]));
    const size_t count = size_t(3) * H * W;
    ASSERT_EQ(ref_bytes.size(), count * 4);
    std::vector<float> ref(count);
    std::memcpy(ref.data(), ref_bytes.data(), ref_bytes.size());

    const Image img = decode_image_file(test::data_path(c["source"].get<std::string>().substr(std::strlen("tests/data/"))));
    std::vector<float> out(count, std::numeric_limits<float>::quiet_NaN());  // poisoned
    preprocess_image(img, pp, out.data());
    size_t same = 0, first_bad = count;
    for (size_t i = 0; i < count; ++i) {
      const bool eq = std::memcmp(&out[i], &ref[i], 4) == 0;
      same += eq;
      if (!eq && first_bad == count) first_bad = i;
    }
    EXPECT_EQ(same, count) << "first difference at " << first_bad << ": "
                           << (first_bad < count ? out[first_bad] : 0.f) << " vs "
                           << (first_bad < count ? ref[first_bad] : 0.f);
    float lo = ref[0], hi = ref[0];
    for (float v : ref) lo = std::min(lo, v), hi = std::max(hi, v);
    EXPECT_GT(hi - lo, 0.1f);  // not a blank image
    ++n;
  }
  EXPECT_GE(n, 25);
}

// The transparent sources have alpha (or a tRNS key) that the processors with do_convert_rgb
// composite; clip_no_convert's JPEG and the processors without it leave the RGB as convert("RGB").
TEST(HFProcessors, TransparencyIsKeptForCompositing) {
  for (const char* f : {"rgba_45x31.png", "la_45x31.png", "pal_trns_45x31.png", "gray_trns_45x31.png",
                        "rgb_trns_45x31.png"}) {
    const Image img = decode_image_file(fixture(f));
    ASSERT_EQ(img.alpha.size(), size_t(img.w) * img.h) << f;
    size_t seen = 0;
    for (uint8_t a : img.alpha) seen += a < 255;
    EXPECT_GT(seen, 0u) << f;  // each source has (partly) transparent pixels
    Image flat = img;
    composite_on_white(&flat);
    EXPECT_TRUE(flat.alpha.empty());
    for (size_t i = 0; i < img.alpha.size(); ++i) {
      if (img.alpha[i] == 0) ASSERT_EQ(flat.rgb[3 * i], 255) << f;
      if (img.alpha[i] == 255) ASSERT_EQ(flat.rgb[3 * i], img.rgb[3 * i]) << f;
    }
  }
  EXPECT_TRUE(decode_image_file(test::data_path("images/photo_300x200.jpg")).alpha.empty());
}

TEST(HFProcessors, ClassDefaultsFillWhatTheFileLeavesOut) {
  // DeiTImageProcessor: 256 then a 224 crop, bicubic, mean = std = 0.5; no convert_rgb.
  PreprocessConfig pp = parse(json{{"image_processor_type", "DeiTImageProcessor"}});
  EXPECT_EQ(pp.resize, PreprocessConfig::Resize::kDirect);
  EXPECT_EQ(pp.resize_h, 256);
  EXPECT_EQ(pp.input_h, 224);
  EXPECT_EQ(pp.interpolation, "bicubic");
  EXPECT_FALSE(pp.alpha_on_white);
  // BitImageProcessor (the Fast / Pil names are the same class): shortest 224, crop 224, CLIP mean.
  pp = parse(json{{"image_processor_type", "BitImageProcessorFast"}});
  EXPECT_EQ(pp.resize, PreprocessConfig::Resize::kShortestEdgeCrop);
  EXPECT_EQ(pp.shortest_edge, 224);
  EXPECT_FLOAT_EQ(pp.mean[0], 0.48145466f);
  EXPECT_TRUE(pp.alpha_on_white);
  // A null field is the class's (transformers' _set_attributes).
  pp = parse(json{{"image_processor_type", "SiglipImageProcessorPil"}, {"resample", nullptr}, {"size", nullptr}});
  EXPECT_EQ(pp.interpolation, "bicubic");
  EXPECT_EQ(pp.input_h, 224);
  // The legacy feature_extractor_type names the class too.
  pp = parse(json{{"feature_extractor_type", "ViTFeatureExtractor"}, {"size", 384}});
  EXPECT_EQ(pp.input_h, 384);
  EXPECT_EQ(pp.interpolation, "bilinear");
  // Keys that are not read are said.
  std::vector<std::string> w;
  parse(json{{"image_processor_type", "ViTImageProcessor"}, {"do_something", true}}, &w);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("do_something"), std::string::npos);
}

void expect_error(const json& j, ErrorCode code, const std::string& needle) {
  try {
    parse(j);
    ADD_FAILURE() << "no error for " << j.dump();
  } catch (const Error& e) {
    EXPECT_EQ(int(e.code()), int(code)) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what() << " (want '" << needle << "')";
  }
}

TEST(HFProcessors, UnknownValuesAreErrorsNamingFieldAndValue) {
  const json vit{{"image_processor_type", "ViTImageProcessor"}};
  auto with = [&](const char* k, json v) {
    json j = vit;
    j[k] = std::move(v);
    return j;
  };
  expect_error(with("resample", 6), ErrorCode::kUnsupported, "resample 6");
  expect_error(with("resample", "bicubic"), ErrorCode::kUnsupported, "resample \"bicubic\"");
  expect_error(with("size", json{{"longest_edge", 224}}), ErrorCode::kUnsupported, "longest_edge");
  expect_error(with("size", json{{"max_height", 224}, {"max_width", 224}}), ErrorCode::kUnsupported, "max_height");
  expect_error(with("size", json{{"shortest_edge", 224}}), ErrorCode::kUnsupported, "its own size");
  expect_error(with("do_resize", false), ErrorCode::kUnsupported, "do_resize=false");
  expect_error(with("do_pad", true), ErrorCode::kUnsupported, "do_pad");
  expect_error(with("image_processor_type", "ConvNextImageProcessor"), ErrorCode::kUnsupported,
               "'ConvNextImageProcessor'");
  expect_error(with("image_processor_type", "Siglip2ImageProcessor"), ErrorCode::kUnsupported, "NaFlex");
  expect_error(with("size", "big"), ErrorCode::kFormat, "size");
  expect_error(with("rescale_factor", -1.0), ErrorCode::kFormat, "rescale_factor");
  json crop = vit;
  crop["do_center_crop"] = true;
  crop["crop_size"] = json{{"shortest_edge", 10}};
  expect_error(crop, ErrorCode::kFormat, "crop_size");
}

// timm / open_clip: an interpolation or crop / resize mode we do not run is an error, not bicubic.
TEST(HFProcessors, TimmAndOpenClipUnknownModesAreErrors) {
  auto timm = [](json pc) {
    return json{{"architecture", "vit_base_patch16_224"}, {"pretrained_cfg", std::move(pc)}};
  };
  for (const char* in : {"bicubic", "bilinear", "nearest", "box", "hamming", "lanczos"}) {
    const detail::ConfigHints h = detail::parse_config_json(timm(json{{"interpolation", in}}), "config.json");
    EXPECT_EQ(h.preprocess->interpolation, in);
  }
  for (const auto& [pc, needle] : std::vector<std::pair<json, std::string>>{
           {json{{"interpolation", "random"}}, "'random'"},
           {json{{"crop_mode", "border"}}, "crop_mode 'border'"}}) {
    try {
      detail::parse_config_json(timm(pc), "config.json");
      ADD_FAILURE() << pc.dump();
    } catch (const Error& e) {
      EXPECT_EQ(int(e.code()), int(ErrorCode::kUnsupported));
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  const json oc{{"model_cfg", json{{"vision_cfg", json::object()}}},
                {"preprocess_cfg", json{{"resize_mode", "longest"}}}};
  EXPECT_THROW(detail::parse_open_clip_config(oc, "open_clip_config.json"), Error);
}

// Another output size keeps the resize's share of the crop (a run at another size).
TEST(HFProcessors, AtOutputSizeScalesTheResize) {
  PreprocessConfig pp = parse(json{{"image_processor_type", "DeiTImageProcessor"}});
  PreprocessConfig at = pp.at_output_size(448, 448);
  EXPECT_EQ(at.resize_h, 512);
  EXPECT_EQ(at.input_h, 448);
  pp = parse(json{{"image_processor_type", "BitImageProcessor"}, {"size", json{{"shortest_edge", 256}}}});
  at = pp.at_output_size(448, 448);
  EXPECT_EQ(at.shortest_edge, 512);
  EXPECT_EQ(pp.at_output_size(224, 224).shortest_edge, 256);
}

}  // namespace
}  // namespace vit
