// vit-infer: the int8 run's calibration and annotation (int8.h).
#include "cpu/int8.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "cpu/ref_ops.h"

namespace vit::int8 {

using graph::Graph;
using graph::Node;
using graph::Op;
using json = nlohmann::json;

bool quantised_gemm(const Node& n) { return n.op == Op::kLinear && n.name.rfind("blocks.", 0) == 0; }

int weight_max_for(CpuIsa isa) { return static_cast<int>(isa) >= static_cast<int>(CpuIsa::kAvx512Bf16) ? 127 : 63; }

namespace {

uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::string file_name(const std::string& path) {
  const size_t s = path.find_last_of('/');
  return s == std::string::npos ? path : path.substr(s + 1);
}

[[noreturn]] void bad_file(const std::string& path, const std::string& what) {
  fail(ErrorCode::kFormat, "int8 calibration file " + path + ": " + what);
}

}  // namespace

std::string model_fingerprint(const Model& m) {
  const Graph g = graph::build_vit(m, DType::F32, "int8 calibration");
  uint64_t h = 14695981039346656037ull;
  for (const graph::TensorDesc& t : g.tensors) {
    if (t.kind != graph::TensorKind::kWeight || !t.host) continue;
    h = fnv1a(h, t.name.data(), t.name.size());
    h = fnv1a(h, t.shape.data(), t.shape.size() * sizeof(int64_t));
    const int64_t n = t.host->numel(), step = std::max<int64_t>(1, n / 4096);
    for (int64_t i = 0; i < n; i += step) h = fnv1a(h, t.host->ptr() + i, sizeof(float));
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "fnv1a64:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string default_calibration_path(const Model& m) {
  const size_t s = m.source_path.find_last_of('/');
  return (s == std::string::npos ? std::string(".") : m.source_path.substr(0, s)) + "/" + kCalibrationFile;
}

void save_calibration(const Calibration& c, const std::string& path) {
  json j;
  j["format"] = kFormatTag;
  j["version"] = kFormatVersion;
  j["model"] = {{"fingerprint", c.fingerprint}, {"file", c.model_file}};
  j["images"] = c.images;
  j["smooth_alpha"] = kSmoothAlpha;  // informative: the engine applies its own
  json& gm = j["gemms"];
  gm = json::object();
  for (const auto& [name, st] : c.gemms) gm[name] = {{"min", st.lo}, {"max", st.hi}};
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail(ErrorCode::kIo, "int8 calibration: cannot write " + path);
    f << j.dump() << "\n";
    if (!f.flush()) fail(ErrorCode::kIo, "int8 calibration: writing " + path + " failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(ErrorCode::kIo, "int8 calibration: cannot write " + path);
  }
}

Calibration load_calibration(const std::string& path, const Model& m) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::kIo, "int8 calibration file " + path + " cannot be opened");
  std::stringstream ss;
  ss << f.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) bad_file(path, "not JSON (corrupt or truncated)");
  if (!j.is_object() || !j.contains("format") || j["format"] != kFormatTag)
    bad_file(path, std::string("not a vit-infer int8 calibration (no \"format\": \"") + kFormatTag + "\")");
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int64_t>() != kFormatVersion)
    bad_file(path, "format version " + (j.contains("version") ? j["version"].dump() : std::string("(none)")) +
                       " is not " + std::to_string(kFormatVersion));
  Calibration c;
  const json& mj = j.value("model", json());
  if (!mj.is_object() || !mj.contains("fingerprint") || !mj["fingerprint"].is_string())
    bad_file(path, "no model fingerprint");
  c.fingerprint = mj["fingerprint"].get<std::string>();
  c.model_file = mj.contains("file") && mj["file"].is_string() ? mj["file"].get<std::string>() : "";
  const std::string mine = model_fingerprint(m);
  if (c.fingerprint != mine)
    fail(ErrorCode::kInvalidArgument, "int8 calibration file " + path + " was made for another model (" +
                                          (c.model_file.empty() ? std::string("?") : c.model_file) + ", " +
                                          c.fingerprint + "), not " + file_name(m.source_path) + " (" + mine +
                                          "): calibrate this model (vit-infer calibrate)");
  if (!j.contains("images") || !j["images"].is_number_integer() || j["images"].get<int64_t>() < 1)
    bad_file(path, "\"images\" must be a positive integer");
  c.images = j["images"].get<int64_t>();
  if (!j.contains("gemms") || !j["gemms"].is_object()) bad_file(path, "no \"gemms\" object");
  for (const auto& [name, v] : j["gemms"].items()) {
    if (!v.is_object() || !v.contains("min") || !v.contains("max") || !v["min"].is_array() || !v["max"].is_array())
      bad_file(path, "GEMM '" + name + "' needs \"min\" and \"max\" arrays");
    ChannelStats st;
    for (const char* key : {"min", "max"}) {
      std::vector<float>& dst = key[1] == 'i' ? st.lo : st.hi;
      for (const json& e : v[key]) {
        if (!e.is_number()) bad_file(path, "GEMM '" + name + "' " + key + ": a value is not a number");
        const double d = e.get<double>();
        if (!std::isfinite(d) || std::fabs(d) > 3.0e38) bad_file(path, "GEMM '" + name + "' " + key + ": a value is not finite");
        dst.push_back(static_cast<float>(d));
      }
    }
    if (st.lo.size() != st.hi.size() || st.lo.empty())
      bad_file(path, "GEMM '" + name + "': min and max have " + std::to_string(st.lo.size()) + " and " +
                         std::to_string(st.hi.size()) + " channels");
    for (size_t k = 0; k < st.lo.size(); ++k)
      if (st.lo[k] > st.hi[k]) bad_file(path, "GEMM '" + name + "' channel " + std::to_string(k) + ": min > max");
    c.gemms.emplace(name, std::move(st));
  }
  return c;
}

