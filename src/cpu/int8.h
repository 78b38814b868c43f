// vit-infer: the int8 (W8A8) run of the fast CPU engine: which GEMMs are quantised, the
// calibration (per-channel activation ranges of their inputs over a set of images, saved as
// JSON next to the model), and the annotation that turns a calibration into each GEMM's
// quantisation (graph::QuantSpec).
//
// Scheme. The transformer blocks' GEMMs (qkv, proj, fc1, fc2; the SwiGLU fc1 too) run on oneDNN's
// int8 matmul: weights symmetric int8 per output channel, activations u8 with a zero point.
// SmoothQuant (Xiao et al., 2023) migrates activation outliers into the weights: per input channel
// k, s_k = max|X_k|^a / max|W_k|^(1-a) with a = kSmoothAlpha, x' = x / s_k, W' = W s_k. With a
// calibration the activation scale and zero point are one per tensor (static: the smoothed
// range over the calibration images); without one, per row (token) from the row's own range at
// run time (dynamic; no smoothing, as there are no statistics). Channels whose calibrated range
// exceeds kOutlierRatio x the median channel's (the few LayerNorm-gamma outliers trained ViTs grow,
// 20-50x the rest) are taken out of the int8 product altogether, at most max(8, K /
// kMaxOutlierShare) of them: their term x[:, k] W[:, k]^T is added in fp32 (LLM.int8()'s
// decomposition; a few columns, about 1 % of the GEMM's work at K 768), so that neither the activation scale nor the smoothed weights' rows
// are stretched by them. VIT_INT8_NO_SMOOTHING=1 turns both off (plain per-tensor scales: the
// accuracy table's naive row). Everything else (patch
// embedding, LayerNorm, softmax, GELU, the residual stream, the pooling head and the classifier)
// stays in float; attention runs as the bf16 run's where the CPU has bf16 dot products.
// On CPUs without VNNI (AVX2, AVX-512 without the bf16 / VNNI level) oneDNN's u8 x s8 products go
// through vpmaddubsw, whose pairwise int16 sums saturate (255 * 127 * 2 > 32767): the weights are
// then 7-bit (-63..63), which keeps every pair inside int16 (255 * 63 * 2 < 32767).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cpu/cpu_isa.h"
#include "graph/graph.h"
#include "model/model.h"

namespace vit::int8 {

constexpr float kSmoothAlpha = 0.5f;  // SmoothQuant's migration strength (the paper's default)
constexpr float kOutlierRatio = 6.0f;
constexpr int kMaxOutlierShare = 32;  // at most max(8, K / 32) channels
constexpr const char* kCalibrationFile = "int8_calibration.json";
constexpr const char* kFormatTag = "vit-infer int8 calibration";
constexpr int kFormatVersion = 1;

// Whether node n is a GEMM the int8 run quantises (a Linear inside a transformer block).
bool quantised_gemm(const graph::Node& n);

// The largest weight magnitude for the ISA oneDNN runs on: 127 with VNNI (the bf16 / AMX levels
// have it), else 63 (see above).
int weight_max_for(CpuIsa isa);

// Per input channel, the smallest and largest value a GEMM's input took over the images.
struct ChannelStats {
  std::vector<float> lo, hi;
};

struct Calibration {
  std::string fingerprint;  // model_fingerprint() of the model it was made for
  std::string model_file;   // the weights file's name (for messages)
  int64_t images = 0;
  std::map<std::string, ChannelStats> gemms;  // by graph node name, e.g. "blocks.3.mlp.fc1"
};

// A hash of the model's architecture and weights (every weight's name, shape and a strided
// sample of its values; FNV-1a 64), "fnv1a64:<16 hex digits>".
std::string model_fingerprint(const Model& m);
// <directory of the model's weights file>/int8_calibration.json
std::string default_calibration_path(const Model& m);

// Writes c as JSON (throws kIo when the file cannot be written).
void save_calibration(const Calibration& c, const std::string& path);
// Reads `path` and checks it against `m`: kIo when unreadable, kFormat for a file that is not a
// calibration (not JSON, another format or version, a missing or malformed field, a non-finite
// value, min > max), kInvalidArgument for a calibration of another model (fingerprint) or one
// whose GEMMs or channel counts are not this model's.
Calibration load_calibration(const std::string& path, const Model& m);

// Collects a Calibration: the fast fp32 graph of the model at its own size runs the images and
// the input of every quantised GEMM is observed (per-channel min / max).
class Calibrator {
 public:
  Calibrator(std::shared_ptr<const Model> model, int threads);
  ~Calibrator();
  Calibrator(const Calibrator&) = delete;
  Calibrator& operator=(const Calibrator&) = delete;
  // images [batch, C, H, W] fp32, normalised, at the model's size.
  void add(const float* images, int batch);
  int64_t images() const;
  // Throws kInvalidArgument when no image was added.
  Calibration result() const;
  const Model& model() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The int8 annotation of graph g (after fusion): every quantised GEMM gets its QuantSpec
// (LinearParams::quant), static from `cal` (checked against the graph: each GEMM's statistics
// present, K channels) or, with cal null, dynamic per token; weights in -weight_max..weight_max.
void annotate(graph::Graph& g, const Calibration* cal, int weight_max);

}  // namespace vit::int8
