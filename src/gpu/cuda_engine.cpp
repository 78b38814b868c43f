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
// Run sizes: each size (the model's own, or another multiple of the patch; run_at) has its own
// lowered graph, buckets and CUDA graphs (SizeState), built at its first run and cached
// (graph::SizeCache: the least recently used of more than 8 others dropped); the model's weights
// are one copy that every size reads, a size's resampled position table its own weight segment.
// The arena is shared.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "attention.cuh"
#include "core/error.h"
#include "cuda_check.h"
#include "gemm_sm90.cuh"
#include "gpu/attention_maps.h"
#include "gpu/cuda_engine.h"
#include "gpu/cuda_ops.h"
#include "gpu/cuda_raii.h"
#include "gpu/device_arena.h"
#include "gpu/executor.h"
#include "gpu/gemm_tuner.h"
#include "gpu/gpu_preprocess.h"
#include "gpu/graph_capture.h"
#include "gpu/lowering.h"
#include "gpu/lt_gemm.h"
#include "graph/graph.h"
#include "graph/size_cache.h"
#include "model/limits.h"

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

// One run size: the graph lowered at that size, its op-table rows, its buckets (arena plans,
// GEMM choices, CUDA graphs) and the weight segment of its own tables.
struct SizeState {
  ViTConfig cfg;  // the model's config at this size (token count, image size of the staging)
  LoweredGraph L;
  std::vector<const CudaOpRow*> row;  // per node: its op-table row
  std::vector<Bucket> buckets;
  int64_t segment = -1;  // WeightStore segment of the size's own tables (-1: none)
  const std::vector<graph::Node>& nodes() const { return L.nodes(); }
};

class CudaEngineImpl final : public CudaEngine {
 public:
  CudaEngineImpl(std::shared_ptr<const Model> model, const CudaEngineOptions& opt, const CudaTestHooks& hooks)
      : model_(std::move(model)), opt_(opt), hooks_(hooks_from_env(hooks)), dt_(storage_type(opt.precision)),
        weights_(dt_), sizes_(graph::RunSize{model_ ? model_->cfg.image_h : 0, model_ ? model_->cfg.image_w : 0}) {
    if (!model_) fail(ErrorCode::kInvalidArgument, "make_cuda_engine: model is null");
    if (opt.precision == Precision::kINT8)
      fail(ErrorCode::kUnsupported, "make_cuda_engine: precision int8 runs on the CPU only (fp32, fp16, bf16 here)");
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
    // Plans every bucket's arena (host only; nothing is allocated for it yet) and uploads the weights.
    own_ = &size_state(sizes_.own_size());
    lt_ = std::make_unique<LtGemm>(opt_.allow_tf32 && dt_ == DType::F32);
    gemm_ = std::make_unique<GemmLauncher>(dt_, weights_, lt_.get());
    GemmTunerOptions to;
    to.choice = opt_.gemm;
    to.allow_tf32 = opt_.allow_tf32;
    // The Hopper kernel is a candidate only on compute capability 9.0 with its sm_90a image.
    to.wgmma_ok = dt_ != DType::F32 && gemm_sm90_available();
    to.check_rows = hooks_.check_rows;
    to.corrupt = hooks_.corrupt_gemm;
    to.prefer = hooks_.prefer_gemm;
    tuner_ = std::make_unique<GemmTuner>(*gemm_, std::move(to), stream_.s);
    VIT_CUDA_CHECK(cudaStreamSynchronize(stream_.s));
    if (std::getenv("VIT_GPU_VERBOSE")) log_line(report());
  }


  ~CudaEngineImpl() override {
    // run_device returns with work in flight: let it finish before the arena, the weights and
    // the graphs go away. Errors cannot be reported from here; they are cleared.
    int prev = -1;
    const bool have_prev = cudaGetDevice(&prev) == cudaSuccess;
    if (cudaSetDevice(opt_.device_id) == cudaSuccess && stream_.s) cudaStreamSynchronize(stream_.s);
    sizes_.for_each([](graph::RunSize, SizeState& st) {
      for (Bucket& b : st.buckets)
        if (b.exec) cudaGraphExecDestroy(b.exec);
    });
    (void)cudaGetLastError();
    if (have_prev) cudaSetDevice(prev);
  }

