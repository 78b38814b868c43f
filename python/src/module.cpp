// vit_infer._vit_infer: the nanobind binding of the C API (include/vit/vit.h). Only vit_* entry
// points are called, so the module runs the same libvit as C programs do (no second engine).
// Arrays in: any host float32 array reachable through DLPack or the buffer protocol, [B, C, H, W]
// or [C, H, W], C-contiguous; it is read in place (no copy). Arrays out: numpy arrays the module
// allocates and the C API fills. The GIL is released for every run and every decode. The
// high-level API (argument coercion, labels, classify) is vit_infer/__init__.py.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vit/vit.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

// Python exception class per vit_status_code, registered by vit_infer/_errors.py at import.
nb::dict& error_classes() {
  static nb::dict* d = new nb::dict();  // leaked on purpose: outlives interpreter teardown order
  return *d;
}

// Raises the registered exception for a failed status (frees it). Needs the GIL.
void check(vit_status* st) {
  if (!st) return;
  const int code = static_cast<int>(vit_status_get_code(st));
  std::string msg = vit_status_get_message(st);
  vit_status_free(st);
  nb::object cls;
  if (error_classes().contains(nb::int_(code))) cls = error_classes()[nb::int_(code)];
  if (!cls.is_valid()) throw std::runtime_error(msg);
  PyErr_SetString(cls.ptr(), msg.c_str());
  throw nb::python_error();
}

// A fresh float32 numpy array of `shape`, owning its buffer.
nb::ndarray<nb::numpy, float> new_f32(std::vector<size_t> shape) {
  size_t n = 1;
  for (size_t d : shape) n *= d;
  float* p = new float[n ? n : 1];
  nb::capsule owner(p, [](void* q) noexcept { delete[] static_cast<float*>(q); });
  return nb::ndarray<nb::numpy, float>(p, shape.size(), shape.data(), owner);
}

template <class A>
std::string shape_str(const A& a) {
  std::string s = "[";
  for (size_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + "]";
}

template <class A>
bool c_contiguous(const A& a) {
  int64_t expect = 1;
  for (size_t i = a.ndim(); i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expect) return false;
    expect *= static_cast<int64_t>(a.shape(i));
  }
  return true;
}

struct Model {
  vit_model* m = nullptr;
  vit_model_info info{};
  int embedding_size = 0;  // vit_model_get_embedding_size
  Model(const std::string& path, const std::string& arch, int image_size, int num_heads, float eps, int pool,
        const std::string& labels_file) {
    vit_load_params p = vit_load_default_params();
    p.architecture = arch.empty() ? nullptr : arch.c_str();
    p.image_size = image_size;
    p.num_heads = num_heads;
    p.layer_norm_eps = eps;
    p.pool = static_cast<vit_pool>(pool);
    p.labels_file = labels_file.empty() ? nullptr : labels_file.c_str();
    vit_status* st;
    {
      nb::gil_scoped_release nogil;  // loading reads and converts the whole checkpoint
      st = vit_model_load(path.c_str(), &p, &m);
    }
    check(st);
    check(vit_model_get_info(m, &info));
    embedding_size = vit_model_get_embedding_size(m);
  }
  ~Model() { vit_model_free(m); }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  nb::dict info_dict() const {
    nb::dict d;
    d["image_height"] = info.image_height;
    d["image_width"] = info.image_width;
    d["patch_size"] = info.patch_size;
    d["in_chans"] = info.in_chans;
    d["hidden_size"] = info.hidden_size;
    d["embedding_size"] = embedding_size;
    d["depth"] = info.depth;
    d["num_heads"] = info.num_heads;
    d["head_dim"] = info.head_dim;
    d["mlp_size"] = info.mlp_size;
    d["num_classes"] = info.num_classes;
    d["num_tokens"] = info.num_tokens;
    d["layer_norm_eps"] = info.layer_norm_eps;
    d["pool"] = static_cast<int>(info.pool);
    d["param_count"] = info.param_count;
    d["flops_per_image"] = info.flops_per_image;
    return d;
  }
  nb::dict preprocess_dict() const {
    vit_preprocess_info p{};
    check(vit_model_get_preprocess(m, &p));
    nb::dict d;
    d["resize"] = static_cast<int>(p.resize);
    d["interpolation"] = static_cast<int>(p.interpolation);
    d["crop_pct"] = p.crop_pct;
    d["mean"] = nb::make_tuple(p.mean[0], p.mean[1], p.mean[2]);
    d["std"] = nb::make_tuple(p.std[0], p.std[1], p.std[2]);
    d["rescale"] = p.rescale;
    return d;
  }
  std::vector<std::string> labels() const {
    std::vector<std::string> out;
    for (int i = 0; i < info.num_classes; ++i) {
      const char* l = vit_model_get_label(m, i);
      if (!l) return {};
      out.emplace_back(l);
    }
    return out;
  }
  std::vector<std::string> warnings() const {
    std::vector<std::string> out;
    for (int i = 0; i < vit_model_get_warning_count(m); ++i) out.emplace_back(vit_model_get_warning(m, i));
    return out;
  }
};

