// vit-infer CLI: `classify`. Inputs are expanded to items, each loaded to rows
// [n, C, H, W]; rows are packed into batches of up to --batch and run through one session.
// Results (and per-file errors) are printed in input order once their batch has run.
// Accumulated outputs: logits [rows, classes], embeddings [rows, hidden], fp32, input order.
// A model without a classifier (num_classes 0) prints each row's embedding L2 norm.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>

#include "cli/commands.h"
#include "cli/inputs.h"
#include "core/error.h"
#include "io/npy.h"

namespace vitcli {

namespace {

vit_session_params session_params(const ClassifyOptions& o) {
  vit_session_params p = vit_session_default_params();
  p.device = o.device == "cuda" ? VIT_DEVICE_CUDA : VIT_DEVICE_CPU;
  p.precision = o.precision == "fp16" ? VIT_PRECISION_FP16 : o.precision == "bf16" ? VIT_PRECISION_BF16 : VIT_PRECISION_FP32;
  p.gemm = o.gemm == "custom" ? VIT_GEMM_CUSTOM : o.gemm == "cublaslt" ? VIT_GEMM_CUBLASLT : VIT_GEMM_AUTO;
  p.max_batch = o.batch;
  p.num_threads = o.threads;
  return p;
}

// One line of output, in input order: a row's result or a file's error.
struct Event {
  bool is_error = false;
  std::string file;
  std::string message;   // is_error
  int64_t row_in_file = 0;
  int64_t global_row = 0;  // index into the accumulated outputs
};

class Printer {
 public:
  Printer(const vitpp::Model& model, bool json, int top_k)
      : model_(model), json_(json), k_(top_k), classes_(model.info().num_classes),
        hidden_(model.info().hidden_size) {}

  void header() {
    if (json_) return;
    if (classes_ > 0)
      std::printf("%s\t%s\t%s\t%s\t%s\t%s\n", "input", "row", "rank", "class", "prob", "label");
    else
      std::printf("%s\t%s\t%s\n", "input", "row", "embedding_norm");
  }

  void error(const Event& e) {
    if (!json_) return;  // the table goes to stdout; errors already went to stderr
    nlohmann::json j = {{"file", e.file}, {"error", e.message}};
    std::printf("%s\n", j.dump().c_str());
  }

