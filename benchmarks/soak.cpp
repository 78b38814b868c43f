// vit-soak: a long-running stability check of ONE session through the public C API
// (include/vit/vit.h), on the CPU or on a CUDA device. For --minutes it runs random batch sizes
// 1..max_batch, interleaving vit_session_run (host [B, C, H, W] fp32 normalised tensors) and
// vit_session_run_images (raw RGB8 [h, w, 3] images of random sizes); every --check-every
// iterations it re-runs fixed reference inputs (one tensor batch, one image batch) and requires
// logits + embeddings ([B, num_classes], [B, hidden] fp32) bit-identical to their first run.
// Every --sample-s seconds it samples host RSS (/proc/self/status VmRSS) and, for a CUDA
// session, device memory in use (cudaMemGetInfo). After the warm-up fraction each series must
// stay within its drift bound (max - min of the later samples). A failed status or a non-finite
// output is an error. Prints a summary (and --json); exit 0 only on a pass, 1 on a fail, 2 when
// it could not start. Linked against libvit only: everything goes through the C API.
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/precision.h"
#include "vit/vit.h"

#ifdef VIT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#ifndef VIT_GIT_HASH
#define VIT_GIT_HASH "unknown"
#endif

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Options {
  double minutes = 10.0;
  std::string device = "cpu";
  int device_id = 0;
  std::string model;  // empty: --arch, else the bundled demo model
  std::string arch;   // random weights of this timm architecture
  int depth = 0;      // --arch overrides (0: the architecture's)
  int image_size = 0;
  int num_classes = 1000;
  std::string precision = "fp32";
  int max_batch = 32;
  int threads = 0;
  int use_cuda_graphs = 1;
  double images_fraction = 0.5;  // share of iterations that go through vit_session_run_images
  int min_side = 16, max_side = 320;
  int check_every = 25;
  int ref_batch = 5;
  int ref_images = 3;
  double sample_s = 5.0;
  double warmup_fraction = 0.2;
  double max_host_drift_mib = 32.0;
  double max_device_drift_mib = 16.0;
  uint64_t seed = 1;
  std::string json_path;
  bool quiet = false;
};

// Thrown by the harness itself for a failure to start (bad option, model that does not load).
struct StartError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Takes ownership of st. Empty string: success; else "<code name>: <message>".
std::string take(vit_status* st, vit_status_code* code = nullptr) {
  if (code) *code = vit_status_get_code(st);
  if (!st) return {};
  std::string m = std::string(vit_status_code_name(vit_status_get_code(st))) + ": " + vit_status_get_message(st);
  vit_status_free(st);
  return m;
}

// ---- memory sampling -------------------------------------------------------------------

// VmRSS of this process in bytes, -1 if /proc is unreadable.
int64_t host_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream is(line.substr(6));
      int64_t kib = -1;
      is >> kib;
      return kib < 0 ? -1 : kib * 1024;
    }
  }
  return -1;
}

// Device memory in use (whole device: total - free), -1 for a CPU session or without CUDA.
int64_t device_used_bytes(bool cuda, int device_id) {
#ifdef VIT_WITH_CUDA
  if (!cuda) return -1;
  if (cudaSetDevice(device_id) != cudaSuccess) {
    (void)cudaGetLastError();
    return -1;
  }
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    (void)cudaGetLastError();
    return -1;
  }
  return static_cast<int64_t>(total_b - free_b);
#else
  (void)cuda;
  (void)device_id;
  return -1;
#endif
}

struct Sample {
  double t = 0;
  long iteration = 0;
  int64_t host_rss = -1;
  int64_t device_used = -1;
};

struct Drift {
  int64_t min = -1, max = -1, first = -1, last = -1;
  bool measured() const { return min >= 0; }
  int64_t drift() const { return measured() ? max - min : -1; }
};

Drift drift_of(const std::vector<Sample>& s, size_t from, int64_t Sample::*field) {
  Drift d;
  for (size_t i = from; i < s.size(); ++i) {
    const int64_t v = s[i].*field;
    if (v < 0) return Drift{};
    if (d.min < 0 || v < d.min) d.min = v;
    if (v > d.max) d.max = v;
    if (d.first < 0) d.first = v;
    d.last = v;
  }
  return d;
}

// ---- machine description ---------------------------------------------------------------

