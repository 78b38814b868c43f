// vit-infer: the C API (include/vit/vit.h) over the internal C++ library.
// Every entry point is noexcept in effect: exceptions become a heap vit_status carrying the
// code and message (vit::Error -> its code, std::bad_alloc -> OUT_OF_MEMORY, anything else
// -> INTERNAL). Handles wrap shared_ptr<const vit::Model> and a vit::Engine; images and
// outputs are caller-owned host fp32 buffers in the layouts documented in vit.h.
#include "vit/vit.h"

#include <algorithm>
#include <climits>
#include <atomic>
#include <iterator>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"
#include "model/limits.h"
#include "core/precision.h"
#include "cpu/cpu_engine.h"
#include "cpu/int8.h"
#include "gpu/cuda_engine.h"
#include "graph/graph.h"
#include "image/decode.h"
#include "image/preprocess.h"
#include "model/model.h"

struct vit_status {
  vit_status_code code;
  std::string message;
};

struct vit_model {
  std::shared_ptr<const vit::Model> model;
  std::string description;  // cfg.describe(), cached so the returned char* stays valid
};

struct vit_session {
  std::shared_ptr<const vit::Model> model;  // keeps weights alive after vit_model_free
  std::unique_ptr<vit::Engine> engine;
  int max_batch = 1;
  int max_image_size = 0;  // > 0: vit_session_run_at takes other sizes up to this side
  int tome = 0;            // > 0: token merging; runs refuse the per-token outputs
  size_t outputs_size = VIT_OUTPUTS_V1_SIZE;  // the caller's sizeof(vit_outputs): fields read
  std::mutex run_mu;  // serialises runs: engines own scratch buffers sized for one run
  // Pending cancellation request; consumed (cleared) by the run that observes it, or by the
  // run in progress when it returns. See vit_session_cancel in vit.h.
  std::atomic<bool> cancel{false};
};

