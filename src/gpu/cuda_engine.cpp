// vit-infer: the CUDA engine (see executor.h). Layout: activations are batch-major row-major
// in the run precision (tokens [B, T, D]); Q/K/V are [3, B, H, T, hd] when the custom GEMM's
// QKV epilogue writes them and [B, T, 3, H, hd] when cuBLASLt does (attention reads either
// through strides); logits and pooled features are converted to fp32 inside the graph.
// Per run: H2D of the images into the arena (padded to the bucket; run_images preprocesses raw
// RGB8 straight into it on the device), one graph launch, D2H of the requested outputs. The last
// block's attention probabilities are recomputed on request; per-block head-mean maps
// (attention_layers) take an un-graphed pass that computes each block's probabilities right
// after its attention node, while that block's Q/K are still in the arena.
// Memory: the arena is allocated at the first run of a bucket that does not fit the current one
// (planned per bucket, so small batches never pay for max_batch); moving it re-records graphs.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "attention.cuh"
#include "core/error.h"
#include "cuda_check.h"
#include "gemm.cuh"
#include "gemm_sm90.cuh"
#include "graph/arena.h"
#include "gpu/executor.h"
#include "graph/graph.h"
#include "gpu/lt_gemm.h"
#include "head.cuh"
#include "layernorm.cuh"
#include "patch_embed.cuh"
#include "resize_normalize.cuh"

namespace vit {

bool cuda_device_available() noexcept {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}

namespace gpu {
namespace {

void log_line(const std::string& s) { std::fprintf(stderr, "[vit-gpu] %s\n", s.c_str()); }

// --- RAII holders (the constructor may throw halfway; members clean up after themselves) ---
struct DeviceBuffer {
  void* p = nullptr;
  int64_t bytes = 0;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }
  void reset() {
    if (p) cudaFree(p);
    p = nullptr;
    bytes = 0;
  }
  void alloc(int64_t n, const char* what) {
    reset();
    if (n <= 0) return;
    const cudaError_t e = cudaMalloc(&p, static_cast<size_t>(n));
    if (e != cudaSuccess) {
      p = nullptr;
      cuda::throw_cuda_error(e, (std::string("cudaMalloc(") + what + ", " + std::to_string(n) + " bytes)").c_str(),
                             __FILE__, __LINE__);
    }
    bytes = n;
  }
  char* c() const { return static_cast<char*>(p); }
};

// Pinned host staging, grown on demand (never shrunk). Callers grow it only when no copy out of
// or into it is in flight (run() synchronises its stream before returning).
struct PinnedBuffer {
  void* p = nullptr;
  int64_t bytes = 0;
  PinnedBuffer() = default;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() { reset(); }
  void reset() {
    if (p) cudaFreeHost(p);
    p = nullptr;
    bytes = 0;
  }
  void grow(int64_t n, const char* what) {
    if (n <= bytes) return;
    reset();
    const cudaError_t e = cudaMallocHost(&p, static_cast<size_t>(n));
    if (e != cudaSuccess) {
      p = nullptr;
      cuda::throw_cuda_error(e, (std::string("cudaMallocHost(") + what + ", " + std::to_string(n) + " bytes)").c_str(),
                             __FILE__, __LINE__);
    }
    bytes = n;
  }
  float* f() const { return static_cast<float*>(p); }
};

struct StreamHolder {
  cudaStream_t s = nullptr;
  bool owned = false;
  ~StreamHolder() {
    if (owned && s) cudaStreamDestroy(s);
  }
};

struct EventPair {
  cudaEvent_t a = nullptr, b = nullptr;
  EventPair() {
    VIT_CUDA_CHECK(cudaEventCreate(&a));
    const cudaError_t e = cudaEventCreate(&b);
    if (e != cudaSuccess) {
      cudaEventDestroy(a);
      cuda::throw_cuda_error(e, "cudaEventCreate", __FILE__, __LINE__);
    }
  }
  ~EventPair() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
};

// Makes device `d` current for the scope and restores the caller's device afterwards.
struct DeviceGuard {
  int prev = -1;
  explicit DeviceGuard(int d) {
    if (cudaGetDevice(&prev) != cudaSuccess) {
      (void)cudaGetLastError();
      prev = -1;
    }
    VIT_CUDA_CHECK(cudaSetDevice(d));
  }
  ~DeviceGuard() {
    if (prev >= 0) cudaSetDevice(prev);
  }
};

// --- the lowered graph ----------------------------------------------------------------------
// The engine executes the shared graph (graph/graph.h) through an op table (kCudaOps below). Per
// graph tensor: its arena entry (activations) or weight-buffer offset (weights); per linear node
// its GEMM description, what the GEMM candidates (mma.sync, wgmma, cuBLASLt) and the tuner need.
struct TensorInfo {
  std::string name;
  int64_t per_image = 0;  // elements per image (0: not in the arena: weights, unused tensors)
  DType dtype = DType::F32;
  int first = 0, last = 0;
  int64_t bytes(int batch) const { return per_image * batch * static_cast<int64_t>(dtype_size(dtype)); }
};

struct GemmNode {
  std::string name;
  int in = -1, out = -1, res = -1;  // tensor ids (res: an activation residual, or -1)
  int64_t w = -1, b = -1;           // weight-buffer byte offsets (-1: none)
  int rows_per_image = 0, N = 0, K = 0;
  int64_t lda = 0, ldw = 0, ldc = 0;
  GemmEpilogue epi = GemmEpilogue::kNone;
  ActForm gelu = ActForm::kErf;  // kGelu
  bool qkv = false;
  // kResidual from a weight table: row r adds row r % rows_per_image of the table at this
  // weight-buffer offset (the position embeddings, in the patch-embedding GEMM).
  int64_t res_w = -1;
};

// Weights in the run precision, packed into one device buffer (256-byte aligned entries).
class WeightStore {
 public:
  // Registers a [rows, cols] host tensor, zero-padding each row to cols_pad; returns its offset.
  int64_t add(const Tensor& t, int64_t rows, int64_t cols, int64_t cols_pad, const std::string& name) {
    if (t.numel() != rows * cols) {
      fail(ErrorCode::kInvalidArgument, "cuda engine: weight '" + name + "' has " + std::to_string(t.numel()) +
                                            " values, expected " + std::to_string(rows * cols));
    }
    Entry e{&t, rows, cols, cols_pad, total_};
    entries_.push_back(e);
    total_ += (rows * cols_pad * elem_ + 255) / 256 * 256;
    return e.offset;
  }
  int64_t total() const { return total_; }
  void set_elem(size_t bytes) { elem_ = static_cast<int64_t>(bytes); }

  void upload(DeviceBuffer& buf, DType dt) {
    buf.alloc(total_, "weights");
    VIT_CUDA_CHECK(cudaMemset(buf.p, 0, static_cast<size_t>(total_)));
    std::vector<float> f32;
    std::vector<uint16_t> u16;
    for (const Entry& e : entries_) {
      const int64_t n = e.rows * e.cols_pad;
      const float* src = e.t->ptr();
      const void* host = nullptr;
      if (dt == DType::F32) {
        f32.assign(static_cast<size_t>(n), 0.0f);
        for (int64_t r = 0; r < e.rows; ++r)
          std::memcpy(&f32[r * e.cols_pad], src + r * e.cols, static_cast<size_t>(e.cols) * sizeof(float));
        host = f32.data();
      } else {
        u16.assign(static_cast<size_t>(n), 0);
        for (int64_t r = 0; r < e.rows; ++r)
          for (int64_t c = 0; c < e.cols; ++c) {
            const float v = src[r * e.cols + c];
            u16[r * e.cols_pad + c] = dt == DType::F16 ? float_to_half(v) : float_to_bf16(v);
          }
        host = u16.data();
      }
      VIT_CUDA_CHECK(cudaMemcpy(buf.c() + e.offset, host, static_cast<size_t>(n * elem_), cudaMemcpyHostToDevice));
    }
  }

