// vit-infer CLI: `classify`, a pipeline. Inputs expand to items (files, directories, @lists);
// a pool of decode workers loads them ahead of the consumer (image decode + CPU preprocessing
// to [n, C, H, W] fp32 rows; with --device cuda images stay raw [h, w, 3] u8 and are
// preprocessed on the device through vit_session_run_images). The main thread takes items in
// input order, packs rows into batches of up to --batch, runs each batch while the workers
// decode the next ones, and prints results (and per-file errors) in input order.
// Optional accumulated outputs: logits [rows, classes], embeddings [rows, hidden], fp32.
// A model without a classifier (num_classes 0) prints each row's embedding L2 norm.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <thread>
#include <unordered_map>

#include "cli/commands.h"
#include "cli/inputs.h"
#include "cli/progress.h"
#include "core/error.h"
#include "io/npy.h"

namespace vitcli {

namespace {

using Clock = std::chrono::steady_clock;

vit_session_params session_params(const ClassifyOptions& o) {
  vit_session_params p = vit_session_default_params();
  p.device = o.device == "cuda" ? VIT_DEVICE_CUDA : VIT_DEVICE_CPU;
  p.precision = precision_value(o.precision);
  p.gemm = o.gemm == "custom" ? VIT_GEMM_CUSTOM : o.gemm == "cublaslt" ? VIT_GEMM_CUBLASLT : VIT_GEMM_AUTO;
  if (o.reference || o.gemm == "reference") p.gemm = VIT_GEMM_REFERENCE;
  p.max_batch = o.batch;
  p.num_threads = o.threads;
  p.max_image_size = o.max_image_size;
  // o outlives the session; "none": no calibration (dynamic per-token activation scales).
  if (!o.int8_calibration.empty()) p.int8_calibration = o.int8_calibration == "none" ? "" : o.int8_calibration.c_str();
  p.tome = o.tome;
  return p;
}

// ---- loading, ahead of the consumer ---------------------------------------------------------

// One item as a worker left it: rows, raw pixels, or the error that stopped it.
struct Loaded {
  std::string error;  // non-empty: the item failed
  bool raw = false;   // image holds the decoded pixels (device-side preprocessing)
  vit::Tensor rows;   // [n, C, H, W] fp32 when !raw
  vit::Image image;   // [h, w, 3] u8 when raw
  size_t bytes = 0;   // memory held, for the pool's budget
};

// Decode workers over a fixed, ordered item list. Workers claim items in input order, but
// no further than `window` items past the one the consumer is waiting for, and (beyond that
// one) not while the finished-but-untaken results hold more than `byte_budget`: memory stays
// bounded however fast decoding is. take(i) must be called for i = 0, 1, 2, ... in order.
class DecodePool {
 public:
  using LoadFn = std::function<Loaded(size_t)>;
  DecodePool(size_t count, int threads, size_t window, size_t byte_budget, LoadFn load)
      : count_(count), window_(std::max<size_t>(1, window)), budget_(byte_budget), load_(std::move(load)) {
    for (int t = 0; t < threads; ++t) workers_.emplace_back([this] { work(); });
  }
  ~DecodePool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (auto& t : workers_) t.join();
  }

  Loaded take(size_t i) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, [&] { return ready_.count(i) != 0; });
    Loaded r = std::move(ready_.at(i));
    ready_.erase(i);
    bytes_ -= r.bytes;
    consumed_ = i + 1;
    lk.unlock();
    cv_work_.notify_all();
    return r;
  }

 private:
  void work() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_work_.wait(lk, [&] {
        return stop_ || next_ >= count_ ||
               (next_ < consumed_ + window_ && (bytes_ <= budget_ || next_ == consumed_));
      });
      if (stop_ || next_ >= count_) return;
      const size_t i = next_++;
      lk.unlock();
      Loaded r = load_(i);  // never throws (load_ catches)
      lk.lock();
      bytes_ += r.bytes;
      ready_.emplace(i, std::move(r));
      cv_done_.notify_all();
    }
  }

  const size_t count_, window_, budget_;
  LoadFn load_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  size_t next_ = 0, consumed_ = 0, bytes_ = 0;
  bool stop_ = false;
  std::unordered_map<size_t, Loaded> ready_;
  std::vector<std::thread> workers_;  // last: started after every other member exists
};

// ---- output -------------------------------------------------------------------------------------

// One line of output, in input order: a row's result or a file's error.
struct Event {
  bool is_error = false;
  bool npy_row = false;  // rows of an array carry their index in the file
  std::string file;
  std::string message;   // is_error
  int64_t row_in_file = 0;
  int64_t global_row = 0;  // index over every row run so far
};

