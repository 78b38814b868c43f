// vit-infer: the fp32 CPU backend, the oracle of every GPU test and `--device cpu`. It executes
// the shared graph (graph/graph.h; fused unless switched off) through an op table, one row per
// graph op {op, name, supports, run}, whose kernels are the reference ops (cpu/ref_ops.h).
// Activations are batch-major, row-major fp32 ([B, T, D], cls token at row 0 of each image),
// packed per chunk of images into one host arena by lifetime (graph/arena.h). One OpenMP team of
// `threads` does all the work (OpenBLAS held at 1 thread during a run: ref::BlasSingleThreaded).
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_engine.h"
#include "cpu/ref_ops.h"
#include "graph/arena.h"
#include "graph/graph.h"

namespace vit {
namespace {

using graph::Graph;
using graph::Node;
using graph::Op;

// Images processed per pass. Bounds the workspace (about T*(4D + max(3D, I)) floats per image,
// ~4 MB for ViT-B/16) while keeping GEMMs tall enough (16*197 rows) to run at full speed.
constexpr int kChunk = 16;

// What an op's run function sees: the graph, a pointer per tensor for this chunk, the chunk's
// image count, the team size, the workspaces and the requested attention outputs.
struct CpuCtx {
  const Graph& g;
  std::vector<float*>& ptr;
  int64_t nb = 0;
  int nt = 1;
  std::vector<float>& kt;       // [nb, H, hd, T]
  std::vector<float>& scratch;  // [nt, T]
  std::vector<float>& probs;    // [nb, H, T, T], only for attention_layers
  const RunOutputs& out;        // this chunk's slices of the caller's outputs
  int64_t layer_stride = 0;     // floats between layers of out.attention_layers
  float* p(int t) const { return t < 0 ? nullptr : ptr[static_cast<size_t>(t)]; }
  int64_t rows(int t) const { return nb * g.t(t).rows(); }  // activation rows in this chunk
};

void grow(std::vector<float>& v, int64_t n, const char* what) {
  if (static_cast<int64_t>(v.size()) >= n) return;
  try {
    v.resize(static_cast<size_t>(n));
  } catch (const std::bad_alloc&) {
    fail(ErrorCode::kOutOfMemory, std::string("cpu engine: cannot allocate ") + std::to_string(n * 4 / (1 << 20)) +
                                      " MiB for " + what);
  }
}

// --- the op table -----------------------------------------------------------------------------
bool all_f32(const Graph& g, const Node& n) {
  for (int t : n.in)
    if (t >= 0 && g.t(t).dtype != DType::F32) return false;
  for (int t : n.out)
    if (g.t(t).dtype != DType::F32) return false;
  return true;
}

void run_patchify(CpuCtx& c, const Node& n) {
  const graph::TensorDesc& img = c.g.t(n.in[0]);
  const int64_t C = img.shape[0], H = img.shape[1], W = img.shape[2];
  const int64_t K = c.g.t(n.out[0]).cols();
  int64_t P = 1;
  while (C * P * P < K) ++P;  // K = C * P * P
  ref::im2col(c.p(n.in[0]), c.p(n.out[0]), c.nb, C, H, W, P, c.nt);
}

bool supports_linear(const Graph& g, const Node& n) {
  const auto& p = n.p<graph::LinearParams>();
  return all_f32(g, n) && !(p.act != graph::Act::kNone && n.input(3) >= 0);
}

ref::GeluForm gelu_form(graph::Act a) {
  return a == graph::Act::kGeluTanh ? ref::GeluForm::kTanh : a == graph::Act::kQuickGelu ? ref::GeluForm::kQuick
                                                                                          : ref::GeluForm::kErf;
}

void run_linear(CpuCtx& c, const Node& n) {
  const auto& p = n.p<graph::LinearParams>();
  const graph::TensorDesc& w = c.g.t(n.in[1]);
  const int64_t M = c.rows(n.in[0]), K = w.cols(), N = w.shape[0];
  float* y = c.p(n.out[0]);
  const int r = n.input(3);
  if (r >= 0) {
    // The residual is copied into y and the GEMM accumulates onto it (BLAS beta = 1).
    const float* src = c.p(r);
    if (p.table_residual) {
      const int64_t per = c.g.t(n.in[0]).rows();
      for (int64_t m = 0; m < M; ++m)
        std::memcpy(y + m * N, src + (p.table_row0 + m % per) * N, static_cast<size_t>(N) * sizeof(float));
    } else {
      std::memcpy(y, src, static_cast<size_t>(M * N) * sizeof(float));
    }
  }
  ref::linear(c.p(n.in[0]), M, K, c.p(n.in[1]), c.p(n.input(2)), N, y, r >= 0,
              p.act == graph::Act::kNone ? ref::Epilogue::kBias : ref::Epilogue::kBiasGelu, c.nt, gelu_form(p.act));
}

void run_embed(CpuCtx& c, const Node& n) {
  const graph::TensorDesc& pe = c.g.t(n.in[0]);
  const auto& ep = n.p<graph::EmbedParams>();
  const int64_t P = c.g.t(n.out[0]).rows() - pe.rows();
  ref::embed(c.p(n.in[0]), c.p(n.input(1)), P, c.p(n.in[2]), ep.pos_prefix, c.p(n.input(3)), c.p(n.out[0]), c.nb,
             pe.rows(), pe.cols(), ep.patches_final, c.nt);
}

void run_layernorm(CpuCtx& c, const Node& n) {
  const int64_t D = c.g.t(n.in[0]).cols(), R = c.rows(n.in[0]);
  const float* x = c.p(n.in[0]);
  if (n.input(3) >= 0) {  // fused residual add: out[1] = x + residual, out[0] = LN(out[1])
    ref::add(x, c.p(n.in[3]), c.p(n.out[1]), R * D, c.nt);
    x = c.p(n.out[1]);
  }
  ref::layer_norm(x, D, c.p(n.out[0]), D, R, D, c.p(n.in[1]), c.p(n.in[2]), n.p<graph::LayerNormParams>().eps, c.nt);
}

void run_attention(CpuCtx& c, const Node& n) {
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
  ref::attention(c.p(n.in[0]), c.p(n.out[0]), probs, c.kt.data(), c.scratch.data(), c.nb, T, H, hd, c.nt);
  if (c.out.attention_layers)
    ref::head_mean(probs, c.out.attention_layers + int64_t{ap.layer} * c.layer_stride, c.nb, H, T, c.nt);
}

void run_add(CpuCtx& c, const Node& n) {
  ref::add(c.p(n.in[0]), c.p(n.in[1]), c.p(n.out[0]), c.rows(n.in[0]) * c.g.t(n.in[0]).cols(), c.nt);
}

void run_gelu(CpuCtx& c, const Node& n) {
  ref::gelu(c.p(n.in[0]), c.p(n.out[0]), c.rows(n.in[0]) * c.g.t(n.in[0]).cols(), c.nt,
            gelu_form(n.p<graph::ActParams>().act));
}

void run_scale(CpuCtx& c, const Node& n) {
  ref::scale_cols(c.p(n.in[0]), c.p(n.in[1]), c.p(n.out[0]), c.rows(n.in[0]), c.g.t(n.in[0]).cols(), c.nt);
}

void run_pool(CpuCtx& c, const Node& n) {
  const graph::TensorDesc& x = c.g.t(n.in[0]);
  const auto& pp = n.p<graph::PoolParams>();
  const ref::PoolMode mode = pp.kind == graph::PoolKind::kCls           ? ref::PoolMode::kRow
                             : pp.kind == graph::PoolKind::kMeanPatches ? ref::PoolMode::kMean
                             : pp.kind == graph::PoolKind::kMaxPatches  ? ref::PoolMode::kMax
                                                                        : ref::PoolMode::kAvgMax;
  ref::pool(c.p(n.in[0]), c.p(n.out[0]), c.nb, x.rows(), x.cols(), mode,
            pp.kind == graph::PoolKind::kCls ? pp.row : pp.first, c.nt);
}

void run_mean2(CpuCtx& c, const Node& n) {
  ref::mean2(c.p(n.in[0]), c.p(n.in[1]), c.p(n.out[0]), c.rows(n.in[0]) * c.g.t(n.in[0]).cols(), c.nt);
}

void run_cast(CpuCtx& c, const Node& n) {
  std::memcpy(c.p(n.out[0]), c.p(n.in[0]), static_cast<size_t>(c.rows(n.in[0]) * c.g.t(n.in[0]).cols()) * sizeof(float));
}

struct CpuOpRow {
  Op op;
  const char* name;
  bool (*supports)(const Graph&, const Node&);
  void (*run)(CpuCtx&, const Node&);
};

const CpuOpRow kCpuOps[] = {
    {Op::kPatchify, "im2col", all_f32, run_patchify},
    {Op::kLinear, "linear_openblas", supports_linear, run_linear},
    {Op::kEmbed, "embed", all_f32, run_embed},
    {Op::kLayerNorm, "layernorm", all_f32, run_layernorm},
    {Op::kAttention, "attention", all_f32, run_attention},
    {Op::kAdd, "add", all_f32, run_add},
    {Op::kGelu, "gelu", all_f32, run_gelu},
    {Op::kScale, "scale", all_f32, run_scale},
    {Op::kPool, "pool", all_f32, run_pool},
    {Op::kMean2, "mean2", all_f32, run_mean2},
    {Op::kCast, "cast", all_f32, run_cast},
};

const CpuOpRow& row_for(const Graph& g, const Node& n) {
  for (const CpuOpRow& r : kCpuOps)
    if (r.op == n.op && r.supports(g, n)) return r;
  fail(ErrorCode::kUnsupported, std::string("cpu engine: no CPU kernel for ") + graph::op_name(n.op) + " node '" +
                                    n.name + "'");
}

class CpuEngine final : public Engine {
 public:
  CpuEngine(std::shared_ptr<const Model> model, int threads, bool fusion) : model_(std::move(model)) {
    if (!model_) fail(ErrorCode::kInvalidArgument, "make_cpu_engine: model is null");
    graph_ = graph::build_vit(*model_, DType::F32, "cpu engine");
    if (graph::fusion_enabled(fusion)) graph::fuse(graph_);
    for (const Node& n : graph_.nodes) rows_.push_back(&row_for(graph_, n));
    graph_.lifetimes(first_, last_);
    threads_ = threads > 0 ? threads : std::max(1, omp_get_num_procs());
  }

