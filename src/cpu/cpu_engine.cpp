// vit-infer: the CPU graph executor (cpu_backend.h) and the fp32 reference backend, the oracle of
// every test and `--device cpu --reference`. It executes the shared graph (graph/graph.h; fused
// unless switched off) through op tables, one row per graph op {op, name, supports, prepare,
// run}: a backend's own rows first (fast_engine.cpp), then the reference rows below, whose
// kernels are the reference ops (cpu/ref_ops.h).
// Activations are batch-major, row-major fp32 ([B, T, D], cls token at row 0 of each image),
// packed per chunk of images into one host arena by lifetime (graph/arena.h). One OpenMP team of
// `threads` does all the work (OpenBLAS held at 1 thread during a run: ref::BlasSingleThreaded).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "cpu/cpu_engine.h"
#include "cpu/ref_ops.h"
#include "graph/arena.h"
#include "graph/graph.h"
#include "graph/size_cache.h"
#include "model/limits.h"

namespace vit {
namespace cpu {

using graph::Graph;
using graph::Node;
using graph::Op;

// Images processed per pass. Bounds the workspace (about T*(4D + max(3D, I)) floats per image,
// ~4 MB for ViT-B/16) while keeping GEMMs tall enough (16*197 rows) to run at full speed.
constexpr int kChunk = 16;

namespace {

void grow(std::vector<float>& v, int64_t n, const char* what) {
  if (static_cast<int64_t>(v.size()) >= n) return;
  try {
    v.resize(static_cast<size_t>(n));
  } catch (const std::bad_alloc&) {
    fail(ErrorCode::kOutOfMemory, std::string("cpu engine: cannot allocate ") + std::to_string(n * 4 / (1 << 20)) +
                                      " MiB for " + what);
  }
}

}  // namespace

// --- the op table -----------------------------------------------------------------------------
bool all_f32(const Graph& g, const Node& n) {
  for (int t : n.in)
    if (t >= 0 && g.t(t).dtype != DType::F32) return false;
  for (int t : n.out)
    if (g.t(t).dtype != DType::F32) return false;
  return true;
}

void fill_residual(const CpuCtx& c, const Node& n, float* y, int64_t M, int64_t N) {
  const auto& p = n.p<graph::LinearParams>();
  const float* src = c.p(n.in[3]);
  if (p.table_residual) {
    const int64_t per = c.g.t(n.in[0]).rows();
    for (int64_t m = 0; m < M; ++m)
      std::memcpy(y + m * N, src + (p.table_row0 + m % per) * N, static_cast<size_t>(N) * sizeof(float));
  } else {
    std::memcpy(y, src, static_cast<size_t>(M * N) * sizeof(float));
  }
}

bool wants_maps(const CpuCtx& c, const Node& n) {
  return c.out.attention_layers || (c.out.attention && n.p<graph::AttentionParams>().layer + 1 == c.g.depth);
}

void reference_attention(CpuCtx& c, const Node& n, float* out) {
  const auto& ap = n.p<graph::AttentionParams>();
  const int64_t T = c.g.t(n.in[0]).rows(), D = c.g.t(n.out[0]).cols(), H = ap.heads, hd = D / H;
  grow(c.kt, c.nb * T * D, "the attention workspace");
  grow(c.scratch, int64_t{c.nt} * T, "the attention workspace");
  // Per-head probabilities are stored only when asked for: the last block's for out.attention,
  // every block's (in a workspace) when head means are wanted.
  float* probs = ap.layer + 1 == c.g.depth ? c.out.attention : nullptr;  // [nb, H, T, T]
  if (c.out.attention_layers && !probs) {
    grow(c.probs, c.nb * H * T * T, "the per-head attention of attention_layers");
    probs = c.probs.data();
  }
  ref::attention(c.p(n.in[0]), out, probs, c.kt.data(), c.scratch.data(), c.nb, T, H, hd, c.nt,
                 attention_sizes(c, n));
  if (c.out.attention_layers)
    ref::head_mean(probs, c.out.attention_layers + int64_t{ap.layer} * c.layer_stride, c.nb, H, T, c.nt);
}

void attention_metric(const CpuCtx& c, const Node& n) {
  if (n.out.size() < 2) return;
  const int64_t T = c.g.t(n.in[0]).rows(), D = c.g.t(n.out[0]).cols(), H = n.p<graph::AttentionParams>().heads;
  ref::key_mean(c.p(n.in[0]), c.p(n.out[1]), c.nb, T, H, D / H, c.nt);
}

void reference_tome_merge(CpuCtx& c, const Node& n) {
  const graph::TensorDesc& x = c.g.t(n.in[0]);
  const auto& tp = n.p<graph::TomeParams>();
  ref::tome_merge(c.p(n.in[0]), c.p(n.in[1]), c.p(n.input(2)), c.p(n.out[0]), c.p(n.out[1]), c.nb, x.rows(), x.cols(),
                  c.g.t(n.in[1]).cols(), tp.r, tp.prefix, c.nt);
}

void reference_cross_attention(CpuCtx& c, const Node& n, float* out) {
  const graph::TensorDesc& q = c.g.t(n.in[0]);
  const auto& cp = n.p<graph::CrossAttentionParams>();
  const int64_t L = q.rows(), D = q.cols(), T = c.g.t(n.in[1]).rows(), H = cp.heads;
  // A weight query is one [L, D] table for every image; an activation has one per image.
  const int64_t q_stride = q.kind == graph::TensorKind::kWeight ? 0 : L * D;
  ref::cross_attention(c.p(n.in[0]), q_stride, c.p(n.in[1]), out, c.nb, L, T, cp.first, H, D / H, c.nt);
}

namespace {

void run_patchify(CpuCtx& c, const Node& n, void*) {
  const graph::TensorDesc& img = c.g.t(n.in[0]);
  const int64_t C = img.shape[0], H = img.shape[1], W = img.shape[2];
  const int64_t K = c.g.t(n.out[0]).cols();
  int64_t P = 1;
  while (C * P * P < K) ++P;  // K = C * P * P
  ref::im2col(c.p(n.in[0]), c.p(n.out[0]), c.nb, C, H, W, P, c.nt);
}

bool supports_linear(const Graph& g, const Node& n) {
  const auto& p = n.p<graph::LinearParams>();
  return all_f32(g, n) && !(p.act && n.input(3) >= 0);
}

void run_linear(CpuCtx& c, const Node& n, void*) {
  const auto& p = n.p<graph::LinearParams>();
  const graph::TensorDesc& w = c.g.t(n.in[1]);
  const int64_t M = c.rows(n.in[0]), K = w.cols(), N = w.shape[0];
  float* y = c.p(n.out[0]);
  const int r = n.input(3);
  if (r >= 0) fill_residual(c, n, y, M, N);  // the GEMM accumulates onto it (BLAS beta = 1)
  ref::linear(c.p(n.in[0]), M, K, c.p(n.in[1]), c.p(n.input(2)), N, y, r >= 0, c.nt, p.act);
}

void run_embed(CpuCtx& c, const Node& n, void*) {
  const graph::TensorDesc& pe = c.g.t(n.in[0]);
  const auto& ep = n.p<graph::EmbedParams>();
  const int64_t P = c.g.t(n.out[0]).rows() - pe.rows();
  ref::embed(c.p(n.in[0]), c.p(n.input(1)), P, c.p(n.in[2]), ep.pos_prefix, c.p(n.input(3)), c.p(n.out[0]), c.nb,
             pe.rows(), pe.cols(), ep.patches_final, c.nt);
}

void run_layernorm(CpuCtx& c, const Node& n, void*) {
  const int64_t D = c.g.t(n.in[0]).cols(), R = c.rows(n.in[0]);
  const float* x = c.p(n.in[0]);
  if (n.input(3) >= 0) {  // fused residual add: out[1] = x + residual, out[0] = LN(out[1])
    ref::add(x, c.p(n.in[3]), c.p(n.out[1]), R * D, c.nt);
    x = c.p(n.out[1]);
  }
  const graph::LayerNormParams& lp = n.p<graph::LayerNormParams>();
  ref::layer_norm(x, D, c.p(n.out[0]), D, R, D, c.p(n.in[1]), c.p(n.in[2]), lp.eps, c.nt, lp.rms);
}

void run_attention(CpuCtx& c, const Node& n, void*) {
  reference_attention(c, n, c.p(n.out[0]));
  attention_metric(c, n);
}

void run_tome_merge(CpuCtx& c, const Node& n, void*) { reference_tome_merge(c, n); }

void run_add(CpuCtx& c, const Node& n, void*) {
  ref::add(c.p(n.in[0]), c.p(n.in[1]), c.p(n.out[0]), c.rows(n.in[0]) * c.g.t(n.in[0]).cols(), c.nt);
}

void run_act(CpuCtx& c, const Node& n, void*) {
  ref::activation(c.p(n.in[0]), c.p(n.out[0]), c.rows(n.in[0]) * c.g.t(n.in[0]).cols(), c.nt,
                  n.p<graph::ActParams>().act);
}

void run_glu(CpuCtx& c, const Node& n, void*) {
  ref::glu(c.p(n.in[0]), c.p(n.out[0]), c.rows(n.out[0]), c.g.t(n.out[0]).cols(), c.nt, n.p<graph::ActParams>().act);
}

void run_scale(CpuCtx& c, const Node& n, void*) {
  ref::scale_cols(c.p(n.in[0]), c.p(n.in[1]), c.p(n.out[0]), c.rows(n.in[0]), c.g.t(n.in[0]).cols(), c.nt);
}

void run_pool(CpuCtx& c, const Node& n, void*) {
  const graph::TensorDesc& x = c.g.t(n.in[0]);
  const auto& pp = n.p<graph::PoolParams>();
  ref::pool(c.p(n.in[0]), c.p(n.out[0]), c.nb, x.rows(), x.cols(), pp.mode, pp.first, c.nt);
}

void run_mean2(CpuCtx& c, const Node& n, void*) {
  ref::mean2(c.p(n.in[0]), c.p(n.in[1]), c.p(n.out[0]), c.rows(n.in[0]) * c.g.t(n.in[0]).cols(), c.nt);
}

void run_cross_attention(CpuCtx& c, const Node& n, void*) { reference_cross_attention(c, n, c.p(n.out[0])); }

void run_cast(CpuCtx& c, const Node& n, void*) {
  std::memcpy(c.p(n.out[0]), c.p(n.in[0]), static_cast<size_t>(c.rows(n.in[0]) * c.g.t(n.in[0]).cols()) * sizeof(float));
}

const CpuOpRow kCpuOps[] = {
    {Op::kPatchify, "im2col", all_f32, nullptr, run_patchify},
    {Op::kLinear, "linear_openblas", supports_linear, nullptr, run_linear},
    {Op::kEmbed, "embed", all_f32, nullptr, run_embed},
    {Op::kLayerNorm, "layernorm", all_f32, nullptr, run_layernorm},
    {Op::kAttention, "attention", all_f32, nullptr, run_attention},
    {Op::kAdd, "add", all_f32, nullptr, run_add},
    {Op::kAct, "act", all_f32, nullptr, run_act},
    {Op::kGlu, "glu", all_f32, nullptr, run_glu},
    {Op::kScale, "scale", all_f32, nullptr, run_scale},
    {Op::kPool, "pool", all_f32, nullptr, run_pool},
    {Op::kMean2, "mean2", all_f32, nullptr, run_mean2},
    {Op::kTomeMerge, "tome_merge", all_f32, nullptr, run_tome_merge},
    {Op::kCast, "cast", all_f32, nullptr, run_cast},
    {Op::kCrossAttention, "cross_attention", all_f32, nullptr, run_cross_attention},
};

const CpuOpRow& row_for(const CpuBackend& be, const Graph& g, const Node& n) {
  for (const CpuOpRow& r : be.rows)
    if (r.op == n.op && r.supports(g, n)) return r;
  for (const CpuOpRow& r : kCpuOps)
    if (r.op == n.op && r.supports(g, n)) return r;
  fail(ErrorCode::kUnsupported, be.name + " engine: no CPU kernel for " + graph::op_name(n.op) + " node '" + n.name +
                                    "' (" + dtype_name(g.t(n.out[0]).dtype) + " out)");
}

}  // namespace

// --- the executor ------------------------------------------------------------------------------
GraphRunner::GraphRunner(Graph g, const CpuBackend& backend, std::map<std::string, std::shared_ptr<void>>* prepared)
    : g_(std::move(g)) {
  for (const Node& n : g_.nodes) {
    const CpuOpRow* r = &row_for(backend, g_, n);
    rows_.push_back(r);
    std::shared_ptr<void> st;
    if (r->prepare) {
      if (prepared) {
        std::shared_ptr<void>& shared = (*prepared)[std::string(r->name) + "|" + n.name];
        if (!shared) shared = r->prepare(g_, n);
        st = shared;
      } else {
        st = r->prepare(g_, n);
      }
    }
    state_.push_back(std::move(st));
  }
  g_.lifetimes(first_, last_);
}

void GraphRunner::run(Workspace& ws, int64_t nb, int threads, const std::map<int, const void*>& inputs,
                      const RunOutputs& out, int64_t layer_stride, const std::atomic<bool>* cancel,
                      std::map<std::string, std::pair<double, int64_t>>* profile, bool by_node,
                      const Observer* observe) const {
  // This chunk's activations (planned for nb images) packed into ws.arena by lifetime; weights
  // at their host data, inputs at the caller's memory (read only).
  std::vector<ArenaRequest> req;
  for (size_t t = 0; t < g_.tensors.size(); ++t) {
    const graph::TensorDesc& d = g_.tensors[t];
    const bool planned = d.kind == graph::TensorKind::kActivation && first_[t] >= 0;
    const int64_t bytes = d.numel() * nb * static_cast<int64_t>(dtype_size(d.dtype));
    req.push_back({planned ? bytes : 0, std::max(0, first_[t]), std::max(0, last_[t])});
  }
  const ArenaPlan plan = plan_arena(req, 64);
  grow(ws.arena, plan.total / 4 + 1, "the activations of a chunk of images");
  if (poison_) std::memset(ws.arena.data(), 0xFF, ws.arena.size() * sizeof(float));
  ws.ptr.assign(g_.tensors.size(), nullptr);
  for (size_t t = 0; t < g_.tensors.size(); ++t) {
    const graph::TensorDesc& d = g_.tensors[t];
    if (d.kind == graph::TensorKind::kWeight) {
      ws.ptr[t] = const_cast<float*>(d.host->ptr());
    } else if (d.kind == graph::TensorKind::kInput) {
      const auto it = inputs.find(static_cast<int>(t));
      if (it == inputs.end() || !it->second)
        fail(ErrorCode::kInvalidArgument, "cpu graph runner: no data for input '" + d.name + "'");
      ws.ptr[t] = const_cast<void*>(it->second);
    } else {
      ws.ptr[t] = ws.arena.data() + plan.offsets[t] / 4;
    }
  }
  CpuCtx ctx{g_, ws.ptr, nb, threads, ws.kt, ws.scratch, ws.probs, out, layer_stride};
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    if (cancel && cancel->load(std::memory_order_relaxed)) {
      fail(ErrorCode::kCancelled, "cpu engine run: cancelled before node '" + g_.nodes[i].name + "'");
    }
    if (observe) (*observe)(i, ctx);
    if (!profile) {
      rows_[i]->run(ctx, g_.nodes[i], state_[i].get());
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    rows_[i]->run(ctx, g_.nodes[i], state_[i].get());
    const std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - t0;
    std::string key = std::string(graph::op_name(g_.nodes[i].op)) + " / " + rows_[i]->name;
    if (by_node) {  // the node's role: each run of digits (the block index) as '*'
      key += " / ";
      for (const char ch : g_.nodes[i].name) {
        const bool digit = ch >= '0' && ch <= '9';
        if (!digit) key += ch;
        else if (key.back() != '*') key += '*';
      }
    }
    auto& p = (*profile)[key];
    p.first += ms.count();
    ++p.second;
  }
}

namespace {

// One run size's executable graph (cached per size: graph::SizeCache).
struct SizedGraph {
  GraphRunner runner;
};

class CpuEngine final : public Engine {
 public:
  CpuEngine(std::shared_ptr<const Model> model, int threads, bool fusion, CpuBackend backend, int tome, int max_batch)
      : model_(std::move(model)), backend_(std::move(backend)), fusion_(fusion), tome_(tome),
        max_images_(max_batch > 0 ? std::min(max_batch, kChunk) : 0),
        graphs_(graph::RunSize{model_ ? model_->cfg.image_h : 0, model_ ? model_->cfg.image_w : 0}) {
    if (!model_) fail(ErrorCode::kInvalidArgument, backend_.name + " engine: model is null");
    if (tome_ != 0) graph::check_tome(model_->cfg, tome_, (backend_.name + " engine").c_str());
    const char* prof = std::getenv("VIT_CPU_PROFILE");
    profile_ = prof && *prof && std::strcmp(prof, "0") != 0;
    profile_nodes_ = profile_ && std::strcmp(prof, "nodes") == 0;
    threads_ = threads > 0 ? threads : std::max(1, omp_get_num_procs());
    sized(graphs_.own_size());  // validates the model and prepares (packs) every weight
  }