namespace {

using vit::ErrorCode;

// Returned when even the status object cannot be allocated; never freed.
vit_status g_oom_status{VIT_ERR_OUT_OF_MEMORY, "out of memory"};

vit_status* make_status(vit_status_code code, std::string msg) noexcept {
  try {
    return new vit_status{code, std::move(msg)};
  } catch (...) {
    return &g_oom_status;
  }
}

vit_status_code to_c_code(ErrorCode c) noexcept {
  int v = static_cast<int>(c);
  // kOk in an exception is a bug in the thrower; unknown values likewise.
  if (v <= VIT_OK || v > VIT_ERR_INTERNAL) return VIT_ERR_INTERNAL;
  return static_cast<vit_status_code>(v);
}

// Runs f and turns whatever it throws into a status. `fn` names the entry point so that
// internal errors say where they surfaced.
template <class F>
vit_status* guarded(const char* fn, F&& f) noexcept {
  try {
    f();
    return nullptr;
  } catch (const vit::Error& e) {
    return make_status(to_c_code(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    return make_status(VIT_ERR_OUT_OF_MEMORY, std::string(fn) + ": out of memory");
  } catch (const std::exception& e) {
    return make_status(VIT_ERR_INTERNAL, std::string(fn) + ": internal error: " + e.what());
  } catch (...) {
    return make_status(VIT_ERR_INTERNAL, std::string(fn) + ": internal error: unknown exception");
  }
}

[[noreturn]] void invalid(const char* fn, const std::string& what) {
  vit::fail(ErrorCode::kInvalidArgument, std::string(fn) + ": " + what);
}

// The integer a caller stored in an enum field. The enums have the fixed underlying type int
// in C++ (vit.h VIT_ENUM_INT), so any value is valid; the bytes are still read as an int so
// that the check does not depend on that.
template <class E>
int raw_enum(const E& e) noexcept {
  std::underlying_type_t<E> v;
  std::memcpy(&v, &e, sizeof v);
  return static_cast<int>(v);
}

void require(const void* p, const char* fn, const char* param) {
  if (!p) invalid(fn, std::string(param) + " is NULL");
}

vit_pool to_c_pool(vit::GlobalPool p) {
  return p == vit::GlobalPool::kAvg ? VIT_POOL_AVG : VIT_POOL_TOKEN;
}

// The precision table (core/precision.h) holds the C values as numbers; raw values are
// range-checked first.
static_assert(vit::kPrecisions[0].c_value == VIT_PRECISION_FP32 && vit::kPrecisions[1].c_value == VIT_PRECISION_FP16 &&
                  vit::kPrecisions[2].c_value == VIT_PRECISION_BF16 && vit::kPrecisions[3].c_value == VIT_PRECISION_INT8 &&
                  sizeof vit::kPrecisions / sizeof vit::kPrecisions[0] == 4,
              "core/precision.h's C values are vit_precision's");
const char* precision_name(vit_precision p) {
  const vit::PrecisionInfo* i = vit::find_precision(p);
  return i ? i->name : "?";
}

vit::Precision to_internal(vit_precision p) {
  const vit::PrecisionInfo* i = vit::find_precision(p);
  return i ? i->precision : vit::Precision::kFP32;
}

#ifdef VIT_WITH_CUDA
vit::GemmChoice to_internal(vit_gemm g) {
  switch (g) {
    case VIT_GEMM_CUSTOM: return vit::GemmChoice::kCustom;
    case VIT_GEMM_CUBLASLT: return vit::GemmChoice::kCublasLt;
    default: return vit::GemmChoice::kAuto;
  }
}
#endif

// A caller's params struct read by size (vit.h): the fields within struct_size (0: the first
// version's) over the defaults; a struct larger than this library's is refused.
template <class P>
P read_params(const P* given, P defaults, size_t v1_size, const char* fn, const char* what) {
  if (!given) return defaults;
  const size_t n = given->struct_size == 0 ? v1_size : given->struct_size;
  if (n > sizeof(P)) {
    invalid(fn, std::string(what) + " struct_size " + std::to_string(n) + " is larger than this library's " +
                    std::to_string(sizeof(P)) + " (a vit.h newer than libvit?)");
  }
  if (n < v1_size) {
    invalid(fn, std::string(what) + " struct_size " + std::to_string(n) + " is smaller than its first version (" +
                    std::to_string(v1_size) + " bytes)");
  }
  P p = defaults;
  std::memcpy(static_cast<void*>(&p), given, n);
  p.struct_size = sizeof(P);
  return p;
}

}  // namespace

extern "C" {

// ---- status ------------------------------------------------------------------------------

vit_status_code vit_status_get_code(const vit_status* st) { return st ? st->code : VIT_OK; }

const char* vit_status_get_message(const vit_status* st) { return st ? st->message.c_str() : "ok"; }

void vit_status_free(vit_status* st) {
  if (st && st != &g_oom_status) delete st;
}

const char* vit_version(void) { return VIT_VERSION_STRING; }

const char* vit_precision_name(vit_precision precision) {
  const vit::PrecisionInfo* i = vit::find_precision(static_cast<int>(precision));
  return i ? i->name : nullptr;
}

const char* vit_status_code_name(vit_status_code code) {
  const int v = raw_enum(code);
  if (v < VIT_OK || v > VIT_ERR_INTERNAL) return "unknown error";
  return vit::error_code_name(static_cast<ErrorCode>(v));
}

// ---- model -------------------------------------------------------------------------------

vit_load_params vit_load_default_params(void) {
  vit_load_params p;
  p.struct_size = sizeof(vit_load_params);
  p.architecture = nullptr;
  p.image_size = 0;
  p.num_heads = 0;
  p.layer_norm_eps = 0.0f;
  p.pool = VIT_POOL_DEFAULT;
  p.labels_file = nullptr;
  return p;
}

vit_status* vit_model_load(const char* path, const vit_load_params* params, vit_model** out) {
  static const char* fn = "vit_model_load";
  if (out) *out = nullptr;
  return guarded(fn, [&] {
    require(out, fn, "out");
    require(path, fn, "path");
    if (!*path) invalid(fn, "path is empty");
    const vit_load_params p =
        read_params(params, vit_load_default_params(), VIT_LOAD_PARAMS_V1_SIZE, fn, "vit_load_params");

    vit::ConfigOverrides ov;
    if (p.architecture && *p.architecture) ov.architecture = std::string(p.architecture);
    if (p.image_size < 0) invalid(fn, "image_size " + std::to_string(p.image_size) + " is negative");
    if (p.image_size > 0) ov.image_size = p.image_size;
    if (p.num_heads < 0) invalid(fn, "num_heads " + std::to_string(p.num_heads) + " is negative");
    if (p.num_heads > 0) ov.heads = p.num_heads;
    if (!(p.layer_norm_eps >= 0.0f) || !std::isfinite(p.layer_norm_eps))
      invalid(fn, "layer_norm_eps " + std::to_string(p.layer_norm_eps) + " is negative or not finite");
    if (p.layer_norm_eps > 0.0f) ov.ln_eps = p.layer_norm_eps;
    switch (raw_enum(p.pool)) {
      case VIT_POOL_DEFAULT: break;
      case VIT_POOL_TOKEN: ov.pool = vit::GlobalPool::kToken; break;
      case VIT_POOL_AVG: ov.pool = vit::GlobalPool::kAvg; break;
      default: invalid(fn, "pool " + std::to_string(raw_enum(p.pool)) + " is not a vit_pool value");
    }
    if (p.labels_file && *p.labels_file) ov.labels_file = std::string(p.labels_file);

    auto h = std::make_unique<vit_model>();
    h->model = vit::load_model(path, ov);
    if (!h->model) vit::fail(ErrorCode::kInternal, std::string(fn) + ": loader returned no model for " + path);
    h->description = h->model->cfg.describe();
    *out = h.release();
  });
}

void vit_model_free(vit_model* model) { delete model; }

vit_status* vit_model_get_info(const vit_model* model, vit_model_info* out) {
  static const char* fn = "vit_model_get_info";
  return guarded(fn, [&] {
    require(model, fn, "model");
    require(out, fn, "out");
    const vit::ViTConfig& c = model->model->cfg;
    vit_model_info i{};
    i.image_height = c.image_h;
    i.image_width = c.image_w;
    i.patch_size = c.patch;
    i.in_chans = c.in_chans;
    i.hidden_size = c.hidden;
    i.depth = c.depth;
    i.num_heads = c.heads;
    i.head_dim = c.head_dim();
    i.mlp_size = c.mlp_hidden;
    i.num_classes = c.num_classes;
    i.num_tokens = c.tokens();
    i.layer_norm_eps = c.ln_eps;
    i.pool = to_c_pool(c.pool);
    i.param_count = c.param_count();
    i.flops_per_image = c.flops_per_image();
    *out = i;
  });
}

int vit_model_get_embedding_size(const vit_model* model) { return model ? model->model->cfg.embed_dim() : 0; }

int vit_model_get_num_tokens(const vit_model* model, int height, int width) {
  if (!model) return -1;
  const vit::ViTConfig& c = model->model->cfg;
  if (height < c.patch || width < c.patch) return -1;
  const int64_t t = int64_t{height / c.patch} * (width / c.patch) + c.prefix_tokens();
  return t > INT_MAX ? -1 : static_cast<int>(t);
}

const char* vit_model_describe(const vit_model* model) { return model ? model->description.c_str() : ""; }

vit_status* vit_model_get_preprocess(const vit_model* model, vit_preprocess_info* out) {
  static const char* fn = "vit_model_get_preprocess";
  return guarded(fn, [&] {
    require(model, fn, "model");
    require(out, fn, "out");
    const vit::PreprocessConfig& pp = model->model->cfg.preprocess;
    vit_preprocess_info i{};
    using R = vit::PreprocessConfig::Resize;
    const bool direct_crop = pp.resize == R::kDirect && pp.resize_h > 0 &&
                             (pp.resize_h != pp.input_h || pp.resize_w != pp.input_w);
    i.resize = pp.resize == R::kCropOnly || direct_crop || (pp.resize == R::kShortestEdgeCrop && pp.longest_edge > 0)
                   ? VIT_RESIZE_OTHER
               : pp.resize == R::kDirect           ? VIT_RESIZE_DIRECT
               : pp.resize == R::kShortestEdgeCrop ? VIT_RESIZE_SHORTEST_EDGE_THEN_CROP
                                                   : VIT_RESIZE_SHORTEST_THEN_CROP;
    static const std::pair<const char*, vit_interpolation> kInterp[] = {
        {"bicubic", VIT_INTERP_BICUBIC}, {"bilinear", VIT_INTERP_BILINEAR}, {"nearest", VIT_INTERP_NEAREST},
        {"box", VIT_INTERP_BOX},         {"hamming", VIT_INTERP_HAMMING},   {"lanczos", VIT_INTERP_LANCZOS}};
    bool named = false;
    for (const auto& [name, value] : kInterp) {
      if (pp.interpolation == name) {
        i.interpolation = value;
        named = true;
      }
    }
    if (!named)
      vit::fail(ErrorCode::kUnsupported, std::string(fn) + ": interpolation '" + pp.interpolation +
                                             "' has no vit_interpolation value");
    // The HF crop mode's shorter side as a fraction (image_input / vit.h: round(height / crop_pct)).
    i.crop_pct = pp.resize == vit::PreprocessConfig::Resize::kShortestEdgeCrop
                     ? static_cast<float>(static_cast<double>(pp.input_h) / pp.shortest_edge)
                     : pp.crop_pct;
    for (int k = 0; k < 3; ++k) {
      i.mean[k] = pp.mean[k];
      i.std[k] = pp.std[k];
    }
    i.rescale = static_cast<float>(pp.rescale);
    *out = i;
  });
}

const char* vit_model_get_label(const vit_model* model, int index) {
  if (!model || index < 0) return nullptr;
  const auto& labels = model->model->cfg.labels;
  if (static_cast<size_t>(index) >= labels.size()) return nullptr;
  return labels[static_cast<size_t>(index)].c_str();
}

int vit_model_get_warning_count(const vit_model* model) {
  return model ? static_cast<int>(model->model->warnings.size()) : 0;
}

const char* vit_model_get_warning(const vit_model* model, int index) {
  if (!model || index < 0) return nullptr;
  const auto& w = model->model->warnings;
  if (static_cast<size_t>(index) >= w.size()) return nullptr;
  return w[static_cast<size_t>(index)].c_str();
}

// ---- session -----------------------------------------------------------------------------

vit_session_params vit_session_default_params(void) {
  vit_session_params p;
  p.struct_size = sizeof(vit_session_params);
  p.device = VIT_DEVICE_CPU;
  p.device_id = 0;
  p.precision = VIT_PRECISION_FP32;
  p.max_batch = 64;
  p.num_threads = 0;
  p.gemm = VIT_GEMM_AUTO;
  p.use_cuda_graphs = 1;
  p.allow_tf32 = 0;
  p.cuda_stream = nullptr;
  p.fusion = 1;
  p.outputs_struct_size = sizeof(vit_outputs);
  p.max_image_size = 0;
  p.int8_calibration = nullptr;
  p.tome = 0;
  return p;
}

vit_status* vit_session_create(const vit_model* model, const vit_session_params* params, vit_session** out) {
  static const char* fn = "vit_session_create";
  if (out) *out = nullptr;
  return guarded(fn, [&] {
    require(out, fn, "out");
    require(model, fn, "model");
    const vit_session_params p =
        read_params(params, vit_session_default_params(), VIT_SESSION_PARAMS_V1_SIZE, fn, "vit_session_params");

    if (p.max_batch < 1) invalid(fn, "max_batch " + std::to_string(p.max_batch) + " must be >= 1");
    const int precision = raw_enum(p.precision), gemm = raw_enum(p.gemm), device = raw_enum(p.device);
    if (std::none_of(std::begin(vit::kPrecisions), std::end(vit::kPrecisions),
                     [&](const vit::PrecisionInfo& i) { return i.c_value == precision; }))
      invalid(fn, "precision " + std::to_string(precision) + " is not a vit_precision value");
    if (gemm < VIT_GEMM_AUTO || gemm > VIT_GEMM_REFERENCE)
      invalid(fn, "gemm " + std::to_string(gemm) + " is not a vit_gemm value");
    if (device != VIT_DEVICE_CPU && device != VIT_DEVICE_CUDA)
      invalid(fn, "device " + std::to_string(device) + " is not a vit_device value");
    if (p.num_threads < 0) invalid(fn, "num_threads " + std::to_string(p.num_threads) + " is negative");
    if (p.max_image_size < 0 || p.max_image_size > vit::limits::kMaxImageSide)
      invalid(fn, "max_image_size " + std::to_string(p.max_image_size) + " is outside 0.." +
                      std::to_string(vit::limits::kMaxImageSide) + " (0: the model's own size only)");

    // An older caller's struct ends before outputs_struct_size: the default is then the first
    // vit_outputs version (read_params fills it from vit_session_default_params otherwise).
    const size_t given = params && params->struct_size ? params->struct_size : VIT_SESSION_PARAMS_V1_SIZE;
    const uint32_t outputs_size =
        given > offsetof(vit_session_params, outputs_struct_size) ? p.outputs_struct_size : VIT_OUTPUTS_V1_SIZE;
    if (outputs_size < VIT_OUTPUTS_V1_SIZE || outputs_size > sizeof(vit_outputs))
      invalid(fn, "outputs_struct_size " + std::to_string(outputs_size) + " is not a vit_outputs size (" +
                      std::to_string(VIT_OUTPUTS_V1_SIZE) + ".." + std::to_string(sizeof(vit_outputs)) + ")");

    vit::graph::check_tome(model->model->cfg, p.tome, fn);  // a named error before any engine work

    auto s = std::make_unique<vit_session>();
    s->model = model->model;
    s->max_batch = p.max_batch;
    s->max_image_size = p.max_image_size;
    s->tome = p.tome;
    s->outputs_size = outputs_size;
    if (p.device == VIT_DEVICE_CPU) {
      if (p.precision == VIT_PRECISION_FP16)
        vit::fail(ErrorCode::kUnsupported, std::string(fn) + ": precision fp16 is not supported on the CPU device "
                                               "(fp32 and bf16 are); use VIT_DEVICE_CUDA for fp16");
      if (p.gemm == VIT_GEMM_CUSTOM || p.gemm == VIT_GEMM_CUBLASLT)
        invalid(fn, "gemm CUSTOM / CUBLASLT select a CUDA GEMM; the CPU device takes AUTO or REFERENCE");
      if (p.precision == VIT_PRECISION_INT8 && p.gemm != VIT_GEMM_REFERENCE) {
        vit::Int8Options o;
        if (p.int8_calibration) {
          o.calibration_path = p.int8_calibration;
          o.find_calibration = false;
        }
        s->engine = vit::make_int8_cpu_engine(s->model, o, p.num_threads, p.fusion != 0, p.tome, p.max_batch);
      } else if (p.gemm == VIT_GEMM_REFERENCE) {
        if (p.precision != VIT_PRECISION_FP32)
          vit::fail(ErrorCode::kUnsupported, std::string(fn) + ": the CPU reference engine (VIT_GEMM_REFERENCE) is "
                                                 "fp32 only, precision " + precision_name(p.precision) + " requested");
        s->engine = vit::make_cpu_engine(s->model, p.num_threads, p.fusion != 0, p.tome);
      } else {
        s->engine = vit::make_fast_cpu_engine(s->model,
                                              vit::storage_type(to_internal(p.precision)),
                                              p.num_threads, p.fusion != 0, p.tome, p.max_batch);
      }
    } else {  // VIT_DEVICE_CUDA
      if (p.device_id < 0) invalid(fn, "device_id " + std::to_string(p.device_id) + " is negative");
      if (p.gemm == VIT_GEMM_REFERENCE) invalid(fn, "gemm REFERENCE selects the CPU reference engine (VIT_DEVICE_CPU only)");
      if (p.precision == VIT_PRECISION_INT8)
        vit::fail(ErrorCode::kUnsupported, std::string(fn) + ": precision int8 runs on the CPU device only "
                                               "(VIT_DEVICE_CPU); CUDA runs fp32, fp16 and bf16");
#ifdef VIT_WITH_CUDA
      if (!vit::cuda_device_available())
        vit::fail(ErrorCode::kDevice, std::string(fn) + ": no CUDA device is available (device_id " +
                                          std::to_string(p.device_id) + ")");
      vit::CudaEngineOptions o;
      o.device_id = p.device_id;
      o.precision = to_internal(p.precision);
      o.max_batch = p.max_batch;
      o.gemm = to_internal(p.gemm);
      o.cuda_graphs = p.use_cuda_graphs != 0;
      o.allow_tf32 = p.allow_tf32 != 0;
      o.stream = p.cuda_stream;
      o.fusion = p.fusion != 0;
      o.tome = p.tome;
      s->engine = vit::make_cuda_engine(s->model, o);
#else
      vit::fail(ErrorCode::kUnsupported, std::string(fn) +
                                             ": VIT_DEVICE_CUDA requested but this libvit was built without "
                                             "CUDA support");
#endif
    }
    if (!s->engine) vit::fail(ErrorCode::kInternal, std::string(fn) + ": engine factory returned null");
    *out = s.release();
  });
}

void vit_session_free(vit_session* session) { delete session; }

}  // extern "C"

namespace {

// The output checks shared by vit_session_run and vit_session_run_images; returns the
// engine's view of the caller's buffers.
vit::RunOutputs checked_outputs(const char* fn, const vit_session* session, const vit_outputs* outputs) {
  // Only the fields of the caller's vit_outputs version exist (vit_session_params.outputs_struct_size).
  float* const features = session->outputs_size > offsetof(vit_outputs, features) ? outputs->features : nullptr;
  if (!outputs->logits && !outputs->embeddings && !outputs->attention && !outputs->attention_layers && !features)
    invalid(fn, "outputs requests nothing (logits, embeddings, attention, attention_layers and features are all NULL)");
  if (outputs->logits && session->model->cfg.num_classes == 0)
    invalid(fn, "logits requested but the model has no classifier head (num_classes = 0); "
                "request embeddings instead");
  if (session->tome > 0) vit::graph::check_tome_outputs(outputs->attention, outputs->attention_layers, features, fn);
  vit::RunOutputs o;
  o.logits = outputs->logits;
  o.embeddings = outputs->embeddings;
  o.attention = outputs->attention;
  o.attention_layers = outputs->attention_layers;
  o.features = features;
  return o;
}

// Runs `body` under the session's run lock, honouring and then clearing a pending cancel:
// the run in progress (or the next to start) consumes a cancel request (vit.h).
template <typename F>
void run_locked(const char* fn, vit_session* session, F&& body) {
  std::lock_guard<std::mutex> lock(session->run_mu);
  struct ClearOnExit {
    std::atomic<bool>& f;
    ~ClearOnExit() { f.store(false, std::memory_order_release); }
  } clear{session->cancel};
  if (session->cancel.load(std::memory_order_acquire))
    vit::fail(ErrorCode::kCancelled, std::string(fn) + ": cancelled before the run started");
  body();
}

// vit_session_run / _run_at: the checks, then the engine's run at height x width.
void run_sized(const char* fn, vit_session* session, const float* images, int batch, int height, int width,
               const vit_outputs* outputs) {
  require(images, fn, "images");
  require(outputs, fn, "outputs");
  if (batch < 1 || batch > session->max_batch)
    invalid(fn, "batch " + std::to_string(batch) + " out of range [1, max_batch = " +
                    std::to_string(session->max_batch) + "]");
  session->model->cfg.check_run_size(height, width, session->max_image_size, fn);
  const vit::RunOutputs o = checked_outputs(fn, session, outputs);
  run_locked(fn, session, [&] { session->engine->run_at(images, batch, height, width, o, &session->cancel); });
}

}  // namespace

extern "C" {

vit_status* vit_session_run(vit_session* session, const float* images, int batch, const vit_outputs* outputs) {
  static const char* fn = "vit_session_run";
  return guarded(fn, [&] {
    require(session, fn, "session");
    const vit::ViTConfig& c = session->model->cfg;
    run_sized(fn, session, images, batch, c.image_h, c.image_w, outputs);
  });
}

vit_status* vit_session_run_at(vit_session* session, const float* images, int batch, int height, int width,
                               const vit_outputs* outputs) {
  static const char* fn = "vit_session_run_at";
  return guarded(fn, [&] {
    require(session, fn, "session");
    run_sized(fn, session, images, batch, height, width, outputs);
  });
}

// Raw RGB8 images: the same checks and locking as vit_session_run, then the engine's
// run_images (host preprocessing by default; a GPU engine may preprocess on the device).
vit_status* vit_session_run_images(vit_session* session, const vit_image* images, int count,
                                   const vit_outputs* outputs) {
  static const char* fn = "vit_session_run_images";
  return guarded(fn, [&] {
    require(session, fn, "session");
    require(images, fn, "images");
    require(outputs, fn, "outputs");
    if (count < 1 || count > session->max_batch)
      invalid(fn, "count " + std::to_string(count) + " out of range [1, max_batch = " +
                      std::to_string(session->max_batch) + "]");
    for (int i = 0; i < count; ++i) {
      if (!images[i].rgb) invalid(fn, "images[" + std::to_string(i) + "].rgb is NULL");
      if (images[i].width < 1 || images[i].height < 1)
        invalid(fn, "images[" + std::to_string(i) + "] is " + std::to_string(images[i].width) + "x" +
                        std::to_string(images[i].height) + " pixels; width and height must be >= 1");
    }
    const vit::ViTConfig& cfg = session->model->cfg;
    if (cfg.in_chans != 3)
      vit::fail(ErrorCode::kUnsupported, std::string(fn) + ": the model takes " + std::to_string(cfg.in_chans) +
                                             " input channels; RGB images have 3 (use vit_session_run)");
    const vit::RunOutputs o = checked_outputs(fn, session, outputs);

    std::vector<vit::ImageView> views(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) views[i] = vit::ImageView{images[i].rgb, images[i].width, images[i].height};
    // The loader already sets the preprocessing size to the run size; restated so that the
    // engine's contract (pp.input_h/w == run size) holds whatever a loader does.
    vit::PreprocessConfig pp = cfg.preprocess;
    pp.input_h = cfg.image_h;
    pp.input_w = cfg.image_w;
    run_locked(fn, session, [&] { session->engine->run_images(views.data(), count, pp, o, &session->cancel); });
  });
}

// ---- int8 calibration --------------------------------------------------------------------------

struct vit_calibration {
  std::unique_ptr<vit::int8::Calibrator> cal;
};

vit_status* vit_calibration_create(const vit_model* model, int num_threads, vit_calibration** out) {
  static const char* fn = "vit_calibration_create";
  if (out) *out = nullptr;
  return guarded(fn, [&] {
    require(out, fn, "out");
    require(model, fn, "model");
    if (num_threads < 0) invalid(fn, "num_threads " + std::to_string(num_threads) + " is negative");
    auto c = std::make_unique<vit_calibration>();
    c->cal = std::make_unique<vit::int8::Calibrator>(model->model, num_threads);
    *out = c.release();
  });
}

void vit_calibration_free(vit_calibration* cal) { delete cal; }

vit_status* vit_calibration_add(vit_calibration* cal, const float* images, int batch) {
  static const char* fn = "vit_calibration_add";
  return guarded(fn, [&] {
    require(cal, fn, "cal");
    require(images, fn, "images");
    if (batch < 1) invalid(fn, "batch " + std::to_string(batch) + " must be >= 1");
    cal->cal->add(images, batch);
  });
}

vit_status* vit_calibration_add_images(vit_calibration* cal, const vit_image* images, int count) {
  static const char* fn = "vit_calibration_add_images";
  return guarded(fn, [&] {
    require(cal, fn, "cal");
    require(images, fn, "images");
    if (count < 1) invalid(fn, "count " + std::to_string(count) + " must be >= 1");
    const vit::ViTConfig& cfg = cal->cal->model().cfg;
    if (cfg.in_chans != 3)
      vit::fail(ErrorCode::kUnsupported, std::string(fn) + ": the model takes " + std::to_string(cfg.in_chans) +
                                             " input channels; RGB images have 3 (use vit_calibration_add)");
    vit::PreprocessConfig pp = cfg.preprocess;
    pp.input_h = cfg.image_h;
    pp.input_w = cfg.image_w;
    const size_t per = static_cast<size_t>(3) * pp.input_h * pp.input_w;
    std::vector<float> batch(per * static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) {
      if (!images[i].rgb || images[i].width < 1 || images[i].height < 1)
        invalid(fn, "images[" + std::to_string(i) + "] is empty or NULL");
      vit::Image img;
      img.w = images[i].width;
      img.h = images[i].height;
      img.rgb.assign(images[i].rgb, images[i].rgb + static_cast<size_t>(img.w) * img.h * 3);
      vit::preprocess_image(img, pp, batch.data() + per * static_cast<size_t>(i));
    }
    cal->cal->add(batch.data(), count);
  });
}

int64_t vit_calibration_get_image_count(const vit_calibration* cal) { return cal ? cal->cal->images() : -1; }

vit_status* vit_calibration_save(const vit_calibration* cal, const char* path) {
  static const char* fn = "vit_calibration_save";
  return guarded(fn, [&] {
    require(cal, fn, "cal");
    const std::string where = path && *path ? std::string(path) : vit::int8::default_calibration_path(cal->cal->model());
    vit::int8::save_calibration(cal->cal->result(), where);
  });
}

void vit_session_cancel(vit_session* session) {
  if (session) session->cancel.store(true, std::memory_order_release);
}

// ---- image decoding ------------------------------------------------------------------------

vit_status* vit_image_decode(const void* data, size_t size, const char* name, vit_image* out) {
  static const char* fn = "vit_image_decode";
  if (out) *out = vit_image{nullptr, 0, 0};
  return guarded(fn, [&] {
    require(out, fn, "out");
    if (!data && size) invalid(fn, "data is NULL but size is " + std::to_string(size));
    const std::string what = name && *name ? std::string(name) : std::string("image");
    vit::Image img = vit::decode_image_memory(static_cast<const uint8_t*>(data), data ? size : 0, what);
    auto pixels = std::make_unique<uint8_t[]>(img.rgb.size());
    std::memcpy(pixels.get(), img.rgb.data(), img.rgb.size());
    *out = vit_image{pixels.release(), img.w, img.h};
  });
}

vit_status* vit_model_decode_image(const vit_model* model, const void* data, size_t size, const char* name,
                                   vit_image* out) {
  static const char* fn = "vit_model_decode_image";
  if (out) *out = vit_image{nullptr, 0, 0};
  return guarded(fn, [&] {
    require(model, fn, "model");
    require(out, fn, "out");
    if (!data && size) invalid(fn, "data is NULL but size is " + std::to_string(size));
    const std::string what = name && *name ? std::string(name) : std::string("image");
    vit::Image img = vit::decode_image_memory(static_cast<const uint8_t*>(data), data ? size : 0, what);
    if (model->model->cfg.preprocess.alpha_on_white) vit::composite_on_white(&img);
    auto pixels = std::make_unique<uint8_t[]>(img.rgb.size());
    std::memcpy(pixels.get(), img.rgb.data(), img.rgb.size());
    *out = vit_image{pixels.release(), img.w, img.h};
  });
}

vit_status* vit_model_preprocess_image(const vit_model* model, const vit_image* image, float* out) {
  static const char* fn = "vit_model_preprocess_image";
  return guarded(fn, [&] {
    require(model, fn, "model");
    require(image, fn, "image");
    require(out, fn, "out");
    if (!image->rgb) invalid(fn, "image->rgb is NULL");
    if (image->width < 1 || image->height < 1)
      invalid(fn, "image is " + std::to_string(image->width) + "x" + std::to_string(image->height) +
                      " pixels; width and height must be >= 1");
    const vit::ViTConfig& cfg = model->model->cfg;
    vit::Image img;
    img.w = image->width;
    img.h = image->height;
    img.rgb.assign(image->rgb, image->rgb + static_cast<size_t>(img.w) * img.h * 3);
    vit::PreprocessConfig pp = cfg.preprocess;
    pp.input_h = cfg.image_h;  // as vit_session_run_images
    pp.input_w = cfg.image_w;
    vit::preprocess_image(img, pp, out);
  });
}

void vit_image_free(vit_image* image) {
  if (!image) return;
  delete[] image->rgb;
  *image = vit_image{nullptr, 0, 0};
}

}  // extern "C"
