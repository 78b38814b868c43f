// vit-infer (internal): what a layout's names imply, for every row alike: the tensors a resolved
// config expects (names -> stored shapes), the check that the checkpoint holds exactly those, and
// the mapping onto the internal timm-oriented fp32 weights (separate q / k / v and gate / value
// Linears concatenated; JAX kernels transposed / flattened, vit-reference.md §2; biases a layout or
// config leaves out read as zeros, which add nothing).
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/resolve.h"

namespace vit::detail {

namespace {

using Expect = std::map<std::string, Shape>;

// Block i's module (its weight and bias names under the block prefix).
Module in_block(const LayoutNames& n, int i, const Module& m) {
  return {m.w.empty() ? std::string() : n.in_block(i, m.w), m.b.empty() ? std::string() : n.in_block(i, m.b)};
}

void expected_attn_pool(const AttnPoolNames& a, const ViTConfig& c, Expect* e) {
  const int64_t D = c.hidden, M = c.map_mlp_hidden;
  auto lin = [&](const Module& m, int64_t out, int64_t in, bool bias) {
    if (m.w.empty()) return;
    (*e)[m.w] = {out, in};
    if (bias) (*e)[m.b] = {out};
  };
  (*e)[a.latent] = {1, c.map_latent_len, D};
  lin(a.in_proj, 3 * D, D, true);  // nn.MultiheadAttention: always with its bias
  lin(a.q, D, D, c.map_qkv_bias);
  lin(a.kv, 2 * D, D, c.map_qkv_bias);
  lin(a.k, D, D, c.map_qkv_bias);
  lin(a.v, D, D, c.map_qkv_bias);
  lin(a.proj, D, D, true);
  if (!a.norm.w.empty()) (*e)[a.norm.w] = (*e)[a.norm.b] = {D};
  lin(a.fc1, M, D, true);
  lin(a.fc2, D, M, true);
}

}  // namespace

Expect expected_tensors(const LayoutNames& n, const Match& m, const ViTConfig& c, int64_t pos_rows) {
  Expect e;
  const int64_t D = c.hidden, I = c.mlp_hidden, C = c.num_classes, P = c.patch, Ci = c.in_chans;
  const int64_t I1 = c.glu ? 2 * I : I;  // fc1's rows: the gate and value halves of a gated MLP
  const int64_t H = c.heads, hd = c.hidden / c.heads;
  const bool jax = n.conv == Convention::kJax;
  const bool mlp_bias = m.mlp_bias.value_or(c.proj_bias);
  // A norm's tensors: weight and bias, or the weight alone (RMSNorm, or a layout without the bias).
  auto norm = [&](const Module& mod) {
    e[mod.w] = {D};
    if (!mod.b.empty() && !c.rms_norm) e[mod.b] = {D};
  };
  // A Linear [out, in] (JAX Dense kernels [in, out]) and its bias [out] when it has one.
  auto lin = [&](const Module& mod, int64_t out, int64_t in, bool bias) {
    e[mod.w] = jax ? Shape{in, out} : Shape{out, in};
    if (bias) e[mod.b] = {out};
  };
  if (c.class_token) e[n.cls] = n.flat_tokens ? Shape{D} : Shape{1, 1, D};
  if (c.dist_token) e[n.dist] = {1, 1, D};
  if (c.reg_tokens > 0) e[n.reg] = {1, c.reg_tokens, D};
  e[n.pos] = n.flat_tokens ? Shape{pos_rows, D} : Shape{1, pos_rows, D};
  e[n.patch.w] = jax ? Shape{P, P, Ci, D} : Shape{D, Ci, P, P};
  if (c.patch_bias) e[n.patch.b] = {D};
  if (c.embed_norm) norm(n.patch_norm);
  if (c.pre_norm) norm(n.norm_pre);
  const BlockNames& bn = n.block;
  for (int i = 0; i < c.depth; ++i) {
    const auto B = [&](const Module& mod) { return in_block(n, i, mod); };
    norm(B(bn.ln1));
    if (!bn.qkv.w.empty()) {
      lin(B(bn.qkv), 3 * D, D, c.qkv_bias);
    } else {
      for (const Module* q : {&bn.q, &bn.k, &bn.v}) {
        if (!jax) {
          lin(B(*q), D, D, c.qkv_bias);
          continue;
        }
        e[B(*q).w] = {D, H, hd};  // flax DenseGeneral over the heads
        if (c.qkv_bias) e[B(*q).b] = {H, hd};
      }
    }
    if (jax) {
      e[B(bn.proj).w] = {H, hd, D};
      if (c.proj_bias) e[B(bn.proj).b] = {D};
    } else {
      lin(B(bn.proj), D, D, c.proj_bias);
    }
    norm(B(bn.ln2));
    if (!bn.fc1_gate.w.empty()) {
      lin(B(bn.fc1_gate), I, D, mlp_bias);
      lin(B(bn.fc1_value), I, D, mlp_bias);
    } else {
      lin(B(bn.fc1), I1, D, mlp_bias);
    }
    lin(B(bn.fc2), D, I, mlp_bias);
    if (c.layer_scale) e[n.in_block(i, bn.ls1)] = e[n.in_block(i, bn.ls2)] = {D};
  }
  if (c.final_norm) norm(n.norm);
  if (c.fc_norm) norm(n.fc_norm);
  if (C > 0) {
    lin(n.head, C, c.head_cls_mean ? 2 * D : D, true);
    if (c.dist_token && c.dist_head) lin(n.head_dist, C, D, true);
  }
  if (c.proj_dim > 0) e[n.proj] = {c.proj_dim, D};
  if (c.pool == GlobalPool::kMap) expected_attn_pool(n.attn_pool, c, &e);
  return e;
}

void check_tensors(const TensorSource& src, const LayoutRow& row, const LayoutNames& n, const Expect& expect,
                   const std::string& file) {
  std::vector<std::string> missing, extra;
  for (const auto& [name, s] : expect) {
    if (!src.has(name)) missing.push_back(name);
  }
  if (!missing.empty()) {
    fail(ErrorCode::kFormat, file + ": missing " + to_s(static_cast<int64_t>(missing.size())) + " tensor(s) (" +
                                 row.name + " layout): " + name_list(missing));
  }
  for (const std::string& name : src.names()) {
    if (!expect.count(name) && std::find(n.ignored.begin(), n.ignored.end(), name) == n.ignored.end()) {
      extra.push_back(name);
    }
  }
  if (!extra.empty()) {
    fail(ErrorCode::kFormat, file + ": unexpected " + to_s(static_cast<int64_t>(extra.size())) + " tensor(s) (" +
                                 row.name + " layout): " + name_list(extra));
  }
  for (const auto& [name, s] : expect) {
    const Shape got = src.shape(name);
    if (got != s) {
      fail(ErrorCode::kFormat, file + ": tensor '" + name + "' has shape " + shape_str(got) + ", expected " +
                                   shape_str(s));
    }
  }
}

namespace {

Tensor reshaped(Tensor t, Shape s) {
  t.shape = std::move(s);
  return t;
}

Tensor concat_rows(const std::vector<Tensor>& parts, Shape shape) {
  Tensor o;
  o.shape = std::move(shape);
  for (const Tensor& p : parts) o.data.insert(o.data.end(), p.data.begin(), p.data.end());
  return o;
}

// Rows [r0, r0 + n) of a [rows, cols] tensor (or of a vector when cols == 1).
Tensor row_slice(const Tensor& t, int64_t r0, int64_t n, int64_t cols) {
  Tensor o(cols == 1 ? Shape{n} : Shape{n, cols});
  std::copy(t.data.begin() + r0 * cols, t.data.begin() + (r0 + n) * cols, o.data.begin());
  return o;
}

// Reads the tensors of one layout into the internal orientation.
class Mapper {
 public:
  Mapper(const TensorSource& src, const LayoutNames& n, const ViTConfig& c, std::vector<std::string>* warnings)
      : src_(src), n_(n), c_(c), jax_(n.conv == Convention::kJax), warnings_(warnings) {}

