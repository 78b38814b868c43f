// vit-infer CLI: `attention`. Decodes one image, prepares it exactly as classify does (the
// model's resize/crop plan, then normalisation), keeps the resized+cropped RGB8 image the
// model saw [H, W, 3] for drawing, runs it with attention_layers [depth, 1, T, T] requested,
// and renders the class-token maps over the [H/P, W/P] patch grid. Models that pool by
// averaging (global_pool avg) still have a class token and its attention row, so they work
// too; their maps show what the class token attends to, which the classifier does not read.
#include "cli/attention.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "cli/inputs.h"
#include "core/error.h"
#include "image/attention_map.h"
#include "image/decode.h"
#include "image/encode.h"
#include "image/preprocess.h"

namespace vitcli {

namespace {

namespace fs = std::filesystem;

// The 8-bit picture behind a preprocessed input [3, H, W]: each value's level, (x * std + mean) /
// rescale rounded (the normalisation is a per-channel affine map of the level, so this recovers
// the level exactly; the padding of a centre crop is level 0 too).
vit::Image picture_of(const std::vector<float>& input, int h, int w, const vit_preprocess_info& pp) {
  vit::Image img;
  img.w = w;
  img.h = h;
  const size_t hw = static_cast<size_t>(w) * h;
  img.rgb.resize(3 * hw);
  for (int c = 0; c < 3; ++c) {
    for (size_t i = 0; i < hw; ++i) {
      const double level = (static_cast<double>(input[c * hw + i]) * pp.std[c] + pp.mean[c]) / pp.rescale;
      img.rgb[3 * i + c] = static_cast<uint8_t>(std::clamp(std::lround(level), 0L, 255L));
    }
  }
  return img;
}

nlohmann::json grid_json(const std::vector<float>& m, int gh, int gw) {
  nlohmann::json rows = nlohmann::json::array();
  for (int y = 0; y < gh; ++y) {
    rows.push_back(std::vector<float>(m.begin() + static_cast<size_t>(y) * gw, m.begin() + static_cast<size_t>(y + 1) * gw));
  }
  return rows;
}

}  // namespace

void add_attention_options(CLI::App* cmd, AttentionOptions& o) {
  cmd->add_option("-i,--image", o.image, "image file (PNG or JPEG)")->required();
  cmd->add_option("-o,--out", o.out, "output PNG: the image the model saw, then the map overlays side by side");
  cmd->add_option("--mode", o.mode,
                  "last: the class token's attention in the last block; rollout: attention rollout "
                  "(Abnar & Zuidema 2020) through all blocks; both")
      ->check(CLI::IsMember({"last", "rollout", "both"}))->capture_default_str();
  cmd->add_option("--device", o.device, "cpu | cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--precision", o.precision, "fp32 | fp16 | bf16 | int8 (cpu: fp32 | bf16 | int8; cuda: fp32 | fp16 | bf16)")
      ->check(CLI::IsMember(precision_choices()))->capture_default_str();
  cmd->add_flag("--reference", o.reference, "cpu: the fp32 reference engine instead of the fast one");
  cmd->add_option("-t,--threads", o.threads, "CPU threads (0 = all)")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--alpha", o.alpha, "opacity of the heat map over the image")->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  cmd->add_option("--min-height", o.min_height, "scale the picture up (integer factor) to at least this many rows")
      ->check(CLI::Range(1, 4096))->capture_default_str();
}

int run_attention(const AttentionOptions& o) {
  if (o.out.empty() && !o.m.json) {
    log_error("attention: give --out FILE.png, --json, or both");
    return kExitUsage;
  }
  ModelOptions mo = o.m;
  if (!resolve_default_model(mo)) return kExitFailure;  // no --model: the bundled demo model
  vit_load_params lp = mo.load_params();
  std::optional<vitpp::Model> model;
  try {
    model.emplace(mo.model, lp);
  } catch (const vitpp::Error& e) {
    log_error(e.what());
    return kExitFailure;
  }
  for (const auto& w : model->warnings()) log_info("warning: " + w);
  const vit_model_info& mi = model->info();
  if (mi.in_chans != 3) {
    log_error("attention: the model takes " + std::to_string(mi.in_chans) + " input channels; images decode to RGB (3)");
    return kExitFailure;
  }
  const int gh = mi.image_height / mi.patch_size, gw = mi.image_width / mi.patch_size;
  if (mi.num_tokens != 1 + gh * gw) {
    log_error("attention: the model has " + std::to_string(mi.num_tokens) + " tokens for a " + std::to_string(gh) +
              "x" + std::to_string(gw) + " patch grid; maps need exactly one class token plus the patches");
    return kExitFailure;
  }
  if (mi.pool == VIT_POOL_AVG) {
    log_info("note: the model pools by averaging the patch tokens; the maps show the class token's attention, "
             "which its classifier does not read");
  }

  // Decode, then the model's own resize+crop plan: `crop` [H, W, 3] u8 is exactly what the
  // model sees before normalisation (preprocess_image runs the same plan and table).
  vit::Image crop;
  std::vector<float> input;  // [1, 3, H, W] fp32
  try {
    // A .npy array is a valid classify input but has no picture to draw on. (Other files go
    // to the decoder, which recognises formats by their bytes and names the problem.)
    std::string ext = fs::path(o.image).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (ext == ".npy")
      vit::fail(vit::ErrorCode::kInvalidArgument,
                o.image + ": attention needs an image file (PNG/JPEG) to draw on, not a preprocessed .npy array");
    const vit::Image img = decode_for_model(model->get(), o.image);  // kIo / kFormat / kUnsupported with the path
    input.resize(static_cast<size_t>(3) * mi.image_height * mi.image_width);
    preprocess_for_model(model->get(), img, input.data());
    crop = picture_of(input, mi.image_height, mi.image_width, model->preprocess());
  } catch (const std::exception& e) {  // vit::Error (the file), vitpp::Error (the library)
    log_error(e.what());
    return kExitFailure;
  }

  vitpp::AttentionOutputs r;
  try {
    vit_session_params sp = vit_session_default_params();
    sp.device = o.device == "cuda" ? VIT_DEVICE_CUDA : VIT_DEVICE_CPU;
    sp.precision = precision_value(o.precision);
    if (o.reference) sp.gemm = VIT_GEMM_REFERENCE;
    sp.max_batch = 1;
    sp.num_threads = o.threads;
    vitpp::Session session(*model, sp);
    r = session.run_attention(input.data(), 1);
  } catch (const vitpp::Error& e) {
    log_error(std::string("inference failed: ") + e.what());
    return kExitFailure;
  }

  const vit::AttentionStack stack{r.attention_layers.data(), r.depth, r.tokens,
                                  static_cast<int64_t>(r.tokens) * r.tokens};
  const std::vector<float> last = vit::last_layer_cls_map(stack);  // [gh * gw]
  const std::vector<float> roll = vit::rollout_cls_map(stack);     // [gh * gw]

  // Top-1 class (softmax in double, max subtracted).
  int top = -1;
  double top_p = 0.0;
  if (mi.num_classes > 0) {
    const float* lg = r.logits.data();
    top = static_cast<int>(std::max_element(lg, lg + mi.num_classes) - lg);
    double s = 0.0;
    for (int c = 0; c < mi.num_classes; ++c) s += std::exp(static_cast<double>(lg[c]) - lg[top]);
    top_p = 1.0 / s;
  }
  const std::string label = top >= 0 ? model->label(top) : "";

  if (!o.out.empty()) {
    try {
      const int factor = std::max(1, (o.min_height + crop.h - 1) / crop.h);
      const vit::Image shown = vit::scale_nearest(crop, factor);
      std::vector<vit::Image> panels{shown};
      if (o.mode != "rollout") panels.push_back(vit::attention_panel(shown, last.data(), gh, gw, o.alpha));
      if (o.mode != "last") panels.push_back(vit::attention_panel(shown, roll.data(), gh, gw, o.alpha));
      const vit::Image fig = vit::hstack(panels, std::max(2, factor), 255);
      vit::write_png(o.out, fig);
      log_info("wrote " + o.out + " (" + std::to_string(fig.w) + "x" + std::to_string(fig.h) + ": image" +
               (o.mode != "rollout" ? " | last block" : "") + (o.mode != "last" ? " | rollout" : "") + ")");
    } catch (const vit::Error& e) {
      log_error(e.what());
      return kExitFailure;
    }
  }
  if (top >= 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4f", top_p);
    log_info("top-1: " + std::to_string(top) + " " + (label.empty() ? "-" : label) + " (p " + buf + ")");
  }

  if (o.m.json) {
    nlohmann::json j = {{"image", o.image}, {"model", mo.model}, {"grid", {gh, gw}}, {"depth", r.depth},
                        {"tokens", r.tokens}};
    if (top >= 0) {
      j["top1"] = {{"index", top}, {"prob", top_p}, {"label", label.empty() ? nlohmann::json(nullptr) : nlohmann::json(label)}};
    } else {
      j["top1"] = nullptr;
    }
    // Raw maps, not normalised: last_layer rows are probabilities of the class token over the
    // patches (they sum to 1 minus its attention to itself); rollout likewise for the rollout.
    if (o.mode != "rollout") j["last_layer"] = grid_json(last, gh, gw);
    if (o.mode != "last") j["rollout"] = grid_json(roll, gh, gw);
    if (!o.out.empty()) j["out"] = o.out;
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
  return kExitOk;
}

}  // namespace vitcli
