// vit-infer tests: which golden fixtures the CPU emulator runs whole, in which precision (issue 24).
// On a GPU every fixture runs in every CUDA precision (and with every GEMM choice). On the emulator
// one model run costs seconds to minutes (x4 under ASan), so there the rule is:
//
//   ONE EMULATED WHOLE-MODEL RUN PER FAMILY AND PRECISION, NOT PER FIXTURE x PRECISION.
//
// Every fixture of tests/data/{golden, golden_families, golden_dynamic} belongs to exactly one family
// of the table in emulated_runs.cpp (test_golden's GoldenData.EveryFixtureInOneEmulatedFamily fails
// otherwise, naming the fixture). A family runs fp32, fp16 and bf16 once each, on its first fixtures
// in turn (a family of one fixture runs it three times). So a new fixture of a known family costs the
// emulator nothing: add its name to that family's list (after the first three). A new family costs
// three runs: add a row, its most distinctive fixtures first. What the other fixtures do differently
// on the CUDA engine is per-op work, which the op table (tests/op_cases.h, ctest emu.Ops/*) checks in
// every precision on awkward shapes; their loaders and graphs run in the CPU golden tests of every
// build. The same rows choose the CLI's emulated runs (emu.Golden/CliCuda: the `golden` set's) and the
// sanitizer build's (the rows marked `asan`).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "core/precision.h"

namespace vit::test {

// The precisions the CUDA engine runs (and the golden GPU tests check), in this order.
inline constexpr Precision kCudaPrecisions[] = {Precision::kFP32, Precision::kFP16, Precision::kBF16};

struct EmulatedFamily {
  const char* name;                // what the family's fixtures share on the CUDA engine
  const char* set;                 // the fixture set (golden_cases.h: kGoldenSet, kFamilySet, kDynamicSet)
  std::vector<std::string> cases;  // every fixture of the family in that set; the first three run
  bool asan;                       // also run in the sanitizer build (scripts/sanitize.sh)
};
const std::vector<EmulatedFamily>& emulated_families();

// One GPU golden test: fixture `name` of `set` in `precisions`.
struct GoldenRun {
  std::string set, name;
  std::vector<Precision> precisions;
  std::string family;  // emulated runs: the family it stands for
  // The gtest name: the fixture, plus "_<precision>" for a run of one precision (the emulator's).
  std::string test_name() const;
};

// The runs of `set`: on a GPU (emulated = false) every fixture in every precision; on the emulator
// one per family and precision (only the `asan` families in a sanitizer build).
std::vector<GoldenRun> golden_runs(const std::string& set, bool emulated);
// gtest prints a parameter with this (the ctest name's "# GetParam() = ..." comment).
inline void PrintTo(const GoldenRun& r, std::ostream* os) { *os << r.set << "/" << r.test_name(); }

// True in an AddressSanitizer build (scripts/sanitize.sh; -fsanitize=address).
bool sanitizer_build();

}  // namespace vit::test
