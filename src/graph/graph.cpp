// vit-infer: the graph IR's helpers and build_vit, the one place that knows the ViT layer
// order (timm VisionTransformer.forward): patch embed -> prefix tokens (cls, dist, registers)
// + pos -> norm_pre -> depth x (pre-norm attention block, pre-norm MLP block, each a residual
// add) -> final norm -> pool -> fc_norm -> head (DeiT distilled: the mean of head and
// head_dist; map: the attention-pool head, map_head below) -> visual projection of the embeddings
// (CLIP WithProjection). Emitted unfused; the fusion pass (fusion.cpp) merges ops for the backends.
#include "graph/graph.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "model/limits.h"

namespace vit::graph {

const char* op_name(Op op) noexcept {
  switch (op) {
    case Op::kPatchify: return "patchify";
    case Op::kLinear: return "linear";
    case Op::kEmbed: return "embed";
    case Op::kLayerNorm: return "layernorm";
    case Op::kAttention: return "attention";
    case Op::kAdd: return "add";
    case Op::kAct: return "act";
    case Op::kGlu: return "glu";
    case Op::kScale: return "scale";
    case Op::kPool: return "pool";
    case Op::kMean2: return "mean2";
    case Op::kCast: return "cast";
    case Op::kCrossAttention: return "cross_attention";
    case Op::kTomeMerge: return "tome_merge";
  }
  return "?";
}

int64_t TensorDesc::numel() const noexcept {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t TensorDesc::rows() const noexcept {
  int64_t n = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) n *= shape[i];
  return n;
}

int Graph::add_tensor(TensorDesc d) {
  tensors.push_back(std::move(d));
  return static_cast<int>(tensors.size()) - 1;
}

std::vector<int> Graph::consumers(int id) const {
  std::vector<int> v;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (std::find(nodes[i].in.begin(), nodes[i].in.end(), id) != nodes[i].in.end()) v.push_back(static_cast<int>(i));
  return v;
}

void Graph::lifetimes(std::vector<int>& first, std::vector<int>& last) const {
  first.assign(tensors.size(), -1);
  last.assign(tensors.size(), -1);
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto touch = [&](int t) {
      if (t < 0 || tensors[static_cast<size_t>(t)].kind == TensorKind::kWeight) return;
      if (first[static_cast<size_t>(t)] < 0) first[static_cast<size_t>(t)] = static_cast<int>(i);
      last[static_cast<size_t>(t)] = static_cast<int>(i);
    };
    for (int t : nodes[i].in) touch(t);
    for (int t : nodes[i].out) touch(t);
  }
  for (size_t t = 0; t < tensors.size(); ++t)
    if (tensors[t].keep && first[t] >= 0) last[t] = static_cast<int>(nodes.size());
}

std::string Graph::describe() const {
  std::ostringstream os;
  for (const Node& n : nodes) {
    os << op_name(n.op) << " " << n.name << " (";
    for (size_t i = 0; i < n.in.size(); ++i) os << (i ? ", " : "") << (n.in[i] < 0 ? "-" : t(n.in[i]).name);
    os << ") -> ";
    for (size_t i = 0; i < n.out.size(); ++i) os << (i ? ", " : "") << t(n.out[i]).name;
    os << "\n";
  }
  return os.str();
}

bool fusion_enabled(bool requested) {
  const char* e = std::getenv("VIT_DISABLE_FUSION");
  const bool disabled = e && *e && std::strcmp(e, "0") != 0;
  return requested && !disabled;
}

namespace {

std::string dims_str(std::vector<int64_t> d) { return shape_str(d); }

// Emits nodes and tensors; every weight is checked against the shape the config implies.
// Shapes are compared by element count because loaders may keep singleton dims (cls [1, 1, D]).
class Builder {
 public:
  Builder(Graph& g, const char* who) : g_(g), who_(who) {}

  // Throws unless t holds the values of `shape` (checked before a builder reads a weight itself).
  void check(const Tensor& t, const std::vector<int64_t>& shape, const std::string& name) const {
    int64_t want = 1;
    for (int64_t d : shape) want *= d;
    if (t.numel() != want || static_cast<int64_t>(t.data.size()) != want) {
      fail(ErrorCode::kInvalidArgument, std::string(who_) + ": weight '" + name + "' has shape " +
                                            shape_str(t.shape) + " (" + std::to_string(t.data.size()) +
                                            " values), expected " + dims_str(shape) + " from the config");
    }
  }