// --- the calibrator ----------------------------------------------------------------------------
struct Calibrator::Impl {
  std::shared_ptr<const Model> model;
  int threads = 1;
  cpu::CpuBackend backend;  // the runner points into its rows
  std::unique_ptr<cpu::GraphRunner> runner;
  cpu::Workspace ws;
  std::map<size_t, ChannelStats> stats;  // by node index
  int64_t images = 0;
};

Calibrator::Calibrator(std::shared_ptr<const Model> model, int threads) : impl_(std::make_unique<Impl>()) {
  if (!model) fail(ErrorCode::kInvalidArgument, "int8 calibration: model is null");
  impl_->model = std::move(model);
  impl_->threads = threads > 0 ? threads : 1;
  Graph g = graph::build_vit(*impl_->model, DType::F32, "int8 calibration");
  graph::fuse(g);
  impl_->backend = cpu::fast_backend(DType::F32);
  impl_->runner = std::make_unique<cpu::GraphRunner>(std::move(g), impl_->backend);
}

Calibrator::~Calibrator() = default;

const Model& Calibrator::model() const { return *impl_->model; }
int64_t Calibrator::images() const { return impl_->images; }

void Calibrator::add(const float* images, int batch) {
  if (!images) fail(ErrorCode::kInvalidArgument, "int8 calibration: images is null");
  if (batch < 1) fail(ErrorCode::kInvalidArgument, "int8 calibration: batch must be >= 1");
  const Graph& g = impl_->runner->graph();
  const ViTConfig& c = impl_->model->cfg;
  const int64_t image_size = int64_t{c.in_chans} * c.image_h * c.image_w;
  cpu::GraphRunner::Observer observe = [&](size_t i, const cpu::CpuCtx& ctx) {
    const Node& n = g.nodes[i];
    if (!quantised_gemm(n)) return;
    const int64_t K = g.t(n.in[0]).cols(), R = ctx.rows(n.in[0]);
    const float* x = ctx.p(n.in[0]);
    ChannelStats& st = impl_->stats[i];
    if (st.lo.empty()) {
      st.lo.assign(static_cast<size_t>(K), std::numeric_limits<float>::infinity());
      st.hi.assign(static_cast<size_t>(K), -std::numeric_limits<float>::infinity());
    }
    float* lo = st.lo.data();
    float* hi = st.hi.data();
    for (int64_t r = 0; r < R; ++r) {
      const float* xr = x + r * K;
      for (int64_t k = 0; k < K; ++k) {
        lo[k] = std::min(lo[k], xr[k]);
        hi[k] = std::max(hi[k], xr[k]);
      }
    }
  };
  ref::BlasSingleThreaded guard;
  constexpr int kChunk = 16;
  for (int b0 = 0; b0 < batch; b0 += kChunk) {
    const int nb = std::min(kChunk, batch - b0);
    impl_->runner->run(impl_->ws, nb, impl_->threads, {{g.images, images + b0 * image_size}}, RunOutputs{}, 0, nullptr,
                       nullptr, false, &observe);
    impl_->images += nb;
  }
}