  const char* name() const noexcept override { return "cuda"; }
  int64_t arena_bytes() const override { return arena_.bytes(); }
  int64_t arena_bytes_for(int batch) const override {
    if (batch < 1 || batch > opt_.max_batch) {
      fail(ErrorCode::kInvalidArgument, "cuda engine arena_bytes_for: batch must be in 1.." +
                                            std::to_string(opt_.max_batch) + ", got " + std::to_string(batch));
    }
    for (const Bucket& b : own_->buckets)
      if (b.batch >= batch) return b.plan.total;
    return 0;
  }
  int64_t weight_bytes() const override { return weights_.total(); }
  std::vector<int> buckets() const override {
    std::vector<int> v;
    for (const Bucket& b : own_->buckets) v.push_back(b.batch);
    return v;
  }
  bool bucket_uses_graph(int bucket) const override {
    for (const Bucket& b : own_->buckets)
      if (b.batch == bucket) return b.exec != nullptr;
    return false;
  }

  std::vector<std::pair<std::string, std::string>> gemm_choices(int bucket) const override {
    std::vector<std::pair<std::string, std::string>> v;
    for (const Bucket& b : own_->buckets) {
      if (b.batch != bucket || !b.gemms_chosen) continue;
      for (size_t i = 0; i < own_->nodes().size(); ++i)
        if (own_->nodes()[i].op == graph::Op::kLinear) v.emplace_back(own_->nodes()[i].name, impl_name(b.gemm_impl[i]));
    }
    return v;
  }

  GemmPickStats gemm_pick_stats() const override { return tuner_->stats(); }

