// vit-infer tests: the C API (include/vit/vit.h) and its C++ wrapper (vit.hpp, namespace
// vitpp), through the shipped shared library libvit. Models are random timm-layout
// checkpoints written to a temp dir; results are compared with the internal CPU engine
// (linked statically from vit_cpu) on the same file, which must agree bit for bit: both
// run the same code on the same weights with the same thread count.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>

#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_engine.h"
#include "image/decode.h"
#include "model/model.h"
#include "model_fixture.h"
#include "test_api_fixture.h"
#include "test_util.h"
#include "tolerances.h"
#include "vit/vit.h"
#include "vit/vit.hpp"

namespace {

using vit::test::random_vec;

constexpr int kThreads = 2;  // same for libvit sessions and the reference engine
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Owns a status and exposes code/message; frees on scope exit.
struct Status {
  vit_status* st;
  explicit Status(vit_status* s) : st(s) {}
  ~Status() { vit_status_free(st); }
  Status(const Status&) = delete;
  Status& operator=(const Status&) = delete;
  vit_status_code code() const { return vit_status_get_code(st); }
  std::string msg() const { return vit_status_get_message(st); }
};

#define EXPECT_STATUS(expr, want_code, needle)                                       \
  do {                                                                               \
    Status s_(expr);                                                                 \
    EXPECT_EQ(s_.code(), want_code) << #expr << ": " << s_.msg();                    \
    EXPECT_NE(s_.msg().find(needle), std::string::npos)                              \
        << #expr << ": message '" << s_.msg() << "' does not mention '" << needle << "'"; \
  } while (0)

#define ASSERT_OK(expr)                                        \
  do {                                                         \
    Status s_(expr);                                           \
    ASSERT_EQ(s_.code(), VIT_OK) << #expr << ": " << s_.msg(); \
  } while (0)

struct Ckpt {
  std::string dir;
  std::shared_ptr<vit::Model> mem;  // the in-memory model that was written
};

Ckpt make_ckpt(const vit::ViTConfig& cfg, uint64_t seed, bool labels = true) {
  Ckpt c;
  c.dir = vit::test::temp_dir();
  c.mem = vit::test::random_model(cfg, seed);
  vit::test::write_timm_checkpoint(*c.mem, c.dir, labels);
  return c;
}

// Tiny: 32x32 image, patch 8 -> 16 patches + cls, D 32, 4 heads, depth 2, 10 classes.
const Ckpt& tiny() {
  static Ckpt c = make_ckpt(vit::test::small_config(32, 32, 8, 32, 4, 2, 10), 1234);
  return c;
}

vit_model* load_tiny() {
  vit_model* m = nullptr;
  vit_status* st = vit_model_load(tiny().dir.c_str(), nullptr, &m);
  EXPECT_EQ(st, nullptr) << vit_status_get_message(st);
  vit_status_free(st);
  return m;
}

vit_session* cpu_session(const vit_model* m, int max_batch = 8) {
  vit_session_params p = vit_session_default_params();
  p.max_batch = max_batch;
  p.num_threads = kThreads;
  vit_session* s = nullptr;
  vit_status* st = vit_session_create(m, &p, &s);
  EXPECT_EQ(st, nullptr) << vit_status_get_message(st);
  vit_status_free(st);
  return s;
}

struct Result {
  std::vector<float> logits, emb, attn, feat;  // feat: [B, T, D] (vit_outputs.features)
};

// Outputs of the internal engine behind a CPU session on the same checkpoint: the fast fp32
// engine (the default, VIT_GEMM_AUTO) or, with `reference_engine`, the fp32 reference.
Result reference(const std::string& dir, const std::vector<float>& x, int batch, bool reference_engine = false) {
  auto model = vit::load_model(dir);
  auto eng = reference_engine ? vit::make_cpu_engine(model, kThreads)
                              : vit::make_fast_cpu_engine(model, vit::DType::F32, kThreads);
  const auto& c = model->cfg;
  Result r;
  r.logits.assign(static_cast<size_t>(batch) * c.num_classes, kNaN);
  r.emb.assign(static_cast<size_t>(batch) * c.hidden, kNaN);
  r.attn.assign(static_cast<size_t>(batch) * c.heads * c.tokens() * c.tokens(), kNaN);
  r.feat.assign(static_cast<size_t>(batch) * c.tokens() * c.hidden, kNaN);
  vit::RunOutputs o;
  o.logits = c.num_classes ? r.logits.data() : nullptr;
  o.embeddings = r.emb.data();
  o.attention = r.attn.data();
  o.features = r.feat.data();
  eng->run(x.data(), batch, o);
  return r;
}

Result run_api(vit_session* s, const vit_model_info& i, const std::vector<float>& x, int batch,
               vit_status_code* code = nullptr) {
  Result r;
  r.logits.assign(static_cast<size_t>(batch) * i.num_classes, kNaN);  // poisoned
  r.emb.assign(static_cast<size_t>(batch) * i.hidden_size, kNaN);
  r.attn.assign(static_cast<size_t>(batch) * i.num_heads * i.num_tokens * i.num_tokens, kNaN);
  r.feat.assign(static_cast<size_t>(batch) * i.num_tokens * i.hidden_size, kNaN);
  vit_outputs o{};
  o.logits = i.num_classes ? r.logits.data() : nullptr;
  o.embeddings = r.emb.data();
  o.attention = r.attn.data();
  o.features = r.feat.data();
  Status st(vit_session_run(s, x.data(), batch, &o));
  if (code) {
    *code = st.code();
  } else {
    EXPECT_EQ(st.code(), VIT_OK) << st.msg();
  }
  return r;
}

bool all_finite(const std::vector<float>& v) {
  for (float f : v)
    if (!std::isfinite(f)) return false;
  return !v.empty();
}

void expect_bitwise_equal(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)))
      << what << ": max |diff| " << vit::test::max_abs_diff(a.data(), b.data(), a.size());
}

