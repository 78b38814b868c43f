// vit-infer tests: reading the golden fixtures (see golden_cases.h).
#include "golden_cases.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "io/npy.h"
#include "io/npz.h"
#include "test_util.h"

namespace vit::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string golden_root(const std::string& set) { return data_path(set); }

json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  return json::parse(f);
}

std::string num(double v) {
  std::ostringstream s;
  s.precision(std::numeric_limits<double>::max_digits10);
  s << v;
  return s.str();
}

// case.json "overrides" -> ConfigOverrides and the equivalent vit-infer flags.
void parse_overrides(const json& j, const std::string& what, GoldenCase& c) {
  for (const auto& [key, val] : j.items()) {
    if (key == "image_size") {
      c.overrides.image_size = val.get<int>();
      c.cli_overrides.insert(c.cli_overrides.end(), {"--image-size", std::to_string(val.get<int>())});
    } else if (key == "heads") {
      c.overrides.heads = val.get<int>();
      c.cli_overrides.insert(c.cli_overrides.end(), {"--heads", std::to_string(val.get<int>())});
    } else if (key == "ln_eps") {
      c.overrides.ln_eps = val.get<float>();
      c.cli_overrides.insert(c.cli_overrides.end(), {"--eps", num(val.get<double>())});
    } else if (key == "architecture") {
      c.overrides.architecture = val.get<std::string>();
      c.cli_overrides.insert(c.cli_overrides.end(), {"--arch", val.get<std::string>()});
    } else if (key == "pool") {
      const std::string p = val.get<std::string>();
      if (p != "token" && p != "avg") throw std::runtime_error(what + ": bad pool " + p);
      c.overrides.pool = p == "avg" ? GlobalPool::kAvg : GlobalPool::kToken;
      c.cli_overrides.insert(c.cli_overrides.end(), {"--pool", p});
    } else {
      throw std::runtime_error(what + ": unknown override '" + key + "'");
    }
  }
}

}  // namespace

std::vector<std::string> list_golden_cases(const std::string& set) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(golden_root(set), ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory() && fs::exists(it->path() / "case.json")) out.push_back(it->path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

GoldenCase load_golden_case(const std::string& name, const std::string& set) {
  GoldenCase c;
  c.name = name;
  c.dir = golden_root(set) + "/" + name;
  const json meta = read_json(c.dir + "/case.json");
  c.model_path = c.dir + "/" + meta.at("model").get<std::string>();
  c.framework = meta.value("framework", std::string("?"));
  parse_overrides(meta.value("overrides", json::object()), name, c);
  c.input = read_npy(c.dir + "/input.npy");
  c.embeddings = read_npy(c.dir + "/embeddings.npy");
  c.has_logits = fs::exists(c.dir + "/logits.npy");
  if (c.has_logits) c.logits = read_npy(c.dir + "/logits.npy");
  {
    std::map<std::string, Tensor> acts = read_npz(c.dir + "/activations.npz");
    auto it = acts.find("final");
    if (it == acts.end()) throw std::runtime_error(name + ": activations.npz has no 'final' member");
    c.final_tokens = std::move(it->second);
    if (c.final_tokens.shape.size() != 3 || c.final_tokens.shape[0] != c.input.shape[0])
      throw std::runtime_error(name + ": activations.npz 'final' is not [B, T, D]");
  }
  if (c.input.shape.size() != 4) throw std::runtime_error(name + ": input.npy is not [B, C, H, W]");
  if (c.embeddings.shape.size() != 2 || c.embeddings.shape[0] != c.input.shape[0])
    throw std::runtime_error(name + ": embeddings.npy is not [B, D]");
  if (c.has_logits && (c.logits.shape.size() != 2 || c.logits.shape[0] != c.input.shape[0]))
    throw std::runtime_error(name + ": logits.npy is not [B, C]");
  return c;
}

int argmax_row(const float* m, int cols, int r) {
  const float* row = m + static_cast<size_t>(r) * cols;
  return static_cast<int>(std::max_element(row, row + cols) - row);
}

void expect_top1(const std::string& case_name, const char* whose, const float* ours, const float* ref, int C, int b,
                 float slack) {
  const int mine = argmax_row(ours, C, b), theirs = argmax_row(ref, C, b);
  if (mine == theirs) return;
  const float best = ref[static_cast<size_t>(b) * C + theirs], got = ref[static_cast<size_t>(b) * C + mine];
  EXPECT_GE(got, best - slack) << case_name << ": top-1 for image " << b << " is class " << mine << ", " << whose
                               << " says " << theirs << " (their logits " << got << " vs " << best
                               << ": further apart than the precision's slack " << slack << ")";
}

float top1_slack(const float* ref, size_t n, float tol) { return 2.0f * tol * max_abs(ref, n); }

std::vector<float> top2_gaps(const float* m, int rows, int cols) {
  std::vector<float> gaps(rows, std::numeric_limits<float>::infinity());
  for (int r = 0; r < rows; ++r) {
    const int best = argmax_row(m, cols, r);
    float second = -std::numeric_limits<float>::infinity();
    for (int k = 0; k < cols; ++k)
      if (k != best) second = std::max(second, m[static_cast<size_t>(r) * cols + k]);
    gaps[r] = m[static_cast<size_t>(r) * cols + best] - second;
  }
  return gaps;
}

}  // namespace vit::test