json machine_json() {
  json m;
  utsname u{};
  if (uname(&u) == 0) {
    m["hostname"] = u.nodename;
    m["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.machine;
  }
  std::ifstream cpu("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpu, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      if (c != std::string::npos) m["cpu"] = line.substr(c + 2);
      break;
    }
  }
  m["online_cpus"] = sysconf(_SC_NPROCESSORS_ONLN);
  std::ifstream mem("/proc/meminfo");
  while (std::getline(mem, line)) {
    if (line.rfind("MemTotal:", 0) == 0) {
      std::istringstream is(line.substr(9));
      int64_t kib = 0;
      is >> kib;
      m["mem_total_mib"] = kib / 1024;
      break;
    }
  }
#ifdef VIT_WITH_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) == cudaSuccess && n > 0) {
    json g = json::array();
    for (int i = 0; i < n; ++i) {
      cudaDeviceProp p{};
      if (cudaGetDeviceProperties(&p, i) == cudaSuccess)
        g.push_back({{"name", p.name}, {"sm", p.major * 10 + p.minor}, {"memory_mib", p.totalGlobalMem >> 20}});
    }
    m["gpus"] = g;
  } else {
    (void)cudaGetLastError();
  }
#endif
  return m;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// ---- model: the bundled demo, a path, or random weights ---------------------------------

// The demo model as vit-infer finds it: $VIT_INFER_MODEL, then models/demo next to the build
// tree of this executable (<src>/build-x/benchmarks/vit-soak), then the configure-time source.
std::string default_model() {
  if (const char* env = std::getenv("VIT_INFER_MODEL"); env && *env) return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> cands;
  if (!ec) {
    cands.push_back(exe.parent_path() / ".." / "models" / "demo");
    cands.push_back(exe.parent_path() / ".." / ".." / "models" / "demo");
  }
#ifdef VIT_SOURCE_DIR
  cands.push_back(fs::path(VIT_SOURCE_DIR) / "models" / "demo");
#endif
  std::string looked;
  for (const fs::path& p : cands) {
    if (fs::exists(p / "config.json", ec)) return fs::weakly_canonical(p, ec).string();
    looked += " " + p.string();
  }
  throw StartError("no --model / --arch given and the demo model was not found; looked in:" + looked);
}

// Sizes of a timm "vit_{tiny,small,base,large,huge}_patch{P}_{S}" name (tag after '.' ignored).
struct ArchShape {
  int hidden = 0, depth = 0, heads = 0, mlp = 0, patch = 0, image = 0;
};

ArchShape parse_arch(const std::string& name) {
  const std::string base = name.substr(0, name.find('.'));
  static const std::regex re(R"(vit_(tiny|small|base|large|huge)_patch(\d+)_(?:clip_)?(\d+)(?:_.*)?)");
  std::smatch m;
  if (!std::regex_match(base, m, re)) {
    throw StartError("--arch: '" + name + "' is not vit_{tiny,small,base,large,huge}_patch<P>_<size>");
  }
  ArchShape a;
  const std::string v = m[1];
  if (v == "tiny") a = {192, 12, 3, 768, 0, 0};
  if (v == "small") a = {384, 12, 6, 1536, 0, 0};
  if (v == "base") a = {768, 12, 12, 3072, 0, 0};
  if (v == "large") a = {1024, 24, 16, 4096, 0, 0};
  if (v == "huge") a = {1280, 32, 16, 5120, 0, 0};
  a.patch = std::stoi(m[2]);
  a.image = std::stoi(m[3]);
  return a;
}