  Tensor operator()(const std::string& name) const {
    Tensor t = src_.read(name);
    int64_t bad = 0;
    for (float v : t.data) bad += !std::isfinite(v);
    if (bad) {
      warnings_->push_back("tensor '" + name + "' holds " + to_s(bad) + " NaN/Inf value(s) of " + to_s(t.numel()));
    }
    return t;
  }
  // A norm's weight and its bias (zeros for RMSNorm or a layout without one).
  void norm(const Module& m, Tensor* w, Tensor* b) const {
    *w = (*this)(m.w);
    *b = !m.b.empty() && !c_.rms_norm ? (*this)(m.b) : Tensor({c_.hidden});
  }
  // A Linear's weight as [out, in] (JAX kernels, [in, out] however the heads split them, transposed).
  Tensor weight(const Module& m, int64_t out, int64_t in) const {
    return jax_ ? transpose2d((*this)(m.w), in, out) : (*this)(m.w);
  }
  Tensor bias(const Module& m, int64_t out, bool has) const { return has ? (*this)(m.b) : Tensor({out}); }
  // One [sum(out), in] Linear from the parts (q | k | v, gate | value), and its bias.
  void fused(const std::vector<const Module*>& parts, int64_t out_each, int64_t in, bool has_bias, Tensor* w,
             Tensor* b) const {
    std::vector<Tensor> ws, bs;
    for (const Module* p : parts) ws.push_back(weight(*p, out_each, in));
    for (const Module* p : parts) bs.push_back(bias(*p, out_each, has_bias));
    const int64_t out = out_each * static_cast<int64_t>(parts.size());
    *w = concat_rows(ws, {out, in});
    *b = concat_rows(bs, {out});
  }