// The checked view of a run's input: [B, C, H, W] float32, C-contiguous, host memory, of the
// model's run size or, when the session takes other sizes (max_image_size > 0), any H x W (the
// library names a size it cannot run). Errors are ValueError / TypeError naming what is wrong with `x`.
struct Input {
  const float* data;
  int batch, h, w;
};
Input checked_input(const nb::ndarray<nb::ro>& x, const vit_model_info& info, int max_image_size) {
  if (x.device_type() != nb::device::cpu::value)
    throw nb::type_error(("x is in device memory (DLPack device type " + std::to_string(x.device_type()) +
                          "); vit_session_run reads host memory: copy it to the host first (e.g. x.cpu())")
                             .c_str());
  if (x.dtype() != nb::dtype<float>())
    throw nb::type_error("x must be float32 (normalised pixels); convert it with x.astype(numpy.float32)");
  const std::string want = "[B, " + std::to_string(info.in_chans) + ", " + std::to_string(info.image_height) + ", " +
                           std::to_string(info.image_width) + "] or [" + std::to_string(info.in_chans) + ", " +
                           std::to_string(info.image_height) + ", " + std::to_string(info.image_width) + "]";
  if (x.ndim() != 3 && x.ndim() != 4)
    throw nb::value_error(("x has shape " + shape_str(x) + "; the model takes " + want).c_str());
  const size_t o = x.ndim() == 4 ? 1 : 0;
  const bool own = x.shape(o + 1) == static_cast<size_t>(info.image_height) &&
                   x.shape(o + 2) == static_cast<size_t>(info.image_width);
  if (x.shape(o) != static_cast<size_t>(info.in_chans) ||
      (!own && (max_image_size <= 0 || x.shape(o + 1) > 0x7fffffff || x.shape(o + 2) > 0x7fffffff)))
    throw nb::value_error(("x has shape " + shape_str(x) + "; the model takes " + want +
                           (max_image_size > 0 ? "" : " (other sizes: Session(max_image_size=...))"))
                              .c_str());
  const size_t b = x.ndim() == 4 ? x.shape(0) : 1;
  if (b == 0) throw nb::value_error("x has an empty batch (shape [0, ...]); pass at least one image");
  if (b > 0x7fffffff) throw nb::value_error("x has more than 2^31 - 1 images");
  if (!c_contiguous(x))
    throw nb::value_error(("x (shape " + shape_str(x) +
                           ") is not C-contiguous; pass numpy.ascontiguousarray(x) (the engine reads it in place)")
                              .c_str());
  return Input{static_cast<const float*>(x.data()), static_cast<int>(b), static_cast<int>(x.shape(o + 1)),
               static_cast<int>(x.shape(o + 2))};
}

struct Session {
  nb::object model_ref;  // keeps the Python Model (labels, info) alive
  Model* model;
  vit_session* s = nullptr;
  int max_batch, max_image_size;

