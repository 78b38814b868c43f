// vit-infer: lowering of the shared graph for the CUDA engine (see lowering.h).
#include "gpu/lowering.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <memory>

#include "core/error.h"

namespace vit::gpu {

const char* impl_name(GemmImpl g) {
  switch (g) {
    case GemmImpl::kCublasLt: return "cublaslt";
    case GemmImpl::kWgmma: return "wgmma";
    default: return "mma_sync";
  }
}

int64_t WeightStore::add(const Tensor& t, int64_t rows, int64_t cols, int64_t cols_pad, const std::string& name,
                         bool shared) {
  if (t.numel() != rows * cols) {
    fail(ErrorCode::kInvalidArgument, "cuda engine: weight '" + name + "' has " + std::to_string(t.numel()) +
                                          " values, expected " + std::to_string(rows * cols));
  }
  if (shared) {
    const auto it = shared_.find({&t, cols_pad});
    if (it != shared_.end()) return it->second;
  }
  Entry e{&t, rows, cols, cols_pad, next_};
  pending_.push_back(e);
  next_ += (rows * cols_pad * elem_ + 255) / 256 * 256;
  if (shared) shared_[{&t, cols_pad}] = e.offset;
  return e.offset;
}

int64_t WeightStore::total() const {
  int64_t n = pending_.empty() ? 0 : next_ - pending_.front().offset;
  for (const auto& [begin, seg] : segments_) n += seg.end - begin;
  return n;
}

int64_t WeightStore::upload() {
  if (pending_.empty()) return -1;
  const int64_t begin = pending_.front().offset;
  Segment& seg = segments_[begin];
  seg.end = next_;
  try {
    seg.buf.alloc(next_ - begin, "weights");
  } catch (...) {
    segments_.erase(begin);
    throw;
  }
  VIT_CUDA_CHECK(cudaMemset(seg.buf.p, 0, static_cast<size_t>(next_ - begin)));
  std::vector<float> f32;
  std::vector<uint16_t> u16;
  for (const Entry& e : pending_) {
    const int64_t n = e.rows * e.cols_pad;
    const float* src = e.t->ptr();
    const void* host = nullptr;
    if (dt_ == DType::F32) {
      f32.assign(static_cast<size_t>(n), 0.0f);
      for (int64_t r = 0; r < e.rows; ++r)
        std::memcpy(&f32[r * e.cols_pad], src + r * e.cols, static_cast<size_t>(e.cols) * sizeof(float));
      host = f32.data();
    } else {
      u16.assign(static_cast<size_t>(n), 0);
      for (int64_t r = 0; r < e.rows; ++r)
        for (int64_t c = 0; c < e.cols; ++c) {
          const float v = src[r * e.cols + c];
          u16[r * e.cols_pad + c] = dt_ == DType::F16 ? float_to_half(v) : float_to_bf16(v);
        }
      host = u16.data();
    }
    VIT_CUDA_CHECK(
        cudaMemcpy(seg.buf.c() + (e.offset - begin), host, static_cast<size_t>(n * elem_), cudaMemcpyHostToDevice));
  }
  pending_.clear();
  return begin;
}

void WeightStore::release(int64_t segment) {
  if (segment >= 0) segments_.erase(segment);
}

const char* WeightStore::ptr(int64_t off) const {
  if (off < 0) return nullptr;
  auto it = segments_.upper_bound(off);
  if (it == segments_.begin() || off >= std::prev(it)->second.end) {
    fail(ErrorCode::kInternal, "cuda engine: weight offset " + std::to_string(off) + " is in no uploaded segment");
  }
  --it;
  return it->second.buf.c() + (off - it->first);
}

ArenaPlan LoweredGraph::plan_for(int batch) const {
  std::vector<ArenaRequest> req;
  req.reserve(tensors.size());
  for (const TensorInfo& ti : tensors) req.push_back({ti.bytes(batch), ti.first, ti.last});
  return plan_arena(req, 256);
}

namespace {

GemmNode gemm_node(const LoweredGraph& L, const graph::Node& n, DType dt) {
  const graph::LinearParams& lp = n.p<graph::LinearParams>();
  const graph::TensorDesc& x = L.t(n.in[0]);
  const graph::TensorDesc& w = L.t(n.in[1]);
  GemmNode g;
  g.name = n.name;
  g.in = n.in[0];
  g.out = n.out[0];
  g.w = L.woff[static_cast<size_t>(n.in[1])];
  g.b = n.input(2) >= 0 ? L.woff[static_cast<size_t>(n.in[2])] : -1;
  g.rows_per_image = static_cast<int>(x.rows());
  g.N = static_cast<int>(w.shape[0]);
  g.K = static_cast<int>(L.pitch[static_cast<size_t>(n.in[0])]);
  g.lda = g.K;
  g.ldw = g.K;
  g.ldc = g.N;
  if (lp.act) {
    g.epi = GemmEpilogue::kAct;
    g.act = *lp.act;
  }
  if (n.input(3) >= 0) {
    g.epi = GemmEpilogue::kResidual;
    if (lp.table_residual) {
      g.res_w = L.woff[static_cast<size_t>(n.in[3])] + int64_t{lp.table_row0} * g.N * static_cast<int64_t>(dtype_size(dt));
    } else {
      g.res = n.in[3];
    }
  }
  if (lp.qkv_scatter) {
    g.epi = GemmEpilogue::kQkv;
    g.qkv = true;
    g.heads = lp.heads;
  }
  return g;
}

}  // namespace

LoweredGraph lower_graph(const Model& model, DType dt, bool fusion, WeightStore& weights, graph::RunSize size,
                         int tome) {
  graph::Graph g = graph::build_vit(model, dt, "make_cuda_engine", size, tome);
  if (fusion) graph::fuse(g);
  return lower_graph(std::move(g), dt, weights);
}

LoweredGraph lower_graph(graph::Graph g, DType dt, WeightStore& weights) {
  LoweredGraph L;
  L.graph = std::move(g);
  const size_t nt = L.graph.tensors.size();
  std::vector<int> first, last;
  L.graph.lifetimes(first, last);
  L.tensors.assign(nt, TensorInfo{});
  L.woff.assign(nt, -1);
  L.pitch.assign(nt, 0);
  L.producer.assign(nt, -1);
  for (size_t t = 0; t < nt; ++t) {
    const graph::TensorDesc& d = L.graph.tensors[t];
    L.pitch[t] = d.cols();
    L.tensors[t].name = d.name;
    L.tensors[t].dtype = d.dtype;
  }
  const std::vector<graph::Node>& nodes = L.nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const graph::Node& n = nodes[i];
    for (int o : n.out) L.producer[static_cast<size_t>(o)] = static_cast<int>(i);
    if (n.op == graph::Op::kPatchify) L.pitch[static_cast<size_t>(n.out[0])] = (L.t(n.out[0]).cols() + 7) / 8 * 8;
  }
  L.gemm.assign(nodes.size(), GemmNode{});
  for (size_t i = 0; i < nodes.size(); ++i) {
    const graph::Node& n = nodes[i];
    for (size_t k = 0; k < n.in.size(); ++k) {
      const int t = n.in[k];
      if (t < 0 || L.t(t).kind != graph::TensorKind::kWeight || L.woff[static_cast<size_t>(t)] >= 0) continue;
      const graph::TensorDesc& d = L.t(t);
      // A linear's weight rows are padded to the pitch of its input.
      const int64_t cols_pad = n.op == graph::Op::kLinear && k == 1 ? L.pitch[static_cast<size_t>(n.in[0])] : d.cols();
      // The graph's derived weights (a run size's position table, the map head's query) die
      // with it: never shared by host address.
      const bool derived = std::any_of(L.graph.derived.begin(), L.graph.derived.end(),
                                       [&](const std::shared_ptr<const Tensor>& p) { return p.get() == d.host; });
      L.woff[static_cast<size_t>(t)] = weights.add(*d.host, d.rows(), d.cols(), cols_pad, d.name, !derived);
    }
    if (n.op == graph::Op::kLinear) L.gemm[i] = gemm_node(L, n, dt);
    if (n.op == graph::Op::kAttention) L.last_attention = static_cast<int>(i);
  }
  // The last block's Q / K stay alive to the end: its probabilities are computed after the forward.
  if (L.last_attention >= 0)
    last[static_cast<size_t>(nodes[static_cast<size_t>(L.last_attention)].in[0])] = static_cast<int>(nodes.size());
  for (size_t t = 0; t < nt; ++t) {
    const graph::TensorDesc& d = L.graph.tensors[t];
    if (d.kind == graph::TensorKind::kWeight || first[t] < 0) continue;  // weights; tensors fused away
    L.tensors[t].per_image = d.rows() * L.pitch[t];
    L.tensors[t].first = first[t];
    L.tensors[t].last = last[t];
  }
  return L;
}

}  // namespace vit::gpu
