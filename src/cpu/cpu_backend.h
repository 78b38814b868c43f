// vit-infer: the CPU graph executor and the op-table interface of the CPU backends. A backend is
// a table of rows {op, name, supports, prepare, run}; the executor (cpu_engine.cpp) picks, per
// graph node, the first row of the backend's table that supports it, else the reference row
// (so a backend lists only the ops it does differently). prepare runs once per node at session
// creation (e.g. packed weights) and its state is handed to every run. Activations live in one
// host arena per chunk of images, packed by lifetime; a tensor's bytes follow its dtype (bf16 is
// stored as uint16). Backends: the fp32 reference (cpu_engine.cpp, the oracle) and the fast one
// (fast_engine.cpp: oneDNN GEMMs, flash attention, bf16 where the graph is annotated so).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "graph/graph.h"

namespace vit::cpu {

// What an op's run function sees: the graph, a pointer per tensor for this chunk, the chunk's
// image count, the team size, the workspaces and the requested attention outputs.
struct CpuCtx {
  const graph::Graph& g;
  std::vector<void*>& ptr;
  int64_t nb = 0;
  int nt = 1;
  std::vector<float>& kt;       // [nb, H, hd, T]
  std::vector<float>& scratch;  // [nt, T], or any fp32 workspace a row needs (grown by it)
  std::vector<float>& probs;    // [nb, H, T, T], only for attention_layers
  const RunOutputs& out;        // this chunk's slices of the caller's outputs
  int64_t layer_stride = 0;     // floats between layers of out.attention_layers
  float* p(int t) const { return t < 0 ? nullptr : static_cast<float*>(ptr[static_cast<size_t>(t)]); }
  void* v(int t) const { return t < 0 ? nullptr : ptr[static_cast<size_t>(t)]; }
  int64_t rows(int t) const { return nb * g.t(t).rows(); }  // activation rows in this chunk
};

struct CpuOpRow {
  graph::Op op;
  const char* name;
  bool (*supports)(const graph::Graph&, const graph::Node&);
  std::shared_ptr<void> (*prepare)(const graph::Graph&, const graph::Node&);  // may be null
  void (*run)(CpuCtx&, const graph::Node&, void* state);
};

struct CpuBackend {
  std::string name;              // Engine::name()
  std::vector<CpuOpRow> rows;    // searched before the reference rows
  DType precision = DType::F32;  // the activation dtype the graph is built in (annotate may refine)
  std::function<void(graph::Graph&)> annotate;  // after fusion: e.g. bf16 GEMM inputs; may be empty
};

// What the rows of a run write besides their outputs: the activation arena and the workspaces
// (one run at a time; an engine shares one across its run sizes' graphs).
struct Workspace {
  std::vector<float> arena, kt, scratch, probs;
  std::vector<void*> ptr;  // per tensor of the graph last run: its storage
};

// The executor of one graph on one backend: per node the backend's row (its own rows first, then
// the reference rows) and what the row's prepare made. Any graph: the ViT's (the engine below)
// or the op tests' one-node graphs, whose activation inputs are TensorKind::kInput tensors bound
// to the caller's memory.
class GraphRunner {
 public:
  // `prepared` (may be null): row states shared by key "row|node" (the same node of another run
  // size's graph reads the same weights: its packed weights are made once).
  GraphRunner(graph::Graph g, const CpuBackend& backend, std::map<std::string, std::shared_ptr<void>>* prepared = nullptr);
  const graph::Graph& graph() const { return g_; }
  const char* row_name(size_t node) const { return rows_[node]->name; }
  // With poison set, the arena is filled with NaN bytes (0xFF) before each chunk: a row that
  // leaves part of its output unwritten shows (the op tests).
  void set_poison(bool on) { poison_ = on; }
  // Runs the graph for nb images: each kInput tensor reads inputs.at(id) ([nb, shape] in its
  // dtype), the rest live in ws.arena (ws.ptr[t] afterwards: valid until the next run on ws);
  // `out` receives the attention maps the rows write (CpuCtx). Polls `cancel` between nodes.
  // `profile` (may be null): wall ms and calls per "op / row", or with `by_node` per
  // "op / row / node" with the block index as '*' (blocks.*.attn.qkv: one line per role).
  // `observe` (may be null) is called before each node with its index and the context (the
  // int8 calibration reads the GEMM inputs there).
  using Observer = std::function<void(size_t node, const CpuCtx&)>;
  void run(Workspace& ws, int64_t nb, int threads, const std::map<int, const void*>& inputs, const RunOutputs& out,
           int64_t layer_stride, const std::atomic<bool>* cancel,
           std::map<std::string, std::pair<double, int64_t>>* profile = nullptr, bool by_node = false,
           const Observer* observe = nullptr) const;

 private:
  graph::Graph g_;
  std::vector<const CpuOpRow*> rows_;
  std::vector<std::shared_ptr<void>> state_;
  std::vector<int> first_, last_;
  bool poison_ = false;
};

// The engine that executes `backend` on the (fused unless `fusion` is false or
// VIT_DISABLE_FUSION=1) graph of `model`. threads <= 0: all hardware threads.
// tome > 0: token merging, that many tokens per block (graph::build_vit; graph::check_tome).
// max_batch > 0: the most images the caller runs at once (the session's), which the backend's
// rows may prepare for (Graph::max_images); 0: not said.
std::unique_ptr<Engine> make_graph_engine(std::shared_ptr<const Model> model, int threads, bool fusion,
                                          CpuBackend backend, int tome = 0, int max_batch = 0);

// The backends: the fp32 reference (rows: none of its own, the reference rows) and the fast one
// (fast_engine.cpp) in `precision` F32 or BF16 (bf16 annotation only where the CPU has bf16 dot
// products; the name says which ISA).
CpuBackend reference_backend();
CpuBackend fast_backend(DType precision);

// Helpers the backends' rows share with the reference rows.
bool all_f32(const graph::Graph& g, const graph::Node& n);
// Copies a Linear node's residual (in[3]: an activation, or a per-image weight table) into y
// [M, N] so that the GEMM accumulates onto it.
void fill_residual(const CpuCtx& c, const graph::Node& n, float* y, int64_t M, int64_t N);
// The reference attention with its maps: writes out (fp32), and the per-head probabilities into
// out.attention / the head means into out.attention_layers when the caller asked for them.
void reference_attention(CpuCtx& c, const graph::Node& n, float* out);
// The reference cross-attention of node n (fp32 out), for the backends' rows that store another dtype.
void reference_cross_attention(CpuCtx& c, const graph::Node& n, float* out);
// Whether this run wants the attention maps of node n's layer.
bool wants_maps(const CpuCtx& c, const graph::Node& n);
// An attention node's optional outputs and inputs: its keys' head mean into out[1] when it has
// one (ToMe's metric), and the token sizes of its proportional attention (in[1], or null).
void attention_metric(const CpuCtx& c, const graph::Node& n);
inline const float* attention_sizes(const CpuCtx& c, const graph::Node& n) { return c.p(n.input(1)); }
// The token merge node n (graph Op::kTomeMerge) by the reference math (ref::tome_merge), fp32.
void reference_tome_merge(CpuCtx& c, const graph::Node& n);

}  // namespace vit::cpu