  const char* name() const noexcept override { return backend_.name.c_str(); }

  void run(const float* images, int batch, const RunOutputs& out, const std::atomic<bool>* cancel) override {
    run_at(images, batch, graphs_.own_size().h, graphs_.own_size().w, out, cancel);
  }

  void run_at(const float* images, int batch, int h, int w, const RunOutputs& out,
              const std::atomic<bool>* cancel) override {
    if (batch < 1) {
      fail(ErrorCode::kInvalidArgument, "cpu engine run: batch must be >= 1, got " + std::to_string(batch));
    }
    if (!images) fail(ErrorCode::kInvalidArgument, "cpu engine run: images is null");
    const ViTConfig& c = model_->cfg;
    c.check_run_size(h, w, limits::kMaxImageSide, "cpu engine run");

    if (tome_ > 0) graph::check_tome_outputs(out.attention, out.attention_layers, out.features, "cpu engine run");
    std::lock_guard<std::mutex> lock(mu_);
    const GraphRunner& runner = sized(graph::RunSize{h, w});
    const Graph& g = runner.graph();
    ref::BlasSingleThreaded blas_guard;
    const int64_t image_size = int64_t{c.in_chans} * h * w;
    const int64_t T = g.tokens;
    for (int b0 = 0; b0 < batch; b0 += kChunk) {
      const int nb = std::min(kChunk, batch - b0);
      RunOutputs o;
      o.logits = out.logits ? out.logits + int64_t{b0} * c.num_classes : nullptr;
      o.embeddings = out.embeddings ? out.embeddings + int64_t{b0} * c.embed_dim() : nullptr;
      o.features = out.features ? out.features + int64_t{b0} * T * c.hidden : nullptr;
      o.attention = out.attention ? out.attention + int64_t{b0} * c.heads * T * T : nullptr;
      o.attention_layers = out.attention_layers ? out.attention_layers + int64_t{b0} * T * T : nullptr;
      // attention_layers is [depth, batch, T, T]: one layer spans the whole batch, not the chunk.
      runner.run(ws_, nb, threads_, {{g.images, images + b0 * image_size}}, o, int64_t{batch} * T * T, cancel,
                 profile_ ? &prof_ : nullptr, profile_nodes_);
      if (o.embeddings)
        std::memcpy(o.embeddings, ws_.ptr[static_cast<size_t>(g.embeddings)],
                    static_cast<size_t>(nb) * c.embed_dim() * sizeof(float));
      if (o.logits && g.logits >= 0)
        std::memcpy(o.logits, ws_.ptr[static_cast<size_t>(g.logits)], static_cast<size_t>(nb) * c.num_classes * sizeof(float));
      if (o.features) {
        const graph::TensorDesc& f = g.t(g.features);
        widen_to_f32(f.dtype, ws_.ptr[static_cast<size_t>(g.features)], nb * f.numel(), o.features);
      }
    }
  }

