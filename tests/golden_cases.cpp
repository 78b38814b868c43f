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
#include "model/model.h"
#include "test_util.h"
#include "tolerances.h"

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

DynamicCase load_dynamic_case(const std::string& name) {
  DynamicCase c;
  c.name = name;
  const std::string dir = golden_root(kDynamicSet) + "/" + name;
  const json meta = read_json(dir + "/case.json");
  c.model_path = dir + "/model";
  c.framework = meta.value("framework", std::string("?"));
  c.model_h = meta.at("model_size").at(0).get<int>();
  c.model_w = meta.at("model_size").at(1).get<int>();
  for (const json& r : meta.at("runs")) {
    DynamicRun run;
    run.name = r.at("dir").get<std::string>();
    run.h = r.at("height").get<int>();
    run.w = r.at("width").get<int>();
    run.tokens = r.at("tokens").get<int>();
    const std::string rd = dir + "/runs/" + run.name;
    run.input = read_npy(rd + "/input.npy");
    run.embeddings = read_npy(rd + "/embeddings.npy");
    run.features = read_npy(rd + "/features.npy");
    if (fs::exists(rd + "/logits.npy")) run.logits = read_npy(rd + "/logits.npy");
    if (run.input.shape != std::vector<int64_t>{run.input.shape[0], 3, run.h, run.w} ||
        run.features.shape.size() != 3 || run.features.shape[1] != run.tokens)
      throw std::runtime_error(name + "/" + run.name + ": input / features shapes disagree with case.json");
    c.runs.push_back(std::move(run));
  }
  if (c.runs.empty()) throw std::runtime_error(name + ": case.json lists no runs");
  return c;
}

namespace {

struct DynamicResult {
  std::vector<float> logits, emb, feat;
};

DynamicResult run_dynamic(Engine& e, const ViTConfig& cfg, const DynamicRun& r) {
  const int B = static_cast<int>(r.input.shape[0]);
  DynamicResult out;
  out.logits.assign(static_cast<size_t>(B) * std::max(cfg.num_classes, 1), NAN);  // poisoned
  out.emb.assign(static_cast<size_t>(B) * cfg.embed_dim(), NAN);
  out.feat.assign(static_cast<size_t>(B) * r.tokens * cfg.hidden, NAN);
  RunOutputs o;
  o.logits = r.logits.empty() ? nullptr : out.logits.data();
  o.embeddings = out.emb.data();
  o.features = out.feat.data();
  e.run_at(r.input.ptr(), B, r.h, r.w, o);
  if (r.logits.empty()) out.logits.clear();
  return out;
}

}  // namespace

void check_dynamic_case(const std::string& name, const std::vector<DType>& precisions,
                        const std::function<std::unique_ptr<Engine>(std::shared_ptr<const Model>, DType)>& make,
                        const std::function<float(DType)>& tol) {
  const DynamicCase dc = load_dynamic_case(name);
  SCOPED_TRACE(dc.name + " (" + dc.framework + ")");
  std::shared_ptr<const Model> model = load_model(dc.model_path);
  const ViTConfig& cfg = model->cfg;
  ASSERT_EQ(cfg.image_h, dc.model_h);
  ASSERT_EQ(cfg.image_w, dc.model_w);
  for (DType dt : precisions) {
    SCOPED_TRACE(dtype_name(dt));
    std::unique_ptr<Engine> e = make(model, dt);
    std::vector<DynamicResult> got;
    for (const DynamicRun& r : dc.runs) {
      SCOPED_TRACE("run " + r.name);
      got.push_back(run_dynamic(*e, cfg, r));
      const DynamicResult& g = got.back();
      EXPECT_TRUE(close_rel(g.emb, r.embeddings.data, tol(dt))) << "embeddings vs " << dc.framework;
      EXPECT_TRUE(close_rel(g.feat, r.features.data, tol(dt))) << "features vs " << dc.framework;
      if (r.logits.empty()) continue;
      EXPECT_TRUE(close_rel(g.logits, r.logits.data, tol(dt))) << "logits vs " << dc.framework;
      const float slack = top1_slack(r.logits.ptr(), r.logits.data.size(), tol(dt));
      for (int b = 0; b < static_cast<int>(r.input.shape[0]); ++b)
        expect_top1(name, dc.framework.c_str(), g.logits.data(), r.logits.ptr(), cfg.num_classes, b, slack);
    }
    // The first size again, after the others: its cached graph gives the same bits.
    const DynamicResult again = run_dynamic(*e, cfg, dc.runs.front());
    EXPECT_EQ(again.emb, got.front().emb) << "run " << dc.runs.front().name << " repeated";
    EXPECT_EQ(again.feat, got.front().feat) << "run " << dc.runs.front().name << " repeated";
  }
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