  int weight(const Tensor& t, std::vector<int64_t> shape, const std::string& name) {
    check(t, shape, name);
    TensorDesc d;
    d.name = name;
    d.kind = TensorKind::kWeight;
    d.dtype = DType::F32;
    d.shape = std::move(shape);
    d.host = &t;
    return g_.add_tensor(std::move(d));
  }

  int act(const std::string& name, std::vector<int64_t> shape, DType dt) {
    TensorDesc d;
    d.name = name;
    d.dtype = dt;
    d.shape = std::move(shape);
    return g_.add_tensor(std::move(d));
  }

  // Adds a node whose single output is a new activation shaped like `shape_of` (or `shape`).
  int node(Op op, const std::string& name, std::vector<int> in, std::vector<int64_t> shape, OpParams p = {},
           DType dt = DType::F32, bool use_act = true) {
    const int out = act(name + ".out", std::move(shape), use_act ? g_.act_dtype : dt);
    Node n;
    n.op = op;
    n.name = name;
    n.in = std::move(in);
    n.out = {out};
    n.params = p;
    g_.nodes.push_back(std::move(n));
    return out;
  }

  const std::vector<int64_t>& shape(int t) const { return g_.t(t).shape; }
  // A second output of the node that produced `first` (a new activation of type dt).
  int extra_output(int first, const std::string& name, std::vector<int64_t> shape, DType dt) {
    const int t = act(name, std::move(shape), dt);
    for (Node& n : g_.nodes)
      if (!n.out.empty() && n.out[0] == first) n.out.push_back(t);
    return t;
  }

  // A weight computed here from the model's (owned by the graph).
  int derived(Tensor t, const std::string& name, std::vector<int64_t> shape = {}) {
    auto owned = std::make_shared<const Tensor>(std::move(t));
    g_.derived.push_back(owned);
    return weight(*owned, shape.empty() ? owned->shape : std::move(shape), name);
  }

 private:
  Graph& g_;
  const char* who_;
};

// The latent query projection of the map head, q = latent Wq^T + bq [L, D]: the same for every
// image, so it is computed once here (in double, rounded once to fp32) rather than per run; the
// graph keeps it as a derived weight that the cross-attention reads as its query.
Tensor project_latent(const Tensor& latent, const Tensor& qw, const Tensor& qb, int64_t L, int64_t D) {
  Tensor q({L, D});
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t o = 0; o < D; ++o) {
      double s = qb.data[static_cast<size_t>(o)];
      const float* a = latent.ptr() + l * D;
      const float* wr = qw.ptr() + o * D;
      for (int64_t i = 0; i < D; ++i) s += static_cast<double>(a[i]) * wr[i];
      q.data[static_cast<size_t>(l * D + o)] = static_cast<float>(s);
    }
  }
  return q;
}