  // VIT_CPU_PROFILE=1: wall time per (op, row) over the engine's life (=nodes: per node role),
  // printed to stderr when it is destroyed (a development aid: the rows run one after another,
  // so the times add up).
  ~CpuEngine() override {
    if (!profile_ || prof_.empty()) return;
    std::vector<std::pair<std::string, std::pair<double, int64_t>>> v(prof_.begin(), prof_.end());
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
    double total = 0;
    for (const auto& e : v) total += e.second.first;
    std::fprintf(stderr, "[vit-cpu] %s: %.1f ms in %zu (op / row) kinds\n", backend_.name.c_str(), total, v.size());
    for (const auto& e : v)
      std::fprintf(stderr, "[vit-cpu] %10.1f ms %5.1f%% %7lld calls  %s\n", e.second.first,
                   100.0 * e.second.first / total, static_cast<long long>(e.second.second), e.first.c_str());
  }

 private:
  // The graph of run size `size`, built, fused, annotated and bound to its rows. A node's
  // prepared state (packed weights) is shared by every size's graph: the same row on the same
  // node name reads the same weights (only the position table, a run-time input, differs).
  std::unique_ptr<SizedGraph> make_sized(graph::RunSize size) {
    Graph g = graph::build_vit(*model_, backend_.precision, (backend_.name + " engine").c_str(), size, tome_);
    if (graph::fusion_enabled(fusion_)) graph::fuse(g);
    if (backend_.annotate) backend_.annotate(g);
    g.max_images = max_images_;  // a run goes in chunks of kChunk images at most
    g.threads = threads_;
    return std::make_unique<SizedGraph>(SizedGraph{GraphRunner(std::move(g), backend_, &prepared_)});
  }

