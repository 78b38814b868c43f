// vit-infer: the declarative op table (see op_cases.h).
#include "op_cases.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <utility>

#include "core/error.h"

namespace vit::test {

using graph::Op;

OpGraph::OpGraph(DType act, uint32_t seed) : seed_(seed) { g_.act_dtype = act; }

int OpGraph::input(const std::string& name, std::vector<int64_t> shape, DType dt) {
  graph::TensorDesc d;
  d.name = name;
  d.kind = graph::TensorKind::kInput;
  d.dtype = dt;
  d.shape = std::move(shape);
  return g_.add_tensor(std::move(d));
}

int OpGraph::weight(const std::string& name, std::vector<int64_t> shape, float lo, float hi) {
  auto t = std::make_shared<Tensor>(shape);
  std::mt19937 rng(seed_ + static_cast<uint32_t>(g_.tensors.size()) * 7919u);
  std::uniform_real_distribution<float> u(lo, hi);
  for (float& v : t->data) v = u(rng);
  g_.derived.push_back(t);
  graph::TensorDesc d;
  d.name = name;
  d.kind = graph::TensorKind::kWeight;
  d.dtype = DType::F32;
  d.shape = std::move(shape);
  d.host = t.get();
  return g_.add_tensor(std::move(d));
}

int OpGraph::node(Op op, const std::string& name, std::vector<int> in, std::vector<std::vector<int64_t>> out_shapes,
                  graph::OpParams p, int dt) {
  graph::Node n;
  n.op = op;
  n.name = name;
  n.in = std::move(in);
  n.params = std::move(p);
  for (size_t k = 0; k < out_shapes.size(); ++k) {
    graph::TensorDesc d;
    d.name = name + (k ? ".out" + std::to_string(k) : ".out");
    d.dtype = dt < 0 ? act() : static_cast<DType>(dt);
    d.shape = std::move(out_shapes[k]);
    d.keep = true;
    n.out.push_back(g_.add_tensor(std::move(d)));
  }
  g_.nodes.push_back(std::move(n));
  return g_.nodes.back().out[0];
}

int OpGraph::output(const std::string& name, std::vector<int64_t> shape, DType dt) {
  graph::TensorDesc d;
  d.name = name;
  d.dtype = dt;
  d.shape = std::move(shape);
  d.keep = true;
  const int t = g_.add_tensor(std::move(d));
  g_.nodes.back().out.push_back(t);
  return t;
}

namespace {

using Build = std::function<graph::Graph(DType, uint32_t)>;

std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

using Act = std::optional<Activation>;  // a Linear's epilogue: none, or an activation

const char* act_name(Act a) { return a ? activation_name(*a) : "none"; }

// y = act(x W^T + b) [+ residual]: residual 0 none, 1 an activation, 2 a periodic weight table
// of `table_rows` rows starting at row `row0` (the position embeddings in the patch GEMM).
OpCase linear_case(int64_t R, int64_t K, int64_t N, int batch, Act act, int residual, bool bias,
                   std::vector<std::string> cpu_bf16 = {"x"}) {
  OpCase c;
  c.name = std::string("linear/") + act_name(act) + (residual == 1 ? "_residual" : residual == 2 ? "_table" : "") +
           (bias ? "" : "_nobias") + "_" + dims({R, K, N}) + "_b" + std::to_string(batch);
  c.batch = batch;
  c.cpu_bf16 = std::move(cpu_bf16);
  c.build = [=](DType dt, uint32_t seed) {
    OpGraph g(dt, seed);
    const float a = 1.0f / std::sqrt(static_cast<float>(K));
    const int x = g.input("x", {R, K});
    const int w = g.weight("W", {N, K}, -a * 1.7f, a * 1.7f);
    const int b = bias ? g.weight("bias", {N}, -0.2f, 0.2f) : -1;
    graph::LinearParams p;
    p.act = act;
    int r = -1;
    if (residual == 1) r = g.input("residual", {R, N});
    if (residual == 2) {
      r = g.weight("table", {R + 1, N});
      p.table_residual = true;
      p.table_row0 = 1;  // the rows after a prefix row, as the patch GEMM reads pos
    }
    g.node(Op::kLinear, "linear", {x, w, b, r}, {{R, N}}, p);
    return g.take();
  };
  return c;
}

// ToMe's attention: the token sizes as an input (proportional attention) and the keys' head mean
// (the matching metric) as a second output.
void tome_attention(OpGraph& g, int qkv, int64_t T, int64_t H, int64_t hd) {
  const int size = g.input("size", {T}, DType::F32);
  g.node(Op::kAttention, "attention", {qkv, size}, {{T, H * hd}}, graph::AttentionParams{static_cast<int>(H), 0});
  g.output("attention.metric", {T, hd}, DType::F32);
}

// The QKV GEMM feeding attention, with the scatter epilogue where the backend has it; tome: the
// attention of a block after a merge (sizes in, metric out), the metric read through the layout.
OpCase qkv_attention_case(int64_t T, int64_t H, int64_t hd, int batch, bool scatter, bool tome = false) {
  OpCase c;
  const int64_t D = H * hd;
  c.name = std::string(scatter ? "qkv_attention/scatter_" : "qkv_attention/plain_") + (tome ? "tome_" : "") + "T" +
           std::to_string(T) + "_h" + std::to_string(H) + "_hd" + std::to_string(hd) + "_b" + std::to_string(batch);
  c.batch = batch;
  c.cpu_bf16 = {"x"};
  if (tome) c.size_inputs = {"size"};
  c.build = [=](DType dt, uint32_t seed) {
    OpGraph g(dt, seed);
    const float a = 2.5f / std::sqrt(static_cast<float>(D));
    const int x = g.input("x", {T, D});
    graph::LinearParams p;
    p.qkv_scatter = scatter;
    p.heads = static_cast<int>(H);
    const int qkv = g.node(Op::kLinear, "qkv", {x, g.weight("W", {3 * D, D}, -a, a), g.weight("bias", {3 * D}), -1},
                           {{T, 3 * D}}, p);
    // The scattered layout is backend-specific: only the attention outputs are compared.
    if (tome) {
      tome_attention(g, qkv, T, H, hd);
    } else {
      g.node(Op::kAttention, "attention", {qkv}, {{T, D}}, graph::AttentionParams{static_cast<int>(H), 0});
    }
    return g.take();
  };
  return c;
}

OpCase attention_case(int64_t T, int64_t H, int64_t hd, int batch, bool tome = false) {
  OpCase c;
  c.name = std::string("attention/") + (tome ? "tome_" : "") + "T" + std::to_string(T) + "_h" + std::to_string(H) +
           "_hd" + std::to_string(hd) + "_b" + std::to_string(batch);
  c.batch = batch;
  c.input_spread = 3.0f;  // scores of several units: peaked rows, the running max matters
  c.cpu_bf16 = {"attention.out"};
  if (tome) c.size_inputs = {"size"};
  c.build = [=](DType dt, uint32_t seed) {
    OpGraph g(dt, seed);
    const int qkv = g.input("qkv", {T, 3 * H * hd});
    if (tome) {
      tome_attention(g, qkv, T, H, hd);
    } else {
      g.node(Op::kAttention, "attention", {qkv}, {{T, H * hd}}, graph::AttentionParams{static_cast<int>(H), 0});
    }
    return g.take();
  };
  return c;
}

// One block's token merge: x [T, D], the metric [T, hd] fp32 (random directions: the decisions
// are taken in double from the same fp32 metric on every backend), the sizes (absent in the
// first block: all ones); r merged, `prefix` rows protected.
OpCase tome_merge_case(int64_t T, int64_t D, int64_t hd, int r, int prefix, bool sizes, int batch) {
  OpCase c;
  c.name = "tome_merge/T" + std::to_string(T) + "_D" + std::to_string(D) + "_hd" + std::to_string(hd) + "_r" +
           std::to_string(r) + "_prefix" + std::to_string(prefix) + (sizes ? "_sizes" : "") + "_b" +
           std::to_string(batch);
  c.batch = batch;
  if (sizes) c.size_inputs = {"size"};
  c.build = [=](DType dt, uint32_t seed) {
    OpGraph g(dt, seed);
    const int x = g.input("x", {T, D});
    const int metric = g.input("metric", {T, hd}, DType::F32);
    const int size = sizes ? g.input("size", {T}, DType::F32) : -1;
    graph::TomeParams tp;
    tp.r = r;
    tp.prefix = prefix;
    g.node(Op::kTomeMerge, "tome", {x, metric, size}, {{T - r, D}}, tp);
    g.output("tome.size", {T - r}, DType::F32);
    return g.take();
  };
  return c;
}

OpCase patchify_case(int64_t C, int64_t Hi, int64_t Wi, int64_t P, int batch) {
  OpCase c;
  c.name = "patchify/" + dims({C, Hi, Wi}) + "_p" + std::to_string(P) + "_b" + std::to_string(batch);
  c.batch = batch;
  c.cpu_bf16 = {"patchify.out"};
  c.build = [=](DType dt, uint32_t seed) {
    OpGraph g(dt, seed);
    const int img = g.input("images", {C, Hi, Wi}, DType::F32);  // images are fp32 whatever the run type
    g.node(Op::kPatchify, "patchify", {img}, {{(Hi / P) * (Wi / P), C * P * P}});
    return g.take();
  };
  return c;
}

// prefix: 0 none, else that many rows; pos_prefix: the table has rows for them (else no_embed_class).
OpCase embed_case(int64_t N, int64_t D, int64_t prefix, bool pos_prefix, bool bias, bool patches_final, int batch) {
  OpCase c;
  c.name = "embed/N" + std::to_string(N) + "_D" + std::to_string(D) + "_prefix" + std::to_string(prefix) +
           (pos_prefix ? "" : "_noembedclass") + (bias ? "_bias" : "") + (patches_final ? "_final" : "") + "_b" +
           std::to_string(batch);
  c.batch = batch;
  c.build = [=](DType dt, uint32_t seed) {
    OpGraph g(dt, seed);
    const int pe = g.input("patches", {N, D});
    const int pre = prefix ? g.weight("prefix", {prefix, D}) : -1;
    const int pos = g.weight("pos", {(pos_prefix ? prefix : 0) + N, D});
    graph::EmbedParams ep;
    ep.pos_prefix = pos_prefix;
    ep.patches_final = patches_final;
    g.node(Op::kEmbed, "embed", {pe, pre, pos, bias ? g.weight("bias", {D}) : -1}, {{prefix + N, D}}, ep);
    return g.take();
  };
  return c;
}

OpCase layernorm_case(int64_t R, int64_t D, bool rms, bool residual, float eps, int batch) {
  OpCase c;
  c.name = std::string(rms ? "layernorm/rms_" : "layernorm/") + (residual ? "residual_" : "") + dims({R, D}) + "_b" +
           std::to_string(batch);
  c.batch = batch;
  c.cpu_bf16 = {"layernorm.out"};
  c.build = [=](DType dt, uint32_t seed) {
    OpGraph g(dt, seed);
    const int x = g.input("x", {R, D});
    const int r = residual ? g.input("residual", {R, D}) : -1;
    std::vector<std::vector<int64_t>> outs = {{R, D}};
    if (residual) outs.push_back({R, D});
    g.node(Op::kLayerNorm, "layernorm", {x, g.weight("gamma", {D}, 0.8f, 1.2f), g.weight("beta", {D}, -0.2f, 0.2f), r},
           outs, graph::LayerNormParams{eps, rms});
    return g.take();
  };
  return c;
}

// add / mean2 (two activations), scale (a [D] weight), act (every activation), cast (to fp32).
OpCase elementwise_case(Op op, int64_t R, int64_t D, int batch, Activation act = Activation::kGeluErf) {
  OpCase c;
  c.name = std::string(graph::op_name(op)) + (op == Op::kAct ? std::string("/") + activation_name(act) + "_" : "/") +
           dims({R, D}) + "_b" + std::to_string(batch);
  c.batch = batch;
  c.input_spread = op == Op::kAct ? 4.0f : 1.0f;  // both tails of the activation
  c.build = [=](DType dt, uint32_t seed) {
    OpGraph g(dt, seed);
    const int a = g.input("a", {R, D});
    switch (op) {
      case Op::kAdd:
      case Op::kMean2: g.node(op, graph::op_name(op), {a, g.input("b", {R, D})}, {{R, D}}); break;
      case Op::kScale: g.node(op, "scale", {a, g.weight("gamma", {D}, -1.5f, 1.5f)}, {{R, D}}); break;
      case Op::kAct: g.node(op, "act", {a}, {{R, D}}, graph::ActParams{act}); break;
      case Op::kCast: g.node(op, "cast", {a}, {{R, D}}, {}, static_cast<int>(DType::F32)); break;
      default: fail(ErrorCode::kInternal, "elementwise_case: not an elementwise op");
    }
    return g.take();
  };
  return c;
}

OpCase glu_case(int64_t R, int64_t I, Activation act, int batch) {
  OpCase c;
  c.name = std::string("glu/") + activation_name(act) + "_" + dims({R, 2 * I}) + "_b" + std::to_string(batch);
  c.batch = batch;
  c.input_spread = 4.0f;
  c.cpu_bf16 = {"glu.out"};
  c.build = [=](DType dt, uint32_t seed) {
    OpGraph g(dt, seed);
    g.node(Op::kGlu, "glu", {g.input("x", {R, 2 * I})}, {{R, I}}, graph::ActParams{act});
    return g.take();
  };
  return c;
}

OpCase pool_case(PoolMode mode, int64_t T, int64_t D, int first, int batch) {
  OpCase c;
  c.name = std::string("pool/") + pool_mode_name(mode) + std::to_string(first) + "_" + dims({T, D}) +
           "_b" + std::to_string(batch);
  c.batch = batch;
  c.build = [=](DType dt, uint32_t seed) {
    OpGraph g(dt, seed);
    graph::PoolParams p;
    p.mode = mode;
    p.first = first;
    g.node(Op::kPool, "pool", {g.input("tokens", {T, D})}, {{D}}, p);
    return g.take();
  };
  return c;
}

// The map head's cross-attention: q a weight (one query for every image) or per image.
OpCase cross_attention_case(int64_t L, int64_t T, int64_t H, int64_t hd, int first, bool q_weight, int batch) {
  OpCase c;
  c.name = std::string("cross_attention/") + (q_weight ? "qweight_" : "qact_") + "L" + std::to_string(L) + "_T" +
           std::to_string(T) + "_h" + std::to_string(H) + "_hd" + std::to_string(hd) + "_first" +
           std::to_string(first) + "_b" + std::to_string(batch);
  c.batch = batch;
  c.input_spread = 3.0f;
  c.cpu_bf16 = {"cross_attention.out"};
  c.build = [=](DType dt, uint32_t seed) {
    OpGraph g(dt, seed);
    const int64_t D = H * hd;
    const int q = q_weight ? g.weight("q", {L, D}, -3.0f, 3.0f) : g.input("q", {L, D});
    g.node(Op::kCrossAttention, "cross_attention", {q, g.input("kv", {T, 2 * D})}, {{L, D}},
           graph::CrossAttentionParams{static_cast<int>(H), first});
    return g.take();
  };
  return c;
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = [] {
    std::vector<OpCase> v;
    v.push_back(patchify_case(3, 40, 24, 8, 3));
    v.push_back(patchify_case(3, 30, 44, 14, 1));  // a 2x3 grid with pixels unread (K = 588: padded on CUDA)
    v.push_back(linear_case(197, 64, 96, 3, std::nullopt, 0, true));
    for (const ActivationInfo& a : kActivations) v.push_back(linear_case(197, 64, 96, 1, a.act, 0, true));
    v.push_back(linear_case(50, 80, 200, 3, std::nullopt, 1, true));
    v.push_back(linear_case(50, 80, 200, 1, std::nullopt, 0, false));
    v.push_back(linear_case(16, 192, 48, 3, std::nullopt, 2, true));
    v.push_back(qkv_attention_case(197, 3, 64, 1, true));
    v.back().emulated = false;
    v.push_back(qkv_attention_case(197, 1, 64, 1, true));
    v.push_back(qkv_attention_case(50, 2, 24, 3, true));
    v.push_back(qkv_attention_case(50, 2, 40, 1, false));
    v.push_back(attention_case(197, 2, 80, 3));
    v.back().emulated = false;
    v.push_back(attention_case(577, 1, 24, 1));
    v.back().emulated = false;
    v.push_back(attention_case(197, 1, 80, 1));
    v.push_back(attention_case(35, 3, 40, 1));
    v.push_back(embed_case(16, 48, 1, true, true, false, 3));
    v.push_back(embed_case(16, 48, 5, false, true, false, 1));
    v.push_back(embed_case(16, 48, 2, true, false, true, 1));
    v.push_back(embed_case(15, 40, 0, false, false, false, 1));
    v.push_back(layernorm_case(197, 80, false, false, 1e-6f, 3));
    v.push_back(layernorm_case(50, 768, false, true, 1e-5f, 1));
    v.push_back(layernorm_case(197, 48, true, false, 1e-6f, 1));
    v.push_back(layernorm_case(50, 96, true, true, 1e-6f, 3));
    v.push_back(elementwise_case(Op::kAdd, 197, 48, 3));
    v.push_back(elementwise_case(Op::kMean2, 1, 100, 3));
    v.push_back(elementwise_case(Op::kScale, 50, 80, 3));
    for (const ActivationInfo& a : kActivations) v.push_back(elementwise_case(Op::kAct, 50, 96, 1, a.act));
    v.push_back(elementwise_case(Op::kCast, 197, 48, 3));
    v.push_back(glu_case(50, 88, Activation::kSilu, 3));
    v.push_back(glu_case(197, 40, Activation::kGeluErf, 1));
    v.push_back(pool_case(PoolMode::kRow, 197, 48, 0, 3));
    v.push_back(pool_case(PoolMode::kRow, 50, 48, 1, 1));
    v.push_back(pool_case(PoolMode::kMean, 197, 48, 1, 3));
    v.push_back(pool_case(PoolMode::kMax, 50, 80, 5, 1));
    v.push_back(pool_case(PoolMode::kAvgMax, 21, 64, 5, 3));
    v.push_back(cross_attention_case(1, 50, 4, 16, 1, true, 3));
    v.push_back(cross_attention_case(2, 197, 2, 24, 5, false, 1));
    // Token merging: proportional attention with the metric out, the merge itself (odd and even
    // token counts, r at the clip limit (T - prefix) / 2, cls / cls + dist / cls + 4 registers /
    // no prefix, the first block without sizes).
    v.push_back(attention_case(197, 2, 64, 3, true));
    v.back().emulated = false;
    v.push_back(attention_case(50, 2, 80, 1, true));
    v.push_back(attention_case(35, 3, 40, 3, true));
    v.push_back(qkv_attention_case(197, 3, 64, 1, true, true));
    v.back().emulated = false;
    v.push_back(qkv_attention_case(50, 2, 24, 1, true, true));
    v.push_back(tome_merge_case(197, 64, 64, 13, 1, false, 3));
    v.push_back(tome_merge_case(197, 48, 64, 98, 1, true, 1));
    v.push_back(tome_merge_case(198, 40, 24, 20, 1, true, 1));
    v.push_back(tome_merge_case(50, 80, 80, 24, 2, true, 3));
    v.push_back(tome_merge_case(35, 40, 40, 17, 0, false, 1));
    v.push_back(tome_merge_case(21, 64, 24, 8, 5, true, 3));
    return v;
  }();
  return cases;
}

const std::vector<OpCase>& perf_cases() {
  static const std::vector<OpCase> cases = [] {
    // ViT-B/16 at batch 256: the block's four GEMMs with the epilogues the fused graph gives
    // them, attention (T 197, 12 heads of 64) and the LayerNorm with its residual add.
    std::vector<OpCase> v;
    OpCase qkv = qkv_attention_case(197, 12, 64, 256, true);
    qkv.name = "vitb_b256/qkv_gemm+attention";
    v.push_back(std::move(qkv));
    OpCase proj = linear_case(197, 768, 768, 256, std::nullopt, 1, true);
    proj.name = "vitb_b256/proj_gemm+residual";
    v.push_back(std::move(proj));
    OpCase fc1 = linear_case(197, 768, 3072, 256, Activation::kGeluErf, 0, true);
    fc1.name = "vitb_b256/fc1_gemm+gelu";
    v.push_back(std::move(fc1));
    OpCase fc2 = linear_case(197, 3072, 768, 256, std::nullopt, 1, true);
    fc2.name = "vitb_b256/fc2_gemm+residual";
    v.push_back(std::move(fc2));
    OpCase attn = attention_case(197, 12, 64, 256);
    attn.name = "vitb_b256/attention";
    v.push_back(std::move(attn));
    OpCase ln = layernorm_case(197, 768, false, true, 1e-6f, 256);
    ln.name = "vitb_b256/layernorm+residual";
    v.push_back(std::move(ln));
    return v;
  }();
  return cases;
}

graph::Graph case_graph(const OpCase& c, DType act, uint32_t seed, bool cpu_bf16) {
  graph::Graph g = c.build(act, seed);
  if (cpu_bf16) {
    for (const std::string& name : c.cpu_bf16) {
      auto it = std::find_if(g.tensors.begin(), g.tensors.end(), [&](const graph::TensorDesc& d) { return d.name == name; });
      if (it == g.tensors.end()) fail(ErrorCode::kInternal, c.name + ": no tensor '" + name + "' to store bf16");
      it->dtype = DType::BF16;
    }
  }
  return g;
}

std::vector<graph::Op> ops_covered() {
  std::set<int> seen;
  for (const OpCase& c : op_cases())
    for (const graph::Node& n : c.build(DType::F32, 1).nodes) seen.insert(static_cast<int>(n.op));
  std::vector<graph::Op> v;
  for (int o : seen) v.push_back(static_cast<graph::Op>(o));
  return v;
}

}  // namespace vit::test