// The attention-pool head (timm AttentionPoolLatent.forward; HF SiglipMultiheadAttentionPoolingHead)
// on the normed tokens x [T, D]: kv = x Wkv^T + bkv; o = cross-attention(q, kv) over the patch
// rows first..T-1; y = proj(o); y = y + fc2(act(fc1(norm(y)))); pooled = y[0] (pool 'token').
// Returns the pooled [D] tensor. Composed of Linear / LayerNorm / Gelu / Add / Pool plus the one
// cross-attention op, so the fusion pass and every backend's rows apply unchanged.
int map_head(Builder& b, const ViTConfig& c, const AttnPoolWeights& w, int x, int64_t T, const ActParams& act,
             const LayerNormParams& lnp, const char* who) {
  const int64_t D = c.hidden, L = c.map_latent_len, M = c.map_mlp_hidden;
  if (L <= 0 || M < 0) {
    fail(ErrorCode::kInvalidArgument, std::string(who) + ": map pooling needs the attention-pool weights (latent rows " +
                                          std::to_string(L) + ", mlp width " + std::to_string(M) + ")");
  }
  const std::string p = "attn_pool.";
  auto W = [&](const Tensor& t, std::vector<int64_t> s, const char* n) { return b.weight(t, std::move(s), p + n); };
  auto linear = [&](const char* n, int in, const Tensor& wt, const Tensor& bt, int64_t rows, int64_t out, int64_t k) {
    return b.node(Op::kLinear, p + n, {in, W(wt, {out, k}, (std::string(n) + ".weight").c_str()),
                                        W(bt, {out}, (std::string(n) + ".bias").c_str()), -1},
                  {rows, out}, LinearParams{});
  };
  // Read here, not by a node: validated like any weight first.
  b.check(w.latent, {L, D}, p + "latent");
  b.check(w.q_w, {D, D}, p + "q.weight");
  b.check(w.q_b, {D}, p + "q.bias");
  const int q = b.derived(project_latent(w.latent, w.q_w, w.q_b, L, D), p + "q(latent)");
  const int kv = linear("kv", x, w.kv_w, w.kv_b, T, 2 * D, D);
  CrossAttentionParams cp;
  cp.heads = c.heads;
  cp.first = c.pool_include_prefix ? 0 : c.prefix_tokens();  // timm: x[:, num_prefix_tokens:] before attn_pool
  int y = b.node(Op::kCrossAttention, p + "attn", {q, kv}, {L, D}, cp);
  y = linear("proj", y, w.proj_w, w.proj_b, L, D, D);
  PoolParams pp;
  pp.mode = PoolMode::kRow;  // AttentionPoolLatent pool_type 'token': latent row 0
  pp.first = 0;
  if (M == 0) return b.node(Op::kPool, "pool", {y}, {D}, pp);  // HF Aimv2AttentionPoolingHead: no norm, no MLP
  int h = b.node(Op::kLayerNorm, p + "norm", {y, W(w.norm_w, {D}, "norm.weight"), W(w.norm_b, {D}, "norm.bias"), -1},
                 {L, D}, lnp);
  h = linear("mlp.fc1", h, w.fc1_w, w.fc1_b, L, M, D);
  h = b.node(Op::kAct, p + "mlp.act", {h}, {L, M}, act);
  h = linear("mlp.fc2", h, w.fc2_w, w.fc2_b, L, D, M);
  y = b.node(Op::kAdd, p + "add", {y, h}, {L, D});
  return b.node(Op::kPool, "pool", {y}, {D}, pp);
}

}  // namespace

std::vector<int> tome_schedule(int tokens, int prefix, int depth, int r) {
  std::vector<int> t{tokens};
  for (int l = 0; l < depth; ++l) t.push_back(t.back() - std::min(r, std::max(0, t.back() - prefix) / 2));
  return t;
}

void check_tome(const ViTConfig& c, int r, const char* who) {
  const int T = c.tokens(), P = c.prefix_tokens(), most = std::max(0, T - P) / 2;
  if (r < 0 || r > most) {
    fail(ErrorCode::kInvalidArgument,
         std::string(who) + ": tome " + std::to_string(r) + " is outside 0.." + std::to_string(most) +
             " (tokens merged per block: at most half of the " + std::to_string(T - P) + " mergeable tokens, " +
             std::to_string(T) + " tokens less " + std::to_string(P) + " protected prefix tokens; 0 turns merging off)");
  }
}

void check_tome_outputs(bool attention, bool attention_layers, bool features, const char* who) {
  const char* what = attention ? "attention" : attention_layers ? "attention_layers" : features ? "features" : nullptr;
  if (what) {
    fail(ErrorCode::kUnsupported, std::string(who) + ": the " + what +
                                      " output is not defined with token merging (tome > 0): the blocks after the "
                                      "first merge have no per-token grid; request logits or embeddings, or run "
                                      "with tome 0");
  }
}