class Printer {
 public:
  Printer(const vitpp::Model& model, const std::vector<std::string>& fallback_labels, bool json, int top_k)
      : model_(model), fallback_(fallback_labels), json_(json), k_(top_k), classes_(model.info().num_classes),
        hidden_(model.embedding_size()) {}

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
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }

  // logits: [classes] for the row, or null for a headless model; emb: [hidden] or null.
  void row(const Event& e, const float* logits, const float* emb) {
    if (classes_ == 0) {
      double ss = 0.0;
      for (int d = 0; d < hidden_; ++d) ss += static_cast<double>(emb[d]) * emb[d];
      double norm = std::sqrt(ss);
      if (json_) {
        nlohmann::json j = {{"file", e.file}};
        if (e.npy_row) j["index"] = e.row_in_file;
        j["embedding_norm"] = norm;
        emit(j);
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
        const char* l = label(idx[r]);
        t["label"] = l ? nlohmann::json(l) : nlohmann::json(nullptr);
        top.push_back(std::move(t));
      }
      nlohmann::json j = {{"file", e.file}};
      if (e.npy_row) j["index"] = e.row_in_file;
      j["topk"] = std::move(top);
      emit(j);
    } else {
      for (int r = 0; r < k_; ++r) {
        const char* l = label(idx[r]);
        std::printf("%s\t%lld\t%d\t%d\t%.6f\t%s\n", e.file.c_str(), static_cast<long long>(e.row_in_file), r + 1,
                    idx[r], prob[idx[r]], l ? l : "-");
      }
    }
  }

 private:
  // The model's label, else the shipped fallback (ImageNet-1k names), else none.
  const char* label(int i) const {
    if (const char* l = vit_model_get_label(model_.get(), i)) return l;
    if (static_cast<size_t>(i) < fallback_.size()) return fallback_[static_cast<size_t>(i)].c_str();
    return nullptr;
  }
  // File names need not be UTF-8: invalid bytes become U+FFFD rather than a throw.
  static void emit(const nlohmann::json& j) {
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }

  const vitpp::Model& model_;
  const std::vector<std::string>& fallback_;
  bool json_;
  int k_, classes_, hidden_;
};

// ImageNet-1k class names for a 1000-class model that carries no labels (timm checkpoints
// often do not). Empty if the model has labels, another class count, or the file is missing.
std::vector<std::string> fallback_labels(const vitpp::Model& model) {
  std::vector<std::string> names;
  if (model.info().num_classes != 1000 || model.has_labels()) return names;
  const std::string path = find_data_file("imagenet1k_labels.txt");
  if (path.empty()) {
    log_info("the model has 1000 classes but no labels, and imagenet1k_labels.txt was not found: printing indices");
    return names;
  }
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    names.push_back(line);
  }
  if (names.size() != 1000) {
    log_info(path + " has " + std::to_string(names.size()) + " lines, not 1000: ignored");
    names.clear();
  } else {
    log_info("the model has no labels: using the ImageNet-1k class names from " + path);
  }
  return names;
}

}  // namespace