  void patch(ViTWeights* w) const {
    const int64_t D = c_.hidden, P = c_.patch, Ci = c_.in_chans;
    if (!jax_) {
      w->patch_w = reshaped((*this)(n_.patch.w), {D, Ci * P * P});
      return;
    }
    // HWIO [P, P, C, D] -> OIHW [D, C, P, P] flattened to [D, C*P*P].
    const Tensor k = (*this)(n_.patch.w);
    w->patch_w = Tensor({D, Ci * P * P});
    for (int64_t py = 0; py < P; ++py)
      for (int64_t px = 0; px < P; ++px)
        for (int64_t ci = 0; ci < Ci; ++ci)
          for (int64_t d = 0; d < D; ++d) {
            w->patch_w.data[d * Ci * P * P + (ci * P + py) * P + px] = k.data[((py * P + px) * Ci + ci) * D + d];
          }
  }

  void block(int i, bool mlp_bias, BlockWeights* k) const {
    const int64_t D = c_.hidden, I = c_.mlp_hidden;
    const BlockNames& bn = n_.block;
    const auto B = [&](const Module& m) { return in_block(n_, i, m); };
    norm(B(bn.ln1), &k->ln1_w, &k->ln1_b);
    if (!bn.qkv.w.empty()) {
      k->qkv_w = (*this)(B(bn.qkv).w);
      k->qkv_b = bias(B(bn.qkv), 3 * D, c_.qkv_bias);
    } else {
      const Module q = B(bn.q), kk = B(bn.k), v = B(bn.v);
      fused({&q, &kk, &v}, D, D, c_.qkv_bias, &k->qkv_w, &k->qkv_b);
    }
    k->proj_w = weight(B(bn.proj), D, D);
    k->proj_b = bias(B(bn.proj), D, c_.proj_bias);
    norm(B(bn.ln2), &k->ln2_w, &k->ln2_b);
    if (!bn.fc1_gate.w.empty()) {  // act(gate x) * value x as one [2I, D] fc1, gate rows first
      const Module g = B(bn.fc1_gate), v = B(bn.fc1_value);
      fused({&g, &v}, I, D, mlp_bias, &k->fc1_w, &k->fc1_b);
    } else {
      const int64_t I1 = c_.glu ? 2 * I : I;
      k->fc1_w = weight(B(bn.fc1), I1, D);
      k->fc1_b = bias(B(bn.fc1), I1, mlp_bias);
    }
    k->fc2_w = weight(B(bn.fc2), D, I);
    k->fc2_b = bias(B(bn.fc2), D, mlp_bias);
    if (c_.layer_scale) {
      k->ls1 = (*this)(n_.in_block(i, bn.ls1));
      k->ls2 = (*this)(n_.in_block(i, bn.ls2));
    }
  }

  void head(ViTWeights* w) const {
    const int64_t D = c_.hidden, C = c_.num_classes;
    if (c_.head_cls_mean) {
      // [C, 2D] -> the cls half [C, D] and the patch-mean half [C, D].
      const Tensor hw = (*this)(n_.head.w);
      w->head_w = Tensor({C, D});
      w->head_mean_w = Tensor({C, D});
      for (int64_t r = 0; r < C; ++r) {
        std::copy_n(hw.data.begin() + r * 2 * D, D, w->head_w.data.begin() + r * D);
        std::copy_n(hw.data.begin() + r * 2 * D + D, D, w->head_mean_w.data.begin() + r * D);
      }
      w->head_b = (*this)(n_.head.b);
      return;
    }
    w->head_w = weight(n_.head, C, D);
    w->head_b = (*this)(n_.head.b);
    if (c_.dist_token && c_.dist_head) {
      w->head_dist_w = weight(n_.head_dist, C, D);
      w->head_dist_b = (*this)(n_.head_dist.b);
    }
  }