 private:
  struct Entry {
    const Tensor* t;
    int64_t rows, cols, cols_pad, offset;
  };
  std::vector<Entry> entries_;
  int64_t total_ = 0;
  int64_t elem_ = 4;
};

// The implementations a GEMM node can run on. kMmaSync: kernels/gemm.cu (mma.sync, or SIMT for
// fp32 / odd shapes); kWgmma: kernels/gemm_sm90.cu (sm_90 only); kCublasLt: src/gpu/lt_gemm.
enum class GemmImpl : char { kMmaSync = 0, kCublasLt = 1, kWgmma = 2 };

const char* impl_name(GemmImpl g) {
  switch (g) {
    case GemmImpl::kCublasLt: return "cublaslt";
    case GemmImpl::kWgmma: return "wgmma";
    default: return "mma_sync";
  }
}

// Agreement check of the GEMM candidates (choose_gemms): max |candidate - reference| must stay
// within tol x max |reference|, all values finite. The reference is cuBLASLt where it supports
// the shape, else the mma.sync kernel. Why these numbers: outputs are rounded to the storage
// type (bf16 2^-8, fp16 2^-11 relative), cuBLASLt's GELU nodes round once more before the GELU
// (launch_gelu), and fp32 accumulation order differs (K <= 3072: ~1e-6). TF32 (allow_tf32) has a
// 10-bit mantissa against the custom kernels' true fp32. A wrong fragment layout, tail or race
// is off by O(1) x max |reference|.
float agreement_tol(DType t, bool tf32) {
  switch (t) {
    case DType::BF16: return 4e-2f;
    case DType::F16: return 1e-2f;
    default: return tf32 ? 2e-2f : 1e-3f;
  }
}

// Comma-separated implementation names (test hooks) -> membership.
bool named_in(const std::string& list, GemmImpl g) {
  const std::string name = impl_name(g);
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t end = list.find(',', pos);
    const std::string item = list.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (item == name) return true;
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return false;
}

struct Bucket {
  int batch = 0;
  ArenaPlan plan;            // tensor offsets for this batch (tensor id -> byte offset)
  bool gemms_chosen = false; // gemm_impl is decided (lazily: kAuto checks and times GEMMs)
  std::vector<GemmImpl> gemm_impl;  // per node: where the GEMM runs
  cudaGraphExec_t exec = nullptr;  // valid for the current arena only (dropped when it moves)
  bool capture_tried = false;
};

class CudaEngineImpl final : public CudaEngine {
 public:
  CudaEngineImpl(std::shared_ptr<const Model> model, const CudaEngineOptions& opt)
      : model_(std::move(model)), opt_(opt), dt_(storage_type(opt.precision)) {
    if (!model_) fail(ErrorCode::kInvalidArgument, "make_cuda_engine: model is null");
    validate();
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count <= 0) {
      (void)cudaGetLastError();
      fail(ErrorCode::kDevice, std::string("make_cuda_engine: no CUDA device (") +
                                   (e != cudaSuccess ? cudaGetErrorString(e) : "device count is 0") + ")");
    }
    if (opt.device_id < 0 || opt.device_id >= count) {
      fail(ErrorCode::kInvalidArgument, "make_cuda_engine: device_id " + std::to_string(opt.device_id) +
                                            " out of range (" + std::to_string(count) + " devices)");
    }
    DeviceGuard guard(opt.device_id);
    if (opt.stream) {
      stream_.s = static_cast<cudaStream_t>(opt.stream);
    } else {
      VIT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_.s, cudaStreamNonBlocking));
      stream_.owned = true;
    }
    const char* fail_env = std::getenv("VIT_TEST_FAIL_GRAPH_CAPTURE");
    fail_capture_ = opt.fail_graph_capture || (fail_env && *fail_env && std::strcmp(fail_env, "0") != 0);
    test_corrupt_ = opt.test_corrupt_gemm;
    if (const char* e = std::getenv("VIT_TEST_GEMM_CORRUPT")) test_corrupt_ = e;
    test_prefer_ = opt.test_prefer_gemm;
    if (const char* e = std::getenv("VIT_TEST_GEMM_PREFER")) test_prefer_ = e;
    weights_.set_elem(dtype_size(dt_));
    lower(graph::fusion_enabled(opt.fusion));
    make_buckets();  // plans every bucket's arena (host only); nothing is allocated for it yet
    weights_.upload(wbuf_, dt_);
    // cudaMemset and pageable cudaMemcpy run on the legacy default stream and may still be in
    // flight when they return; the engine's stream is non-blocking and does not wait for them.
    VIT_CUDA_CHECK(cudaDeviceSynchronize());
    lt_ = std::make_unique<LtGemm>(opt_.allow_tf32 && dt_ == DType::F32);
    // The Hopper kernel is a candidate only on compute capability 9.0 with its sm_90a image.
    wgmma_ok_ = dt_ != DType::F32 && gemm_sm90_available();
    VIT_CUDA_CHECK(cudaStreamSynchronize(stream_.s));
    if (std::getenv("VIT_GPU_VERBOSE")) log_line(report());
  }

  ~CudaEngineImpl() override {
    // run_device returns with work in flight: let it finish before the arena, the weights and
    // the graphs go away. Errors cannot be reported from here; they are cleared.
    int prev = -1;
    const bool have_prev = cudaGetDevice(&prev) == cudaSuccess;
    if (cudaSetDevice(opt_.device_id) == cudaSuccess && stream_.s) cudaStreamSynchronize(stream_.s);
    for (Bucket& b : buckets_)
      if (b.exec) cudaGraphExecDestroy(b.exec);
    (void)cudaGetLastError();
    if (have_prev) cudaSetDevice(prev);
  }

  const char* name() const noexcept override { return "cuda"; }
  int64_t arena_bytes() const override { return arena_.bytes; }
  int64_t arena_bytes_for(int batch) const override {
    if (batch < 1 || batch > opt_.max_batch) {
      fail(ErrorCode::kInvalidArgument, "cuda engine arena_bytes_for: batch must be in 1.." +
                                            std::to_string(opt_.max_batch) + ", got " + std::to_string(batch));
    }
    for (const Bucket& b : buckets_)
      if (b.batch >= batch) return b.plan.total;
    return 0;
  }
  int64_t weight_bytes() const override { return weights_.total(); }
  std::vector<int> buckets() const override {
    std::vector<int> v;
    for (const Bucket& b : buckets_) v.push_back(b.batch);
    return v;
  }
  bool bucket_uses_graph(int bucket) const override {
    for (const Bucket& b : buckets_)
      if (b.batch == bucket) return b.exec != nullptr;
    return false;
  }

  std::vector<std::pair<std::string, std::string>> gemm_choices(int bucket) const override {
    std::vector<std::pair<std::string, std::string>> v;
    for (const Bucket& b : buckets_) {
      if (b.batch != bucket || !b.gemms_chosen) continue;
      for (size_t i = 0; i < nodes().size(); ++i)
        if (nodes()[i].op == graph::Op::kLinear) v.emplace_back(nodes()[i].name, impl_name(b.gemm_impl[i]));
    }
    return v;
  }

  GemmPickStats gemm_pick_stats() const override { return {agreement_checks_, gemm_timings_, warmed_}; }

  std::string report() const override {
    std::ostringstream os;
    const auto mib = [](int64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
    os << "cuda engine: " << nodes().size() << (graph_.fused ? " nodes (fused), " : " nodes (unfused), ") << tensors_.size() << " tensors, precision "
       << dtype_name(dt_) << ", max_batch " << opt_.max_batch << "\n";
    os << "  arena allocated " << mib(arena_.bytes) << " MiB, weights " << mib(weights_.total()) << " MiB"
       << (graphs_disabled_ ? ", CUDA graphs disabled after a failed capture" : "") << "\n";
    for (const Bucket& b : buckets_) {
      int lt = 0, gem = 0, wg = 0;
      for (size_t i = 0; i < nodes().size(); ++i) {
        if (nodes()[i].op != graph::Op::kLinear) continue;
        ++gem;
        lt += b.gemm_impl[i] == GemmImpl::kCublasLt ? 1 : 0;
        wg += b.gemm_impl[i] == GemmImpl::kWgmma ? 1 : 0;
      }
      os << "  bucket " << b.batch << ": arena " << mib(b.plan.total) << " MiB (no reuse: " << mib(b.plan.naive)
         << " MiB), ";
      if (b.gemms_chosen)
        os << lt << "/" << gem << " GEMMs on cuBLASLt, " << wg << " on wgmma, " << gem - lt - wg << " on mma.sync";
      else os << "GEMMs not chosen yet";
      os << ", graph " << (b.exec ? "captured" : (b.capture_tried ? "failed" : "not yet captured")) << "\n";
    }
    return os.str();
  }

  void run(const float* images, int batch, const RunOutputs& out, const std::atomic<bool>* cancel) override {
    if (batch < 1) fail(ErrorCode::kInvalidArgument, "cuda engine run: batch must be >= 1, got " + std::to_string(batch));
    if (!images) fail(ErrorCode::kInvalidArgument, "cuda engine run: images is null");
    const ViTConfig& c = model_->cfg;
    const int64_t img = int64_t{c.in_chans} * c.image_h * c.image_w;
    std::lock_guard<std::mutex> lock(mu_);
    DeviceGuard guard(opt_.device_id);
    run_chunks("run", batch, out, cancel, [&](int b0, int nb, const Bucket& bk, float* d_img) {
      // Images -> pinned staging -> arena.
      h_images_.grow(int64_t{bk.batch} * img * 4, "input staging");
      std::memcpy(h_images_.p, images + b0 * img, static_cast<size_t>(nb * img) * sizeof(float));
      VIT_CUDA_CHECK(cudaMemcpyAsync(d_img, h_images_.p, static_cast<size_t>(nb * img) * sizeof(float),
                                     cudaMemcpyHostToDevice, stream_.s));
    });
  }

  // Raw RGB8 images preprocessed on the device (GpuPreprocessor: the CPU path's Pillow-exact
  // tables and plan) straight into the arena's input tensor, then the same forward as run().
  void run_images(const ImageView* images, int n, const PreprocessConfig& pp, const RunOutputs& out,
                  const std::atomic<bool>* cancel) override {
    const ViTConfig& c = model_->cfg;
    if (n < 1) fail(ErrorCode::kInvalidArgument, "cuda engine run_images: image count " + std::to_string(n) + " must be >= 1");
    if (!images) fail(ErrorCode::kInvalidArgument, "cuda engine run_images: images is null");
    if (pp.input_h != c.image_h || pp.input_w != c.image_w) {
      fail(ErrorCode::kInvalidArgument, "cuda engine run_images: preprocessing size " + std::to_string(pp.input_h) + "x" +
                                            std::to_string(pp.input_w) + " differs from the model's input size " +
                                            std::to_string(c.image_h) + "x" + std::to_string(c.image_w));
    }
    if (c.in_chans != 3) {
      fail(ErrorCode::kInvalidArgument, "cuda engine run_images: the model takes " + std::to_string(c.in_chans) +
                                            " channels; RGB images need 3");
    }
    check_images(images, n, "cuda engine run_images");
    std::lock_guard<std::mutex> lock(mu_);
    DeviceGuard guard(opt_.device_id);
    if (!pre_) pre_ = std::make_unique<GpuPreprocessor>();
    run_chunks("run_images", n, out, cancel, [&](int b0, int nb, const Bucket&, float* d_img) {
      for (int i = 0; i < nb; ++i) {
        const ImageView& v = images[b0 + i];
        try {
          // The input tensor is fp32 (patchify converts to the run precision while it gathers).
          pre_->run(v.rgb, v.w, v.h, pp, d_img, DType::F32, i, stream_.s);
        } catch (const Error& e) {
          fail(e.code(), "cuda engine run_images: image " + std::to_string(b0 + i) + ": " + e.what());
        }
      }
    });
  }

  void run_device(const float* d_images, int batch, float* d_logits) override {
    if (batch < 1 || batch > opt_.max_batch) {
      fail(ErrorCode::kInvalidArgument, "cuda engine run_device: batch must be in 1.." + std::to_string(opt_.max_batch) +
                                            ", got " + std::to_string(batch));
    }
    if (!d_images) fail(ErrorCode::kInvalidArgument, "cuda engine run_device: d_images is null");
    std::lock_guard<std::mutex> lock(mu_);
    DeviceGuard guard(opt_.device_id);
    const ViTConfig& c = model_->cfg;
    const int64_t img = int64_t{c.in_chans} * c.image_h * c.image_w;
    cudaStream_t s = stream_.s;
    Bucket& bk = bucket_for(batch);
    prepare(bk, batch);
    // The graph reads the images from the arena (its pointers are fixed at capture), so the
    // caller's buffer is copied in: 0.6 MB per 224x224 image, a few us at HBM speed.
    float* d_img = reinterpret_cast<float*>(tptr(bk, graph_.images));
    VIT_CUDA_CHECK(cudaMemcpyAsync(d_img, d_images, static_cast<size_t>(batch * img) * sizeof(float),
                                   cudaMemcpyDeviceToDevice, s));
    if (bk.batch > batch) {
      VIT_CUDA_CHECK(cudaMemsetAsync(d_img + batch * img, 0, static_cast<size_t>((bk.batch - batch) * img) * sizeof(float), s));
    }
    forward(bk);
    if (d_logits) {
      const bool logits = c.num_classes > 0;
      const int64_t per = logits ? c.num_classes : c.embed_dim();
      VIT_CUDA_CHECK(cudaMemcpyAsync(d_logits, tptr(bk, logits ? graph_.logits : graph_.embeddings),
                                     static_cast<size_t>(batch * per) * sizeof(float), cudaMemcpyDeviceToDevice, s));
    }
  }

  std::vector<NodeTiming> profile_nodes(int batch, int reps) override {
    if (batch < 1 || batch > opt_.max_batch) {
      fail(ErrorCode::kInvalidArgument, "cuda engine profile_nodes: batch must be in 1.." +
                                            std::to_string(opt_.max_batch) + ", got " + std::to_string(batch));
    }
    if (reps < 1) fail(ErrorCode::kInvalidArgument, "cuda engine profile_nodes: reps must be >= 1");
    std::lock_guard<std::mutex> lock(mu_);
    DeviceGuard guard(opt_.device_id);
    cudaStream_t s = stream_.s;
    Bucket& bk = bucket_for(batch);
    prepare(bk, batch);
    const size_t n = nodes().size();
    std::vector<cudaEvent_t> ev(n + 1, nullptr);
    struct Events {
      std::vector<cudaEvent_t>& v;
      ~Events() {
        for (cudaEvent_t e : v)
          if (e) cudaEventDestroy(e);
      }
    } guard_events{ev};
    for (cudaEvent_t& e : ev) VIT_CUDA_CHECK(cudaEventCreate(&e));
    execute(bk, s);  // warm-up: first-use costs (module loading, cuBLASLt heuristics) stay out
    std::vector<double> sum(n, 0.0);
    for (int r = 0; r < reps; ++r) {
      VIT_CUDA_CHECK(cudaEventRecord(ev[0], s));
      for (size_t i = 0; i < n; ++i) {
        execute_node(i, bk, s);
        VIT_CUDA_CHECK(cudaEventRecord(ev[i + 1], s));
      }
      VIT_CUDA_CHECK(cudaEventSynchronize(ev[n]));
      for (size_t i = 0; i < n; ++i) {
        float ms = 0.0f;
        VIT_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[i], ev[i + 1]));
        sum[i] += ms;
      }
    }
    std::vector<NodeTiming> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      NodeTiming t;
      t.name = nodes()[i].name;
      if (nodes()[i].op == graph::Op::kLinear && bk.gemm_impl[i] != GemmImpl::kMmaSync)
        t.name += std::string(" [") + impl_name(bk.gemm_impl[i]) + "]";
      t.kind = op_table_row(i).kind;
      t.ms = sum[i] / reps;
      out.push_back(std::move(t));
    }
    return out;
  }

  // --- runs -----------------------------------------------------------------------------------
  // The chunk loop of run() and run_images(): per chunk of at most max_batch images, `load`
  // enqueues the images into d_img [nb, C, H, W] fp32 on the engine's stream; the bucket's
  // padding rows are zeroed (they are computed and discarded; every op is per image, so they
  // cannot affect real rows), then the forward and the D2H copies of the requested outputs.
  void run_chunks(const char* what, int batch, const RunOutputs& out, const std::atomic<bool>* cancel,
                  const std::function<void(int, int, const Bucket&, float*)>& load) {
    const ViTConfig& c = model_->cfg;
    const int64_t img = int64_t{c.in_chans} * c.image_h * c.image_w;
    // E: the embeddings' width (the hidden size, or a CLIP projection's).
    const int64_t C = c.num_classes, D = c.hidden, E = c.embed_dim(), H = c.heads, T = c.tokens();
    cudaStream_t s = stream_.s;
    for (int b0 = 0; b0 < batch; b0 += opt_.max_batch) {
      if (cancel && cancel->load(std::memory_order_relaxed)) {
        fail(ErrorCode::kCancelled, std::string("cuda engine ") + what + ": cancelled before images " +
                                        std::to_string(b0) + ".." + std::to_string(batch - 1));
      }
      const int nb = std::min(opt_.max_batch, batch - b0);
      Bucket& bk = bucket_for(nb);
      prepare(bk, nb);  // may throw kOutOfMemory; nothing of this chunk is enqueued yet
      // Staging grows only here: the previous chunk's copies finished at its synchronisation.
      if (out.logits && C > 0) h_logits_.grow(int64_t{bk.batch} * C * 4, "logits staging");
      if (out.embeddings) h_emb_.grow(int64_t{bk.batch} * E * 4, "embeddings staging");
      // The features leave in the run precision and are widened on the host (no device copy).
      const int64_t feat_bytes = int64_t{nb} * T * D * static_cast<int64_t>(dtype_size(dt_));
      if (out.features) h_feat_.grow(int64_t{bk.batch} * T * D * static_cast<int64_t>(dtype_size(dt_)), "features staging");
      float* d_img = reinterpret_cast<float*>(tptr(bk, graph_.images));
      load(b0, nb, bk, d_img);
      if (bk.batch > nb) {
        VIT_CUDA_CHECK(cudaMemsetAsync(d_img + nb * img, 0, static_cast<size_t>((bk.batch - nb) * img) * sizeof(float), s));
      }
      if (out.attention_layers) {
        // [depth, batch, T, T]: one layer spans the whole batch, this chunk starts at row b0.
        forward_with_layers(bk, nb, out.attention_layers + int64_t{b0} * T * T, int64_t{batch} * T * T);
      } else {
        forward(bk);
      }
      if (out.logits && C > 0) {
        VIT_CUDA_CHECK(cudaMemcpyAsync(h_logits_.p, tptr(bk, graph_.logits), static_cast<size_t>(nb * C) * sizeof(float),
                                       cudaMemcpyDeviceToHost, s));
      }
      if (out.embeddings) {
        VIT_CUDA_CHECK(cudaMemcpyAsync(h_emb_.p, tptr(bk, graph_.embeddings), static_cast<size_t>(nb * E) * sizeof(float),
                                       cudaMemcpyDeviceToHost, s));
      }
      if (out.features) {
        VIT_CUDA_CHECK(cudaMemcpyAsync(h_feat_.p, tptr(bk, graph_.features), static_cast<size_t>(feat_bytes),
                                       cudaMemcpyDeviceToHost, s));
      }
      if (out.attention) {
        launch_probs(last_qkv_node_, bk, nb);  // the last block's Q/K are kept alive to the end
        VIT_CUDA_CHECK(cudaMemcpyAsync(out.attention + b0 * H * T * T, probs_.p,
                                       static_cast<size_t>(int64_t{nb} * H * T * T) * sizeof(float),
                                       cudaMemcpyDeviceToHost, s));
      }
      VIT_CUDA_CHECK(cudaStreamSynchronize(s));
      if (out.logits && C > 0) {
        std::memcpy(out.logits + b0 * C, h_logits_.p, static_cast<size_t>(nb * C) * sizeof(float));
      }
      if (out.embeddings) std::memcpy(out.embeddings + b0 * E, h_emb_.p, static_cast<size_t>(nb * E) * sizeof(float));
      if (out.features) widen_to_f32(dt_, h_feat_.p, int64_t{nb} * T * D, out.features + b0 * T * D);
    }
  }

  // Softmax probabilities of the block whose QKV GEMM is node `qkv_node`, for the first nb
  // images of the bucket: probs_ [nb, H, T, T] fp32. Enqueued on the engine's stream.
  void launch_probs(int qkv_node, const Bucket& bk, int nb) {
    const ViTConfig& c = model_->cfg;
    const int64_t n = int64_t{nb} * c.heads * c.tokens() * c.tokens();
    if (probs_.bytes < n * 4) probs_.alloc(n * 4, "attention probabilities");
    const AttentionParams lay = attention_layout(qkv_node, bk);
    AttentionProbsParams ap;
    ap.dtype = dt_;
    ap.q = lay.q;
    ap.k = lay.k;
    ap.stride_b = lay.stride_b;
    ap.stride_h = lay.stride_h;
    ap.stride_t = lay.stride_t;
    ap.probs = static_cast<float*>(probs_.p);
    ap.B = nb;
    ap.H = c.heads;
    ap.T = c.tokens();
    ap.head_dim = c.head_dim();
    ap.query_rows = c.tokens();
    ap.scale = lay.scale;
    launch_attention_probs(ap, stream_.s);
  }

  // The forward without the graph, plus every block's head-mean attention: right after block
  // l's attention node (its Q/K are alive until then) its probabilities are computed and
  // averaged over heads into layers_ [depth, nb, T, T]; then D2H, layer l of this chunk to
  // dst + l * layer_stride (host fp32). Synchronised by the caller.
  void forward_with_layers(const Bucket& bk, int nb, float* dst, int64_t layer_stride) {
    const ViTConfig& c = model_->cfg;
    const int64_t T = c.tokens(), per_layer = int64_t{nb} * T * T;
    cudaStream_t s = stream_.s;
    if (layers_.bytes < c.depth * per_layer * 4) layers_.alloc(c.depth * per_layer * 4, "per-block attention maps");
    int layer = 0;
    for (size_t i = 0; i < nodes().size(); ++i) {
      execute_node(i, bk, s);
      if (nodes()[i].op != graph::Op::kAttention) continue;
      launch_probs(producer_[static_cast<size_t>(nodes()[i].in[0])], bk, nb);
      AttentionHeadMeanParams hm;
      hm.probs = static_cast<const float*>(probs_.p);
      hm.out = static_cast<float*>(layers_.p) + layer * per_layer;
      hm.out_stride_b = T * T;
      hm.B = nb;
      hm.H = c.heads;
      hm.R = c.tokens();
      hm.T = c.tokens();
      launch_attention_head_mean(hm, s);
      ++layer;
    }
    for (int l = 0; l < layer; ++l) {
      VIT_CUDA_CHECK(cudaMemcpyAsync(dst + l * layer_stride, static_cast<const float*>(layers_.p) + l * per_layer,
                                     static_cast<size_t>(per_layer) * sizeof(float), cudaMemcpyDeviceToHost, s));
    }
  }

  // Everything a bucket needs before its inputs are loaded: an arena large enough, GEMM choices
  // and its graph. All three run the bucket's nodes on whatever the arena holds (timing passes,
  // the warm-up pass before capture), and the images tensor shares memory with later tensors,
  // so this must happen before the caller writes the images, never between that and forward().
  void prepare(Bucket& bk, int nb) {
    ensure_arena(bk, nb);
    if (!bk.gemms_chosen) {
      choose_gemms(bk);
      bk.gemms_chosen = true;
    }
    if (opt_.cuda_graphs && !graphs_disabled_ && !bk.exec && !bk.capture_tried) capture(bk);
  }

  // Grows the arena to the bucket's plan. On failure: kOutOfMemory naming the batch and the
  // bytes, the CUDA error cleared, and the engine still valid (a later, smaller batch allocates
  // what it needs). A move invalidates every captured graph (their pointers are baked in): they
  // are destroyed and re-captured at their next use.
  void ensure_arena(const Bucket& bk, int nb) {
    const int64_t need = bk.plan.total;
    if (need <= arena_.bytes) return;
    cudaStream_t s = stream_.s;
    // Work in flight (run_device returns early) may still use the old arena and its graphs.
    VIT_CUDA_CHECK(cudaStreamSynchronize(s));
    drop_graphs();
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, static_cast<size_t>(need));
    if (e == cudaErrorMemoryAllocation && arena_.p) {
      // Old and new together may not fit where the new one alone does.
      (void)cudaGetLastError();
      arena_.reset();
      e = cudaMalloc(&p, static_cast<size_t>(need));
    }
    if (e != cudaSuccess) {
      // cudaErrorMemoryAllocation is not sticky, but it stays the "last error" until read: clear
      // it so that the next launch check of a smaller batch does not report it.
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      const bool info = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
      (void)cudaGetLastError();
      std::ostringstream os;
      os << "cuda engine: batch " << nb << " (bucket " << bk.batch << ") needs an activation arena of " << need
         << " bytes (" << static_cast<double>(need) / (1024.0 * 1024.0) << " MiB); cudaMalloc failed: "
         << cudaGetErrorString(e);
      if (info) os << " (" << free_b << " of " << total_b << " device bytes free)";
      os << "; the engine stays usable for smaller batches";
      fail(e == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kDevice, os.str());
    }
    arena_.reset();
    arena_.p = p;
    arena_.bytes = need;
    // Zeroed once so that nothing ever reads uninitialised device memory.
    VIT_CUDA_CHECK(cudaMemsetAsync(p, 0, static_cast<size_t>(need), s));
  }

  void drop_graphs() {
    for (Bucket& b : buckets_) {
      if (b.exec) cudaGraphExecDestroy(b.exec);
      b.exec = nullptr;
      b.capture_tried = false;
    }
  }

 private:
  // --- configuration checks -------------------------------------------------------------
  void validate() const {
    const ViTConfig& c = model_->cfg;
    auto bad = [](const std::string& m) { fail(ErrorCode::kInvalidArgument, "make_cuda_engine: " + m); };
    if (c.image_h <= 0 || c.image_w <= 0 || c.patch <= 0 || c.in_chans <= 0 || c.hidden <= 0 || c.heads <= 0 ||
        c.mlp_hidden <= 0 || c.depth <= 0 || c.num_classes < 0)
      bad("config sizes must be positive (depth >= 1, num_classes >= 0)");
    if (c.hidden % c.heads != 0) bad("hidden " + std::to_string(c.hidden) + " not divisible by heads");
    if (c.image_h < c.patch || c.image_w < c.patch) bad("image size smaller than the patch size");
    if (c.head_dim() > 128) {
      fail(ErrorCode::kUnsupported, "make_cuda_engine: head_dim " + std::to_string(c.head_dim()) +
                                        " > 128 is not supported by the attention kernels");
    }
    if (c.pool == GlobalPool::kAvg && c.tokens() < 2) bad("avg pooling needs at least one patch");
    // A graph feature whose CUDA kernels do not exist yet is refused by family and name.
    if (const std::vector<std::string> f = c.graph_only_features(); !f.empty()) {
      std::string list;
      for (const std::string& x : f) list += (list.empty() ? "" : ", ") + x;
      fail(ErrorCode::kUnsupported, "make_cuda_engine: the CUDA engine does not run " + c.family() + " models with " +
                                        list + " yet (use --device cpu)");
    }
    if (opt_.max_batch < 1) bad("max_batch must be >= 1");
    if (static_cast<int64_t>(opt_.max_batch) * c.tokens() > INT_MAX) {
      bad("max_batch " + std::to_string(opt_.max_batch) + " x tokens exceeds the 2^31 row limit");
    }
    if (static_cast<int>(model_->w.blocks.size()) != c.depth) bad("model block count differs from config depth");
  }

  // --- lowering -------------------------------------------------------------------------
  const std::vector<graph::Node>& nodes() const { return graph_.nodes; }

  // The shared graph in the run precision (fused unless switched off), its weights registered
  // in the run precision, its activations sized for the arena, a GEMM description per linear.
  void lower(bool fusion) {
    graph_ = graph::build_vit(*model_, dt_, "make_cuda_engine");
    if (fusion) graph::fuse(graph_);
    const size_t nt = graph_.tensors.size();
    std::vector<int> first, last;
    graph_.lifetimes(first, last);
    tensors_.assign(nt, TensorInfo{});
    woff_.assign(nt, -1);
    pitch_.assign(nt, 0);
    producer_.assign(nt, -1);
    for (size_t t = 0; t < nt; ++t) {
      const graph::TensorDesc& d = graph_.tensors[t];
      pitch_[t] = d.cols();
      tensors_[t].name = d.name;
      tensors_[t].dtype = d.dtype;
    }
    for (size_t i = 0; i < nodes().size(); ++i) {
      const graph::Node& n = nodes()[i];
      for (int o : n.out) producer_[static_cast<size_t>(o)] = static_cast<int>(i);
      // The 16-bit tensor-core GEMM needs K % 8 == 0: patch columns are zero-padded (P = 14:
      // K = 588 -> 592), and so are the rows of the weight that reads them.
      if (n.op == graph::Op::kPatchify) pitch_[static_cast<size_t>(n.out[0])] = (graph_.t(n.out[0]).cols() + 7) / 8 * 8;
    }
    auto weight = [&](int t, int64_t cols_pad) {
      if (woff_[static_cast<size_t>(t)] < 0) {
        const graph::TensorDesc& d = graph_.t(t);
        woff_[static_cast<size_t>(t)] = weights_.add(*d.host, d.rows(), d.cols(), cols_pad, d.name);
      }
    };
    gemm_.assign(nodes().size(), GemmNode{});
    for (size_t i = 0; i < nodes().size(); ++i) {
      const graph::Node& n = nodes()[i];
      for (const CudaOpRow& r : kCudaOps)
        if (r.op == n.op && r.supports(*this, n)) {
          row_.push_back(&r);
          break;
        }
      if (row_.size() != i + 1)
        fail(ErrorCode::kUnsupported, std::string("make_cuda_engine: no CUDA kernel for ") + graph::op_name(n.op) +
                                          " node '" + n.name + "'");
      for (size_t k = 0; k < n.in.size(); ++k) {
        const int t = n.in[k];
        if (t < 0 || graph_.t(t).kind != graph::TensorKind::kWeight) continue;
        // A linear's weight rows are padded to the pitch of its input.
        weight(t, n.op == graph::Op::kLinear && k == 1 ? pitch_[static_cast<size_t>(n.in[0])] : graph_.t(t).cols());
      }
      if (n.op == graph::Op::kLinear) gemm_[i] = gemm_node(n);
      if (n.op == graph::Op::kAttention) last_qkv_node_ = producer_[static_cast<size_t>(n.in[0])];
    }
    // The last block's Q/K are read after the forward (attention probabilities on request).
    if (last_qkv_node_ >= 0)
      last[static_cast<size_t>(nodes()[static_cast<size_t>(last_qkv_node_)].out[0])] = static_cast<int>(nodes().size());
    for (size_t t = 0; t < nt; ++t) {
      const graph::TensorDesc& d = graph_.tensors[t];
      if (d.kind == graph::TensorKind::kWeight || first[t] < 0) continue;  // weights; tensors fused away
      tensors_[t].per_image = d.rows() * pitch_[t];
      tensors_[t].first = first[t];
      tensors_[t].last = last[t];
    }
  }

  GemmNode gemm_node(const graph::Node& n) const {
    const graph::LinearParams& lp = n.p<graph::LinearParams>();
    const graph::TensorDesc& x = graph_.t(n.in[0]);
    const graph::TensorDesc& w = graph_.t(n.in[1]);
    GemmNode g;
    g.name = n.name;
    g.in = n.in[0];
    g.out = n.out[0];
    g.w = woff_[static_cast<size_t>(n.in[1])];
    g.b = n.input(2) >= 0 ? woff_[static_cast<size_t>(n.in[2])] : -1;
    g.rows_per_image = static_cast<int>(x.rows());
    g.N = static_cast<int>(w.shape[0]);
    g.K = static_cast<int>(pitch_[static_cast<size_t>(n.in[0])]);
    g.lda = g.K;
    g.ldw = g.K;
    g.ldc = g.N;
    if (lp.act != graph::Act::kNone) {
      g.epi = GemmEpilogue::kGelu;
      g.gelu = graph::act_form(lp.act);
    }
    if (n.input(3) >= 0) {
      g.epi = GemmEpilogue::kResidual;
      if (lp.table_residual) {
        g.res_w = woff_[static_cast<size_t>(n.in[3])] + int64_t{lp.table_row0} * g.N * static_cast<int64_t>(dtype_size(dt_));
      } else {
        g.res = n.in[3];
      }
    }
    if (lp.qkv_scatter) {
      g.epi = GemmEpilogue::kQkv;
      g.qkv = true;
    }
    return g;
  }

  // The arena of one bucket: every tensor at `batch` images, packed by lifetime.
  ArenaPlan plan_for(int batch) const {
    std::vector<ArenaRequest> req;
    for (const TensorInfo& t : tensors_) req.push_back({t.bytes(batch), t.first, t.last});
    return plan_arena(req, 256);
  }

  char* tptr(const Bucket& bk, int t) const { return arena_.c() + bk.plan.offsets[static_cast<size_t>(t)]; }
  const void* wptr(int64_t off) const { return off < 0 ? nullptr : wbuf_.c() + off; }

  // --- buckets, GEMM choice, execution ----------------------------------------------------
  void make_buckets() {
    for (int b = 1; b < opt_.max_batch; b *= 2) {
      buckets_.emplace_back();
      buckets_.back().batch = b;
    }
    buckets_.emplace_back();
    buckets_.back().batch = opt_.max_batch;
    for (Bucket& b : buckets_) {
      b.gemm_impl.assign(nodes().size(), GemmImpl::kMmaSync);
      b.plan = plan_for(b.batch);
    }
  }

  Bucket& bucket_for(int nb) {
    for (Bucket& b : buckets_)
      if (b.batch >= nb) return b;
    fail(ErrorCode::kInternal, "cuda engine: no bucket for batch " + std::to_string(nb));
  }

  GemmParams gemm_params(const GemmNode& n, const Bucket& bk, bool lt) const {
    GemmParams p;
    p.dtype = dt_;
    p.a = tptr(bk, n.in);
    p.lda = n.lda;
    p.w = wptr(n.w);
    p.ldw = n.ldw;
    p.c = tptr(bk, n.out);
    p.ldc = n.ldc;
    p.bias = wptr(n.b);
    p.epilogue = n.epi;
    p.gelu = n.gelu;
    if (n.res >= 0) {
      p.residual = tptr(bk, n.res);
      p.ldr = n.ldc;
    }
    set_table_residual(n, p);
    p.M = bk.batch * n.rows_per_image;
    p.N = n.N;
    p.K = n.K;
    if (n.qkv) {
      const ViTConfig& c = model_->cfg;
      if (lt) {
        p.epilogue = GemmEpilogue::kNone;  // plain [M, 3D]: attention reads it through strides
      } else {
        p.tokens = c.tokens();
        p.heads = c.heads;
        p.head_dim = c.head_dim();
      }
    }
    return p;
  }

  // A kResidual node whose residual is a per-image weight table (Node::res_w).
  void set_table_residual(const GemmNode& n, GemmParams& p) const {
    if (n.res_w < 0) return;
    p.residual = wptr(n.res_w);
    p.ldr = n.N;
    p.residual_period = n.rows_per_image;
  }

  void run_gemm(const GemmNode& n, const Bucket& bk, GemmImpl impl, cudaStream_t s) {
    launch_impl(gemm_params(n, bk, impl == GemmImpl::kCublasLt), impl, s);
  }

  void launch_impl(const GemmParams& p, GemmImpl impl, cudaStream_t s) {
    switch (impl) {
      case GemmImpl::kCublasLt: lt_->run(p, s); break;
      case GemmImpl::kWgmma: launch_gemm_sm90(p, s); break;
      default: launch_gemm(p, s); break;
    }
  }

  AttentionParams attention_layout(int qkv_node, const Bucket& bk) const {
    const ViTConfig& c = model_->cfg;
    const int64_t T = c.tokens(), H = c.heads, hd = c.head_dim(), D = c.hidden;
    const GemmNode& qn = gemm_[static_cast<size_t>(qkv_node)];
    const char* base = tptr(bk, qn.out);
    const int64_t es = static_cast<int64_t>(dtype_size(dt_));
    AttentionParams a;
    a.dtype = dt_;
    if (!qn.qkv || bk.gemm_impl[static_cast<size_t>(qkv_node)] == GemmImpl::kCublasLt) {  // [B, T, 3, H, hd]
      a.q = base;
      a.k = base + D * es;
      a.v = base + 2 * D * es;
      a.stride_b = T * 3 * D;
      a.stride_h = hd;
      a.stride_t = 3 * D;
    } else {  // [3, B, H, T, hd]
      const int64_t part = int64_t{bk.batch} * H * T * hd;
      a.q = base;
      a.k = base + part * es;
      a.v = base + 2 * part * es;
      a.stride_b = H * T * hd;
      a.stride_h = T * hd;
      a.stride_t = hd;
    }
    a.B = bk.batch;
    a.H = c.heads;
    a.T = c.tokens();
    a.head_dim = c.head_dim();
    a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim()));
    return a;
  }

  void execute(const Bucket& bk, cudaStream_t s) {
    for (size_t i = 0; i < nodes().size(); ++i) execute_node(i, bk, s);
  }

  void execute_node(size_t i, const Bucket& bk, cudaStream_t s) { (this->*(row_[i]->run))(nodes()[i], i, bk, s); }

  // --- the op table: one row per graph op {op, profile kind, supports, run} -----------------
  struct CudaOpRow {
    graph::Op op;
    const char* kind;  // NodeTiming::kind
    bool (*supports)(const CudaEngineImpl&, const graph::Node&);
    void (CudaEngineImpl::*run)(const graph::Node&, size_t, const Bucket&, cudaStream_t);
  };
  static const CudaOpRow kCudaOps[graph::kOpCount];  // one row per graph::Op (defined after the class)
  const CudaOpRow& op_table_row(size_t i) const { return *row_[i]; }
  static bool any(const CudaEngineImpl&, const graph::Node&) { return true; }
  static bool linear_ok(const CudaEngineImpl&, const graph::Node& n) {
    // The GEMM epilogues apply one of GELU / residual / QKV scatter, not two.
    const graph::LinearParams& p = n.p<graph::LinearParams>();
    return (p.act != graph::Act::kNone) + (n.input(3) >= 0) + p.qkv_scatter <= 1;
  }
  int64_t rows_of(int t, const Bucket& bk) const { return graph_.t(t).rows() * bk.batch; }
  const void* weight_of(int t) const { return wptr(woff_[static_cast<size_t>(t)]); }

  void run_patchify(const graph::Node& n, size_t, const Bucket& bk, cudaStream_t s) {
    const ViTConfig& c = model_->cfg;
    PatchifyParams p;
    p.dtype = dt_;
    p.images = reinterpret_cast<const float*>(tptr(bk, n.in[0]));
    p.cols = tptr(bk, n.out[0]);
    p.B = bk.batch;
    p.C = c.in_chans;
    p.H = c.image_h;
    p.W = c.image_w;
    p.P = c.patch;
    p.k_pad = static_cast<int>(pitch_[static_cast<size_t>(n.out[0])]);
    launch_patchify(p, s);
  }
  void run_linear(const graph::Node&, size_t i, const Bucket& bk, cudaStream_t s) {
    run_gemm(gemm_[i], bk, bk.gemm_impl[i], s);
  }
  void run_embed(const graph::Node& n, size_t, const Bucket& bk, cudaStream_t s) {
    EmbedParams p;
    p.dtype = dt_;
    p.patches = tptr(bk, n.in[0]);
    const graph::EmbedParams& ep = n.p<graph::EmbedParams>();
    p.patches_final = ep.patches_final;
    p.pos_prefix = ep.pos_prefix;
    p.prefix = n.input(1) >= 0 ? weight_of(n.in[1]) : nullptr;
    p.P = n.input(1) >= 0 ? static_cast<int>(graph_.t(n.in[1]).rows()) : 0;
    p.pos = weight_of(n.in[2]);
    p.bias = n.input(3) >= 0 ? weight_of(n.in[3]) : nullptr;
    p.tokens = tptr(bk, n.out[0]);
    p.B = bk.batch;
    p.N = static_cast<int>(graph_.t(n.in[0]).rows());
    p.D = static_cast<int>(graph_.t(n.in[0]).cols());
    launch_embed_finish(p, s);
  }
  void run_layernorm(const graph::Node& n, size_t, const Bucket& bk, cudaStream_t s) {
    const int64_t D = graph_.t(n.in[0]).cols();
    LayerNormParams p;
    p.dtype = dt_;
    p.x = tptr(bk, n.in[0]);
    p.x_stride = D;
    if (n.input(3) >= 0) {  // fused residual add: out[1] = x + residual, out[0] = LN(out[1])
      p.residual = tptr(bk, n.in[3]);
      p.x_out = tptr(bk, n.out[1]);
    }
    p.y = tptr(bk, n.out[0]);
    p.y_stride = D;
    p.gamma = weight_of(n.in[1]);
    p.beta = weight_of(n.in[2]);
    p.rows = static_cast<int>(rows_of(n.in[0], bk));
    p.D = static_cast<int>(D);
    p.eps = n.p<graph::LayerNormParams>().eps;
    p.rms = n.p<graph::LayerNormParams>().rms;
    launch_layernorm(p, s);
  }
  void run_attention(const graph::Node& n, size_t, const Bucket& bk, cudaStream_t s) {
    AttentionParams p = attention_layout(producer_[static_cast<size_t>(n.in[0])], bk);
    p.o = tptr(bk, n.out[0]);
    launch_attention(p, s);
  }
  void run_binary(const graph::Node& n, const Bucket& bk, cudaStream_t s, BinaryOp op, const void* b) {
    BinaryParams p;
    p.dtype = dt_;
    p.a = tptr(bk, n.in[0]);
    p.b = b;
    p.y = tptr(bk, n.out[0]);
    p.rows = rows_of(n.in[0], bk);
    p.cols = graph_.t(n.in[0]).cols();
    p.op = op;
    launch_binary(p, s);
  }
  void run_add(const graph::Node& n, size_t, const Bucket& bk, cudaStream_t s) {
    run_binary(n, bk, s, BinaryOp::kAdd, tptr(bk, n.in[1]));
  }
  void run_scale(const graph::Node& n, size_t, const Bucket& bk, cudaStream_t s) {
    run_binary(n, bk, s, BinaryOp::kMulCols, weight_of(n.in[1]));
  }
  void run_mean2(const graph::Node& n, size_t, const Bucket& bk, cudaStream_t s) {
    run_binary(n, bk, s, BinaryOp::kMean, tptr(bk, n.in[1]));
  }
  void run_gelu(const graph::Node& n, size_t, const Bucket& bk, cudaStream_t s) {
    const int64_t rows = rows_of(n.in[0], bk), cols = graph_.t(n.in[0]).cols();
    VIT_CUDA_CHECK(cudaMemcpyAsync(tptr(bk, n.out[0]), tptr(bk, n.in[0]),
                                   static_cast<size_t>(rows * cols) * dtype_size(dt_), cudaMemcpyDeviceToDevice, s));
    GeluParams p;
    p.dtype = dt_;
    p.x = tptr(bk, n.out[0]);
    p.rows = rows;
    p.cols = cols;
    p.ld = cols;
    p.form = graph::act_form(n.p<graph::ActParams>().act);
    launch_gelu(p, s);
  }
  void run_cross_attention(const graph::Node& n, size_t, const Bucket& bk, cudaStream_t s) {
    const graph::CrossAttentionParams& cp = n.p<graph::CrossAttentionParams>();
    const graph::TensorDesc& q = graph_.t(n.in[0]);
    const bool q_weight = q.kind == graph::TensorKind::kWeight;  // the map head's projected latent
    CrossAttentionParams p;
    p.dtype = dt_;
    p.q = q_weight ? weight_of(n.in[0]) : tptr(bk, n.in[0]);
    p.q_stride_b = q_weight ? 0 : q.numel();
    p.kv = tptr(bk, n.in[1]);
    p.o = tptr(bk, n.out[0]);
    p.B = bk.batch;
    p.L = static_cast<int>(q.rows());
    p.T = static_cast<int>(graph_.t(n.in[1]).rows());
    p.first = cp.first;
    p.H = cp.heads;
    p.head_dim = static_cast<int>(q.cols()) / cp.heads;
    p.scale = 1.0f / std::sqrt(static_cast<float>(p.head_dim));
    launch_cross_attention(p, s);
  }
  void run_glu(const graph::Node& n, size_t, const Bucket& bk, cudaStream_t s) {
    GluParams p;
    p.dtype = dt_;
    p.x = tptr(bk, n.in[0]);
    p.y = tptr(bk, n.out[0]);
    p.rows = rows_of(n.out[0], bk);
    p.cols = graph_.t(n.out[0]).cols();
    p.form = graph::act_form(n.p<graph::ActParams>().act);
    launch_glu(p, s);
  }
  void run_pool(const graph::Node& n, size_t, const Bucket& bk, cudaStream_t s) {
    PoolParams p;
    p.dtype = dt_;
    p.x = tptr(bk, n.in[0]);
    p.out = tptr(bk, n.out[0]);
    p.B = bk.batch;
    p.T = static_cast<int>(graph_.t(n.in[0]).rows());
    p.D = static_cast<int>(graph_.t(n.in[0]).cols());
    const graph::PoolParams& pp = n.p<graph::PoolParams>();
    p.mode = graph::pool_mode(pp.kind);
    p.first = pp.first_row();
    launch_pool(p, s);
  }
  void run_cast(const graph::Node& n, size_t, const Bucket& bk, cudaStream_t s) {
    ToF32Params p;
    p.dtype = dt_;
    p.src = tptr(bk, n.in[0]);
    p.dst = reinterpret_cast<float*>(tptr(bk, n.out[0]));
    p.n = rows_of(n.in[0], bk) * graph_.t(n.in[0]).cols();
    launch_to_f32(p, s);
  }

  // Picks the implementation of every GEMM node of a bucket, once per distinct shape (M, N, K,
  // epilogue), at the bucket's first use (its arena must exist; nothing is captured yet).
  //  - kCublasLt: cuBLASLt wherever it has an algorithm, else the mma.sync kernel.
  //  - kCustom: the wgmma kernel where it runs (sm_90), else mma.sync; each is checked against
  //    cuBLASLt and a disagreeing one is passed over for the next custom one, but when no custom
  //    kernel agrees the preferred one is still used (forced): only a warning.
  //  - kAuto: every candidate (cuBLASLt, mma.sync, wgmma on sm_90) that agrees with the reference
  //    (check_gemm) is timed on the node's own arena buffers; the fastest wins. A candidate that
  //    disagrees is never selected (logged once per shape).
  void choose_gemms(Bucket& bk) {
    std::map<std::tuple<int, int, int, int>, GemmImpl> decided;  // (M, N, K, epilogue) -> impl
    for (size_t i = 0; i < nodes().size(); ++i) {
      if (nodes()[i].op != graph::Op::kLinear) continue;
      const GemmNode& n = gemm_[i];
      const auto key = std::make_tuple(bk.batch * n.rows_per_image, n.N, n.K, gemm_epilogue_key(n));
      auto it = decided.find(key);
      if (it == decided.end()) it = decided.emplace(key, choose_gemm(n, bk)).first;
      bk.gemm_impl[i] = it->second;
    }
  }

  // The epilogue as the GEMM choice and its check see it: the kind, a table residual apart
  // (cuBLASLt cannot take that one), and the GELU form.
  static int gemm_epilogue_key(const GemmNode& n) {
    return (static_cast<int>(n.epi) * 2 + (n.res_w >= 0 ? 1 : 0)) * 4 + static_cast<int>(n.gelu);
  }

  GemmImpl choose_gemm(const GemmNode& n, const Bucket& bk) {
    const bool lt_ok = lt_->supports(gemm_params(n, bk, true));
    const bool wg_ok = wgmma_ok_ && gemm_sm90_supports(gemm_params(n, bk, false));
    const GemmImpl ref = lt_ok ? GemmImpl::kCublasLt : GemmImpl::kMmaSync;
    if (opt_.gemm == GemmChoice::kCublasLt) {
      if (!lt_ok && !lt_warned_) {
        log_line("cuBLASLt has no algorithm for GEMM '" + n.name + "'; using the custom kernel there");
        lt_warned_ = true;
      }
      return ref;
    }
    std::vector<GemmImpl> custom;
    if (wg_ok) custom.push_back(GemmImpl::kWgmma);
    custom.push_back(GemmImpl::kMmaSync);
    if (opt_.gemm == GemmChoice::kCustom) {
      for (GemmImpl c : custom)
        if (c == ref || check_gemm(n, bk, c, ref, false)) return c;
      log_line("warning: GEMM '" + n.name + "' " + shape_text(n, bk) +
               ": no custom kernel agrees with the reference; using " + impl_name(custom.front()) +
               " anyway because --gemm custom is forced");
      return custom.front();
    }
    // kAuto
    std::vector<GemmImpl> ok;
    if (lt_ok) ok.push_back(GemmImpl::kCublasLt);
    for (GemmImpl c : custom)
      if (c == ref || check_gemm(n, bk, c, ref, true)) ok.push_back(c);
    if (ok.size() == 1) return ok.front();
    for (GemmImpl c : ok)
      if (named_in(test_prefer_, c)) return c;  // test hook: this one wins when it is acceptable
    const std::vector<float> ms = time_gemms(n, bk, ok);
    return ok[static_cast<size_t>(std::min_element(ms.begin(), ms.end()) - ms.begin())];
  }

  std::string shape_text(const GemmNode& n, const Bucket& bk) const {
    static const char* const kEpi[] = {"none", "gelu", "residual", "qkv"};
    return "(M=" + std::to_string(bk.batch * n.rows_per_image) + " N=" + std::to_string(n.N) + " K=" +
           std::to_string(n.K) + ", epilogue " + kEpi[static_cast<int>(n.epi)] + ", " + dtype_name(dt_) + ")";
  }

  // Runs `cand` and `ref` on the node's weights, bias and epilogue with the same fresh random
  // input x (and residual) of M' = whole images up to ~8k rows (M' = M for small buckets; the
  // tile tails of M' differ from M's only in which rows they cut), into NaN-poisoned outputs, and
  // compares (agreement_tol). cuBLASLt's plain [M, 3D] QKV output is compared with the custom
  // kernels' [3, B, H, T, hd] scatter through the index map. Returns whether they agree; logs
  // once per (shape, candidate) when not. `reject`: the log says the candidate is not used.
  // The verdict is cached by what the check actually runs: (N, K, epilogue, M', candidate,
  // reference). Buckets from ~8k rows up share M', so the larger buckets (and the nodes of the same
  // shape, which choose_gemms already merges per bucket) reuse the first verdict instead of
  // repeating a multi-million-value host comparison.
  bool check_gemm(const GemmNode& n, const Bucket& bk, GemmImpl cand, GemmImpl ref, bool reject) {
    const int per = n.rows_per_image;
    const int rows = opt_.test_check_rows > 0 ? opt_.test_check_rows : 8192;
    const int nb = std::min(bk.batch, std::max(1, rows / per + 1));
    const auto key = std::make_tuple(n.N, n.K, gemm_epilogue_key(n), nb * per, static_cast<int>(cand),
                                     static_cast<int>(ref));
    auto it = checked_.find(key);
    if (it == checked_.end()) {
      it = checked_.emplace(key, run_check(n, bk, nb, cand, ref, reject)).first;
      ++agreement_checks_;
    }
    return it->second;
  }

  bool run_check(const GemmNode& n, const Bucket& bk, int nb, GemmImpl cand, GemmImpl ref, bool reject) {
    const ViTConfig& c = model_->cfg;
    const int per = n.rows_per_image;
    const int M = nb * per, N = n.N, K = n.K;
    const int64_t es = static_cast<int64_t>(dtype_size(dt_));
    const int64_t x_elems = int64_t{M} * n.lda, y_elems = int64_t{M} * N;
    auto up = [](int64_t b) { return (b + 255) / 256 * 256; };
    DeviceBuffer buf;
    try {
      buf.alloc(up(x_elems * es) + 3 * up(y_elems * es), "GEMM agreement check");
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kOutOfMemory) throw;
      // Unchecked is treated as disagreeing: kAuto then keeps the reference.
      if (rejected_logged_.insert(shape_text(n, bk) + impl_name(cand) + "oom").second)
        log_line("GEMM '" + n.name + "' " + shape_text(n, bk) + ": no device memory to check " + impl_name(cand) +
                 " against " + impl_name(ref) + (reject ? "; not selecting it" : ""));
      return false;
    }
    char* d_x = buf.c();
    char* d_res = d_x + up(x_elems * es);
    char* d_ref = d_res + up(y_elems * es);
    char* d_cand = d_ref + up(y_elems * es);
    {
      // Fresh inputs per check: U(-1, 1) for x and the residual.
      std::mt19937 rng(static_cast<uint32_t>(0x9e3779b9u ^ (M * 131u) ^ (N * 7919u) ^ (K * 104729u) ^ check_seq_++));
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      std::vector<uint8_t> h(static_cast<size_t>(std::max(x_elems, y_elems) * es));
      // On the engine's (non-blocking) stream, then synchronised: a pageable cudaMemcpy runs on
      // the legacy stream, may still be in flight when it returns, and nothing would order the
      // check GEMMs after it. The sync also frees `h` for the next fill.
      auto fill = [&](char* dst, int64_t count) {
        for (int64_t i = 0; i < count; ++i) {
          const float v = u(rng);
          if (dt_ == DType::F32) std::memcpy(&h[static_cast<size_t>(i * 4)], &v, 4);
          else {
            const uint16_t b = dt_ == DType::F16 ? float_to_half(v) : float_to_bf16(v);
            std::memcpy(&h[static_cast<size_t>(i * 2)], &b, 2);
          }
        }
        VIT_CUDA_CHECK(cudaMemcpyAsync(dst, h.data(), static_cast<size_t>(count * es), cudaMemcpyHostToDevice,
                                       stream_.s));
        VIT_CUDA_CHECK(cudaStreamSynchronize(stream_.s));
      };
      fill(d_x, x_elems);
      fill(d_res, y_elems);
    }
    auto params = [&](GemmImpl g, char* out) {
      GemmParams p;
      p.dtype = dt_;
      p.a = d_x;
      p.lda = n.lda;
      p.w = wptr(n.w);
      p.ldw = n.ldw;
      p.c = out;
      p.ldc = N;
      p.bias = wptr(n.b);
      p.epilogue = n.epi;
      p.M = M;
      p.N = N;
      p.K = K;
      if (n.res >= 0) {
        p.residual = d_res;
        p.ldr = N;
      }
      set_table_residual(n, p);
      if (n.qkv) {
        if (g == GemmImpl::kCublasLt) {
          p.epilogue = GemmEpilogue::kNone;
        } else {
          p.tokens = c.tokens();
          p.heads = c.heads;
          p.head_dim = c.head_dim();
        }
      }
      return p;
    };
    cudaStream_t s = stream_.s;
    VIT_CUDA_CHECK(cudaMemsetAsync(d_ref, 0xFF, static_cast<size_t>(y_elems * es), s));
    VIT_CUDA_CHECK(cudaMemsetAsync(d_cand, 0xFF, static_cast<size_t>(y_elems * es), s));
    launch_impl(params(ref, d_ref), ref, s);
    launch_impl(params(cand, d_cand), cand, s);
    VIT_CUDA_CHECK(cudaStreamSynchronize(s));
    const std::vector<float> r = download(d_ref, y_elems), g = download(d_cand, y_elems);
    std::vector<float> got = g;
    if (n.qkv && (ref == GemmImpl::kCublasLt) != (cand == GemmImpl::kCublasLt)) {
      // Bring the scattered [3, B, H, T, hd] result into the plain [M, 3D] order of the other.
      const int T = c.tokens(), H = c.heads, hd = c.head_dim(), D = c.hidden;
      const bool cand_scattered = cand != GemmImpl::kCublasLt;
      const std::vector<float>& sc = cand_scattered ? g : r;
      std::vector<float> plain(sc.size());
      for (int m = 0; m < M; ++m)
        for (int col = 0; col < N; ++col) {
          const int which = col / D, h = (col % D) / hd, d = col % hd, b = m / T, t = m % T;
          plain[static_cast<size_t>(m) * N + col] =
              sc[static_cast<size_t>((((int64_t{which} * nb + b) * H + h) * T + t) * hd + d)];
        }
      if (cand_scattered) got = std::move(plain);
      else return compare(n, bk, cand, ref, plain, got, reject);
    }
    return compare(n, bk, cand, ref, r, got, reject);
  }

  std::vector<float> download(const char* d, int64_t count) const {
    const int64_t es = static_cast<int64_t>(dtype_size(dt_));
    std::vector<uint8_t> h(static_cast<size_t>(count * es));
    VIT_CUDA_CHECK(cudaMemcpy(h.data(), d, h.size(), cudaMemcpyDeviceToHost));
    std::vector<float> out(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      if (dt_ == DType::F32) {
        std::memcpy(&out[static_cast<size_t>(i)], &h[static_cast<size_t>(i * 4)], 4);
      } else {
        uint16_t b;
        std::memcpy(&b, &h[static_cast<size_t>(i * 2)], 2);
        out[static_cast<size_t>(i)] = dt_ == DType::F16 ? half_to_float(b) : bf16_to_float(b);
      }
    }
    return out;
  }

  bool compare(const GemmNode& n, const Bucket& bk, GemmImpl cand, GemmImpl ref, const std::vector<float>& want,
               std::vector<float>& got, bool reject) {
    double mx = 0.0, err = 0.0;
    bool finite = true;
    for (float v : want) {
      if (!std::isfinite(v)) finite = false;
      else mx = std::max(mx, static_cast<double>(std::fabs(v)));
    }
    if (named_in(test_corrupt_, cand) && !got.empty()) got[got.size() / 2] += static_cast<float>(10.0 * mx + 1.0);
    for (size_t i = 0; i < got.size() && finite; ++i) {
      if (!std::isfinite(got[i])) finite = false;
      else err = std::max(err, std::fabs(static_cast<double>(got[i]) - want[i]));
    }
    const double tol = agreement_tol(dt_, opt_.allow_tf32);
    const bool ok = finite && mx > 0.0 && err <= tol * mx;
    if (!ok) {
      const std::string key = shape_text(n, bk) + impl_name(cand);
      if (rejected_logged_.insert(key).second) {
        std::ostringstream os;
        os << (reject ? "" : "warning: ") << "GEMM '" << n.name << "' " << shape_text(n, bk) << ": " << impl_name(cand)
           << " disagrees with " << impl_name(ref) << " (";
        if (!finite) os << "non-finite values";
        else os << "max |diff| " << err << " > " << tol << " x max |ref| " << mx;
        os << ")" << (reject ? "; not selecting it" : "");
        log_line(os.str());
      }
    }
    return ok;
  }

  // Best-of-rounds time (ms for kReps launches) of each candidate, on the node's own arena
  // buffers. The GPU idles at a low clock (an H200 at ~345 MHz): the first timing of an engine
  // is preceded by warm_up(). The candidates are interleaved round by round, so a clock or
  // neighbour change during the timing hits all of them alike, and the minimum over the rounds
  // discards the rounds it hit. kMaxRounds, fewer (not under kMinRounds) once the rounds took
  // kBudgetMs: a ViT-L GEMM at batch 256 is ~0.6 ms on an H200, so only the emulator stops early.
  std::vector<float> time_gemms(const GemmNode& n, const Bucket& bk, const std::vector<GemmImpl>& cands) {
    constexpr int kMinRounds = 2, kMaxRounds = 5, kReps = 3;
    constexpr float kBudgetMs = 100.0f;
    cudaStream_t s = stream_.s;
    for (GemmImpl c : cands) run_gemm(n, bk, c, s);  // first-use costs (module load, workspace)
    warm_up(n, bk, cands.front());
    std::vector<float> best(cands.size(), std::numeric_limits<float>::infinity());
    std::vector<EventPair> ev(cands.size());
    float spent = 0.0f;
    for (int r = 0; r < kMaxRounds && (r < kMinRounds || spent < kBudgetMs); ++r) {
      for (size_t j = 0; j < cands.size(); ++j) {
        VIT_CUDA_CHECK(cudaEventRecord(ev[j].a, s));
        for (int i = 0; i < kReps; ++i) run_gemm(n, bk, cands[j], s);
        VIT_CUDA_CHECK(cudaEventRecord(ev[j].b, s));
      }
      VIT_CUDA_CHECK(cudaEventSynchronize(ev.back().b));
      for (size_t j = 0; j < cands.size(); ++j) {
        float ms = 0.0f;
        VIT_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[j].a, ev[j].b));
        best[j] = std::min(best[j], ms);
        spent += ms;
      }
    }
    ++gemm_timings_;
    return best;
  }

  // Once per engine, before its first GEMM timing: runs the GEMM back to back for at least
  // kWarmMs of device time (in batches whose length doubles, so that a slow emulated or tiny
  // GEMM costs few host round trips), which brings the clocks up from idle.
  void warm_up(const GemmNode& n, const Bucket& bk, GemmImpl impl) {
    if (warmed_) return;
    warmed_ = true;
    constexpr float kWarmMs = 150.0f;
    cudaStream_t s = stream_.s;
    EventPair ev;
    float total = 0.0f;
    for (int batch = 1; total < kWarmMs && batch <= 4096; batch *= 2) {
      VIT_CUDA_CHECK(cudaEventRecord(ev.a, s));
      for (int i = 0; i < batch; ++i) run_gemm(n, bk, impl, s);
      VIT_CUDA_CHECK(cudaEventRecord(ev.b, s));
      VIT_CUDA_CHECK(cudaEventSynchronize(ev.b));
      float ms = 0.0f;
      VIT_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.a, ev.b));
      total += ms;
    }
  }

  // The bucket's graph (captured by prepare()) or, without one, plain launches.
  void forward(const Bucket& bk) {
    cudaStream_t s = stream_.s;
    if (bk.exec && !graphs_disabled_) {
      VIT_CUDA_CHECK(cudaGraphLaunch(bk.exec, s));
      return;
    }
    execute(bk, s);
  }

  void capture(Bucket& bk) {
    bk.capture_tried = true;
    cudaStream_t s = stream_.s;
    // One plain pass first: lazy module loading and any one-time library setup (cuBLASLt
    // kernels, cudaFuncSetAttribute) happen outside the capture, where they are always legal.
    // It overwrites the arena (the images included): prepare() runs it before the inputs load.
    execute(bk, s);
    auto give_up = [&](const std::string& why) {
      (void)cudaGetLastError();
      graphs_disabled_ = true;
      if (!capture_warned_) {
        log_line("CUDA graph capture failed (" + why + "); running with plain launches");
        capture_warned_ = true;
      }
    };
    cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) return give_up(std::string("cudaStreamBeginCapture: ") + cudaGetErrorString(e));
    try {
      execute(bk, s);
    } catch (const std::exception& ex) {
      cudaGraph_t g = nullptr;
      cudaStreamEndCapture(s, &g);
      if (g) cudaGraphDestroy(g);
      return give_up(ex.what());
    }
    if (fail_capture_) {
      // Testing (VIT_TEST_FAIL_GRAPH_CAPTURE): a call that is illegal during capture invalidates
      // it, exactly as a library doing a hidden synchronisation would.
      (void)cudaStreamSynchronize(s);
    }
    cudaGraph_t g = nullptr;
    e = cudaStreamEndCapture(s, &g);
    if (e != cudaSuccess || !g || fail_capture_) {
      if (g) cudaGraphDestroy(g);
      return give_up(std::string("cudaStreamEndCapture: ") + cudaGetErrorString(e) +
                     (fail_capture_ ? " (forced by VIT_TEST_FAIL_GRAPH_CAPTURE)" : ""));
    }
    e = cudaGraphInstantiate(&bk.exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
      bk.exec = nullptr;
      return give_up(std::string("cudaGraphInstantiate: ") + cudaGetErrorString(e));
    }
  }

  std::shared_ptr<const Model> model_;
  CudaEngineOptions opt_;
  DType dt_;
  graph::Graph graph_;
  std::vector<TensorInfo> tensors_;     // per graph tensor
  std::vector<int64_t> woff_, pitch_;   // per graph tensor: weight offset (-1), row pitch (elements)
  std::vector<int> producer_;           // per graph tensor: the node writing it
  std::vector<GemmNode> gemm_;          // per node (linear nodes only)
  std::vector<const CudaOpRow*> row_;   // per node: its op-table row
  int last_qkv_node_ = -1;

  WeightStore weights_;
  StreamHolder stream_;
  DeviceBuffer arena_, wbuf_;
  DeviceBuffer probs_;   // [nb, H, T, T] fp32, on request
  DeviceBuffer layers_;  // [depth, nb, T, T] fp32, on request (attention_layers)
  PinnedBuffer h_images_, h_logits_, h_emb_, h_feat_;
  std::unique_ptr<LtGemm> lt_;
  std::unique_ptr<GpuPreprocessor> pre_;  // run_images, created at its first use
  std::vector<Bucket> buckets_;
  bool graphs_disabled_ = false, capture_warned_ = false, lt_warned_ = false, fail_capture_ = false;
  bool wgmma_ok_ = false;
  std::string test_corrupt_, test_prefer_;  // test hooks (CudaEngineOptions / VIT_TEST_GEMM_*)
  std::set<std::string> rejected_logged_;
  // (N, K, epilogue key, check M, candidate, reference) -> agreed (check_gemm).
  std::map<std::tuple<int, int, int, int, int, int>, bool> checked_;
  int agreement_checks_ = 0, gemm_timings_ = 0;
  bool warmed_ = false;
  uint32_t check_seq_ = 0;
  std::mutex mu_;
};