// Stores an arbitrary int in an enum field the way a C caller can (a C++ cast to an
// out-of-range enum value would itself be undefined).
template <class E>
void set_raw(E* field, int v) {
  static_assert(sizeof(E) == sizeof(int), "C enums are int-sized here");
  std::memcpy(field, &v, sizeof v);
}

vit_model_info info_of(const vit_model* m) {
  vit_model_info i{};
  Status st(vit_model_get_info(m, &i));
  EXPECT_EQ(st.code(), VIT_OK) << st.msg();
  return i;
}

size_t image_floats(const vit_model_info& i) {
  return static_cast<size_t>(i.in_chans) * i.image_height * i.image_width;
}

// A loaded model, a CPU session on it and the model's info; both handles are freed on scope
// exit, also when an ASSERT ends the test early.
struct Open {
  vit_model* m = nullptr;
  vit_session* s = nullptr;
  vit_model_info i{};
  Open() = default;
  Open(const Open&) = delete;
  Open& operator=(const Open&) = delete;
  ~Open() {
    vit_session_free(s);
    vit_model_free(m);
  }
};

// Loads `dir` and opens a CPU session of `max_batch` images with kThreads threads.
// Call as ASSERT_NO_FATAL_FAILURE(open_session(h, dir)) so a failure stops the test.
void open_session(Open& h, const std::string& dir, int max_batch = 8) {
  ASSERT_OK(vit_model_load(dir.c_str(), nullptr, &h.m));
  h.s = cpu_session(h.m, max_batch);
  ASSERT_NE(h.s, nullptr);
  h.i = info_of(h.m);
}

// ---------------------------------------------------------------------------------------

TEST(CApi, StatusAndVersion) {
  EXPECT_EQ(vit_status_get_code(nullptr), VIT_OK);
  EXPECT_STREQ(vit_status_get_message(nullptr), "ok");
  vit_status_free(nullptr);
  EXPECT_STREQ(vit_version(), VIT_VERSION_STRING);
  EXPECT_STREQ(vit_status_code_name(VIT_ERR_CANCELLED), "cancelled");
  EXPECT_STREQ(vit_status_code_name(VIT_ERR_INVALID_ARGUMENT), "invalid argument");
}

// vit_precision_name gives the precision table's names (tolerances.h: core/precision.h) for its C
// values, and NULL past them, so that a binding can list the precisions from the C API alone.
TEST(CApi, PrecisionNames) {
  int n = 0;
  for (const vit::PrecisionInfo& i : vit::kPrecisions) {
    ASSERT_NE(vit_precision_name(static_cast<vit_precision>(i.c_value)), nullptr) << i.name;
    EXPECT_STREQ(vit_precision_name(static_cast<vit_precision>(i.c_value)), i.name);
    n = std::max(n, i.c_value + 1);
  }
  EXPECT_EQ(n, static_cast<int>(sizeof vit::kPrecisions / sizeof vit::kPrecisions[0]));
  EXPECT_EQ(vit_precision_name(static_cast<vit_precision>(n)), nullptr);
  EXPECT_EQ(vit_precision_name(static_cast<vit_precision>(-1)), nullptr);
}

TEST(CApi, NullSafety) {
  Open h;
  ASSERT_NO_FATAL_FAILURE(open_session(h, tiny().dir));
  std::vector<float> x(image_floats(h.i), 0.1f);
  std::vector<float> logits(10);
  vit_outputs o{};
  o.logits = logits.data();

  // Release functions and cancel accept NULL.
  vit_model_free(nullptr);
  vit_session_free(nullptr);
  vit_session_cancel(nullptr);

  vit_model* out_m = reinterpret_cast<vit_model*>(0x1);  // must be reset to NULL on failure
  EXPECT_STATUS(vit_model_load(nullptr, nullptr, &out_m), VIT_ERR_INVALID_ARGUMENT, "path");
  EXPECT_EQ(out_m, nullptr);
  EXPECT_STATUS(vit_model_load(tiny().dir.c_str(), nullptr, nullptr), VIT_ERR_INVALID_ARGUMENT, "out");
  EXPECT_STATUS(vit_model_load("", nullptr, &out_m), VIT_ERR_INVALID_ARGUMENT, "path");

  vit_model_info info;
  EXPECT_STATUS(vit_model_get_info(nullptr, &info), VIT_ERR_INVALID_ARGUMENT, "model");
  EXPECT_STATUS(vit_model_get_info(h.m, nullptr), VIT_ERR_INVALID_ARGUMENT, "out");
  vit_preprocess_info pp;
  EXPECT_STATUS(vit_model_get_preprocess(nullptr, &pp), VIT_ERR_INVALID_ARGUMENT, "model");
  EXPECT_STATUS(vit_model_get_preprocess(h.m, nullptr), VIT_ERR_INVALID_ARGUMENT, "out");
  EXPECT_STREQ(vit_model_describe(nullptr), "");
  EXPECT_EQ(vit_model_get_label(nullptr, 0), nullptr);
  EXPECT_EQ(vit_model_get_warning_count(nullptr), 0);
  EXPECT_EQ(vit_model_get_warning(nullptr, 0), nullptr);

  vit_session* out_s = reinterpret_cast<vit_session*>(0x1);
  EXPECT_STATUS(vit_session_create(nullptr, nullptr, &out_s), VIT_ERR_INVALID_ARGUMENT, "model");
  EXPECT_EQ(out_s, nullptr);
  EXPECT_STATUS(vit_session_create(h.m, nullptr, nullptr), VIT_ERR_INVALID_ARGUMENT, "out");

  EXPECT_STATUS(vit_session_run(nullptr, x.data(), 1, &o), VIT_ERR_INVALID_ARGUMENT, "session");
  EXPECT_STATUS(vit_session_run(h.s, nullptr, 1, &o), VIT_ERR_INVALID_ARGUMENT, "images");
  EXPECT_STATUS(vit_session_run(h.s, x.data(), 1, nullptr), VIT_ERR_INVALID_ARGUMENT, "outputs");

  // NULL params mean defaults: these succeed.
  vit_session* s2 = nullptr;
  ASSERT_OK(vit_session_create(h.m, nullptr, &s2));
  vit_session_free(s2);
}