// Writes <dir>/model.safetensors (timm names, F32, random values: Linear U(+-sqrt(3/fan_in)),
// biases U(+-0.1), cls/pos U(+-0.5), LayerNorm weight U(0.8, 1.2)) and <dir>/config.json
// (architecture + model_args + pretrained_cfg), so that vit_model_load reads it like a hub
// checkpoint. A tiny writer: one JSON header, tensors back to back in header order.
void write_random_model(const fs::path& dir, const std::string& arch, const ArchShape& a, int num_classes,
                        uint64_t seed) {
  struct T {
    std::string name;
    std::vector<int64_t> shape;
    float lo, hi;
  };
  const int64_t D = a.hidden, I = a.mlp, P = a.patch, C = num_classes;
  const int64_t N = static_cast<int64_t>(a.image / a.patch) * (a.image / a.patch);
  auto lin = [](int64_t fan_in) { return std::sqrt(3.0f / static_cast<float>(fan_in)); };
  std::vector<T> ts;
  ts.push_back({"cls_token", {1, 1, D}, -0.5f, 0.5f});
  ts.push_back({"pos_embed", {1, N + 1, D}, -0.5f, 0.5f});
  ts.push_back({"patch_embed.proj.weight", {D, 3, P, P}, -lin(3 * P * P), lin(3 * P * P)});
  ts.push_back({"patch_embed.proj.bias", {D}, -0.1f, 0.1f});
  for (int i = 0; i < a.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    ts.push_back({b + "norm1.weight", {D}, 0.8f, 1.2f});
    ts.push_back({b + "norm1.bias", {D}, -0.1f, 0.1f});
    ts.push_back({b + "attn.qkv.weight", {3 * D, D}, -lin(D), lin(D)});
    ts.push_back({b + "attn.qkv.bias", {3 * D}, -0.1f, 0.1f});
    ts.push_back({b + "attn.proj.weight", {D, D}, -lin(D), lin(D)});
    ts.push_back({b + "attn.proj.bias", {D}, -0.1f, 0.1f});
    ts.push_back({b + "norm2.weight", {D}, 0.8f, 1.2f});
    ts.push_back({b + "norm2.bias", {D}, -0.1f, 0.1f});
    ts.push_back({b + "mlp.fc1.weight", {I, D}, -lin(D), lin(D)});
    ts.push_back({b + "mlp.fc1.bias", {I}, -0.1f, 0.1f});
    ts.push_back({b + "mlp.fc2.weight", {D, I}, -lin(I), lin(I)});
    ts.push_back({b + "mlp.fc2.bias", {D}, -0.1f, 0.1f});
  }
  ts.push_back({"norm.weight", {D}, 0.8f, 1.2f});
  ts.push_back({"norm.bias", {D}, -0.1f, 0.1f});
  if (C > 0) {
    ts.push_back({"head.weight", {C, D}, -lin(D), lin(D)});
    ts.push_back({"head.bias", {C}, -0.1f, 0.1f});
  }
  json header = json::object();
  int64_t off = 0;
  for (const T& t : ts) {
    int64_t n = 1;
    for (int64_t s : t.shape) n *= s;
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {off, off + n * 4}}};
    off += n * 4;
  }
  header["__metadata__"] = {{"format", "pt"}, {"generator", "vit-soak random weights, seed " + std::to_string(seed)}};
  const std::string hs = header.dump();
  fs::create_directories(dir);
  std::ofstream f(dir / "model.safetensors", std::ios::binary);
  const uint64_t hn = hs.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(hn >> (8 * i));  // little-endian u64
  f.write(reinterpret_cast<const char*>(len), 8);
  f.write(hs.data(), static_cast<std::streamsize>(hs.size()));
  // xorshift64: fast enough for 86M values; the values only need to be non-degenerate.
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
  if (s == 0) s = 1;
  std::vector<float> buf;
  for (const T& t : ts) {
    int64_t n = 1;
    for (int64_t v : t.shape) n *= v;
    buf.resize(static_cast<size_t>(n));
    for (float& v : buf) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      v = t.lo + (t.hi - t.lo) * static_cast<float>(s >> 40) * (1.0f / 16777216.0f);
    }
    f.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(n * 4));  // host is little-endian
  }
  if (!f) throw StartError("cannot write " + (dir / "model.safetensors").string());
  json cfg = {{"architecture", arch},
              {"num_classes", C},
              {"num_features", D},
              {"global_pool", "token"},
              {"model_args",
               {{"img_size", {a.image, a.image}},
                {"patch_size", a.patch},
                {"embed_dim", D},
                {"depth", a.depth},
                {"num_heads", a.heads},
                {"mlp_ratio", static_cast<double>(I) / static_cast<double>(D)},
                {"num_classes", C},
                {"global_pool", "token"},
                {"in_chans", 3}}},
              {"pretrained_cfg",
               {{"input_size", {3, a.image, a.image}},
                {"interpolation", "bicubic"},
                {"crop_pct", 0.9},
                {"crop_mode", "center"},
                {"mean", {0.5, 0.5, 0.5}},
                {"std", {0.5, 0.5, 0.5}},
                {"num_classes", C}}}};
  std::ofstream c(dir / "config.json");
  c << cfg.dump(2) << "\n";
  if (!c) throw StartError("cannot write " + (dir / "config.json").string());
}