namespace {

// The config checks every graph needs (and the CUDA engine's validation, through check_model).
void check_config(const ViTConfig& c, const ViTWeights& w, int tome_r, const char* who) {
  auto bad = [&](const std::string& msg) { fail(ErrorCode::kInvalidArgument, std::string(who) + ": " + msg); };
  auto positive = [&](int v, const char* what) {
    if (v <= 0) bad(std::string("config ") + what + " must be positive, got " + std::to_string(v));
  };
  positive(c.image_h, "image_h");
  positive(c.image_w, "image_w");
  positive(c.patch, "patch");
  positive(c.in_chans, "in_chans");
  positive(c.hidden, "hidden");
  positive(c.heads, "heads");
  positive(c.mlp_hidden, "mlp_hidden");
  positive(c.depth, "depth");  // >= 1 so that the last block's attention always exists
  if (c.num_classes < 0) bad("config num_classes must not be negative");
  if (c.hidden % c.heads != 0)
    bad("hidden " + std::to_string(c.hidden) + " is not divisible by heads " + std::to_string(c.heads));
  if (c.image_h < c.patch || c.image_w < c.patch)  // other sizes: a floor(size / P) grid, as the patch conv
    bad("image size " + std::to_string(c.image_h) + "x" + std::to_string(c.image_w) + " is smaller than the patch size " +
        std::to_string(c.patch));
  if (!(c.ln_eps >= 0.0f)) bad("ln_eps must be >= 0");
  if (static_cast<int>(w.blocks.size()) != c.depth)
    bad("model has " + std::to_string(w.blocks.size()) + " blocks but config depth is " + std::to_string(c.depth));
  if (tome_r < 0) bad("tome " + std::to_string(tome_r) + " is negative (tokens merged per block)");
}

}  // namespace

void check_model(const Model& m, int tome_r, const char* who) { check_config(m.cfg, m.w, tome_r, who); }