  Session(nb::object model_obj, int device, int device_id, int precision, int max_batch_, int threads, int gemm,
          bool cuda_graphs, bool allow_tf32, int max_image_size_, const std::string& int8_calibration, bool find_calibration,
          int tome)
      : model_ref(model_obj), model(nb::cast<Model*>(model_obj)), max_batch(max_batch_),
        max_image_size(max_image_size_) {
    vit_session_params p = vit_session_default_params();  // fills any field added later
    p.device = static_cast<vit_device>(device);
    p.device_id = device_id;
    p.precision = static_cast<vit_precision>(precision);
    p.max_batch = max_batch_;
    p.num_threads = threads;
    p.gemm = static_cast<vit_gemm>(gemm);
    p.use_cuda_graphs = cuda_graphs ? 1 : 0;
    p.allow_tf32 = allow_tf32 ? 1 : 0;
    p.max_image_size = max_image_size_;
    // int8: the file, or "" (none); find_calibration: the library's default (next to the model).
    p.int8_calibration = find_calibration ? nullptr : int8_calibration.c_str();
    p.tome = tome;
    vit_status* st;
    {
      nb::gil_scoped_release nogil;  // a CUDA session times its GEMMs and captures graphs
      st = vit_session_create(model->m, &p, &s);
    }
    check(st);
  }
  ~Session() { vit_session_free(s); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Output arrays for `batch` rows with `tokens` tokens, in the order logits, embeddings,
  // attention, attention_layers, features (None where not asked), and the vit_outputs pointing into them.
  nb::tuple outputs(int batch, int tokens, bool logits, bool emb, bool attn, bool attn_layers, bool feat,
                    vit_outputs& o) {
    const vit_model_info& i = model->info;
    const size_t B = static_cast<size_t>(batch), T = static_cast<size_t>(std::max(tokens, 1));
    nb::object r[5] = {nb::none(), nb::none(), nb::none(), nb::none(), nb::none()};
    o = vit_outputs{};
    if (logits) {
      auto a = new_f32({B, static_cast<size_t>(i.num_classes)});
      o.logits = a.data();
      r[0] = nb::cast(a);
    }
    if (emb) {
      auto a = new_f32({B, static_cast<size_t>(model->embedding_size)});
      o.embeddings = a.data();
      r[1] = nb::cast(a);
    }
    if (attn) {
      auto a = new_f32({B, static_cast<size_t>(i.num_heads), T, T});
      o.attention = a.data();
      r[2] = nb::cast(a);
    }
    if (attn_layers) {
      auto a = new_f32({static_cast<size_t>(i.depth), B, T, T});
      o.attention_layers = a.data();
      r[3] = nb::cast(a);
    }
    if (feat) {
      auto a = new_f32({B, T, static_cast<size_t>(i.hidden_size)});
      o.features = a.data();
      r[4] = nb::cast(a);
    }
    return nb::make_tuple(r[0], r[1], r[2], r[3], r[4]);
  }

  nb::tuple run(const nb::ndarray<nb::ro>& x, bool logits, bool emb, bool attn, bool attn_layers, bool feat) {
    const Input in = checked_input(x, model->info, max_image_size);
    vit_outputs o;
    // A size the library refuses fails in the run, before any output is read.
    nb::tuple r = outputs(in.batch, vit_model_get_num_tokens(model->m, in.h, in.w), logits, emb, attn, attn_layers,
                          feat, o);
    vit_status* st;
    {
      nb::gil_scoped_release nogil;
      st = vit_session_run_at(s, in.data, in.batch, in.h, in.w, &o);
    }
    check(st);
    return r;
  }

  // images: uint8 [h, w, 3] C-contiguous host arrays (vit_infer/__init__.py coerces paths, bytes,
  // PIL images and other arrays to these).
  nb::tuple run_images(const std::vector<nb::ndarray<const uint8_t, nb::ndim<3>, nb::c_contig, nb::device::cpu>>& images,
                       bool logits, bool emb, bool attn, bool attn_layers, bool feat) {
    if (images.empty()) throw nb::value_error("images is empty; pass at least one image");
    std::vector<vit_image> v(images.size());
    for (size_t k = 0; k < images.size(); ++k) {
      const auto& a = images[k];
      if (a.shape(2) != 3)
        throw nb::value_error(("images[" + std::to_string(k) + "] has shape " + shape_str(a) +
                               "; an RGB image is [height, width, 3] uint8")
                                  .c_str());
      if (a.shape(0) > 0x7fffffff || a.shape(1) > 0x7fffffff)
        throw nb::value_error(("images[" + std::to_string(k) + "] is too large").c_str());
      v[k] = vit_image{a.data(), static_cast<int>(a.shape(1)), static_cast<int>(a.shape(0))};
    }
    if (images.size() > 0x7fffffff) throw nb::value_error("too many images");
    const int n = static_cast<int>(images.size());
    vit_outputs o;
    nb::tuple r = outputs(n, model->info.num_tokens, logits, emb, attn, attn_layers, feat, o);
    vit_status* st;
    {
      nb::gil_scoped_release nogil;
      st = vit_session_run_images(s, v.data(), n, &o);
    }
    check(st);
    return r;
  }

  void cancel() { vit_session_cancel(s); }
};

// vit_calibration: the int8 calibration of a model (images in, the JSON file out).
struct Calibration {
  nb::object model_ref;
  Model* model;
  vit_calibration* c = nullptr;