  const char* name() const noexcept override { return "cpu"; }

  void run(const float* images, int batch, const RunOutputs& out, const std::atomic<bool>* cancel) override {
    if (batch < 1) {
      fail(ErrorCode::kInvalidArgument, "cpu engine run: batch must be >= 1, got " + std::to_string(batch));
    }
    if (!images) fail(ErrorCode::kInvalidArgument, "cpu engine run: images is null");

    std::lock_guard<std::mutex> lock(mu_);
    ref::BlasSingleThreaded blas_guard;
    const ViTConfig& c = model_->cfg;
    const int64_t image_size = int64_t{c.in_chans} * c.image_h * c.image_w;
    const int64_t T = c.tokens();
    for (int b0 = 0; b0 < batch; b0 += kChunk) {
      const int nb = std::min(kChunk, batch - b0);
      RunOutputs o;
      o.logits = out.logits ? out.logits + int64_t{b0} * c.num_classes : nullptr;
      o.embeddings = out.embeddings ? out.embeddings + int64_t{b0} * c.hidden : nullptr;
      o.attention = out.attention ? out.attention + int64_t{b0} * c.heads * T * T : nullptr;
      o.attention_layers = out.attention_layers ? out.attention_layers + int64_t{b0} * T * T : nullptr;
      // attention_layers is [depth, batch, T, T]: one layer spans the whole batch, not the chunk.
      run_chunk(images + b0 * image_size, nb, o, int64_t{batch} * T * T, cancel);
    }
  }

