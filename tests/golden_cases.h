// vit-infer tests: the golden fixtures under tests/data/golden/<case>/ (made by
// tools/make_golden.py with timm / transformers' own code and savers), read once for every test
// that compares with the frameworks: the CPU engine (test_golden), the CUDA engine
// (test_gpu_golden) and `vit-infer classify` on either device (test_cli_cuda).
// Each case: case.json (model path relative to the case dir, config overrides), input.npy
// [B, 3, H, W] fp32 (already normalised), embeddings.npy [B, D], logits.npy [B, C] (absent
// for models without a classifier); the references are float64 forward passes.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "engine/engine.h"
#include "model/config.h"

namespace vit::test {

struct GoldenCase {
  std::string name;        // directory name, e.g. "timm_token"
  std::string dir;         // absolute path of the case directory
  std::string model_path;  // the file / directory to load
  std::string framework;   // "timm 1.0.31", ...
  ConfigOverrides overrides;
  std::vector<std::string> cli_overrides;  // the same overrides as vit-infer flags
  Tensor input;                            // [B, C, H, W] fp32
  Tensor embeddings;                       // [B, D] fp32 (framework, computed in fp64)
  Tensor logits;                           // [B, C] fp32, empty when !has_logits
  Tensor final_tokens;                     // [B, T, D] fp32: activations.npz "final", the framework's
                                           // final tokens (timm forward_features / HF last_hidden_state)
  bool has_logits = false;
  int batch() const { return static_cast<int>(input.shape.at(0)); }
};

// The fixture sets: tests/data/golden (tools/make_golden.py: the plain ViT in every layout, run
// by every backend) and tests/data/golden_families (tools/make_golden_families.py: the timm
// families of issue 12, run by the graph backends).
constexpr const char* kGoldenSet = "golden";
constexpr const char* kFamilySet = "golden_families";
// tests/data/golden_dynamic (tools/make_golden_dynamic.py): one checkpoint, runs at several sizes
// (timm dynamic_img_size, HF interpolate_pos_encoding), read by load_dynamic_case.
constexpr const char* kDynamicSet = "golden_dynamic";

// One run of a dynamic-size case: the framework's float64 outputs for input [B, 3, h, w].
struct DynamicRun {
  std::string name;  // runs/<name>, e.g. "48x40"
  int h = 0, w = 0, tokens = 0;
  Tensor input, logits, embeddings, features;  // logits empty without a classifier
};
struct DynamicCase {
  std::string name, model_path, framework;
  int model_h = 0, model_w = 0;  // the size the checkpoint was saved at
  std::vector<DynamicRun> runs;  // in the order a test runs them (sizes change run to run, one repeats)
};
DynamicCase load_dynamic_case(const std::string& name);

// Runs every run of dynamic case `name` in order through ONE engine per precision (make(model,
// precision)), at each run's size (Engine::run_at), and checks logits, embeddings and the final
// tokens against the framework within tol(precision), top-1 too; then re-runs the first run and
// expects bit-identical outputs (the size's cached graph). Gtest expectations.
void check_dynamic_case(const std::string& name, const std::vector<DType>& precisions,
                        const std::function<std::unique_ptr<Engine>(std::shared_ptr<const Model>, DType)>& make,
                        const std::function<float(DType)>& tol);

// Every subdirectory of tests/data/<set> holding a case.json, sorted (stable test names).
std::vector<std::string> list_golden_cases(const std::string& set = kGoldenSet);

// Reads one case. Unknown override keys throw rather than being dropped, so a fixture cannot
// quietly test less than it claims. Throws std::exception with the case name on any problem.
GoldenCase load_golden_case(const std::string& name, const std::string& set = kGoldenSet);

// Index of the largest value of row r of a [rows, cols] matrix.
int argmax_row(const float* m, int cols, int r);

// For each row: the gap between the largest and second-largest value (how far the row's top-1 is
// from a tie; precision tests compare top-1 only where this gap exceeds their error bound).
std::vector<float> top2_gaps(const float* m, int rows, int cols);

// Our top-1 for image b is theirs; or, where their two best logits are closer than `slack` (each
// logit may move by the precision's tolerance, so 2 x tol x max|ref|: a near-tie that precision
// cannot decide), one of their near-best classes: ref[ours] >= max(ref) - slack. With fp32's
// tolerance the slack is ~1e-4 of the scale, which is "the same class" for every fixture.
// A gtest expectation (fails the calling test); `whose` names the reference in the message.
void expect_top1(const std::string& case_name, const char* whose, const float* ours, const float* ref, int C, int b,
                 float slack);
// The slack above for logits `ref` at relative tolerance `tol`.
float top1_slack(const float* ref, size_t n, float tol);

}  // namespace vit::test