  Calibration(nb::object model_obj, int threads) : model_ref(model_obj), model(nb::cast<Model*>(model_obj)) {
    check(vit_calibration_create(model->m, threads, &c));
  }
  ~Calibration() { vit_calibration_free(c); }
  Calibration(const Calibration&) = delete;
  Calibration& operator=(const Calibration&) = delete;

  void add(const nb::ndarray<nb::ro>& x) {
    const Input in = checked_input(x, model->info, 0);
    vit_status* st;
    {
      nb::gil_scoped_release nogil;
      st = vit_calibration_add(c, in.data, in.batch);
    }
    check(st);
  }
  void add_images(const std::vector<nb::ndarray<const uint8_t, nb::ndim<3>, nb::c_contig, nb::device::cpu>>& images) {
    std::vector<vit_image> v;
    for (size_t k = 0; k < images.size(); ++k) {
      const auto& a = images[k];
      if (a.shape(2) != 3 || a.shape(0) > 0x7fffffff || a.shape(1) > 0x7fffffff)
        throw nb::value_error(("images[" + std::to_string(k) + "] has shape " + shape_str(a) +
                               "; an RGB image is [height, width, 3] uint8")
                                  .c_str());
      v.push_back(vit_image{a.data(), static_cast<int>(a.shape(1)), static_cast<int>(a.shape(0))});
    }
    if (v.empty() || v.size() > 0x7fffffff) throw nb::value_error("images: pass 1.. images");
    vit_status* st;
    {
      nb::gil_scoped_release nogil;
      st = vit_calibration_add_images(c, v.data(), static_cast<int>(v.size()));
    }
    check(st);
  }
  int64_t image_count() const { return vit_calibration_get_image_count(c); }
  void save(const std::string& path) { check(vit_calibration_save(c, path.empty() ? nullptr : path.c_str())); }
};

// Decoded RGB8 pixels [h, w, 3] uint8, owned by the array (the library's buffer, not copied);
// with a model, decoded as its framework reads an image (vit_model_decode_image).
nb::ndarray<nb::numpy, uint8_t> decode_image_for(const vit_model* model, nb::bytes data, const std::string& name) {
  vit_image img{};
  vit_status* st;
  {
    nb::gil_scoped_release nogil;  // `data` stays referenced by the caller's frame
    st = model ? vit_model_decode_image(model, data.c_str(), data.size(), name.c_str(), &img)
               : vit_image_decode(data.c_str(), data.size(), name.c_str(), &img);
  }
  check(st);
  auto* held = new vit_image(img);
  nb::capsule owner(held, [](void* p) noexcept {
    vit_image_free(static_cast<vit_image*>(p));
    delete static_cast<vit_image*>(p);
  });
  size_t shape[3] = {static_cast<size_t>(img.height), static_cast<size_t>(img.width), 3};
  return nb::ndarray<nb::numpy, uint8_t>(const_cast<uint8_t*>(img.rgb), 3, shape, owner);
}

nb::ndarray<nb::numpy, uint8_t> decode_image(nb::bytes data, const std::string& name) {
  return decode_image_for(nullptr, data, name);
}

}  // namespace