  std::string report() const override {
    std::ostringstream os;
    const auto mib = [](int64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
    const SizeState& st = *own_;
    os << "cuda engine: " << st.nodes().size() << (st.L.graph.fused ? " nodes (fused), " : " nodes (unfused), ")
       << st.L.tensors.size() << " tensors, precision " << dtype_name(dt_) << ", max_batch " << opt_.max_batch << "\n";
    os << "  arena allocated " << mib(arena_.bytes()) << " MiB, weights " << mib(weights_.total()) << " MiB"
       << (graphs_disabled_ ? ", CUDA graphs disabled after a failed capture" : "") << "\n";
    if (sizes_.size() > 1) {
      os << "  run sizes cached:";
      sizes_.for_each([&](graph::RunSize size, const SizeState&) { os << " " << size.h << "x" << size.w; });
      os << " (buckets below: the model's own " << sizes_.own_size().h << "x" << sizes_.own_size().w << ")\n";
    }
    for (const Bucket& b : st.buckets) {
      int lt = 0, gem = 0, wg = 0;
      for (size_t i = 0; i < st.nodes().size(); ++i) {
        if (st.nodes()[i].op != graph::Op::kLinear) continue;
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
    run_at(images, batch, sizes_.own_size().h, sizes_.own_size().w, out, cancel);
  }

  void run_at(const float* images, int batch, int h, int w, const RunOutputs& out,
              const std::atomic<bool>* cancel) override {
    if (batch < 1) fail(ErrorCode::kInvalidArgument, "cuda engine run: batch must be >= 1, got " + std::to_string(batch));
    if (!images) fail(ErrorCode::kInvalidArgument, "cuda engine run: images is null");
    const ViTConfig& c = model_->cfg;
    c.check_run_size(h, w, limits::kMaxImageSide, "cuda engine run");
    if (opt_.tome > 0) graph::check_tome_outputs(out.attention, out.attention_layers, out.features, "cuda engine run");
    const int64_t img = int64_t{c.in_chans} * h * w;
    std::lock_guard<std::mutex> lock(mu_);
    DeviceGuard guard(opt_.device_id);
    SizeState& st = size_state(graph::RunSize{h, w});
    run_chunks(st, "run", batch, out, cancel, [&](int b0, int nb, const Bucket& bk, float* d_img) {
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
    c.check_run_size(pp.input_h, pp.input_w, limits::kMaxImageSide, "cuda engine run_images");
    if (c.in_chans != 3) {
      fail(ErrorCode::kInvalidArgument, "cuda engine run_images: the model takes " + std::to_string(c.in_chans) +
                                            " channels; RGB images need 3");
    }
    check_images(images, n, "cuda engine run_images");
    if (opt_.tome > 0)
      graph::check_tome_outputs(out.attention, out.attention_layers, out.features, "cuda engine run_images");
    std::lock_guard<std::mutex> lock(mu_);
    DeviceGuard guard(opt_.device_id);
    if (!pre_) pre_ = std::make_unique<GpuPreprocessor>();
    SizeState& st = size_state(graph::RunSize{pp.input_h, pp.input_w});
    run_chunks(st, "run_images", n, out, cancel, [&](int b0, int nb, const Bucket&, float* d_img) {
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
    SizeState& st = *own_;
    Bucket& bk = bucket_for(st, batch);
    prepare(st, bk, batch);
    // The graph reads the images from the arena (its pointers are fixed at capture), so the
    // caller's buffer is copied in: 0.6 MB per 224x224 image, a few us at HBM speed.
    float* d_img = reinterpret_cast<float*>(tptr(bk, st.L.graph.images));
    VIT_CUDA_CHECK(cudaMemcpyAsync(d_img, d_images, static_cast<size_t>(batch * img) * sizeof(float),
                                   cudaMemcpyDeviceToDevice, s));
    if (bk.batch > batch) {
      VIT_CUDA_CHECK(cudaMemsetAsync(d_img + batch * img, 0, static_cast<size_t>((bk.batch - batch) * img) * sizeof(float), s));
    }
    forward(st, bk);
    if (d_logits) {
      const bool logits = c.num_classes > 0;
      const int64_t per = logits ? c.num_classes : c.embed_dim();
      VIT_CUDA_CHECK(cudaMemcpyAsync(d_logits, tptr(bk, logits ? st.L.graph.logits : st.L.graph.embeddings),
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
    SizeState& st = *own_;
    Bucket& bk = bucket_for(st, batch);
    prepare(st, bk, batch);
    const size_t n = st.nodes().size();
    std::vector<cudaEvent_t> ev(n + 1, nullptr);
    struct Events {
      std::vector<cudaEvent_t>& v;
      ~Events() {
        for (cudaEvent_t e : v)
          if (e) cudaEventDestroy(e);
      }
    } guard_events{ev};
    for (cudaEvent_t& e : ev) VIT_CUDA_CHECK(cudaEventCreate(&e));
    execute(st, bk, s);  // warm-up: first-use costs (module loading, cuBLASLt heuristics) stay out
    std::vector<double> sum(n, 0.0);
    for (int r = 0; r < reps; ++r) {
      VIT_CUDA_CHECK(cudaEventRecord(ev[0], s));
      for (size_t i = 0; i < n; ++i) {
        execute_node(st, i, bk, s);
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
      t.name = st.nodes()[i].name;
      if (st.nodes()[i].op == graph::Op::kLinear && bk.gemm_impl[i] != GemmImpl::kMmaSync)
        t.name += std::string(" [") + impl_name(bk.gemm_impl[i]) + "]";
      t.kind = st.row[i]->kind;
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
  void run_chunks(SizeState& st, const char* what, int batch, const RunOutputs& out, const std::atomic<bool>* cancel,
                  const std::function<void(int, int, const Bucket&, float*)>& load) {
    const ViTConfig& c = st.cfg;
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
      Bucket& bk = bucket_for(st, nb);
      prepare(st, bk, nb);  // may throw kOutOfMemory; nothing of this chunk is enqueued yet
      // Staging grows only here: the previous chunk's copies finished at its synchronisation.
      if (out.logits && C > 0) h_logits_.grow(int64_t{bk.batch} * C * 4, "logits staging");
      if (out.embeddings) h_emb_.grow(int64_t{bk.batch} * E * 4, "embeddings staging");
      // The features leave in the run precision and are widened on the host (no device copy).
      const int64_t feat_bytes = int64_t{nb} * T * D * static_cast<int64_t>(dtype_size(dt_));
      if (out.features) h_feat_.grow(int64_t{bk.batch} * T * D * static_cast<int64_t>(dtype_size(dt_)), "features staging");
      float* d_img = reinterpret_cast<float*>(tptr(bk, st.L.graph.images));
      load(b0, nb, bk, d_img);
      if (bk.batch > nb) {
        VIT_CUDA_CHECK(cudaMemsetAsync(d_img + nb * img, 0, static_cast<size_t>((bk.batch - nb) * img) * sizeof(float), s));
      }
      if (out.attention_layers) {
        // [depth, batch, T, T]: one layer spans the whole batch, this chunk starts at row b0.
        maps_.forward_with_layers(ctx(st, bk), st.nodes(), st.row, nb, out.attention_layers + int64_t{b0} * T * T,
                                  int64_t{batch} * T * T, s);
      } else {
        forward(st, bk);
      }
      if (out.logits && C > 0) {
        VIT_CUDA_CHECK(cudaMemcpyAsync(h_logits_.p, tptr(bk, st.L.graph.logits), static_cast<size_t>(nb * C) * sizeof(float),
                                       cudaMemcpyDeviceToHost, s));
      }
      if (out.embeddings) {
        VIT_CUDA_CHECK(cudaMemcpyAsync(h_emb_.p, tptr(bk, st.L.graph.embeddings), static_cast<size_t>(nb * E) * sizeof(float),
                                       cudaMemcpyDeviceToHost, s));
      }
      if (out.features) {
        VIT_CUDA_CHECK(cudaMemcpyAsync(h_feat_.p, tptr(bk, st.L.graph.features), static_cast<size_t>(feat_bytes),
                                       cudaMemcpyDeviceToHost, s));
      }
      if (out.attention) {
        // The last block's Q/K are kept alive to the end.
        const float* probs = maps_.probs(ctx(st, bk), st.nodes()[static_cast<size_t>(st.L.last_attention)], nb, s);
        VIT_CUDA_CHECK(cudaMemcpyAsync(out.attention + b0 * H * T * T, probs,
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

  // Everything a bucket needs before its inputs are loaded: an arena large enough, GEMM choices
  // and its graph. All three run the bucket's nodes on whatever the arena holds (timing passes,
  // the warm-up pass before capture), and the images tensor shares memory with later tensors,
  // so this must happen before the caller writes the images, never between that and forward().
  void prepare(SizeState& st, Bucket& bk, int nb) {
    ensure_arena(bk, nb);
    if (!bk.gemms_chosen) {
      tuner_->choose(st.L, bk, [&](const GemmNode& n) { return ctx(st, bk).operands(n); });
      bk.gemms_chosen = true;
    }
    if (opt_.cuda_graphs && !graphs_disabled_ && !bk.exec && !bk.capture_tried) capture(st, bk);
  }

  // Grows the arena to the bucket's plan (DeviceArena: kOutOfMemory naming the batch, the engine
  // still valid). A move invalidates every captured graph (their pointers are baked in): they are
  // destroyed and re-captured at their next use.
  void ensure_arena(const Bucket& bk, int nb) {
    arena_.ensure(bk.plan.total, nb, bk.batch, stream_.s, [&] { drop_graphs(); });
  }

  void drop_graphs() {
    sizes_.for_each([](graph::RunSize, SizeState& st) { drop_graphs(st); });
  }
  static void drop_graphs(SizeState& st) {
    for (Bucket& b : st.buckets) {
      if (b.exec) cudaGraphExecDestroy(b.exec);
      b.exec = nullptr;
      b.capture_tried = false;
    }
  }

  // --- run sizes ------------------------------------------------------------------------------
  // The graph of `size` lowered (its weights registered: the model's shared with every size, its
  // own tables new), bound to op-table rows, its buckets planned, its new weights uploaded.
  std::unique_ptr<SizeState> make_size(graph::RunSize size) {
    auto st = std::make_unique<SizeState>();
    st->cfg = model_->cfg.at_size(size.h, size.w);
    if (static_cast<int64_t>(opt_.max_batch) * st->cfg.tokens() > INT_MAX) {
      fail(ErrorCode::kInvalidArgument, "cuda engine: max_batch " + std::to_string(opt_.max_batch) + " x " +
                                            std::to_string(st->cfg.tokens()) + " tokens at " + std::to_string(size.h) +
                                            "x" + std::to_string(size.w) + " exceeds the 2^31 row limit");
    }
    st->L = lower_graph(*model_, dt_, graph::fusion_enabled(opt_.fusion), weights_, size, opt_.tome);
    st->row = cuda_op_rows(st->L.graph, "make_cuda_engine");
    make_buckets(*st);
    st->segment = weights_.upload();
    // cudaMemset and pageable cudaMemcpy run on the legacy default stream and may still be in
    // flight when they return; the engine's stream is non-blocking and does not wait for them.
    VIT_CUDA_CHECK(cudaDeviceSynchronize());
    return st;
  }

  // The state of run size `size`, made at its first run (graph::SizeCache: a dropped size's graphs
  // and weight segment are freed, after the work in flight that may use them). Under mu_.
  SizeState& size_state(graph::RunSize size) {
    return sizes_.get(size, [&] { return make_size(size); },
                      [&](SizeState& victim) {
                        VIT_CUDA_CHECK(cudaStreamSynchronize(stream_.s));  // run_device returns with work in flight
                        drop_graphs(victim);
                        weights_.release(victim.segment);
                      });
  }

 private:
  // --- configuration checks -------------------------------------------------------------
  void validate() const {
    const ViTConfig& c = model_->cfg;
    graph::check_model(*model_, opt_.tome, "make_cuda_engine");  // what every graph needs
    // A graph feature whose CUDA kernels do not exist yet is refused by family and name.
    if (const std::vector<std::string> f = c.graph_only_features(); !f.empty()) {
      std::string list;
      for (const std::string& x : f) list += (list.empty() ? "" : ", ") + x;
      fail(ErrorCode::kUnsupported, "make_cuda_engine: the CUDA engine does not run " + c.family() + " models with " +
                                        list + " yet (use --device cpu)");
    }
    if (opt_.max_batch < 1) fail(ErrorCode::kInvalidArgument, "make_cuda_engine: max_batch must be >= 1");
    if (opt_.tome != 0) graph::check_tome(c, opt_.tome, "make_cuda_engine");
  }


  // --- lowering, buckets, execution -----------------------------------------------------
  static CudaTestHooks hooks_from_env(CudaTestHooks h) {
    const char* fail_env = std::getenv("VIT_TEST_FAIL_GRAPH_CAPTURE");
    if (fail_env && *fail_env && std::strcmp(fail_env, "0") != 0) h.fail_graph_capture = true;
    if (const char* e = std::getenv("VIT_TEST_GEMM_CORRUPT")) h.corrupt_gemm = e;
    if (const char* e = std::getenv("VIT_TEST_GEMM_PREFER")) h.prefer_gemm = e;
    return h;
  }

  char* tptr(const Bucket& bk, int t) const { return arena_.base() + bk.plan.offsets[static_cast<size_t>(t)]; }
  CudaRunCtx ctx(const SizeState& st, const Bucket& bk) const {
    return CudaRunCtx{st.L, bk, arena_.base(), *gemm_};
  }

  void make_buckets(SizeState& st) const {
    for (int b = 1; b < opt_.max_batch; b *= 2) {
      st.buckets.emplace_back();
      st.buckets.back().batch = b;
    }
    st.buckets.emplace_back();
    st.buckets.back().batch = opt_.max_batch;
    for (Bucket& b : st.buckets) {
      b.gemm_impl.assign(st.nodes().size(), GemmImpl::kMmaSync);
      b.plan = st.L.plan_for(b.batch);
    }
  }

  static Bucket& bucket_for(SizeState& st, int nb) {
    for (Bucket& b : st.buckets)
      if (b.batch >= nb) return b;
    fail(ErrorCode::kInternal, "cuda engine: no bucket for batch " + std::to_string(nb));
  }

  void execute_node(const SizeState& st, size_t i, const Bucket& bk, cudaStream_t s) {
    st.row[i]->run(ctx(st, bk), st.nodes()[i], i, s);
  }
  void execute(const SizeState& st, const Bucket& bk, cudaStream_t s) {
    const CudaRunCtx c = ctx(st, bk);
    for (size_t i = 0; i < st.nodes().size(); ++i) st.row[i]->run(c, st.nodes()[i], i, s);
  }

  // The bucket's graph (captured by prepare()) or, without one, plain launches.
  void forward(const SizeState& st, const Bucket& bk) {
    cudaStream_t s = stream_.s;
    if (bk.exec && !graphs_disabled_) {
      VIT_CUDA_CHECK(cudaGraphLaunch(bk.exec, s));
      return;
    }
    execute(st, bk, s);
  }

  // One plain pass first: lazy module loading and any one-time library setup (cuBLASLt kernels,
  // cudaFuncSetAttribute) happen outside the capture, where they are always legal. It overwrites
  // the arena (the images included): prepare() runs it before the inputs load. A failed capture
  // turns graphs off for the engine's life, said once.
  void capture(const SizeState& st, Bucket& bk) {
    bk.capture_tried = true;
    cudaStream_t s = stream_.s;
    execute(st, bk, s);
    std::string why;
    bk.exec = capture_graph(s, [&] { execute(st, bk, s); }, hooks_.fail_graph_capture, &why);
    if (bk.exec) return;
    graphs_disabled_ = true;
    if (!capture_warned_) {
      log_line("CUDA graph capture failed (" + why + "); running with plain launches");
      capture_warned_ = true;
    }
  }


  std::shared_ptr<const Model> model_;
  CudaEngineOptions opt_;
  CudaTestHooks hooks_;
  DType dt_;
  WeightStore weights_;
  graph::SizeCache<SizeState> sizes_;  // per run size (the model's own always)
  SizeState* own_ = nullptr;           // sizes_.own()

  StreamHolder stream_;
  DeviceArena arena_;
  AttentionMaps maps_;  // attention / attention_layers, on request
  PinnedBuffer h_images_, h_logits_, h_emb_, h_feat_;
  std::unique_ptr<LtGemm> lt_;
  std::unique_ptr<GemmLauncher> gemm_;
  std::unique_ptr<GemmTuner> tuner_;
  std::unique_ptr<GpuPreprocessor> pre_;  // run_images, created at its first use
  bool graphs_disabled_ = false, capture_warned_ = false;
  std::mutex mu_;
};

}  // namespace

std::unique_ptr<Engine> make_cuda_engine(std::shared_ptr<const Model> model, const CudaEngineOptions& opt,
                                         const CudaTestHooks& hooks) {
  return std::make_unique<CudaEngineImpl>(std::move(model), opt, hooks);
}

}  // namespace gpu

std::unique_ptr<Engine> make_cuda_engine(std::shared_ptr<const Model> model, const CudaEngineOptions& opt) {
  return gpu::make_cuda_engine(std::move(model), opt, gpu::CudaTestHooks{});
}

}  // namespace vit