TEST(CApi, LoadErrorsNameTheProblem) {
  vit_model* m = nullptr;
  const std::string missing = vit::test::temp_dir() + "/no_such_model.safetensors";
  {
    Status st(vit_model_load(missing.c_str(), nullptr, &m));
    EXPECT_TRUE(st.code() == VIT_ERR_IO || st.code() == VIT_ERR_INVALID_ARGUMENT) << st.msg();
    EXPECT_NE(st.msg().find("no_such_model.safetensors"), std::string::npos) << st.msg();
    EXPECT_EQ(m, nullptr);
  }
  const std::string garbage = vit::test::temp_dir() + "/garbage.safetensors";
  vit::test::write_file(garbage, {1, 2, 3});
  EXPECT_STATUS(vit_model_load(garbage.c_str(), nullptr, &m), VIT_ERR_FORMAT, "garbage.safetensors");

  vit_load_params p = vit_load_default_params();
  p.image_size = -32;
  EXPECT_STATUS(vit_model_load(tiny().dir.c_str(), &p, &m), VIT_ERR_INVALID_ARGUMENT, "image_size");
  p = vit_load_default_params();
  set_raw(&p.pool, 7);
  EXPECT_STATUS(vit_model_load(tiny().dir.c_str(), &p, &m), VIT_ERR_INVALID_ARGUMENT, "pool");
  p = vit_load_default_params();
  p.layer_norm_eps = -1.0f;
  EXPECT_STATUS(vit_model_load(tiny().dir.c_str(), &p, &m), VIT_ERR_INVALID_ARGUMENT, "layer_norm_eps");
  p = vit_load_default_params();
  p.architecture = "not_a_vit";
  EXPECT_STATUS(vit_model_load(tiny().dir.c_str(), &p, &m), VIT_ERR_INVALID_ARGUMENT, "not_a_vit");
  p = vit_load_default_params();
  const std::string no_labels = vit::test::temp_dir() + "/labels_missing.txt";
  p.labels_file = no_labels.c_str();
  EXPECT_STATUS(vit_model_load(tiny().dir.c_str(), &p, &m), VIT_ERR_IO, "labels_missing.txt");
  EXPECT_EQ(m, nullptr);
}

TEST(CApi, InfoLabelsAndOverrides) {
  vit_model* m = load_tiny();
  ASSERT_NE(m, nullptr);
  const vit::ViTConfig& c = tiny().mem->cfg;
  vit_model_info i = info_of(m);
  EXPECT_EQ(i.image_height, 32);
  EXPECT_EQ(i.image_width, 32);
  EXPECT_EQ(i.patch_size, 8);
  EXPECT_EQ(i.in_chans, 3);
  EXPECT_EQ(i.hidden_size, 32);
  EXPECT_EQ(vit_model_get_embedding_size(m), 32);  // no projection: the embeddings are D wide
  EXPECT_EQ(vit_model_get_embedding_size(nullptr), 0);
  EXPECT_EQ(i.depth, 2);
  EXPECT_EQ(i.num_heads, 4);
  EXPECT_EQ(i.head_dim, 8);
  EXPECT_EQ(i.mlp_size, 64);
  EXPECT_EQ(i.num_classes, 10);
  EXPECT_EQ(i.num_tokens, 17);
  EXPECT_EQ(i.pool, VIT_POOL_TOKEN);
  EXPECT_FLOAT_EQ(i.layer_norm_eps, 1e-6f);
  EXPECT_EQ(i.param_count, c.param_count());
  EXPECT_GT(i.param_count, 0);
  EXPECT_GT(i.flops_per_image, 0.0);
  ASSERT_NE(vit_model_get_label(m, 3), nullptr);
  EXPECT_STREQ(vit_model_get_label(m, 3), "class_3");
  EXPECT_EQ(vit_model_get_label(m, 10), nullptr);
  EXPECT_EQ(vit_model_get_label(m, -1), nullptr);
  EXPECT_GT(std::strlen(vit_model_describe(m)), 0u);
  int nw = vit_model_get_warning_count(m);
  EXPECT_GE(nw, 0);
  EXPECT_EQ(vit_model_get_warning(m, nw), nullptr);
  vit_preprocess_info pp{};
  ASSERT_OK(vit_model_get_preprocess(m, &pp));
  EXPECT_EQ(pp.resize, VIT_RESIZE_SHORTEST_THEN_CROP);
  EXPECT_EQ(pp.interpolation, VIT_INTERP_BICUBIC);
  EXPECT_FLOAT_EQ(pp.crop_pct, 0.9f);
  EXPECT_FLOAT_EQ(pp.mean[1], 0.5f);
  EXPECT_FLOAT_EQ(pp.std[2], 0.5f);
  vit_model_free(m);

  // Overrides reach the loader: a 48x48 run size (pos-embed resampled), avg pooling, eps,
  // and a labels file.
  const std::string labels = vit::test::temp_dir() + "/labels.txt";
  {
    std::ofstream f(labels);
    for (int k = 0; k < 10; ++k) f << "name" << k << "\n";
  }
  vit_load_params p = vit_load_default_params();
  p.image_size = 48;
  p.layer_norm_eps = 1e-5f;
  p.labels_file = labels.c_str();
  ASSERT_OK(vit_model_load(tiny().dir.c_str(), &p, &m));
  i = info_of(m);
  EXPECT_EQ(i.image_height, 48);
  EXPECT_EQ(i.num_tokens, 37);
  EXPECT_FLOAT_EQ(i.layer_norm_eps, 1e-5f);
  EXPECT_STREQ(vit_model_get_label(m, 7), "name7");
  vit_model_free(m);
}