int run_classify(const ClassifyOptions& o_in) {
  ClassifyOptions o = o_in;
  auto t0 = Clock::now();
  if (!resolve_default_model(o.m)) return kExitFailure;
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
  const int C = mi.num_classes, D = model->embedding_size();  // D: the embeddings' width
  log_info("loaded " + o.m.model + ": " + std::to_string(mi.image_height) + "x" + std::to_string(mi.image_width) +
           ", patch " + std::to_string(mi.patch_size) + ", D " + std::to_string(D) + ", depth " +
           std::to_string(mi.depth) + ", heads " + std::to_string(mi.num_heads) + ", classes " + std::to_string(C));

  if (C == 0 && !o.logits_out.empty()) {
    log_error("--logits-out: the model has no classifier (num_classes 0); use --embeddings-out");
    return kExitUsage;
  }
  if (o.tome > 0 && !o.features_out.empty()) {
    log_error("--features-out: per-token features are not defined with --tome (merged blocks have no per-token "
              "grid); use --embeddings-out, or --tome 0");
    return kExitUsage;
  }
  int k = std::min(o.top_k, C);
  if (C > 0 && k < o.top_k) log_info("--top-k " + std::to_string(o.top_k) + " clamped to " + std::to_string(k));
  if (C == 0) log_info("model has no classifier (num_classes 0): printing embedding L2 norms");
  const std::vector<std::string> labels = fallback_labels(*model);

  std::optional<vitpp::Session> session;
  InputSpec spec;
  try {
    session.emplace(*model, session_params(o));
    spec.channels = mi.in_chans;
    spec.height = mi.image_height;
    spec.width = mi.image_width;
    spec.preprocess = model->preprocess();
    spec.model = model->get();
    spec.max_size = o.max_image_size;
    spec.patch = mi.patch_size;
  } catch (const vitpp::Error& e) {
    log_error(e.what());
    return kExitFailure;
  }

  std::vector<std::string> notes;
  const InputList items = expand_inputs(o.inputs, &notes);
  for (const std::string& n : notes) log_info(n);

  // With a CUDA session, images go to the library as raw RGB8 so that resizing and
  // normalisation run on the device; on the CPU the workers preprocess them in parallel.
  const bool raw_images = o.device == "cuda" && spec.channels == 3;
  int threads = o.decode_threads > 0 ? o.decode_threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::max(1, std::min<int>(threads, static_cast<int>(std::max<size_t>(1, items.size()))));
  const size_t window = static_cast<size_t>(2 * o.batch + 2 * threads);
  const size_t byte_budget = size_t{1} << 30;  // decoded-ahead data beyond the next item
  auto load = [&](size_t i) {
    Loaded r;
    const InputItem& it = *items[i];
    try {
      if (raw_images && it.is_image()) {
        r.image = it.decode(spec);
        r.raw = true;
        r.bytes = r.image.rgb.size();
      } else {
        r.rows = it.load(spec);
        r.bytes = r.rows.data.size() * sizeof(float);
      }
    } catch (const std::exception& e) {
      // vit::Error from the readers, or bad_alloc for an absurd array: this input only.
      r = Loaded{};
      r.error = e.what();
    } catch (...) {
      r = Loaded{};
      r.error = it.name() + ": unknown error while loading";
    }
    return r;
  };

  const bool want_emb = !o.embeddings_out.empty() || C == 0;
  const bool want_feat = !o.features_out.empty();
  const size_t feat_row = static_cast<size_t>(mi.num_tokens) * D;  // [tokens, hidden] per image
  int batch_h = spec.height, batch_w = spec.width;  // the size of the float rows in batch_buf
  size_t row_elems = static_cast<size_t>(spec.channels) * batch_h * batch_w;
  std::vector<float> batch_buf;          // [batch, C, H, W] fp32 (array rows / CPU-preprocessed images)
  std::vector<vit::Image> batch_images;  // raw images of the batch, when raw
  bool batch_raw = false;
  std::vector<float> batch_logits(static_cast<size_t>(o.batch) * C);  // [batch, classes]
  std::vector<float> batch_emb(want_emb ? static_cast<size_t>(o.batch) * D : 0);  // [batch, hidden]
  std::vector<float> batch_feat(want_feat ? static_cast<size_t>(o.batch) * feat_row : 0);  // [batch, T, D]
  std::vector<float> logits_all, emb_all, feat_all;  // [rows, classes], [rows, hidden], [rows, T, D]: for --*-out
  int in_batch = 0;
  int64_t rows_total = 0, rows_done = 0;
  std::deque<Event> pending;
  Printer printer(*model, labels, o.m.json, k);
  Progress progress(!o.no_progress && isatty(STDERR_FILENO) == 1, items.size());
  const bool stdout_tty = isatty(STDOUT_FILENO) == 1;
  size_t failed_inputs = 0, files_done = 0;

  if (stdout_tty) progress.clear();
  printer.header();

  int64_t batch_base = 0;  // global index of the last run batch's first row

  // Prints every event whose result exists: errors, and rows of the batch just run (events
  // are flushed after every run, so a printable row always lies in the batch buffers).
  auto flush = [&] {
    if (stdout_tty) progress.clear();
    while (!pending.empty() && (pending.front().is_error || pending.front().global_row < rows_done)) {
      const Event& e = pending.front();
      if (e.is_error) {
        printer.error(e);
      } else {
        const int64_t slot = e.global_row - batch_base;
        printer.row(e, C > 0 ? batch_logits.data() + slot * C : nullptr,
                    want_emb ? batch_emb.data() + slot * D : nullptr);
      }
      pending.pop_front();
    }
    std::fflush(stdout);
  };
  auto run_batch = [&] {
    if (in_batch == 0) return;
    vit_outputs out{};
    out.logits = C > 0 ? batch_logits.data() : nullptr;
    out.embeddings = want_emb ? batch_emb.data() : nullptr;
    out.features = want_feat ? batch_feat.data() : nullptr;
    if (batch_raw) {
      std::vector<vit_image> views(batch_images.size());
      for (size_t i = 0; i < views.size(); ++i)
        views[i] = vit_image{batch_images[i].rgb.data(), batch_images[i].w, batch_images[i].h};
      session->run_images(views.data(), in_batch, out);
      batch_images.clear();
    } else {
      session->run_at(batch_buf.data(), in_batch, batch_h, batch_w, out);
    }
    batch_base = rows_done;
    rows_done += in_batch;
    if (!o.logits_out.empty())
      logits_all.insert(logits_all.end(), batch_logits.begin(), batch_logits.begin() + static_cast<size_t>(in_batch) * C);
    if (!o.embeddings_out.empty())
      emb_all.insert(emb_all.end(), batch_emb.begin(), batch_emb.begin() + static_cast<size_t>(in_batch) * D);
    if (want_feat)
      feat_all.insert(feat_all.end(), batch_feat.begin(), batch_feat.begin() + static_cast<size_t>(in_batch) * feat_row);
    in_batch = 0;
    flush();
  };
  auto add_error = [&](const std::string& file, const std::string& message) {
    progress.clear();
    log_error(message);
    ++failed_inputs;
    Event e;
    e.is_error = true;
    e.file = file;
    e.message = message;
    pending.push_back(std::move(e));
    flush();
  };

  try {
    DecodePool pool(items.size(), threads, window, byte_budget, load);
    for (size_t i = 0; i < items.size(); ++i) {
      Loaded l = pool.take(i);
      const std::string& name = items[i]->name();
      if (!l.error.empty()) {
        add_error(name, l.error);
      } else if (l.raw) {
        // A batch is all raw images or all float rows: switch kinds by running what is there.
        if (in_batch > 0 && !batch_raw) run_batch();
        batch_raw = true;
        batch_images.push_back(std::move(l.image));
        Event e;
        e.file = name;
        e.global_row = rows_total++;
        pending.push_back(std::move(e));
        if (++in_batch == o.batch) run_batch();
      } else if (want_feat && (l.rows.shape[2] != spec.height || l.rows.shape[3] != spec.width)) {
        // --features-out is one [rows, tokens, hidden] array: another size has another token count.
        add_error(name, name + ": --features-out holds the model's " + std::to_string(mi.num_tokens) +
                            " tokens per row; this array is " + std::to_string(l.rows.shape[2]) + "x" +
                            std::to_string(l.rows.shape[3]) + " (run it without --features-out)");
      } else {
        if (in_batch > 0 && batch_raw) run_batch();
        batch_raw = false;
        // A batch holds rows of one size: another size runs what is there first.
        const int h = static_cast<int>(l.rows.shape[2]), w = static_cast<int>(l.rows.shape[3]);
        if (h != batch_h || w != batch_w) {
          run_batch();
          batch_h = h;
          batch_w = w;
          row_elems = static_cast<size_t>(spec.channels) * h * w;
          batch_buf.clear();
        }
        const int64_t n = l.rows.shape[0];
        for (int64_t r = 0; r < n; ++r) {
          if (batch_buf.size() < static_cast<size_t>(o.batch) * row_elems)
            batch_buf.resize(static_cast<size_t>(o.batch) * row_elems);
          std::memcpy(batch_buf.data() + static_cast<size_t>(in_batch) * row_elems, l.rows.ptr() + r * row_elems,
                      row_elems * sizeof(float));
          Event e;
          e.file = name;
          e.npy_row = !items[i]->is_image();
          e.row_in_file = r;
          e.global_row = rows_total++;
          pending.push_back(std::move(e));
          if (++in_batch == o.batch) run_batch();
        }
      }
      ++files_done;
      progress.update(files_done, rows_done);
    }
    run_batch();
    progress.update(files_done, rows_done, true);
    progress.clear();
  } catch (const vitpp::Error& e) {
    progress.clear();
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
    if (want_feat) {
      vit::write_npy(o.features_out, feat_all.data(), {rows_done, mi.num_tokens, D});
      log_info("wrote features [" + std::to_string(rows_done) + ", " + std::to_string(mi.num_tokens) + ", " +
               std::to_string(D) + "] to " + o.features_out);
    }
  } catch (const std::exception& e) {
    log_error(e.what());
    return kExitFailure;
  }

  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  char buf[200];
  std::snprintf(buf, sizeof buf, "%lld rows from %zu inputs in %.3f s (%.1f rows/s incl. load; %d decode threads)",
                static_cast<long long>(rows_done), items.size() - failed_inputs, secs,
                secs > 0 ? rows_done / secs : 0.0, threads);
  log_info(buf);
  if (failed_inputs > 0) {
    log_error(std::to_string(failed_inputs) + " of " + std::to_string(items.size()) + " inputs failed");
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace vitcli