namespace {

// The state build_vit's pieces share: the builder, the config at the run size, the weights, the
// sizes and the norm / activation params.
struct Forward {
  Graph& g;
  Builder& b;
  const Model& m;
  const ViTConfig& c;
  const ViTWeights& w;
  bool own_size;
  const char* who;
  int64_t D, I, C, P;  // width, MLP width, classes, prefix tokens
  int64_t T;           // the tokens of the current block (token merging reduces them)
  LayerNormParams lnp;
  ActParams mlp_act;
};

// The input, the patch embedding (the stride-P conv as im2col + GEMM), the prefix rows (cls, dist,
// registers) then the patch rows with pos (added to the prefix rows too unless the table has none:
// no_embed_class), norm_pre. Returns the tokens [T, D].
int embed_tokens(Forward& f) {
  Graph& g = f.g;
  Builder& b = f.b;
  const ViTConfig& c = f.c;
  const ViTWeights& w = f.w;
  const int64_t D = f.D, N = c.num_patches(), K = int64_t{c.in_chans} * c.patch * c.patch, P = f.P, T = f.T;
  const LayerNormParams& lnp = f.lnp;
  {
    TensorDesc in;
    in.name = "images";
    in.kind = TensorKind::kInput;
    in.dtype = DType::F32;
    in.shape = {c.in_chans, c.image_h, c.image_w};
    g.images = g.add_tensor(std::move(in));
  }
  // Patch embedding: the stride-P conv as im2col + GEMM, then cls + pos.
  const int cols = b.node(Op::kPatchify, "patchify", {g.images}, {N, K});
  // The conv bias is added with pos by the embed (the kernel's unfused form); fusion moves both
  // into the GEMM's epilogue.
  const int patch_bias = c.patch_bias ? b.weight(w.patch_b, {D}, "patch_embed.proj.bias") : -1;
  int pe = b.node(Op::kLinear, "patch_embed",
                  {cols, b.weight(w.patch_w, {D, K}, "patch_embed.proj.weight"), c.embed_norm ? patch_bias : -1, -1},
                  {N, D}, LinearParams{});
  if (c.embed_norm) {  // timm PatchEmbed.norm (aimv2): on conv + bias, before pos
    pe = b.node(Op::kLayerNorm, "patch_embed.norm",
                {pe, b.weight(w.patch_norm_w, {D}, "patch_embed.norm.weight"),
                 b.weight(w.patch_norm_b, {D}, "patch_embed.norm.bias"), -1},
                {N, D}, lnp);
  }
  // At another run size the table is resampled for it (owned by the graph); else the model's.
  const int pos = f.own_size ? b.weight(w.pos, {c.pos_rows(c.num_patches()), D}, "pos_embed")
                             : b.derived(pos_embed_at(f.m, c.grid_h(), c.grid_w()), "pos_embed", {c.pos_rows(c.num_patches()), D});
  // The plain ViT's prefix is its cls token alone; the families' rows are concatenated by the loader.
  const bool cls_only = P == 1 && c.class_token;
  const int prefix = P == 0 ? -1
                     : cls_only ? b.weight(w.cls, {1, D}, "cls_token")
                                : b.weight(w.prefix, {P, D}, "prefix tokens (cls_token, dist_token, reg_token)");
  EmbedParams ep;
  ep.pos_prefix = !c.no_embed_class;
  int x = b.node(Op::kEmbed, "embed", {pe, prefix, pos, c.embed_norm ? -1 : patch_bias}, {T, D}, ep);
  if (c.pre_norm) {
    x = b.node(Op::kLayerNorm, "norm_pre",
               {x, b.weight(w.norm_pre_w, {D}, "norm_pre.weight"), b.weight(w.norm_pre_b, {D}, "norm_pre.bias"), -1},
               {T, D}, lnp);
  }
  return x;
}

// Block l on the tokens x [T, D]: x + ls1 * proj(attn(norm1(x))), ToMe's merge when the schedule
// merges r > 0 tokens here (f.T and *sizes follow it), x + ls2 * mlp(norm2(x)); with res_post
// (ResPostBlock) each norm follows its branch instead: x + norm1(proj(attn(x))), x + norm2(mlp(x)).
// Returns x.
int vit_block(Forward& f, int l, int x, int64_t r, int* sizes_io) {
  Builder& b = f.b;
  const ViTConfig& c = f.c;
  const int64_t D = f.D, I = f.I;
  int64_t& T = f.T;
  int& sizes = *sizes_io;
  const LayerNormParams& lnp = f.lnp;
  const ActParams& mlp_act = f.mlp_act;
  const BlockWeights& bw = f.w.blocks[static_cast<size_t>(l)];
  const std::string p = "blocks." + std::to_string(l) + ".";
  auto W = [&](const Tensor& t, std::vector<int64_t> s, const char* n) { return b.weight(t, std::move(s), p + n); };
  auto linear = [&](const char* n, int in, const Tensor& wt, const Tensor& bt, int64_t out, int64_t k) {
    return b.node(Op::kLinear, p + n, {in, W(wt, {out, k}, (std::string(n) + ".weight").c_str()),
                                        W(bt, {out}, (std::string(n) + ".bias").c_str()), -1},
                  {T, out}, LinearParams{});
  };
  auto norm = [&](const char* n, int in, const Tensor& gt, const Tensor& bt) {
    return b.node(Op::kLayerNorm, p + n, {in, W(gt, {D}, (std::string(n) + ".weight").c_str()),
                                          W(bt, {D}, (std::string(n) + ".bias").c_str()), -1},
                  {T, D}, lnp);
  };
  // Attention half: x = x + ls1 * proj(attn(norm1(x))) (ls1: LayerScale, when the model has it).
  int h = c.res_post ? x : norm("norm1", x, bw.ln1_w, bw.ln1_b);
  const int qkv = linear("attn.qkv", h, bw.qkv_w, bw.qkv_b, 3 * D, D);
  // With merged tokens, proportional attention: the sizes bias every key's logit by log(size).
  h = b.node(Op::kAttention, p + "attn", sizes >= 0 ? std::vector<int>{qkv, sizes} : std::vector<int>{qkv}, {T, D},
             AttentionParams{c.heads, l});
  const int metric = r > 0 ? b.extra_output(h, p + "attn.metric", {T, c.head_dim()}, DType::F32) : -1;
  h = linear("attn.proj", h, bw.proj_w, bw.proj_b, D, D);
  if (c.res_post) h = norm("norm1", h, bw.ln1_w, bw.ln1_b);
  if (c.layer_scale) h = b.node(Op::kScale, p + "ls1", {h, W(bw.ls1, {D}, "ls1.gamma")}, {T, D});
  x = b.node(Op::kAdd, p + "add1", {x, h}, {T, D});
  if (r > 0) {  // ToMe (ToMeBlock): merge between the attention and the MLP halves
    TomeParams tp;
    tp.r = static_cast<int>(r);
    tp.prefix = c.prefix_tokens();
    const int merged = b.node(Op::kTomeMerge, p + "tome", {x, metric, sizes}, {T - r, D}, tp);
    sizes = b.extra_output(merged, p + "tome.size", {T - r}, DType::F32);
    x = merged;
    T -= r;
  }
  // MLP half: x = x + ls2 * fc2(GELU(fc1(norm2(x)))); gated (SwiGLU): fc1 gives the gate and
  // value halves [T, 2I], act(gate) * value feeds fc2.
  h = c.res_post ? x : norm("norm2", x, bw.ln2_w, bw.ln2_b);
  if (c.glu) {
    h = linear("mlp.fc1", h, bw.fc1_w, bw.fc1_b, 2 * I, D);
    h = b.node(Op::kGlu, p + "mlp.glu", {h}, {T, I}, mlp_act);
  } else {
    h = linear("mlp.fc1", h, bw.fc1_w, bw.fc1_b, I, D);
    h = b.node(Op::kAct, p + "mlp.act", {h}, {T, I}, mlp_act);
  }
  h = linear("mlp.fc2", h, bw.fc2_w, bw.fc2_b, D, I);
  if (c.res_post) h = norm("norm2", h, bw.ln2_w, bw.ln2_b);
  if (c.layer_scale) h = b.node(Op::kScale, p + "ls2", {h, W(bw.ls2, {D}, "ls2.gamma")}, {T, D});
  x = b.node(Op::kAdd, p + "add2", {x, h}, {T, D});
  return x;
}

// The head, in timm's order (forward_features, then forward_head), on the last block's tokens x;
// sets the graph's features, logits and embeddings outputs.
void vit_head(Forward& f, int x) {
  Graph& g = f.g;
  Builder& b = f.b;
  const ViTConfig& c = f.c;
  const ViTWeights& w = f.w;
  const char* who = f.who;
  const int64_t D = f.D, C = f.C, P = f.P, T = f.T;
  const LayerNormParams& lnp = f.lnp;
  const ActParams& mlp_act = f.mlp_act;
  auto bad = [&](const std::string& msg) { fail(ErrorCode::kInvalidArgument, std::string(who) + ": " + msg); };
  // forward_features ends with the final norm over every token (the
  // features output: the tokens a dense-feature user reads, timm's forward_features, HF's
  // last_hidden_state), then forward_head: pool -> fc_norm -> classifier. (Normalising the
  // pooled rows alone would give the same pooled values; the features need all rows.)
  auto norm = [&](const char* n, int in, const Tensor& gt, const Tensor& bt, std::vector<int64_t> s) {
    return b.node(Op::kLayerNorm, n, {in, b.weight(gt, {D}, std::string(n) + ".weight"),
                                      b.weight(bt, {D}, std::string(n) + ".bias"), -1},
                  std::move(s), lnp);
  };
  auto head = [&](const char* n, int in, const Tensor& wt, const Tensor& bt) {
    return b.node(Op::kLinear, n, {in, b.weight(wt, {C, D}, std::string(n) + ".weight"),
                                   b.weight(bt, {C}, std::string(n) + ".bias"), -1},
                  {C}, LinearParams{});
  };
  auto row = [&](int in, int r) {
    PoolParams pp;
    pp.mode = PoolMode::kRow;
    pp.first = r;
    return b.node(Op::kPool, r == 0 ? "pool" : "pool_dist", {in}, {D}, pp);
  };
  int pooled, logits = -1;
  g.features = x;  // HF CLIP's last_hidden_state: before its post_layernorm (features_before_norm)
  if (c.final_norm) x = norm("norm", x, w.norm_w, w.norm_b, {T, D});
  if (!c.features_before_norm) g.features = x;
  g.tensors[static_cast<size_t>(g.features)].keep = true;
  if (c.dist_token && c.dist_head) {
    // DeiT distilled (timm VisionTransformerDistilled.forward_head, inference): the cls and dist
    // rows of the normed tokens, each through its own head; both outputs are their mean.
    if (c.pool != GlobalPool::kToken || !c.class_token) bad("a distillation token needs token pooling and a class token");
    const int r0 = row(x, 0), r1 = row(x, 1);
    pooled = b.node(Op::kMean2, "pool_mean", {r0, r1}, {D});
    if (C > 0) {
      logits = b.node(Op::kMean2, "head_mean",
                      {head("head", r0, w.head_w, w.head_b), head("head_dist", r1, w.head_dist_w, w.head_dist_b)}, {C});
    }
  } else if (c.head_cls_mean) {
    // HF Dinov2ForImageClassification: classifier(concat(cls, mean(patch rows))) of the normed
    // tokens, as its weight's two halves: head(cls) + head_mean(mean). The embeddings are the cls
    // row (Dinov2Model's pooler_output).
    if (!c.class_token || c.pool != GlobalPool::kToken || !c.final_norm || C <= 0)
      bad("a cls + patch-mean classifier needs a class token, token pooling, a final norm and classes");
    pooled = row(x, 0);  // x: the normed tokens (above)
    PoolParams pp;
    pp.mode = PoolMode::kMean;
    pp.first = static_cast<int>(P);  // HF: sequence_output[:, 1 + num_register_tokens:]
    const int mean = b.node(Op::kPool, "pool_patch_mean", {x}, {D}, pp);
    const int half = b.node(Op::kLinear, "head_patch_mean",
                            {mean, b.weight(w.head_mean_w, {C, D}, "classifier.weight[:, D:]"), -1, -1}, {C},
                            LinearParams{});
    logits = b.node(Op::kAdd, "head_sum", {head("head", pooled, w.head_w, w.head_b), half}, {C});
  } else {
    if (c.pool == GlobalPool::kToken) {
      if (!c.class_token) bad("token pooling needs a class token (class_token=False models pool avg / max)");
      pooled = row(x, 0);
    } else if (c.pool == GlobalPool::kMap) {
      // timm: norm over every token (above), then the attention pool over the patch rows (HF
      // SigLIP: post_layernorm, then the head).
      pooled = map_head(b, c, w.attn_pool, x, T, mlp_act, lnp, who);
    } else {
      PoolParams pp;
      pp.mode = global_pool_info(c.pool).mode;
      pp.first = c.pool_include_prefix ? 0 : static_cast<int>(P);  // timm: x[:, num_prefix_tokens:]
      pooled = b.node(Op::kPool, "pool", {x}, {D}, pp);
    }
    if (c.fc_norm) pooled = norm("fc_norm", pooled, w.fc_norm_w, w.fc_norm_b, {D});
    if (C > 0) logits = head("head", pooled, w.head_w, w.head_b);
  }
  if (c.proj_dim > 0) {
    // HF CLIPVisionModelWithProjection: image_embeds = visual_projection(pooled), no bias.
    pooled = b.node(Op::kLinear, "visual_projection",
                    {pooled, b.weight(w.proj_w, {c.proj_dim, D}, "visual_projection.weight"), -1, -1}, {c.proj_dim},
                    LinearParams{});
  }
  if (logits >= 0) {
    g.logits = b.node(Op::kCast, "logits", {logits}, {C}, {}, DType::F32, false);
    g.tensors[static_cast<size_t>(g.logits)].keep = true;
  }
  g.embeddings = b.node(Op::kCast, "embeddings", {pooled}, {c.embed_dim()}, {}, DType::F32, false);
  g.tensors[static_cast<size_t>(g.embeddings)].keep = true;
}

}  // namespace