TEST(CApi, SessionParamErrors) {
  vit_model* m = load_tiny();
  ASSERT_NE(m, nullptr);
  vit_session* s = nullptr;
  vit_session_params p = vit_session_default_params();
  EXPECT_EQ(p.device, VIT_DEVICE_CPU);
  EXPECT_EQ(p.precision, VIT_PRECISION_FP32);
  EXPECT_GE(p.max_batch, 1);

  p.max_batch = 0;
  EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT, "max_batch");
  p = vit_session_default_params();
  p.precision = VIT_PRECISION_FP16;
  EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_UNSUPPORTED, "fp16");
  p.precision = VIT_PRECISION_BF16;
  p.gemm = VIT_GEMM_REFERENCE;
  EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_UNSUPPORTED, "reference");
  p = vit_session_default_params();
  p.device = VIT_DEVICE_CUDA;
  p.gemm = VIT_GEMM_REFERENCE;
  EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT, "REFERENCE");
  p = vit_session_default_params();
  set_raw(&p.precision, 9);
  EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT, "precision");
  p = vit_session_default_params();
  set_raw(&p.device, 5);
  EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT, "device");
  p = vit_session_default_params();
  p.num_threads = -2;
  EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT, "num_threads");
  p = vit_session_default_params();
  p.gemm = VIT_GEMM_CUBLASLT;
  EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT, "gemm");
  p = vit_session_default_params();
  p.device = VIT_DEVICE_CUDA;
  p.device_id = -1;
  EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT, "device_id");
  EXPECT_EQ(s, nullptr);
  vit_model_free(m);
}

// Every int is a valid value of the C enums (vit.h VIT_ENUM_INT / *_FORCE_INT), so a C++
// caller may cast any int to them; the library must reject the unknown ones by name. Run in
// the sanitizer build, this also proves no out-of-range enum load happens (UBSan -fsanitize=enum).
TEST(CApi, OutOfRangeEnumValuesAreRejected) {
  static_assert(sizeof(vit_pool) == sizeof(int) && sizeof(vit_device) == sizeof(int) &&
                    sizeof(vit_precision) == sizeof(int) && sizeof(vit_gemm) == sizeof(int) &&
                    sizeof(vit_status_code) == sizeof(int),
                "the C API enums are int-sized");
  static_assert(std::is_same_v<std::underlying_type_t<vit_pool>, int>, "fixed underlying type int in C++");
  vit_model* m = load_tiny();
  ASSERT_NE(m, nullptr);
  for (int v : {-1, 4, 7, 1000, INT_MIN, INT_MAX}) {  // 4: one past the largest value of any of them
    SCOPED_TRACE(v);
    vit_load_params lp = vit_load_default_params();
    lp.pool = static_cast<vit_pool>(v);
    vit_model* m2 = nullptr;
    EXPECT_STATUS(vit_model_load(tiny().dir.c_str(), &lp, &m2), VIT_ERR_INVALID_ARGUMENT,
                  "pool " + std::to_string(v) + " is not a vit_pool value");
    EXPECT_EQ(m2, nullptr);
    vit_session* s = nullptr;
    vit_session_params p = vit_session_default_params();
    p.precision = static_cast<vit_precision>(v);
    EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT,
                  "precision " + std::to_string(v) + " is not a vit_precision value");
    p = vit_session_default_params();
    p.gemm = static_cast<vit_gemm>(v);
    EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT,
                  "gemm " + std::to_string(v) + " is not a vit_gemm value");
    p = vit_session_default_params();
    p.device = static_cast<vit_device>(v);
    EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT,
                  "device " + std::to_string(v) + " is not a vit_device value");
    EXPECT_EQ(s, nullptr);
  }
  EXPECT_STREQ(vit_status_code_name(static_cast<vit_status_code>(-1)), "unknown error");
  EXPECT_STREQ(vit_status_code_name(VIT_STATUS_CODE_FORCE_INT), "unknown error");
  vit_model_free(m);
}

// The run-size limits (src/model/limits.h) reach C callers as INVALID_ARGUMENT naming the value.
TEST(CApi, ImageSizeBeyondTheLimitIsRejected) {
  vit_load_params p = vit_load_default_params();
  p.image_size = 40000;  // once a 3 GB position-table resample
  vit_model* m = nullptr;
  EXPECT_STATUS(vit_model_load(tiny().dir.c_str(), &p, &m), VIT_ERR_INVALID_ARGUMENT, "image size 40000");
  EXPECT_STATUS(vit_model_load(tiny().dir.c_str(), &p, &m), VIT_ERR_INVALID_ARGUMENT, "8192");
  EXPECT_EQ(m, nullptr);
}

// Without a usable GPU (this build or this machine) a CUDA session fails cleanly; with one
// it must run and produce finite logits.
TEST(CApi, CudaSessionFailsCleanlyOrRuns) {
  vit_model* m = load_tiny();
  ASSERT_NE(m, nullptr);
  vit_session_params p = vit_session_default_params();
  p.device = VIT_DEVICE_CUDA;
  p.max_batch = 2;
  vit_session* s = nullptr;
  Status st(vit_session_create(m, &p, &s));
  if (st.code() != VIT_OK) {
    EXPECT_TRUE(st.code() == VIT_ERR_DEVICE || st.code() == VIT_ERR_UNSUPPORTED) << st.msg();
    EXPECT_NE(st.msg().find("CUDA"), std::string::npos) << st.msg();
    EXPECT_EQ(s, nullptr);
  } else {
    ASSERT_NE(s, nullptr);
    vit_model_info i = info_of(m);
    std::vector<float> x = random_vec(2 * image_floats(i));
    std::vector<float> logits(2 * i.num_classes, kNaN);
    vit_outputs o{};
    o.logits = logits.data();
    ASSERT_OK(vit_session_run(s, x.data(), 2, &o));
    EXPECT_TRUE(all_finite(logits));
    vit_session_free(s);
  }
  vit_model_free(m);
}

TEST(CApi, RunArgumentErrors) {
  Open h;
  ASSERT_NO_FATAL_FAILURE(open_session(h, tiny().dir, 4));
  std::vector<float> x = random_vec(5 * image_floats(h.i));
  std::vector<float> logits(5 * h.i.num_classes);
  vit_outputs o{};
  o.logits = logits.data();
  EXPECT_STATUS(vit_session_run(h.s, x.data(), 0, &o), VIT_ERR_INVALID_ARGUMENT, "batch 0");
  EXPECT_STATUS(vit_session_run(h.s, x.data(), -1, &o), VIT_ERR_INVALID_ARGUMENT, "batch -1");
  EXPECT_STATUS(vit_session_run(h.s, x.data(), 5, &o), VIT_ERR_INVALID_ARGUMENT, "max_batch = 4");
  vit_outputs none{};
  EXPECT_STATUS(vit_session_run(h.s, x.data(), 1, &none), VIT_ERR_INVALID_ARGUMENT, "requests nothing");
  ASSERT_OK(vit_session_run(h.s, x.data(), 4, &o));  // the limit itself is fine
}