  // The cached graph of `size` (built at its first run). Under mu_.
  const GraphRunner& sized(graph::RunSize size) {
    return graphs_.get(size, [&] { return make_sized(size); }, [](SizedGraph&) {}).runner;
  }

  std::shared_ptr<const Model> model_;
  CpuBackend backend_;
  bool fusion_ = true;
  int tome_ = 0;  // ToMe: tokens merged per block
  int max_images_ = 0;  // the most images one graph run takes (0: not said)
  bool profile_ = false, profile_nodes_ = false;
  std::map<std::string, std::pair<double, int64_t>> prof_;         // VIT_CPU_PROFILE: ms, calls
  graph::SizeCache<SizedGraph> graphs_;                           // per run size (the model's always)
  std::map<std::string, std::shared_ptr<void>> prepared_;         // "row|node" -> prepared state
  int threads_ = 1;
  std::mutex mu_;  // one run at a time: the workspace is shared
  Workspace ws_;
};

}  // namespace

std::unique_ptr<Engine> make_graph_engine(std::shared_ptr<const Model> model, int threads, bool fusion,
                                          CpuBackend backend, int tome, int max_batch) {
  return std::make_unique<CpuEngine>(std::move(model), threads, fusion, std::move(backend), tome, max_batch);
}

}  // namespace cpu

namespace cpu {
CpuBackend reference_backend() {
  CpuBackend reference;
  reference.name = "cpu";
  return reference;
}
}  // namespace cpu

std::unique_ptr<Engine> make_cpu_engine(std::shared_ptr<const Model> model, int threads, bool fusion, int tome) {
  return cpu::make_graph_engine(std::move(model), threads, fusion, cpu::reference_backend(), tome);
}

}  // namespace vit