Graph build_vit(const Model& m, DType act, const char* who, RunSize size, int tome_r) {
  if (size.h > 0 || size.w > 0) m.cfg.check_run_size(size.h, size.w, limits::kMaxImageSide, who);
  const bool own_size = size.h <= 0 || (size.h == m.cfg.image_h && size.w == m.cfg.image_w);
  const ViTConfig sized = own_size ? ViTConfig{} : m.cfg.at_size(size.h, size.w);
  const ViTConfig& c = own_size ? m.cfg : sized;
  check_config(c, m.w, tome_r, who);
  Graph g;
  g.act_dtype = act;
  g.depth = c.depth;
  g.heads = c.heads;
  g.tokens = c.tokens();
  g.tome_r = tome_r;
  g.image_h = c.image_h;
  g.image_w = c.image_w;
  Builder b(g, who);
  Forward f{g, b, m, c, m.w, own_size, who, c.hidden, c.mlp_hidden, c.num_classes, c.prefix_tokens(), c.tokens(),
            LayerNormParams{c.ln_eps, c.rms_norm}, ActParams{c.act}};
  int x = embed_tokens(f);
  // ToMe: tokens per block and the merged tokens' sizes (-1 until the first merge: all ones).
  const std::vector<int> sched = tome_schedule(c.tokens(), c.prefix_tokens(), c.depth, tome_r);
  int sizes = -1;
  for (int l = 0; l < c.depth; ++l) x = vit_block(f, l, x, f.T - sched[static_cast<size_t>(l) + 1], &sizes);
  vit_head(f, x);
  return g;
}

}  // namespace vit::graph