TEST(CApi, RunMatchesInternalEngineExactly) {
  Open h;
  ASSERT_NO_FATAL_FAILURE(open_session(h, tiny().dir));
  for (int batch : {1, 3, 8}) {
    std::vector<float> x = random_vec(batch * image_floats(h.i));
    Result got = run_api(h.s, h.i, x, batch);
    Result want = reference(tiny().dir, x, batch);
    ASSERT_TRUE(all_finite(got.logits)) << "batch " << batch;
    ASSERT_TRUE(all_finite(got.emb));
    ASSERT_TRUE(all_finite(got.attn));
    EXPECT_GT(vit::test::max_abs(got.logits.data(), got.logits.size()), 0.0f);  // not a zero result
    expect_bitwise_equal(got.logits, want.logits, "logits");
    expect_bitwise_equal(got.emb, want.emb, "embeddings");
    expect_bitwise_equal(got.attn, want.attn, "attention");
    ASSERT_TRUE(all_finite(got.feat));
    expect_bitwise_equal(got.feat, want.feat, "features");
  }
}

// The CPU engines behind the API: REFERENCE is the reference engine bit for bit; the default
// (fast fp32) is within the fp32 tolerance of it and bf16 within the whole-model bf16 bound.
TEST(CApi, CpuEnginesReferenceFastAndBf16) {
  vit_model* m = load_tiny();
  ASSERT_NE(m, nullptr);
  const vit_model_info i = info_of(m);
  for (vit_precision prec : {VIT_PRECISION_FP32, VIT_PRECISION_BF16}) {
    for (vit_gemm g : {VIT_GEMM_AUTO, VIT_GEMM_REFERENCE}) {
      if (prec == VIT_PRECISION_BF16 && g == VIT_GEMM_REFERENCE) continue;
      SCOPED_TRACE(std::string(prec == VIT_PRECISION_BF16 ? "bf16" : "fp32") + (g == VIT_GEMM_REFERENCE ? " reference" : " auto"));
      vit_session_params p = vit_session_default_params();
      p.precision = prec;
      p.gemm = g;
      p.num_threads = kThreads;
      vit_session* s = nullptr;
      ASSERT_OK(vit_session_create(m, &p, &s));
      for (int batch : {1, 3}) {
        std::vector<float> x = random_vec(batch * image_floats(i));
        Result got = run_api(s, i, x, batch);
        Result want = reference(tiny().dir, x, batch, /*reference_engine=*/true);
        if (g == VIT_GEMM_REFERENCE) {
          expect_bitwise_equal(got.logits, want.logits, "logits");
          expect_bitwise_equal(got.attn, want.attn, "attention");
          continue;
        }
        const float tol = prec == VIT_PRECISION_BF16 ? vit::test::tol_small_model_rel(vit::DType::BF16)
                                                     : vit::test::tol_rel(vit::DType::F32);
        EXPECT_TRUE(vit::test::close_rel(got.logits, want.logits, tol)) << "logits";
        EXPECT_TRUE(vit::test::close_rel(got.emb, want.emb, tol)) << "embeddings";
        EXPECT_TRUE(vit::test::close_rel(got.attn, want.attn, tol)) << "attention";
      }
      vit_session_free(s);
    }
  }
  vit_model_free(m);
}