Calibration Calibrator::result() const {
  if (impl_->images < 1) fail(ErrorCode::kInvalidArgument, "int8 calibration: no images were added");
  Calibration c;
  c.fingerprint = model_fingerprint(*impl_->model);
  c.model_file = file_name(impl_->model->source_path);
  c.images = impl_->images;
  const Graph& g = impl_->runner->graph();
  for (const auto& [i, st] : impl_->stats) {
    ChannelStats s = st;
    for (size_t k = 0; k < s.lo.size(); ++k)
      if (!std::isfinite(s.lo[k]) || !std::isfinite(s.hi[k]))
        fail(ErrorCode::kInvalidArgument, "int8 calibration: the input of " + g.nodes[i].name +
                                              " took a non-finite value (a NaN / Inf weight or image?)");
    c.gemms.emplace(g.nodes[i].name, std::move(s));
  }
  return c;
}

// --- the annotation ----------------------------------------------------------------------------
void annotate(Graph& g, const Calibration* cal, int weight_max) {
  // VIT_INT8_NO_SMOOTHING=1: plain per-tensor scales (no migration), for the accuracy comparison.
  const char* ns = std::getenv("VIT_INT8_NO_SMOOTHING");
  const bool smoothing = !(ns && *ns && std::strcmp(ns, "0") != 0);
  for (Node& n : g.nodes) {
    if (!quantised_gemm(n)) continue;
    auto q = std::make_shared<graph::QuantSpec>();
    q->weight_max = weight_max;
    const graph::TensorDesc& w = g.t(n.in[1]);
    const int64_t N = w.shape[0], K = w.cols();
    if (cal) {
      const auto it = cal->gemms.find(n.name);
      if (it == cal->gemms.end())
        fail(ErrorCode::kInvalidArgument, "int8 calibration has no statistics for GEMM '" + n.name +
                                              "' (made for another model or graph?)");
      const ChannelStats& st = it->second;
      if (static_cast<int64_t>(st.lo.size()) != K)
        fail(ErrorCode::kInvalidArgument, "int8 calibration of GEMM '" + n.name + "' has " +
                                              std::to_string(st.lo.size()) + " channels, the model " + std::to_string(K));
      // SmoothQuant: s_k = max|X_k|^a / max|W_k|^(1-a), bounded so that neither side degenerates.
      std::vector<float> wmax(static_cast<size_t>(K), 0.0f);
      const float* W = w.host->ptr();
      for (int64_t r = 0; r < N; ++r)
        for (int64_t k = 0; k < K; ++k) wmax[k] = std::max(wmax[k], std::fabs(W[r * K + k]));
      std::vector<float> xa(static_cast<size_t>(K));
      for (int64_t k = 0; k < K; ++k) xa[k] = std::max(std::fabs(st.lo[k]), std::fabs(st.hi[k]));
      std::vector<char> out(static_cast<size_t>(K), 0);
      if (smoothing) {  // the outlier channels: kept out of the int8 product (fp32 term)
        std::vector<float> sorted = xa;
        std::nth_element(sorted.begin(), sorted.begin() + K / 2, sorted.end());
        const float median = sorted[static_cast<size_t>(K / 2)];
        std::vector<int> cand;
        for (int64_t k = 0; k < K; ++k)
          if (xa[k] > kOutlierRatio * median) cand.push_back(static_cast<int>(k));
        std::sort(cand.begin(), cand.end(), [&](int a, int b) { return xa[a] > xa[b]; });
        cand.resize(std::min<size_t>(cand.size(), static_cast<size_t>(std::max<int64_t>(8, K / kMaxOutlierShare))));
        std::sort(cand.begin(), cand.end());
        for (int k : cand) out[static_cast<size_t>(k)] = 1;
        q->outliers = std::move(cand);
      }
      q->smooth.resize(static_cast<size_t>(K));
      float lo = 0.0f, hi = 0.0f;
      for (int64_t k = 0; k < K; ++k) {
        float s = 1.0f;
        if (smoothing && !out[k] && xa[k] > 0.0f && wmax[k] > 0.0f)
          s = std::pow(xa[k], kSmoothAlpha) / std::pow(wmax[k], 1.0f - kSmoothAlpha);
        s = std::min(std::max(s, 1e-4f), 1e4f);
        q->smooth[k] = s;
        if (out[k]) continue;
        lo = std::min(lo, st.lo[k] / s);
        hi = std::max(hi, st.hi[k] / s);
      }
      q->dynamic = false;
      q->scale = hi > lo ? (hi - lo) / 255.0f : 1.0f;
      q->zero_point = static_cast<int>(std::lround(std::min(255.0f, std::max(0.0f, -lo / q->scale))));
    }
    n.p<graph::LinearParams>().quant = std::move(q);
  }
}

}  // namespace vit::int8