const CudaEngineImpl::CudaOpRow CudaEngineImpl::kCudaOps[graph::kOpCount] = {
    {graph::Op::kPatchify, "patchify", any, &CudaEngineImpl::run_patchify},
    {graph::Op::kLinear, "gemm", linear_ok, &CudaEngineImpl::run_linear},
    {graph::Op::kEmbed, "embed", any, &CudaEngineImpl::run_embed},
    {graph::Op::kLayerNorm, "layernorm", any, &CudaEngineImpl::run_layernorm},
    {graph::Op::kAttention, "attention", any, &CudaEngineImpl::run_attention},
    {graph::Op::kAdd, "add", any, &CudaEngineImpl::run_add},
    {graph::Op::kGelu, "gelu", any, &CudaEngineImpl::run_gelu},
    {graph::Op::kGlu, "glu", any, &CudaEngineImpl::run_glu},
    {graph::Op::kScale, "scale", any, &CudaEngineImpl::run_scale},
    {graph::Op::kPool, "pool", any, &CudaEngineImpl::run_pool},
    {graph::Op::kMean2, "mean2", any, &CudaEngineImpl::run_mean2},
    {graph::Op::kCrossAttention, "cross_attention", any, &CudaEngineImpl::run_cross_attention},
    {graph::Op::kCast, "to_f32", any, &CudaEngineImpl::run_cast},
};

}  // namespace
}  // namespace gpu

std::unique_ptr<Engine> make_cuda_engine
(std::shared_ptr<const Model> model, const CudaEngineOptions& opt) {
  return std::make_unique<gpu::CudaEngineImpl>(std::move(model), opt);
}

}  // namespace vit