 private:
  // Packs this chunk's activations (planned for `nb` images) into arena_, points every tensor
  // at its storage (weights at the model's host data, the input at the caller's images).
  void bind(const float* images, int64_t nb) {
    std::vector<ArenaRequest> req;
    for (size_t t = 0; t < graph_.tensors.size(); ++t) {
      const graph::TensorDesc& d = graph_.tensors[t];
      const bool planned = d.kind == graph::TensorKind::kActivation && first_[t] >= 0;
      req.push_back({planned ? d.numel() * nb * 4 : 0, std::max(0, first_[t]), std::max(0, last_[t])});
    }
    const ArenaPlan plan = plan_arena(req, 64);
    grow(arena_, plan.total / 4 + 1, "the activations of a chunk of images");
    ptr_.assign(graph_.tensors.size(), nullptr);
    for (size_t t = 0; t < graph_.tensors.size(); ++t) {
      const graph::TensorDesc& d = graph_.tensors[t];
      if (d.kind == graph::TensorKind::kWeight) ptr_[t] = const_cast<float*>(d.host->ptr());
      else if (d.kind == graph::TensorKind::kInput) ptr_[t] = const_cast<float*>(images);  // read only
      else ptr_[t] = arena_.data() + plan.offsets[t] / 4;
    }
  }

  // layer_stride: floats between consecutive layers of out.attention_layers (batch * T * T).
  void run_chunk(const float* images, int nb, const RunOutputs& out, int64_t layer_stride,
                 const std::atomic<bool>* cancel) {
    bind(images, nb);
    CpuCtx ctx{graph_, ptr_, nb, threads_, kt_, scratch_, probs_, out, layer_stride};
    for (size_t i = 0; i < graph_.nodes.size(); ++i) {
      if (cancel && cancel->load(std::memory_order_relaxed)) {
        fail(ErrorCode::kCancelled, "cpu engine run: cancelled before node '" + graph_.nodes[i].name + "'");
      }
      rows_[i]->run(ctx, graph_.nodes[i]);
    }
    const ViTConfig& c = model_->cfg;
    if (out.embeddings)
      std::memcpy(out.embeddings, ctx.p(graph_.embeddings), static_cast<size_t>(nb) * c.hidden * sizeof(float));
    if (out.logits && graph_.logits >= 0)
      std::memcpy(out.logits, ctx.p(graph_.logits), static_cast<size_t>(nb) * c.num_classes * sizeof(float));
  }

  std::shared_ptr<const Model> model_;
  Graph graph_;
  std::vector<const CpuOpRow*> rows_;  // per node: the op-table row that runs it
  std::vector<int> first_, last_;      // tensor lifetimes (node indices)
  int threads_ = 1;
  std::mutex mu_;  // one run at a time: the workspace below is shared
  std::vector<float> arena_, kt_, scratch_, probs_;
  std::vector<float*> ptr_;
};

}  // namespace

std::unique_ptr<Engine> make_cpu_engine(std::shared_ptr<const Model> model, int threads, bool fusion) {
  return std::make_unique<CpuEngine>(std::move(model), threads, fusion);
}

}  // namespace vit