  // The attention-pool head -> AttnPoolWeights. HF's nn.MultiheadAttention in_proj rows are
  // q | k | v, so q is rows 0..D and kv (k | v, as timm's kv Linear) rows D..3D. Without a q
  // Linear (HF Aimv2AttentionPoolingHead: the raw latent is the query) q is the identity with no
  // bias, so the derived query latent I + 0 is the latent exactly.
  void attn_pool(AttnPoolWeights* w) const {
    const AttnPoolNames& a = n_.attn_pool;
    const int64_t D = c_.hidden, Lq = c_.map_latent_len;
    const bool qb = c_.map_qkv_bias;
    w->latent = reshaped((*this)(a.latent), {Lq, D});
    if (!a.in_proj.w.empty()) {
      const Tensor in_w = (*this)(a.in_proj.w), in_b = (*this)(a.in_proj.b);
      w->q_w = row_slice(in_w, 0, D, D);
      w->kv_w = row_slice(in_w, D, 2 * D, D);
      w->q_b = row_slice(in_b, 0, D, 1);
      w->kv_b = row_slice(in_b, D, 2 * D, 1);
    } else if (!a.q.w.empty()) {
      w->q_w = (*this)(a.q.w);
      w->kv_w = (*this)(a.kv.w);
      w->q_b = bias(a.q, D, qb);
      w->kv_b = bias(a.kv, 2 * D, qb);
    } else {
      w->q_w = Tensor({D, D});
      for (int64_t i = 0; i < D; ++i) w->q_w.data[static_cast<size_t>(i * D + i)] = 1.0f;
      w->q_b = Tensor({D});
      w->kv_w = concat_rows({(*this)(a.k.w), (*this)(a.v.w)}, {2 * D, D});
      w->kv_b = qb ? concat_rows({(*this)(a.k.b), (*this)(a.v.b)}, {2 * D}) : Tensor({2 * D});
    }
    w->proj_w = (*this)(a.proj.w);
    w->proj_b = (*this)(a.proj.b);
    if (!a.norm.w.empty()) {
      w->norm_w = (*this)(a.norm.w);
      w->norm_b = (*this)(a.norm.b);
    }
    if (!a.fc1.w.empty()) {
      w->fc1_w = (*this)(a.fc1.w);
      w->fc1_b = (*this)(a.fc1.b);
      w->fc2_w = (*this)(a.fc2.w);
      w->fc2_b = (*this)(a.fc2.b);
    }
  }

 private:
  const TensorSource& src_;
  const LayoutNames& n_;
  const ViTConfig& c_;
  bool jax_;
  std::vector<std::string>* warnings_;
};

}  // namespace

void map_weights(const TensorSource& src, const LayoutNames& n, const Match& m, const ViTConfig& c,
                 const RowResolved& r, ViTWeights* w, std::vector<std::string>* warnings) {
  const Mapper rd(src, n, c, warnings);
  const int64_t D = c.hidden;
  rd.patch(w);
  w->patch_b = rd.bias(n.patch, D, c.patch_bias);
  if (c.embed_norm) rd.norm(n.patch_norm, &w->patch_norm_w, &w->patch_norm_b);
  if (c.class_token) w->cls = reshaped(rd(n.cls), {D});
  if (c.dist_token) w->dist = reshaped(rd(n.dist), {D});
  if (c.reg_tokens > 0) w->reg = reshaped(rd(n.reg), {c.reg_tokens, D});
  if (c.pre_norm) rd.norm(n.norm_pre, &w->norm_pre_w, &w->norm_pre_b);
  Tensor pos = rd(n.pos);
  const int64_t rows = pos.numel() / D;
  w->pos = reshaped(std::move(pos), {rows, D});
  if (r.pos_has_cls_row_only && c.reg_tokens > 0) {
    // HF Dinov2WithRegisters: (cls, patches) + table, then the registers go in after cls. As the
    // internal model: the cls row's position folded into the token, the patch rows a
    // no_embed_class table, prefix (cls', registers): the same sums.
    for (int64_t d = 0; d < D; ++d) w->cls.data[d] += w->pos.data[d];
    w->pos.data.erase(w->pos.data.begin(), w->pos.data.begin() + D);
    w->pos.shape = {rows - 1, D};
  }
  const bool mlp_bias = m.mlp_bias.value_or(c.proj_bias);
  w->blocks.resize(static_cast<size_t>(c.depth));
  for (int i = 0; i < c.depth; ++i) rd.block(i, mlp_bias, &w->blocks[static_cast<size_t>(i)]);
  if (c.final_norm) rd.norm(n.norm, &w->norm_w, &w->norm_b);
  if (c.fc_norm) rd.norm(n.fc_norm, &w->fc_norm_w, &w->fc_norm_b);
  if (c.num_classes > 0) rd.head(w);
  if (c.proj_dim > 0) w->proj_w = rd(n.proj);
  if (c.pool == GlobalPool::kMap) rd.attn_pool(&w->attn_pool);
}

}  // namespace vit::detail