// Params structs are read by struct_size (vit.h): a first-version caller (struct_size 0 or
// VIT_SESSION_PARAMS_V1_SIZE, no `fusion` field) gets the default for the newer field even when
// the bytes past its struct hold garbage; a struct larger than the library's, or smaller than
// the first version, is refused by name. The fusion field selects the unfused graph: its
// results agree with the fused one (and are not bitwise the same function call).
TEST(CApi, ParamsStructsAreVersionedBySize) {
  EXPECT_EQ(vit_session_default_params().struct_size, sizeof(vit_session_params));
  EXPECT_EQ(vit_load_default_params().struct_size, sizeof(vit_load_params));
  EXPECT_EQ(vit_session_default_params().fusion, 1);
  vit_model* m = nullptr;
  ASSERT_OK(vit_model_load(tiny().dir.c_str(), nullptr, &m));
  const vit_model_info i = info_of(m);
  const std::vector<float> x = random_vec(3 * image_floats(i));
  const Result want = reference(tiny().dir, x, 3);
  for (uint32_t size : {uint32_t{0}, static_cast<uint32_t>(VIT_SESSION_PARAMS_V1_SIZE)}) {
    SCOPED_TRACE("struct_size " + std::to_string(size));
    vit_session_params p = vit_session_default_params();
    p.struct_size = size;
    p.num_threads = kThreads;
    p.fusion = 0x5a5a5a5a;  // past a v1 struct: must not be read (0 would mean unfused)
    vit_session* s = nullptr;
    ASSERT_OK(vit_session_create(m, &p, &s));
    const Result got = run_api(s, i, x, 3);
    expect_bitwise_equal(got.logits, want.logits, "logits");  // the default (fused) graph
    vit_session_free(s);
  }
  // vit_outputs is versioned by the session's outputs_struct_size: a caller whose
  // vit_session_params ends before that field (versions 1 and 2) has a first-version
  // vit_outputs, whose `features` pointer does not exist: never read, never written.
  for (uint32_t size : {uint32_t{0}, static_cast<uint32_t>(VIT_SESSION_PARAMS_V1_SIZE),
                        static_cast<uint32_t>(offsetof(vit_session_params, outputs_struct_size))}) {
    SCOPED_TRACE("outputs of a session with struct_size " + std::to_string(size));
    vit_session_params p = vit_session_default_params();
    p.struct_size = size;
    p.num_threads = kThreads;
    vit_session* s = nullptr;
    ASSERT_OK(vit_session_create(m, &p, &s));
    const Result got = run_api(s, i, x, 3);
    expect_bitwise_equal(got.logits, want.logits, "logits");
    for (float f : got.feat) ASSERT_TRUE(std::isnan(f)) << "features written for a first-version vit_outputs";
    vit_session_free(s);
  }
  {
    // The current version: features as the engine's; a size outside the known versions refused.
    vit_session_params p = vit_session_default_params();
    EXPECT_EQ(p.outputs_struct_size, sizeof(vit_outputs));
    p.num_threads = kThreads;
    vit_session* s = nullptr;
    ASSERT_OK(vit_session_create(m, &p, &s));
    const Result got = run_api(s, i, x, 3);
    expect_bitwise_equal(got.feat, want.feat, "features");
    vit_session_free(s);
    for (uint32_t bad : {uint32_t{8}, static_cast<uint32_t>(sizeof(vit_outputs) + 8)}) {
      p.outputs_struct_size = bad;
      EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT, "outputs_struct_size");
    }
  }
  vit_session_params p = vit_session_default_params();
  p.num_threads = kThreads;
  p.fusion = 0;
  vit_session* s = nullptr;
  ASSERT_OK(vit_session_create(m, &p, &s));
  const Result unfused = run_api(s, i, x, 3);
  vit_session_free(s);
  ASSERT_TRUE(all_finite(unfused.logits));
  EXPECT_TRUE(vit::test::close_rel(unfused.logits, want.logits, 1e-4f)) << "unfused vs fused logits";
  EXPECT_GT(vit::test::max_abs(unfused.logits.data(), unfused.logits.size()), 0.0f);
  p = vit_session_default_params();
  p.struct_size = sizeof(vit_session_params) + 8;
  EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT, "struct_size");
  p.struct_size = 4;
  EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT, "struct_size");
  vit_load_params lp = vit_load_default_params();
  lp.struct_size = sizeof(vit_load_params) + 4;
  vit_model* m2 = nullptr;
  EXPECT_STATUS(vit_model_load(tiny().dir.c_str(), &lp, &m2), VIT_ERR_INVALID_ARGUMENT, "struct_size");
  EXPECT_EQ(m2, nullptr);
  vit_model_free(m);
}

// vit_session_run_at: other input sizes with max_image_size > 0, each equal to the engine's
// run_at (bit for bit); the model's own size is vit_session_run; every rule named when broken; a
// caller built against the version-3 struct (no max_image_size) gets the model's size only.
TEST(CApi, RunAtOtherSizes) {
  vit_model* m = nullptr;
  ASSERT_OK(vit_model_load(tiny().dir.c_str(), nullptr, &m));
  const vit_model_info i = info_of(m);  // 32x32, patch 8, cls: 17 tokens
  EXPECT_EQ(vit_model_get_num_tokens(m, 32, 32), i.num_tokens);
  EXPECT_EQ(vit_model_get_num_tokens(m, 48, 16), 1 + 6 * 2);
  EXPECT_EQ(vit_model_get_num_tokens(m, 50, 17), 1 + 6 * 2);  // floor, as the patch conv
  EXPECT_EQ(vit_model_get_num_tokens(m, 4, 32), -1);
  EXPECT_EQ(vit_model_get_num_tokens(nullptr, 32, 32), -1);
  vit_session_params p = vit_session_default_params();
  EXPECT_EQ(p.max_image_size, 0);
  p.num_threads = kThreads;
  p.max_batch = 4;
  p.max_image_size = 64;
  vit_session* s = nullptr;
  ASSERT_OK(vit_session_create(m, &p, &s));
  auto model = vit::load_model(tiny().dir);
  auto eng = vit::make_fast_cpu_engine(model, vit::DType::F32, kThreads);
  for (const auto& [h, w, batch] : std::vector<std::array<int, 3>>{{48, 40, 3}, {32, 32, 2}, {64, 16, 1}, {48, 40, 1}}) {
    SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w));
    const int T = vit_model_get_num_tokens(m, h, w);
    ASSERT_EQ(T, 1 + (h / 8) * (w / 8));
    const std::vector<float> x = random_vec(static_cast<size_t>(batch) * 3 * h * w);
    Result got, want;
    for (Result* r : {&got, &want}) {
      r->logits.assign(static_cast<size_t>(batch) * i.num_classes, kNaN);
      r->emb.assign(static_cast<size_t>(batch) * i.hidden_size, kNaN);
      r->attn.assign(static_cast<size_t>(batch) * i.num_heads * T * T, kNaN);
      r->feat.assign(static_cast<size_t>(batch) * T * i.hidden_size, kNaN);
    }
    vit_outputs o{};
    o.logits = got.logits.data();
    o.embeddings = got.emb.data();
    o.attention = got.attn.data();
    o.features = got.feat.data();
    ASSERT_OK(vit_session_run_at(s, x.data(), batch, h, w, &o));
    vit::RunOutputs ro;
    ro.logits = want.logits.data();
    ro.embeddings = want.emb.data();
    ro.attention = want.attn.data();
    ro.features = want.feat.data();
    eng->run_at(x.data(), batch, h, w, ro);
    ASSERT_TRUE(all_finite(got.attn));
    expect_bitwise_equal(got.logits, want.logits, "logits");
    expect_bitwise_equal(got.emb, want.emb, "embeddings");
    expect_bitwise_equal(got.attn, want.attn, "attention");
    expect_bitwise_equal(got.feat, want.feat, "features");
  }
  std::vector<float> x = random_vec(4 * 3 * 64 * 64), logits(4 * 10);
  vit_outputs o{};
  o.logits = logits.data();
  EXPECT_STATUS(vit_session_run_at(s, x.data(), 1, 36, 32, &o), VIT_ERR_INVALID_ARGUMENT, "not a multiple of the patch size 8");
  EXPECT_STATUS(vit_session_run_at(s, x.data(), 1, 72, 32, &o), VIT_ERR_INVALID_ARGUMENT, "maximum image size 64");
  EXPECT_STATUS(vit_session_run_at(s, x.data(), 1, 0, 32, &o), VIT_ERR_INVALID_ARGUMENT, "smaller than the patch");
  EXPECT_STATUS(vit_session_run_at(s, x.data(), 5, 32, 32, &o), VIT_ERR_INVALID_ARGUMENT, "max_batch = 4");
  EXPECT_STATUS(vit_session_run_at(nullptr, x.data(), 1, 32, 32, &o), VIT_ERR_INVALID_ARGUMENT, "session");
  vit_session_free(s);
  for (int bad : {-1, 100000}) {
    p.max_image_size = bad;
    EXPECT_STATUS(vit_session_create(m, &p, &s), VIT_ERR_INVALID_ARGUMENT, "max_image_size");
  }
  // max_image_size 0 (the default), and a version-3 caller whose struct ends before the field
  // (whatever lies past it is not read): the model's own size only.
  for (uint32_t size : {static_cast<uint32_t>(sizeof(vit_session_params)),
                        static_cast<uint32_t>(offsetof(vit_session_params, max_image_size))}) {
    p = vit_session_default_params();
    p.struct_size = size;
    p.num_threads = kThreads;
    p.max_image_size = size == sizeof(vit_session_params) ? 0 : 64;
    ASSERT_OK(vit_session_create(m, &p, &s));
    EXPECT_STATUS(vit_session_run_at(s, x.data(), 1, 48, 48, &o), VIT_ERR_INVALID_ARGUMENT, "max_image_size is 0");
    ASSERT_OK(vit_session_run_at(s, x.data(), 1, 32, 32, &o));
    vit_session_free(s);
  }
  vit_model_free(m);
}

