// vit-infer: replays fuzz/corpus/<target>/* and fuzz/regressions/<target>/* (inputs that once
// crashed a parser) through fuzz/harness.cpp, the code the libFuzzer targets run. Each input
// must either parse or be rejected with vit::Error; any other exception fails the test, and a
// crash or sanitizer report (in the VIT_SANITIZE build) kills it.
#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <filesystem>
#include <string>
#include <vector>

#include "harness.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace vit::fuzz {
// Names the parameter in test output / ctest listings instead of dumping its bytes.
void PrintTo(const Target& t, std::ostream* os) { *os << t.name; }
}  // namespace vit::fuzz

namespace {

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Runs every file; returns how many were run.
size_t replay(const vit::fuzz::Target& t, const std::vector<std::string>& files) {
  for (const std::string& f : files) {
    const std::vector<uint8_t> bytes = vit::test::read_file(f);
    try {
      t.run(bytes.data(), bytes.size());
    } catch (const std::exception& e) {
      ADD_FAILURE() << t.name << ": " << f << " threw a non-vit::Error exception: " << e.what();
    } catch (...) {
      ADD_FAILURE() << t.name << ": " << f << " threw a non-std::exception";
    }
  }
  return files.size();
}

class FuzzReplay : public ::testing::TestWithParam<vit::fuzz::Target> {};

TEST_P(FuzzReplay, CorpusParsesOrThrowsVitError) {
  const auto& t = GetParam();
  const fs::path dir = fs::path(VIT_SOURCE_DIR) / "fuzz" / "corpus" / t.name;
  const auto files = files_in(dir);
  // An empty or missing corpus would make this test pass vacuously.
  ASSERT_GE(files.size(), 3u) << "seed corpus missing: " << dir << " (run fuzz/make_seeds.py)";
  EXPECT_EQ(replay(t, files), files.size());
}

TEST_P(FuzzReplay, RegressionsParseOrThrowVitError) {
  const auto& t = GetParam();
  const auto files = files_in(fs::path(VIT_SOURCE_DIR) / "fuzz" / "regressions" / t.name);
  if (files.empty()) GTEST_SKIP() << "no recorded crashes for " << t.name;
  replay(t, files);
}

std::string target_name(const ::testing::TestParamInfo<vit::fuzz::Target>& i) { return i.param.name; }

INSTANTIATE_TEST_SUITE_P(Parsers, FuzzReplay, ::testing::ValuesIn(vit::fuzz::targets()), target_name);

}  // namespace