  // logits: [classes] for the row, or null for a headless model; emb: [hidden] or null.
  void row(const Event& e, const float* logits, const float* emb) {
    if (classes_ == 0) {
      double ss = 0.0;
      for (int d = 0; d < hidden_; ++d) ss += static_cast<double>(emb[d]) * emb[d];
      double norm = std::sqrt(ss);
      if (json_) {
        nlohmann::json j = {{"file", e.file}, {"index", e.row_in_file}, {"embedding_norm", norm}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s\t%lld\t%.6g\n", e.file.c_str(), static_cast<long long>(e.row_in_file), norm);
      }
      return;
    }
    // Softmax in double: the max subtraction keeps exp() in range for any finite logits.
    std::vector<double> prob(static_cast<size_t>(classes_));
    double mx = -INFINITY;
    for (int c = 0; c < classes_; ++c) mx = std::max(mx, static_cast<double>(logits[c]));
    double sum = 0.0;
    for (int c = 0; c < classes_; ++c) sum += (prob[c] = std::exp(static_cast<double>(logits[c]) - mx));
    for (double& p : prob) p /= sum;
    std::vector<int> idx(static_cast<size_t>(classes_));
    std::iota(idx.begin(), idx.end(), 0);
    // Ties (and NaNs, which compare false) fall back to the class index for a stable order.
    std::partial_sort(idx.begin(), idx.begin() + k_, idx.end(), [&](int a, int b) {
      if (prob[a] > prob[b]) return true;
      if (prob[a] < prob[b]) return false;
      return a < b;
    });
    if (json_) {
      nlohmann::json top = nlohmann::json::array();
      for (int r = 0; r < k_; ++r) {
        nlohmann::json t = {{"index", idx[r]}, {"prob", prob[idx[r]]}};
        const char* l = vit_model_get_label(model_.get(), idx[r]);
        t["label"] = l ? nlohmann::json(l) : nlohmann::json(nullptr);
        top.push_back(std::move(t));
      }
      nlohmann::json j = {{"file", e.file}, {"index", e.row_in_file}, {"topk", std::move(top)}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      for (int r = 0; r < k_; ++r) {
        const char* l = vit_model_get_label(model_.get(), idx[r]);
        std::printf("%s\t%lld\t%d\t%d\t%.6f\t%s\n", e.file.c_str(), static_cast<long long>(e.row_in_file), r + 1,
                    idx[r], prob[idx[r]], l ? l : "-");
      }
    }
  }

 private:
  const vitpp::Model& model_;
  bool json_;
  int k_, classes_, hidden_;
};

}  // namespace

int run_classify(const ClassifyOptions& o) {
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  vit_load_params lp = o.m.load_params();
  std::optional<vitpp::Model> model;
  try {
    model.emplace(o.m.model, lp);
  } catch (const vitpp::Error& e) {
    log_error(e.what());
    return kExitFailure;
  }
  for (const auto& w : model->warnings()) log_info("warning: " + w);
  const vit_model_info& mi = model->info();
  const int C = mi.num_classes, D = mi.hidden_size;
  log_info("loaded " + o.m.model + ": " + std::to_string(mi.image_height) + "x" + std::to_string(mi.image_width) +
           ", patch " + std::to_string(mi.patch_size) + ", D " + std::to_string(D) + ", depth " +
           std::to_string(mi.depth) + ", heads " + std::to_string(mi.num_heads) + ", classes " + std::to_string(C));

  if (C == 0 && !o.logits_out.empty()) {
    log_error("--logits-out: the model has no classifier (num_classes 0); use --embeddings-out");
    return kExitUsage;
  }
  int k = std::min(o.top_k, C);
  if (C > 0 && k < o.top_k) log_info("--top-k " + std::to_string(o.top_k) + " clamped to " + std::to_string(k));
  if (C == 0) log_info("model has no classifier (num_classes 0): printing embedding L2 norms");

  std::optional<vitpp::Session> session;
  InputSpec spec;
  try {
    session.emplace(*model, session_params(o));
    spec.channels = mi.in_chans;
    spec.height = mi.image_height;
    spec.width = mi.image_width;
    spec.preprocess = model->preprocess();
  } catch (const vitpp::Error& e) {
    log_error(e.what());
    return kExitFailure;
  }

  const bool want_emb = !o.embeddings_out.empty() || C == 0;
  const size_t row_elems = static_cast<size_t>(spec.channels) * spec.height * spec.width;
  std::vector<float> batch_buf;  // [batch, C, H, W]
  std::vector<float> logits_all;  // [rows, classes]
  std::vector<float> emb_all;     // [rows, hidden]
  int in_batch = 0;
  int64_t rows_total = 0, rows_done = 0;
  std::deque<Event> pending;
  Printer printer(*model, o.m.json, k);
  printer.header();
  int failed_inputs = 0;

  auto flush = [&] {
    while (!pending.empty() && (pending.front().is_error || pending.front().global_row < rows_done)) {
      const Event& e = pending.front();
      if (e.is_error) {
        printer.error(e);
      } else {
        printer.row(e, C > 0 ? logits_all.data() + e.global_row * C : nullptr,
                    want_emb ? emb_all.data() + e.global_row * D : nullptr);
      }
      pending.pop_front();
    }
    std::fflush(stdout);
  };
  auto run_batch = [&] {
    if (in_batch == 0) return;
    vit_outputs out{};
    out.logits = C > 0 ? logits_all.data() + rows_done * C : nullptr;
    out.embeddings = want_emb ? emb_all.data() + rows_done * D : nullptr;
    session->run(batch_buf.data(), in_batch, out);
    rows_done += in_batch;
    in_batch = 0;
    flush();
  };

  InputList items = expand_inputs(o.inputs);
  try {
    for (const auto& item : items) {
      vit::Tensor t;
      try {
        t = item->load(spec);
      } catch (const std::exception& ex) {
        // vit::Error from the readers, or bad_alloc for an absurd array: this input only.
        log_error(ex.what());
        ++failed_inputs;
        Event e;
        e.is_error = true;
        e.file = item->name();
        e.message = ex.what();
        pending.push_back(std::move(e));
        flush();
        continue;
      }
      const int64_t n = t.shape[0];
      logits_all.resize(static_cast<size_t>((rows_total + n) * C));
      if (want_emb) emb_all.resize(static_cast<size_t>((rows_total + n) * D));
      for (int64_t r = 0; r < n; ++r) {
        if (batch_buf.empty()) batch_buf.resize(static_cast<size_t>(o.batch) * row_elems);
        std::memcpy(batch_buf.data() + static_cast<size_t>(in_batch) * row_elems, t.ptr() + r * row_elems,
                    row_elems * sizeof(float));
        Event e;
        e.file = item->name();
        e.row_in_file = r;
        e.global_row = rows_total++;
        pending.push_back(std::move(e));
        if (++in_batch == o.batch) run_batch();
      }
    }
    run_batch();
  } catch (const vitpp::Error& e) {
    log_error(std::string("inference failed: ") + e.what());
    // The rows still pending have no result: report their files so --json consumers see them.
    std::string last;
    for (const Event& p : pending) {
      if (p.is_error || p.file == last) continue;
      last = p.file;
      Event err;
      err.is_error = true;
      err.file = p.file;
      err.message = std::string("inference failed: ") + e.what();
      printer.error(err);
    }
    std::fflush(stdout);
    return kExitFailure;
  }

  try {
    if (!o.logits_out.empty()) {
      vit::write_npy(o.logits_out, logits_all.data(), {rows_done, C});
      log_info("wrote logits [" + std::to_string(rows_done) + ", " + std::to_string(C) + "] to " + o.logits_out);
    }
    if (!o.embeddings_out.empty()) {
      vit::write_npy(o.embeddings_out, emb_all.data(), {rows_done, D});
      log_info("wrote embeddings [" + std::to_string(rows_done) + ", " + std::to_string(D) + "] to " +
               o.embeddings_out);
    }
  } catch (const std::exception& e) {
    log_error(e.what());
    return kExitFailure;
  }

  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  char buf[160];
  std::snprintf(buf, sizeof buf, "%lld rows from %zu inputs in %.3f s (%.1f rows/s incl. load)",
                static_cast<long long>(rows_done), items.size() - failed_inputs, secs,
                secs > 0 ? rows_done / secs : 0.0);
  log_info(buf);
  if (failed_inputs > 0) {
    log_error(std::to_string(failed_inputs) + " of " + std::to_string(items.size()) + " inputs failed");
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace vitcli