TEST(CApi, SessionOutlivesModelHandle) {
  Open h;
  ASSERT_NO_FATAL_FAILURE(open_session(h, tiny().dir));
  vit_model_free(h.m);  // the session holds its own reference to the weights
  h.m = nullptr;
  std::vector<float> x = random_vec(2 * image_floats(h.i));
  Result got = run_api(h.s, h.i, x, 2);
  expect_bitwise_equal(got.logits, reference(tiny().dir, x, 2).logits, "logits");
}

TEST(CApi, HeadlessModelGivesEmbeddingsOnly) {
  static Ckpt c = make_ckpt(vit::test::small_config(32, 32, 8, 32, 4, 1, 0), 77);
  Open h;
  ASSERT_NO_FATAL_FAILURE(open_session(h, c.dir));
  EXPECT_EQ(h.i.num_classes, 0);
  EXPECT_EQ(vit_model_get_label(h.m, 0), nullptr);
  std::vector<float> x = random_vec(2 * image_floats(h.i));
  std::vector<float> logits(16, kNaN);
  vit_outputs o{};
  o.logits = logits.data();
  EXPECT_STATUS(vit_session_run(h.s, x.data(), 2, &o), VIT_ERR_INVALID_ARGUMENT, "num_classes = 0");
  Result got = run_api(h.s, h.i, x, 2);
  EXPECT_TRUE(all_finite(got.emb));
  expect_bitwise_equal(got.emb, reference(c.dir, x, 2).emb, "embeddings");
}