NB_MODULE(_vit_infer, m) {
  m.doc() = "Binding of the vit-infer C API (libvit). Use the vit_infer package, not this module.";
  m.attr("api_version") = VIT_API_VERSION;
  m.def(
      "_precisions",
      [] {
        nb::dict d;
        for (int v = 0; const char* name = vit_precision_name(static_cast<vit_precision>(v)); ++v) d[name] = v;
        return d;
      },
      "The run precisions (vit_precision_name): name -> vit_precision value.");
  m.def("version", [] { return std::string(vit_version()); }, "The version of the libvit actually loaded.");
  m.def("status_code_name", [](int code) { return std::string(vit_status_code_name(static_cast<vit_status_code>(code))); },
        "code"_a, "Short name of a vit_status_code value.");
  m.def("_register_errors", [](nb::dict d) { error_classes() = d; }, "classes"_a,
        "Sets the exception class raised for each vit_status_code (vit_infer/_errors.py).");
  m.def("decode_image", &decode_image, "data"_a, "name"_a = "image",
        "Decodes PNG / JPEG bytes to RGB8 [h, w, 3] uint8 as vit-infer classify does.");

  nb::class_<Model>(m, "Model", "A loaded checkpoint (vit_model).")
      .def(nb::init<const std::string&, const std::string&, int, int, float, int, const std::string&>(), "path"_a,
           "architecture"_a = "", "image_size"_a = 0, "num_heads"_a = 0, "layer_norm_eps"_a = 0.0f, "pool"_a = 0,
           "labels_file"_a = "")
      .def("info", &Model::info_dict, "vit_model_get_info as a dict.")
      .def("preprocess", &Model::preprocess_dict, "vit_model_get_preprocess as a dict.")
      .def("decode_image", [](const Model& self, nb::bytes data, const std::string& name) {
             return decode_image_for(self.m, data, name);
           }, "data"_a, "name"_a = "image", "vit_model_decode_image: PNG / JPEG bytes as this model's framework reads them.")
      .def("labels", &Model::labels, "Class labels (empty when the model has none).")
      .def("warnings", &Model::warnings, "Load warnings (NaN/Inf weights, ...).")
      .def("describe", [](const Model& self) { return std::string(vit_model_describe(self.m)); },
           "The resolved configuration as `vit-infer info` prints it.");

  nb::class_<Session>(m, "Session", "An engine instance (vit_session).")
      .def(nb::init<nb::object, int, int, int, int, int, int, bool, bool, int, const std::string&, bool, int>(), "model"_a,
           "device"_a, "device_id"_a, "precision"_a, "max_batch"_a, "threads"_a, "gemm"_a, "cuda_graphs"_a,
           "allow_tf32"_a, "max_image_size"_a = 0, "int8_calibration"_a = "", "find_calibration"_a = true,
           "tome"_a = 0)
      .def_ro("max_batch", &Session::max_batch)
      .def("run", &Session::run, "x"_a, "logits"_a, "embeddings"_a, "attention"_a, "attention_layers"_a,
           "features"_a,
           "vit_session_run_at on a float32 array at its own size; returns (logits, embeddings, attention, attention_layers, features).")
      .def("run_images", &Session::run_images, "images"_a, "logits"_a, "embeddings"_a, "attention"_a,
           "attention_layers"_a, "features"_a, "vit_session_run_images on uint8 [h, w, 3] arrays.")
      .def("cancel", &Session::cancel, "vit_session_cancel: stops the run in progress (or the next one).");

  nb::class_<Calibration>(m, "Calibration", "int8 calibration statistics being collected (vit_calibration).")
      .def(nb::init<nb::object, int>(), "model"_a, "threads"_a = 0)
      .def("add", &Calibration::add, "x"_a, "vit_calibration_add on a float32 [B, C, H, W] array (normalised).")
      .def("add_images", &Calibration::add_images, "images"_a, "vit_calibration_add_images on uint8 [h, w, 3] arrays.")
      .def_prop_ro("image_count", &Calibration::image_count)
      .def("save", &Calibration::save, "path"_a = "",
           "vit_calibration_save: the JSON file ('' : int8_calibration.json next to the model).");

  // The pointer a run would read for `x`, after the same checks: lets tests prove that an input
  // is not copied (it equals the producer's own data pointer).
  m.def("_input_address",
        [](const Model& model, const nb::ndarray<nb::ro>& x) {
          return reinterpret_cast<uintptr_t>(checked_input(x, model.info, 0).data);
        },
        "model"_a, "x"_a);
}