// ---- the soak --------------------------------------------------------------------------

struct RgbImage {
  int w = 0, h = 0;
  std::vector<uint8_t> rgb;  // [h, w, 3] uint8
};

// Outputs of one run; the buffers are poisoned with NaN before every run, so a run that
// skips writing an element is reported as a non-finite output.
struct OutBufs {
  std::vector<float> logits, emb;  // [B, C], [B, D] fp32
  vit_outputs o{};
  void prepare(int b, int C, int D) {
    logits.assign(static_cast<size_t>(C) * b, NAN);
    emb.assign(static_cast<size_t>(D) * b, NAN);
    o = vit_outputs{};
    o.logits = C > 0 ? logits.data() : nullptr;
    o.embeddings = emb.data();
  }
  bool finite() const {
    for (float v : logits)
      if (!std::isfinite(v)) return false;
    for (float v : emb)
      if (!std::isfinite(v)) return false;
    return true;
  }
  bool same(const OutBufs& r) const {
    return logits.size() == r.logits.size() && emb.size() == r.emb.size() &&
           std::memcmp(logits.data(), r.logits.data(), logits.size() * sizeof(float)) == 0 &&
           std::memcmp(emb.data(), r.emb.data(), emb.size() * sizeof(float)) == 0;
  }
};

int soak(const Options& o) {
  const bool cuda = o.device == "cuda";
  if (!cuda && o.device != "cpu") throw StartError("--device: '" + o.device + "' is not cpu | cuda");
  if (!o.model.empty() && !o.arch.empty()) throw StartError("--model and --arch are exclusive");

  // Model.
  std::string model_path = o.model;
  fs::path tmp_dir;
  if (!o.arch.empty()) {
    ArchShape a = parse_arch(o.arch);
    if (o.depth > 0) a.depth = o.depth;
    if (o.image_size > 0) a.image = o.image_size;
    if (a.image % a.patch != 0) throw StartError("--image-size must be a multiple of the patch size");
    std::string tmpl = (fs::temp_directory_path() / "vit-soak-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw StartError("cannot create a temporary directory under " + fs::temp_directory_path().string());
    tmp_dir = tmpl;
    std::fprintf(stderr, "vit-soak: writing random %s weights (depth %d, %dx%d) to %s\n", o.arch.c_str(), a.depth,
                 a.image, a.image, tmp_dir.c_str());
    write_random_model(tmp_dir, o.arch, a, o.num_classes, o.seed);
    model_path = tmp_dir.string();
  } else if (model_path.empty()) {
    model_path = default_model();
  }
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      if (!dir.empty()) fs::remove_all(dir, ec);
    }
  } cleanup{tmp_dir};

  vit_load_params lp = vit_load_default_params();
  vit_model* model = nullptr;
  if (std::string e = take(vit_model_load(model_path.c_str(), &lp, &model)); !e.empty())
    throw StartError("loading " + model_path + ": " + e);
  vit_model_info info{};
  if (std::string e = take(vit_model_get_info(model, &info)); !e.empty()) {
    vit_model_free(model);
    throw StartError("model info: " + e);
  }
  const int embedding_size = vit_model_get_embedding_size(model);  // read before the model is freed below
  vit_session_params sp = vit_session_default_params();
  sp.device = cuda ? VIT_DEVICE_CUDA : VIT_DEVICE_CPU;
  sp.device_id = o.device_id;
  if (const vit::PrecisionInfo* p = vit::find_precision(o.precision)) {
    sp.precision = static_cast<vit_precision>(p->c_value);
  } else {
    vit_model_free(model);
    throw StartError("--precision: '" + o.precision + "' is not " + vit::precision_names());
  }
  sp.max_batch = o.max_batch;
  sp.num_threads = o.threads;
  sp.use_cuda_graphs = o.use_cuda_graphs;
  vit_session* session = nullptr;
  if (std::string e = take(vit_session_create(model, &sp, &session)); !e.empty()) {
    vit_model_free(model);
    throw StartError("creating the " + o.device + " session: " + e);
  }
  // The session keeps its own reference to the weights; the model handle is not needed.
  vit_model_free(model);

  // Inputs. A pool of 2 x max_batch tensor images (each batch starts at a random offset) and
  // of 2 x max_batch RGB8 images of random sizes (each image batch is a random window), all
  // made before the loop so the harness's own memory is constant.
  const int C = info.num_classes, D = embedding_size;
  const int64_t per_img = int64_t{info.in_chans} * info.image_height * info.image_width;
  std::mt19937_64 rng(o.seed ^ 0x5eedULL);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> pool(static_cast<size_t>(per_img) * 2 * o.max_batch);  // [2*max_batch, C, H, W]
  for (float& v : pool) v = u(rng);
  std::uniform_int_distribution<int> pick_side(o.min_side, o.max_side);
  std::uniform_int_distribution<int> pick_byte(0, 255);
  std::vector<RgbImage> imgs(static_cast<size_t>(2 * o.max_batch));
  int64_t img_bytes = 0;
  for (RgbImage& im : imgs) {
    im.w = pick_side(rng);
    im.h = pick_side(rng);
    im.rgb.resize(static_cast<size_t>(im.w) * im.h * 3);
    // Smooth gradients plus noise: resampling sees both edges and flat regions.
    const int r0 = pick_byte(rng), g0 = pick_byte(rng), b0 = pick_byte(rng);
    for (int y = 0; y < im.h; ++y)
      for (int x = 0; x < im.w; ++x) {
        uint8_t* p = &im.rgb[(static_cast<size_t>(y) * im.w + x) * 3];
        const int n = pick_byte(rng) / 8;
        p[0] = static_cast<uint8_t>((r0 + x * 255 / im.w + n) & 255);
        p[1] = static_cast<uint8_t>((g0 + y * 255 / im.h + n) & 255);
        p[2] = static_cast<uint8_t>((b0 + (x + y) * 128 / (im.w + im.h) + n) & 255);
      }
    img_bytes += static_cast<int64_t>(im.rgb.size());
  }
  std::vector<vit_image> views(imgs.size());
  for (size_t i = 0; i < imgs.size(); ++i) views[i] = {imgs[i].rgb.data(), imgs[i].w, imgs[i].h};
  const int ref_b = std::min(o.ref_batch, o.max_batch);
  const int ref_n = std::min(o.ref_images, o.max_batch);

  long iterations = 0, tensor_runs = 0, image_runs = 0, images = 0, errors = 0, nonfinite = 0;
  long ref_checks = 0, ref_mismatches = 0;
  std::map<std::string, long> errors_by_code;
  std::map<int, long> hist_tensor, hist_images;
  std::string first_error;
  std::vector<Sample> samples;
  OutBufs out, ref_t_out, ref_i_out, ref_t_first, ref_i_first;
  bool have_ref_t = false, have_ref_i = false;

  // The soak clock starts after the first reference runs (below), which pay the session's
  // first-use costs (arena, GEMM choice, graph capture): --minutes is time spent serving.
  auto t0 = Clock::now();
  const double budget_s = o.minutes * 60.0;
  auto now_s = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  auto note_error = [&](const std::string& code, const std::string& m) {
    ++errors;
    ++errors_by_code[code];
    if (first_error.empty()) first_error = m;
    if (errors <= 10) std::fprintf(stderr, "vit-soak: error at iteration %ld: %s\n", iterations, m.c_str());
  };
  // Runs one batch; true on success with finite outputs.
  auto run_once = [&](bool as_images, int first, int b, OutBufs* ob, const char* what) {
    ob->prepare(b, C, D);
    vit_status_code code = VIT_OK;
    const std::string e =
        as_images ? take(vit_session_run_images(session, views.data() + first, b, &ob->o), &code)
                  : take(vit_session_run(session, pool.data() + static_cast<size_t>(first) * per_img, b, &ob->o), &code);
    if (!e.empty()) {
      note_error(vit_status_code_name(code), std::string(what) + " (batch " + std::to_string(b) + "): " + e);
      return false;
    }
    if (!ob->finite()) {
      ++nonfinite;
      note_error("non-finite output", std::string(what) + " (batch " + std::to_string(b) + "): non-finite output");
      return false;
    }
    return true;
  };
  auto check_refs = [&] {
    // Reference tensor batch: pool[0 .. ref_b); reference image batch: imgs[0 .. ref_n).
    if (run_once(false, 0, ref_b, &ref_t_out, "reference tensor run")) {
      if (!have_ref_t) {
        ref_t_first = ref_t_out;
        have_ref_t = true;
      } else {
        ++ref_checks;
        if (!ref_t_out.same(ref_t_first)) {
          ++ref_mismatches;
          note_error("determinism", "reference tensor batch outputs differ from its first run");
        }
      }
    }
    if (run_once(true, 0, ref_n, &ref_i_out, "reference image run")) {
      if (!have_ref_i) {
        ref_i_first = ref_i_out;
        have_ref_i = true;
      } else {
        ++ref_checks;
        if (!ref_i_out.same(ref_i_first)) {
          ++ref_mismatches;
          note_error("determinism", "reference image batch outputs differ from its first run");
        }
      }
    }
  };

  std::fprintf(stderr,
               "vit-soak: %s session, model %s (%dx%d, D %d, depth %d, %d classes), max_batch %d, %.1f min\n",
               o.device.c_str(), model_path.c_str(), info.image_width, info.image_height, D, info.depth, C,
               o.max_batch, o.minutes);
  check_refs();
  t0 = Clock::now();
  samples.push_back({0.0, 0, host_rss_bytes(), device_used_bytes(cuda, o.device_id)});
  std::uniform_int_distribution<int> pick_b(1, o.max_batch), pick_off(0, o.max_batch);
  std::uniform_real_distribution<double> pick_kind(0.0, 1.0);
  double next_sample = o.sample_s;
  while (now_s() < budget_s) {
    const bool as_images = pick_kind(rng) < o.images_fraction;
    const int b = pick_b(rng);
    const int off = pick_off(rng);
    if (run_once(as_images, off, b, &out, as_images ? "run_images" : "run")) images += b;
    (as_images ? hist_images : hist_tensor)[b]++;
    (as_images ? image_runs : tensor_runs)++;
    ++iterations;
    if (o.check_every > 0 && iterations % o.check_every == 0) check_refs();
    const double t = now_s();
    if (t >= next_sample) {
      samples.push_back({t, iterations, host_rss_bytes(), device_used_bytes(cuda, o.device_id)});
      next_sample = t + o.sample_s;
      if (!o.quiet)
        std::fprintf(stderr, "[vit-soak %6.0fs] it %ld, %ld images, rss %.1f MiB%s, ref checks %ld, errors %ld\n", t,
                     iterations, images, samples.back().host_rss / 1048576.0,
                     cuda ? (", device " + std::to_string(samples.back().device_used >> 20) + " MiB").c_str() : "",
                     ref_checks, errors);
    }
  }
  check_refs();  // the run always ends with a determinism check
  const double elapsed = now_s();
  samples.push_back({elapsed, iterations, host_rss_bytes(), device_used_bytes(cuda, o.device_id)});
  vit_session_free(session);

  size_t from = 0;
  while (from + 1 < samples.size() && samples[from].t < o.warmup_fraction * elapsed) ++from;
  const Drift host = drift_of(samples, from, &Sample::host_rss);
  const Drift dev = drift_of(samples, from, &Sample::device_used);
  const Drift host_all = drift_of(samples, 0, &Sample::host_rss);
  const bool host_ok = host.measured() && host.drift() <= static_cast<int64_t>(o.max_host_drift_mib * 1048576.0);
  const bool dev_ok = !cuda || (dev.measured() && dev.drift() <= static_cast<int64_t>(o.max_device_drift_mib * 1048576.0));
  const bool enough_samples = samples.size() - from >= 2;
  const bool pass = errors == 0 && ref_checks >= 2 && host_ok && dev_ok && enough_samples;
  std::vector<std::string> why;  // the reasons of a FAIL, printed and in the JSON
  if (errors > 0) why.push_back(std::to_string(errors) + " errors");
  if (ref_checks < 2) why.push_back("fewer than 2 determinism checks (lower --check-every or run longer)");
  if (!enough_samples) why.push_back("fewer than 2 memory samples after warm-up (lower --sample-s or run longer)");
  if (enough_samples && !host_ok) why.push_back("host RSS drift above the limit (or unreadable)");
  if (enough_samples && !dev_ok) why.push_back("device memory drift above the limit (or unreadable)");
  const auto mib = [](int64_t b) { return b / 1048576.0; };

  std::printf("vit-soak: %s %s, model %s, max_batch %d\n", o.device.c_str(), o.precision.c_str(), model_path.c_str(),
              o.max_batch);
  std::printf("  %.1f s, %ld iterations (%ld run, %ld run_images), %ld images (%.1f img/s)\n", elapsed, iterations,
              tensor_runs, image_runs, images, elapsed > 0 ? images / elapsed : 0.0);
  std::printf("  determinism: %ld reference checks, %ld mismatches\n", ref_checks, ref_mismatches);
  std::printf("  errors %ld (non-finite %ld)%s%s\n", errors, nonfinite, first_error.empty() ? "" : "; first: ",
              first_error.c_str());
  std::printf("  host RSS: whole run %.1f..%.1f MiB; after warm-up (%zu of %zu samples, t >= %.0f s) %.1f..%.1f MiB, "
              "drift %.2f MiB (limit %.1f)\n",
              mib(host_all.min), mib(host_all.max), samples.size() - from, samples.size(), samples[from].t,
              mib(host.min), mib(host.max), mib(host.drift()), o.max_host_drift_mib);
  if (cuda)
    std::printf("  device memory in use after warm-up: %.1f..%.1f MiB, drift %.2f MiB (limit %.1f)\n", mib(dev.min),
                mib(dev.max), mib(dev.drift()), o.max_device_drift_mib);
  std::string reasons;
  for (const std::string& w : why) reasons += (reasons.empty() ? ": " : "; ") + w;
  std::printf("  %s%s\n", pass ? "PASS" : "FAIL", reasons.c_str());

  if (!o.json_path.empty()) {
    const char* env_hash = std::getenv("VIT_GIT_HASH");
    json j;
    j["tool"] = "vit-soak";
    j["date_utc"] = utc_now();
    j["commit"] = env_hash && *env_hash ? env_hash : VIT_GIT_HASH;
    j["library_version"] = vit_version();
    j["machine"] = machine_json();
    j["config"] = {{"device", o.device},
                   {"device_id", o.device_id},
                   {"precision", o.precision},
                   {"model", o.arch.empty() ? model_path : "random weights (" + o.arch + ")"},
                   {"arch", o.arch},
                   {"max_batch", o.max_batch},
                   {"threads", o.threads},
                   {"minutes", o.minutes},
                   {"images_fraction", o.images_fraction},
                   {"image_sides", {o.min_side, o.max_side}},
                   {"check_every", o.check_every},
                   {"ref_batch", ref_b},
                   {"ref_images", ref_n},
                   {"sample_s", o.sample_s},
                   {"warmup_fraction", o.warmup_fraction},
                   {"max_host_drift_mib", o.max_host_drift_mib},
                   {"max_device_drift_mib", o.max_device_drift_mib},
                   {"seed", o.seed}};
    j["model_info"] = {{"image", {info.image_height, info.image_width}}, {"patch", info.patch_size},
                       {"hidden", D},   {"depth", info.depth},         {"heads", info.num_heads},
                       {"mlp", info.mlp_size},                         {"classes", C},
                       {"tokens", info.num_tokens},                    {"params", info.param_count},
                       {"flops_per_image", info.flops_per_image}};
    j["elapsed_s"] = elapsed;
    j["iterations"] = iterations;
    j["tensor_runs"] = tensor_runs;
    j["image_runs"] = image_runs;
    j["images"] = images;
    j["images_per_s"] = elapsed > 0 ? images / elapsed : 0.0;
    json h = json::object();
    for (int b = 1; b <= o.max_batch; ++b) {
      const long nt = hist_tensor.count(b) ? hist_tensor[b] : 0, ni = hist_images.count(b) ? hist_images[b] : 0;
      h[std::to_string(b)] = {{"run", nt}, {"run_images", ni}};
    }
    j["batch_histogram"] = h;
    j["rgb_image_pool"] = {{"count", imgs.size()}, {"bytes", img_bytes}};
    j["errors"] = errors;
    j["errors_by_kind"] = errors_by_code;
    j["nonfinite_outputs"] = nonfinite;
    j["first_error"] = first_error;
    j["determinism"] = {{"reference_checks", ref_checks}, {"mismatches", ref_mismatches}};
    j["host_rss"] = {{"whole_run_min", host_all.min}, {"whole_run_max", host_all.max},
                     {"after_warmup_min", host.min},  {"after_warmup_max", host.max},
                     {"after_warmup_first", host.first}, {"after_warmup_last", host.last},
                     {"drift", host.drift()},         {"limit", static_cast<int64_t>(o.max_host_drift_mib * 1048576.0)},
                     {"ok", host_ok}};
    if (cuda)
      j["device_memory"] = {{"after_warmup_min", dev.min}, {"after_warmup_max", dev.max}, {"drift", dev.drift()},
                            {"limit", static_cast<int64_t>(o.max_device_drift_mib * 1048576.0)}, {"ok", dev_ok}};
    json sj = json::array();
    for (const Sample& s : samples) {
      json e = {{"t", s.t}, {"iteration", s.iteration}, {"host_rss", s.host_rss}};
      if (cuda) e["device_used"] = s.device_used;
      sj.push_back(e);
    }
    j["samples"] = sj;
    j["warmup_samples"] = from;
    j["pass"] = pass;
    j["fail_reasons"] = why;
    std::ofstream f(o.json_path);
    f << j.dump(2) << "\n";
    if (!f) std::fprintf(stderr, "vit-soak: cannot write %s\n", o.json_path.c_str());
  }
  return pass ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"vit-soak: mixed batch sizes (tensors and raw images) through one session of the C API; "
               "checks that outputs stay bit-identical, memory stays flat and no run fails"};
  app.add_option("--minutes", o.minutes, "duration")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--device", o.device, "cpu | cuda")->capture_default_str();
  app.add_option("--device-id", o.device_id, "CUDA device ordinal")->capture_default_str();
  app.add_option("--model", o.model, "checkpoint (.safetensors / .npz / directory); default: the bundled demo model");
  app.add_option("--arch", o.arch, "random weights of this timm architecture (e.g. vit_base_patch16_224)");
  app.add_option("--depth", o.depth, "with --arch: number of blocks (0: the architecture's)")->check(CLI::NonNegativeNumber);
  app.add_option("--image-size", o.image_size, "with --arch: image side (0: the architecture's)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--num-classes", o.num_classes, "with --arch: classes of the head")->capture_default_str()->check(
      CLI::Range(1, 100000));
  app.add_option("--precision", o.precision, "fp32 | fp16 | bf16 (the CPU runs fp32 and bf16)")->capture_default_str();
  app.add_option("--max-batch", o.max_batch, "session max batch; batch sizes are uniform in 1..max")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--threads", o.threads, "CPU threads (0: all)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--cuda-graphs", o.use_cuda_graphs, "CUDA session: replay CUDA graphs (0/1)")->capture_default_str();
  app.add_option("--images-fraction", o.images_fraction, "share of iterations through vit_session_run_images")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--min-side", o.min_side, "smallest raw image side")->capture_default_str()->check(CLI::Range(1, 8192));
  app.add_option("--max-side", o.max_side, "largest raw image side")->capture_default_str()->check(CLI::Range(1, 8192));
  app.add_option("--check-every", o.check_every, "iterations between reference re-runs (0: only at the end)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--ref-batch", o.ref_batch, "images in the reference tensor batch")->capture_default_str()->check(
      CLI::PositiveNumber);
  app.add_option("--ref-images", o.ref_images, "images in the reference raw-image batch")->capture_default_str()->check(
      CLI::PositiveNumber);
  app.add_option("--sample-s", o.sample_s, "seconds between memory samples")->capture_default_str()->check(
      CLI::PositiveNumber);
  app.add_option("--warmup-fraction", o.warmup_fraction, "leading fraction of the run excluded from the drift")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--max-host-drift-mib", o.max_host_drift_mib, "allowed host RSS drift after warm-up")
      ->capture_default_str();
  app.add_option("--max-device-drift-mib", o.max_device_drift_mib, "allowed device-memory drift after warm-up (cuda)")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the inputs (and of --arch weights)")->capture_default_str();
  app.add_option("--json", o.json_path, "write the results as JSON here");
  app.add_flag("--quiet", o.quiet, "no progress lines");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own codes (105, 109, ...) would read as neither a pass, a fail nor "could not
    // start": a bad option is the last (2); --help exits 0.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (o.min_side > o.max_side) {
    std::fprintf(stderr, "vit-soak: --min-side %d is larger than --max-side %d\n", o.min_side, o.max_side);
    return 2;
  }
  try {
    return soak(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vit-soak: %s\n", e.what());
    return 2;
  }
}
