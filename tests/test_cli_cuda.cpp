// vit-infer CLI tests: `vit-infer classify --device cuda` against `--device cpu` and against the
// frameworks' numbers on every golden fixture (golden_cases.h), in fp32, fp16 and bf16: the
// issue's "classify --device cuda gives the same top-1 as the CPU path on every golden fixture,
// in every precision", checked through the program itself (argument parsing, .npy input, the C
// API, device softmax / top-k, JSON Lines, --logits-out / --embeddings-out). Built twice: with
// the real program (skips without a CUDA device) and with vit-infer-emu (the same sources linked
// with the CPU emulator of the CUDA engine; ctest "emu.Golden/CliCuda*"), so it runs in every build:
// there one run per precision (emulated_runs.h: the `golden` set's family rotation).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "core/tensor.h"
#include "emulated_runs.h"
#include "golden_cases.h"
#include "io/npy.h"
#include "test_util.h"
#include "tolerances.h"

namespace vit::test {
namespace {

using nlohmann::json;

struct Classified {
  std::vector<int> top1;      // per row, from the JSON Lines
  std::vector<double> prob1;  // its probability
  Tensor values;              // --logits-out [B, C] or --embeddings-out [B, D]
};

bool no_cuda_device(const Proc& p) {
  return p.rc != 0 && (p.err.find("no CUDA device") != std::string::npos ||
                       p.err.find("without CUDA") != std::string::npos);
}

// Runs classify on the case's input.npy; `device_args` = {"--device", "cpu"} or cuda + precision.
// Returns false (and records why) when the program failed.
::testing::AssertionResult classify(const GoldenCase& gc, const std::vector<std::string>& device_args,
                                    Classified& out, bool* skipped = nullptr) {
  const std::string dir = temp_dir();
  const std::string values = dir + "/values.npy";
  std::vector<std::string> args = {"classify", "--model", gc.model_path, "--json", "-k", "1", "--no-progress"};
  args.insert(args.end(), gc.cli_overrides.begin(), gc.cli_overrides.end());
  args.insert(args.end(), device_args.begin(), device_args.end());
  args.insert(args.end(), {gc.has_logits ? "--logits-out" : "--embeddings-out", values, gc.dir + "/input.npy"});
  const Proc p = run_cli(args, 300.0);
  if (skipped) *skipped = no_cuda_device(p);
  if (p.rc != 0) return ::testing::AssertionFailure() << "vit-infer " << device_args.back() << ": " << p.describe();
  out = Classified{};
  for (const std::string& line : lines(p.out)) {
    const json j = json::parse(line);
    if (j.contains("error")) return ::testing::AssertionFailure() << "row error: " << line;
    if (!gc.has_logits) continue;  // no classifier: one embedding-norm line per row
    if (j.at("index").get<int>() != static_cast<int>(out.top1.size()))
      return ::testing::AssertionFailure() << "rows out of order: " << line;
    out.top1.push_back(j.at("topk").at(0).at("index").get<int>());
    out.prob1.push_back(j.at("topk").at(0).at("prob").get<double>());
  }
  out.values = read_npy(values);
  return ::testing::AssertionSuccess();
}

#ifdef VIT_CLI_CUDA_EMULATED
constexpr bool kEmulated = true;
#else
constexpr bool kEmulated = false;
#endif

class CliCuda : public ::testing::TestWithParam<GoldenRun> {};

TEST_P(CliCuda, SameTop1AsCpuEveryPrecision) {
  const GoldenCase gc = load_golden_case(GetParam().name);
  SCOPED_TRACE(gc.name + " (" + gc.framework + ")");
  const int batch = gc.batch();

  Classified cpu;
  ASSERT_TRUE(classify(gc, {"--device", "cpu"}, cpu));
  const Tensor& ref = gc.has_logits ? gc.logits : gc.embeddings;
  EXPECT_TRUE(close_rel(cpu.values.data, ref.data, tol_golden_rel(DType::F32))) << "cpu vs " << gc.framework;
  if (gc.has_logits) {
    ASSERT_EQ(cpu.top1.size(), static_cast<size_t>(batch));
    for (int b = 0; b < batch; ++b)
      EXPECT_EQ(cpu.top1[b], argmax_row(gc.logits.ptr(), static_cast<int>(gc.logits.shape[1]), b));
  }

  const float logit_scale = gc.has_logits ? max_abs(gc.logits.ptr(), static_cast<size_t>(gc.logits.numel())) : 0.0f;
  for (Precision p : GetParam().precisions) {
    const char* prec = precision_name(p);
    const DType dt = storage_type(p);
    SCOPED_TRACE(prec);
    Classified gpu;
    bool skipped = false;
    const auto r = classify(gc, {"--precision", prec, "--device", "cuda"}, gpu, &skipped);
    if (skipped) GTEST_SKIP() << "no CUDA device";
    ASSERT_TRUE(r);
    EXPECT_TRUE(close_rel(gpu.values.data, ref.data, tol_golden_rel(dt))) << "cuda vs " << gc.framework;
    if (!gc.has_logits) continue;
    ASSERT_EQ(gpu.top1.size(), static_cast<size_t>(batch));
    for (int b = 0; b < batch; ++b) {
      EXPECT_EQ(gpu.top1[b], cpu.top1[b]) << "row " << b;
      // Logits within e = tol x max|logit| move a softmax probability p by at most 2 p e <= 2 e.
      EXPECT_NEAR(gpu.prob1[b], cpu.prob1[b], 2.0 * tol_golden_rel(dt) * logit_scale + 1e-6) << "row " << b;
    }
  }
}

std::string run_test_name(const ::testing::TestParamInfo<GoldenRun>& info) { return info.param.test_name(); }

INSTANTIATE_TEST_SUITE_P(Golden, CliCuda, ::testing::ValuesIn(golden_runs(kGoldenSet, kEmulated)), run_test_name);

TEST(CliCudaData, CasesPresent) { EXPECT_GE(list_golden_cases().size(), 9u); }

}  // namespace
}  // namespace vit::test
