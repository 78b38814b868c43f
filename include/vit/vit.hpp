// vit-infer: header-only C++17 RAII wrapper over the C API (include/vit/vit.h).
// Everything lives in namespace `vitpp`, never `vit`: the library's internal C++ code
// uses namespace vit (vit::Model, vit::Error, ...), and tests include both.
// Failures throw vitpp::Error carrying the vit_status_code and the library's message.
// Buffers are host fp32: images [B, C, H, W], logits [B, num_classes], embeddings [B, D].
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "vit/vit.h"

namespace vitpp {

class Error : public std::runtime_error {
 public:
  Error(vit_status_code code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  vit_status_code code() const noexcept { return code_; }

 private:
  vit_status_code code_;
};

namespace detail {
// Takes ownership of st; throws if it is an error.
inline void check(vit_status* st) {
  if (!st) return;
  vit_status_code code = vit_status_get_code(st);
  std::string msg = vit_status_get_message(st);
  vit_status_free(st);
  throw Error(code, msg);
}
struct ModelDeleter {
  void operator()(vit_model* m) const noexcept { vit_model_free(m); }
};
struct SessionDeleter {
  void operator()(vit_session* s) const noexcept { vit_session_free(s); }
};
}  // namespace detail

inline std::string version() { return vit_version(); }

class Model {
 public:
  explicit Model(const std::string& path, const vit_load_params& params = vit_load_default_params()) {
    vit_model* m = nullptr;
    detail::check(vit_model_load(path.c_str(), &params, &m));
    m_.reset(m);
    detail::check(vit_model_get_info(m_.get(), &info_));
  }

  const vit_model_info& info() const noexcept { return info_; }
  // Width of the embeddings output: hidden_size, or a CLIP projection's.
  int embedding_size() const noexcept { return vit_model_get_embedding_size(m_.get()); }
  // Tokens of a run at height x width (vit_model_get_num_tokens; -1 below the patch size).
  int num_tokens(int height, int width) const noexcept { return vit_model_get_num_tokens(m_.get(), height, width); }
  std::string describe() const { return vit_model_describe(m_.get()); }
  vit_preprocess_info preprocess() const {
    vit_preprocess_info p{};
    detail::check(vit_model_get_preprocess(m_.get(), &p));
    return p;
  }
  // Empty string when the model has no label for index i.
  std::string label(int i) const {
    const char* l = vit_model_get_label(m_.get(), i);
    return l ? l : "";
  }
  bool has_labels() const noexcept { return vit_model_get_label(m_.get(), 0) != nullptr; }
  std::vector<std::string> warnings() const {
    std::vector<std::string> w;
    int n = vit_model_get_warning_count(m_.get());
    for (int i = 0; i < n; ++i) w.emplace_back(vit_model_get_warning(m_.get(), i));
    return w;
  }
  // Floats in one input image: in_chans * image_height * image_width.
  size_t image_numel() const noexcept {
    return static_cast<size_t>(info_.in_chans) * info_.image_height * info_.image_width;
  }
  const vit_model* get() const noexcept { return m_.get(); }

 private:
  std::unique_ptr<vit_model, detail::ModelDeleter> m_;
  vit_model_info info_{};
};

// Results of Session::run(images, batch): row-major, one row per image.
struct Outputs {
  int batch = 0;
  std::vector<float> logits;      // [batch, num_classes]; empty when num_classes == 0
  std::vector<float> embeddings;  // [batch, embedding_size]
};

// Results of Session::run_attention(images, batch).
struct AttentionOutputs {
  int batch = 0, depth = 0, tokens = 0;  // tokens = num_tokens (cls + patches)
  std::vector<float> logits;             // [batch, num_classes]; empty when num_classes == 0
  std::vector<float> attention_layers;   // [depth, batch, tokens, tokens] head-mean probabilities
  // Row-major [tokens, tokens] map of `layer` for image `b`.
  const float* layer(int layer, int b) const noexcept {
    return attention_layers.data() + (static_cast<size_t>(layer) * batch + b) * tokens * tokens;
  }
};

class Session {
 public:
  explicit Session(const Model& model, const vit_session_params& params = vit_session_default_params())
      : info_(model.info()), embedding_size_(model.embedding_size()), max_batch_(params.max_batch) {
    vit_session* s = nullptr;
    detail::check(vit_session_create(model.get(), &params, &s));
    s_.reset(s);
  }

  // Raw run into caller-owned buffers (any of outputs' pointers may be null).
  void run(const float* images, int batch, const vit_outputs& outputs) {
    detail::check(vit_session_run(s_.get(), images, batch, &outputs));
  }

  // The same at another input size (vit_session_run_at: the session's max_image_size > 0).
  void run_at(const float* images, int batch, int height, int width, const vit_outputs& outputs) {
    detail::check(vit_session_run_at(s_.get(), images, batch, height, width, &outputs));
  }

  // Raw RGB8 images (vit_image), preprocessed by the library as the model says.
  void run_images(const vit_image* images, int count, const vit_outputs& outputs) {
    detail::check(vit_session_run_images(s_.get(), images, count, &outputs));
  }

  // Convenience: logits (when the model has a head) and embeddings, freshly allocated.
  Outputs run(const float* images, int batch, bool want_embeddings = true) {
    Outputs r;
    r.batch = batch;
    vit_outputs o{};
    if (batch > 0 && info_.num_classes > 0) {
      r.logits.resize(static_cast<size_t>(batch) * info_.num_classes);
      o.logits = r.logits.data();
    }
    if (batch > 0 && (want_embeddings || info_.num_classes == 0)) {
      r.embeddings.resize(static_cast<size_t>(batch) * embedding_size_);
      o.embeddings = r.embeddings.data();
    }
    run(images, batch, o);
    return r;
  }
  Outputs run(const std::vector<float>& images, int batch, bool want_embeddings = true) {
    size_t per = static_cast<size_t>(info_.in_chans) * info_.image_height * info_.image_width;
    if (batch < 0 || images.size() != per * static_cast<size_t>(batch))
      throw Error(VIT_ERR_INVALID_ARGUMENT, "vitpp::Session::run: images holds " + std::to_string(images.size()) +
                                                " floats, expected batch " + std::to_string(batch) + " x " +
                                                std::to_string(per));
    return run(images.data(), batch, want_embeddings);
  }

  // Logits plus every block's head-mean attention (vit_outputs.attention_layers; CPU only).
  AttentionOutputs run_attention(const float* images, int batch) {
    AttentionOutputs r;
    r.batch = batch;
    r.depth = info_.depth;
    r.tokens = info_.num_tokens;
    vit_outputs o{};
    if (batch > 0 && info_.num_classes > 0) {
      r.logits.resize(static_cast<size_t>(batch) * info_.num_classes);
      o.logits = r.logits.data();
    }
    if (batch > 0) {
      r.attention_layers.resize(static_cast<size_t>(info_.depth) * batch * info_.num_tokens * info_.num_tokens);
      o.attention_layers = r.attention_layers.data();
    }
    run(images, batch, o);
    return r;
  }

  // Thread-safe; see vit_session_cancel for when the request is consumed.
  void cancel() noexcept { vit_session_cancel(s_.get()); }
  int max_batch() const noexcept { return max_batch_; }
  vit_session* get() const noexcept { return s_.get(); }

 private:
  std::unique_ptr<vit_session, detail::SessionDeleter> s_;
  vit_model_info info_;
  int embedding_size_;
  int max_batch_;
};

}  // namespace vitpp