TEST(CApi, ConcurrentRunsOnOneSessionAreSerialisedAndExact) {
  Open h;
  ASSERT_NO_FATAL_FAILURE(open_session(h, tiny().dir));
  constexpr int kWorkers = 4, kIters = 6, kBatch = 3;
  std::vector<std::vector<float>> inputs, want;
  for (int t = 0; t < kWorkers; ++t) {
    inputs.push_back(random_vec(kBatch * image_floats(h.i)));
    want.push_back(run_api(h.s, h.i, inputs.back(), kBatch).logits);  // single-threaded reference
  }
  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWorkers; ++t) {
    threads.emplace_back([&, t] {
      for (int it = 0; it < kIters; ++it) {
        std::vector<float> logits(kBatch * h.i.num_classes, kNaN);
        vit_outputs o{};
        o.logits = logits.data();
        vit_status* st = vit_session_run(h.s, inputs[t].data(), kBatch, &o);
        if (st) ++failures;
        vit_status_free(st);
        if (std::memcmp(logits.data(), want[t].data(), logits.size() * sizeof(float)) != 0) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(CApi, CancelBeforeRunIsNotLost) {
  Open h;
  ASSERT_NO_FATAL_FAILURE(open_session(h, tiny().dir));
  std::vector<float> x = random_vec(image_floats(h.i));
  vit_session_cancel(h.s);  // no run in progress: the next run takes it
  vit_status_code code = VIT_OK;
  run_api(h.s, h.i, x, 1, &code);
  EXPECT_EQ(code, VIT_ERR_CANCELLED);
  {
    std::vector<float> logits(h.i.num_classes);
    vit_outputs o{};
    o.logits = logits.data();
    vit_session_cancel(h.s);
    EXPECT_STATUS(vit_session_run(h.s, x.data(), 1, &o), VIT_ERR_CANCELLED, "cancelled");
  }
  // Consumed: the following run succeeds and is exact.
  Result got = run_api(h.s, h.i, x, 1);
  expect_bitwise_equal(got.logits, reference(tiny().dir, x, 1).logits, "logits after cancel");
}

TEST(CApi, CancelFromAnotherThreadStopsARun) {
  // ViT-Ti-sized (D 192, depth 12, 197 tokens): a batch-4 run takes long enough on the CPU
  // for a cancel issued mid-run to land between layers.
  static Ckpt big = make_ckpt(vit::test::small_config(224, 224, 16, 192, 3, 12, 100), 99);
  Open h;
  ASSERT_NO_FATAL_FAILURE(open_session(h, big.dir, 4));
  std::vector<float> x = random_vec(4 * image_floats(h.i));

  int cancelled = 0, completed = 0;
  for (int attempt = 0; attempt < 5 && cancelled == 0; ++attempt) {
    std::atomic<bool> started{false};
    vit_status_code code = VIT_OK;
    std::thread runner([&] {
      std::vector<float> logits(4 * h.i.num_classes, kNaN);
      vit_outputs o{};
      o.logits = logits.data();
      started = true;
      vit_status* st = vit_session_run(h.s, x.data(), 4, &o);
      code = vit_status_get_code(st);
      vit_status_free(st);
    });
    while (!started) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + 10 * attempt));
    vit_session_cancel(h.s);
    runner.join();
    ASSERT_TRUE(code == VIT_ERR_CANCELLED || code == VIT_OK) << vit_status_code_name(code);
    if (code == VIT_ERR_CANCELLED) ++cancelled; else ++completed;
  }
  EXPECT_GE(cancelled, 1) << "no cancel landed in " << completed << " runs";

  // A cancel that arrived after its run had returned is pending and takes the next run;
  // at most that one run is affected, then runs succeed and match the reference.
  vit_status_code code = VIT_OK;
  Result got = run_api(h.s, h.i, x, 4, &code);
  if (code == VIT_ERR_CANCELLED) got = run_api(h.s, h.i, x, 4, &code);
  ASSERT_EQ(code, VIT_OK) << vit_status_code_name(code);
  expect_bitwise_equal(got.logits, reference(big.dir, x, 4).logits, "logits after cancel");
}

// ---- C++ wrapper --------------------------------------------------------------------------

TEST(CApi, ImageDecodeEqualsTheDecoderAndNamesBadData) {
  for (const char* f : {"sample_01.png", "sample_02.jpg"}) {
    const std::string path = std::string(VIT_SOURCE_DIR) + "/models/demo/samples/" + f;
    const std::vector<uint8_t> bytes = vit::test::read_file(path);
    vit_image img{};
    ASSERT_OK(vit_image_decode(bytes.data(), bytes.size(), f, &img));
    const vit::Image want = vit::decode_image_file(path);
    ASSERT_EQ(img.width, want.w) << f;
    ASSERT_EQ(img.height, want.h) << f;
    ASSERT_NE(img.rgb, nullptr);
    EXPECT_EQ(std::memcmp(img.rgb, want.rgb.data(), want.rgb.size()), 0) << f;
    vit_image_free(&img);
    EXPECT_EQ(img.rgb, nullptr);
    vit_image_free(&img);  // a freed (zeroed) image: no-op
  }
  const std::vector<uint8_t> png = vit::test::read_file(std::string(VIT_SOURCE_DIR) + "/models/demo/samples/sample_01.png");
  vit_image img{reinterpret_cast<const uint8_t*>(0x1), 7, 7};  // must be zeroed on failure
  EXPECT_STATUS(vit_image_decode(png.data(), png.size() / 2, "half.png", &img), VIT_ERR_FORMAT, "half.png");
  EXPECT_EQ(img.rgb, nullptr);
  EXPECT_EQ(img.width, 0);
  const char junk[] = "GIF89a....";
  EXPECT_STATUS(vit_image_decode(junk, sizeof junk, "x.gif", &img), VIT_ERR_UNSUPPORTED, "GIF");
  EXPECT_STATUS(vit_image_decode(junk, 0, nullptr, &img), VIT_ERR_FORMAT, "image");
  EXPECT_STATUS(vit_image_decode(nullptr, 5, "n", &img), VIT_ERR_INVALID_ARGUMENT, "data is NULL");
  EXPECT_STATUS(vit_image_decode(png.data(), png.size(), "p", nullptr), VIT_ERR_INVALID_ARGUMENT, "out");
  vit_image_free(nullptr);
}

TEST(CppApi, ModelSessionRunAndErrors) {
  vitpp::Model model(tiny().dir);
  EXPECT_EQ(model.info().num_classes, 10);
  EXPECT_EQ(model.label(2), "class_2");
  EXPECT_EQ(model.label(99), "");
  EXPECT_TRUE(model.has_labels());
  EXPECT_FALSE(model.describe().empty());
  EXPECT_EQ(model.preprocess().interpolation, VIT_INTERP_BICUBIC);
  EXPECT_EQ(model.image_numel(), 3u * 32 * 32);

  vit_session_params p = vit_session_default_params();
  p.max_batch = 4;
  p.num_threads = kThreads;
  vitpp::Session session(model, p);
  EXPECT_EQ(session.max_batch(), 4);
  std::vector<float> x = random_vec(3 * model.image_numel());
  vitpp::Outputs out = session.run(x, 3);
  Result want = reference(tiny().dir, x, 3);
  EXPECT_EQ(out.batch, 3);
  expect_bitwise_equal(out.logits, want.logits, "vitpp logits");
  expect_bitwise_equal(out.embeddings, want.emb, "vitpp embeddings");

  // Errors carry the C code and message.
  try {
    session.run(x.data(), 5);
    FAIL() << "batch 5 > max_batch 4 did not throw";
  } catch (const vitpp::Error& e) {
    EXPECT_EQ(e.code(), VIT_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.what()).find("batch 5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(session.run(x, 2), vitpp::Error);  // 3 images' worth of floats for batch 2
  try {
    vitpp::Model bad("/nonexistent/dir/model.safetensors");
    FAIL() << "loading a missing file did not throw";
  } catch (const vitpp::Error& e) {
    EXPECT_NE(e.code(), VIT_OK);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir"), std::string::npos) << e.what();
  }
  vit_session_params fp16 = vit_session_default_params();
  fp16.precision = VIT_PRECISION_FP16;
  try {
    vitpp::Session bad(model, fp16);
    FAIL() << "fp16 on the CPU did not throw";
  } catch (const vitpp::Error& e) {
    EXPECT_EQ(e.code(), VIT_ERR_UNSUPPORTED);
  }
  // The internal vit::Error and the public vitpp::Error coexist in one translation unit.
  EXPECT_THROW(vit::load_model("/nonexistent/x.safetensors"), vit::Error);

  session.cancel();
  EXPECT_THROW(session.run(x, 3), vitpp::Error);
  EXPECT_NO_THROW(session.run(x, 3));
}

}  // namespace
