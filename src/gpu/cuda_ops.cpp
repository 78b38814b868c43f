// vit-infer: the CUDA backend's op table (see cuda_ops.h). Activations are batch-major
// row-major in the run precision (tokens [B, T, D]); weights come from the packed weight
// buffer; every launcher validates its params and checks its launch.
#include "gpu/cuda_ops.h"

#include <cmath>
#include <string>

#include "core/error.h"

#include "activation.cuh"
#include "binary.cuh"
#include "glu.cuh"
#include "layernorm.cuh"
#include "patch_embed.cuh"
#include "pool.cuh"
#include "to_f32.cuh"
#include "tome.cuh"

namespace vit::gpu {

AttentionParams CudaRunCtx::attention_layout(const graph::Node& attn) const {
  const int64_t T = L.t(attn.in[0]).rows(), D = L.t(attn.out[0]).cols();
  const int64_t H = attn.p<graph::AttentionParams>().heads, hd = D / H;
  const int qkv_node = L.producer[static_cast<size_t>(attn.in[0])];
  const bool scattered = qkv_node >= 0 && L.gemm[static_cast<size_t>(qkv_node)].qkv &&
                         bk.gemm_impl[static_cast<size_t>(qkv_node)] != GemmImpl::kCublasLt;
  const char* base = t(attn.in[0]);
  const int64_t es = static_cast<int64_t>(dtype_size(dt()));
  AttentionParams a;
  a.dtype = dt();
  if (!scattered) {  // [B, T, 3, H, hd]
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
  a.H = static_cast<int>(H);
  a.T = static_cast<int>(T);
  a.head_dim = static_cast<int>(hd);
  a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  return a;
}

namespace {

using Ctx = CudaRunCtx;
using graph::Node;

using graph::Graph;

// Each row's limits, stated where the graph can say them (batch-dependent grid limits stay in the
// launchers, which check them per launch). The rows' `limits` text repeats them for the message.
bool any(const Graph&, const Node&) { return true; }
int64_t rows_of(const Graph& g, int t) { return g.t(t).rows(); }
int64_t cols_of(const Graph& g, int t) { return g.t(t).cols(); }

bool patchify_ok(const Graph& g, const Node& n) {
  const graph::TensorDesc& img = g.t(n.in[0]);  // [C, H, W]
  const int64_t K = cols_of(g, n.out[0]);
  int64_t P = 1;
  while (img.shape[0] * P * P < K) ++P;
  return img.shape[0] * P * P == K && img.shape[1] >= P && img.shape[2] >= P;
}
bool linear_ok(const Graph& g, const Node& n) {
  // The GEMM epilogues apply one of an activation / residual / QKV scatter, not two; the grid
  // takes N up to 65535 tiles of 64.
  const graph::LinearParams& p = n.p<graph::LinearParams>();
  const int64_t N = g.t(n.in[1]).shape[0];
  if (bool{p.act} + (n.input(3) >= 0) + p.qkv_scatter > 1 || N > 65535LL * 64) return false;
  return !p.qkv_scatter || (p.heads > 0 && N % (3 * p.heads) == 0);
}
bool layernorm_ok(const Graph&, const Node& n) { return n.p<graph::LayerNormParams>().eps >= 0.0f; }
bool attention_ok(const Graph& g, const Node& n) {
  const int64_t H = n.p<graph::AttentionParams>().heads, D = cols_of(g, n.out[0]);
  return H >= 1 && H <= 65535 && D % H == 0 && D / H >= 1 && D / H <= 128;
}
bool cross_attention_ok(const Graph& g, const Node& n) {
  const graph::CrossAttentionParams& cp = n.p<graph::CrossAttentionParams>();
  const int64_t D = cols_of(g, n.out[0]), L = rows_of(g, n.in[0]), T = rows_of(g, n.in[1]);
  return cp.heads >= 1 && cp.heads <= 65535 && D % cp.heads == 0 && D / cp.heads <= 128 && L <= 65535 &&
         cp.first >= 0 && cp.first < T;
}
bool pool_ok(const Graph& g, const Node& n) {
  const int first = n.p<graph::PoolParams>().first;
  return first >= 0 && first < rows_of(g, n.in[0]);
}
bool tome_ok(const Graph& g, const Node& n) {
  const graph::TomeParams& tp = n.p<graph::TomeParams>();
  const int64_t T = rows_of(g, n.in[0]);
  return tp.prefix >= 0 && tp.prefix <= T && tp.r >= 1 && tp.r <= (T - tp.prefix) / 2;
}

void run_patchify(const Ctx& c, const Node& n, size_t, cudaStream_t s) {
  const graph::TensorDesc& img = c.L.t(n.in[0]);  // [C, H, W]
  const int64_t K = c.L.t(n.out[0]).cols();        // C * P * P
  int P = 1;
  while (img.shape[0] * P * P < K) ++P;
  PatchifyParams p;
  p.dtype = c.dt();
  p.images = reinterpret_cast<const float*>(c.t(n.in[0]));
  p.cols = c.t(n.out[0]);
  p.B = c.bk.batch;
  p.C = static_cast<int>(img.shape[0]);
  p.H = static_cast<int>(img.shape[1]);
  p.W = static_cast<int>(img.shape[2]);
  p.P = P;
  p.k_pad = static_cast<int>(c.L.pitch[static_cast<size_t>(n.out[0])]);
  launch_patchify(p, s);
}

void run_linear(const Ctx& c, const Node&, size_t i, cudaStream_t s) {
  const GemmNode& g = c.L.gemm[i];
  const GemmImpl impl = c.bk.gemm_impl[i];
  c.gemm.run(g, c.operands(g), impl, s);
}

void run_embed(const Ctx& c, const Node& n, size_t, cudaStream_t s) {
  EmbedParams p;
  p.dtype = c.dt();
  p.patches = c.t(n.in[0]);
  const graph::EmbedParams& ep = n.p<graph::EmbedParams>();
  p.patches_final = ep.patches_final;
  p.pos_prefix = ep.pos_prefix;
  p.prefix = n.input(1) >= 0 ? c.weight(n.in[1]) : nullptr;
  p.P = n.input(1) >= 0 ? static_cast<int>(c.L.t(n.in[1]).rows()) : 0;
  p.pos = c.weight(n.in[2]);
  p.bias = n.input(3) >= 0 ? c.weight(n.in[3]) : nullptr;
  p.tokens = c.t(n.out[0]);
  p.B = c.bk.batch;
  p.N = static_cast<int>(c.L.t(n.in[0]).rows());
  p.D = static_cast<int>(c.L.t(n.in[0]).cols());
  launch_embed_finish(p, s);
}

void run_layernorm(const Ctx& c, const Node& n, size_t, cudaStream_t s) {
  const int64_t D = c.L.t(n.in[0]).cols();
  LayerNormParams p;
  p.dtype = c.dt();
  p.x = c.t(n.in[0]);
  p.x_stride = D;
  if (n.input(3) >= 0) {  // fused residual add: out[1] = x + residual, out[0] = LN(out[1])
    p.residual = c.t(n.in[3]);
    p.x_out = c.t(n.out[1]);
  }
  p.y = c.t(n.out[0]);
  p.y_stride = D;
  p.gamma = c.weight(n.in[1]);
  p.beta = c.weight(n.in[2]);
  p.rows = static_cast<int>(c.rows(n.in[0]));
  p.D = static_cast<int>(D);
  p.eps = n.p<graph::LayerNormParams>().eps;
  p.rms = n.p<graph::LayerNormParams>().rms;
  launch_layernorm(p, s);
}

// With token merging: the sizes' proportional attention (in[1]) and the matching metric (out[1]:
// the keys averaged over the heads, read where the attention reads them).
void run_attention(const Ctx& c, const Node& n, size_t, cudaStream_t s) {
  AttentionParams p = c.attention_layout(n);
  p.o = c.t(n.out[0]);
  if (n.input(1) >= 0) p.size = reinterpret_cast<const float*>(c.t(n.in[1]));
  launch_attention(p, s);
  if (n.out.size() < 2) return;
  TomeKeyMeanParams m;
  m.dtype = p.dtype;
  m.k = p.k;
  m.stride_b = p.stride_b;
  m.stride_h = p.stride_h;
  m.stride_t = p.stride_t;
  m.metric = reinterpret_cast<float*>(c.t(n.out[1]));
  m.B = p.B;
  m.H = p.H;
  m.T = p.T;
  m.head_dim = p.head_dim;
  launch_tome_key_mean(m, s);
}

void run_tome_merge(const Ctx& c, const Node& n, size_t, cudaStream_t s) {
  const graph::TomeParams& tp = n.p<graph::TomeParams>();
  TomeMergeParams p;
  p.dtype = c.dt();
  p.x = c.t(n.in[0]);
  p.metric = reinterpret_cast<const float*>(c.t(n.in[1]));
  p.size = n.input(2) >= 0 ? reinterpret_cast<const float*>(c.t(n.in[2])) : nullptr;
  p.y = c.t(n.out[0]);
  p.size_out = reinterpret_cast<float*>(c.t(n.out[1]));
  p.B = c.bk.batch;
  p.T = static_cast<int>(c.L.t(n.in[0]).rows());
  p.D = static_cast<int>(c.L.t(n.in[0]).cols());
  p.head_dim = static_cast<int>(c.L.t(n.in[1]).cols());
  p.r = tp.r;
  p.prefix = tp.prefix;
  launch_tome_merge(p, s);
}

void run_binary(const Ctx& c, const Node& n, cudaStream_t s, BinaryOp op, const void* b) {
  BinaryParams p;
  p.dtype = c.dt();
  p.a = c.t(n.in[0]);
  p.b = b;
  p.y = c.t(n.out[0]);
  p.rows = c.rows(n.in[0]);
  p.cols = c.L.t(n.in[0]).cols();
  p.op = op;
  launch_binary(p, s);
}
void run_add(const Ctx& c, const Node& n, size_t, cudaStream_t s) {
  run_binary(c, n, s, BinaryOp::kAdd, c.t(n.in[1]));
}
void run_scale(const Ctx& c, const Node& n, size_t, cudaStream_t s) {
  run_binary(c, n, s, BinaryOp::kMulCols, c.weight(n.in[1]));
}
void run_mean2(const Ctx& c, const Node& n, size_t, cudaStream_t s) {
  run_binary(c, n, s, BinaryOp::kMean, c.t(n.in[1]));
}

void run_act(const Ctx& c, const Node& n, size_t, cudaStream_t s) {
  const int64_t rows = c.rows(n.in[0]), cols = c.L.t(n.in[0]).cols();
  VIT_CUDA_CHECK(cudaMemcpyAsync(c.t(n.out[0]), c.t(n.in[0]), static_cast<size_t>(rows * cols) * dtype_size(c.dt()),
                                 cudaMemcpyDeviceToDevice, s));
  ActivationParams p;
  p.dtype = c.dt();
  p.x = c.t(n.out[0]);
  p.rows = rows;
  p.cols = cols;
  p.ld = cols;
  p.act = n.p<graph::ActParams>().act;
  launch_activation(p, s);
}

void run_glu(const Ctx& c, const Node& n, size_t, cudaStream_t s) {
  GluParams p;
  p.dtype = c.dt();
  p.x = c.t(n.in[0]);
  p.y = c.t(n.out[0]);
  p.rows = c.rows(n.out[0]);
  p.cols = c.L.t(n.out[0]).cols();
  p.act = n.p<graph::ActParams>().act;
  launch_glu(p, s);
}

void run_cross_attention(const Ctx& c, const Node& n, size_t, cudaStream_t s) {
  const graph::CrossAttentionParams& cp = n.p<graph::CrossAttentionParams>();
  const graph::TensorDesc& q = c.L.t(n.in[0]);
  const bool q_weight = q.kind == graph::TensorKind::kWeight;  // the map head's projected latent
  CrossAttentionParams p;
  p.dtype = c.dt();
  p.q = q_weight ? c.weight(n.in[0]) : c.t(n.in[0]);
  p.q_stride_b = q_weight ? 0 : q.numel();
  p.kv = c.t(n.in[1]);
  p.o = c.t(n.out[0]);
  p.B = c.bk.batch;
  p.L = static_cast<int>(q.rows());
  p.T = static_cast<int>(c.L.t(n.in[1]).rows());
  p.first = cp.first;
  p.H = cp.heads;
  p.head_dim = static_cast<int>(q.cols()) / cp.heads;
  p.scale = 1.0f / std::sqrt(static_cast<float>(p.head_dim));
  launch_cross_attention(p, s);
}

void run_pool(const Ctx& c, const Node& n, size_t, cudaStream_t s) {
  PoolParams p;
  p.dtype = c.dt();
  p.x = c.t(n.in[0]);
  p.out = c.t(n.out[0]);
  p.B = c.bk.batch;
  p.T = static_cast<int>(c.L.t(n.in[0]).rows());
  p.D = static_cast<int>(c.L.t(n.in[0]).cols());
  const graph::PoolParams& pp = n.p<graph::PoolParams>();
  p.mode = pp.mode;
  p.first = pp.first;
  launch_pool(p, s);
}

void run_cast(const Ctx& c, const Node& n, size_t, cudaStream_t s) {
  ToF32Params p;
  p.dtype = c.dt();
  p.src = c.t(n.in[0]);
  p.dst = reinterpret_cast<float*>(c.t(n.out[0]));
  p.n = c.rows(n.in[0]) * c.L.t(n.in[0]).cols();
  launch_to_f32(p, s);
}

const CudaOpRow kCudaOps[graph::kOpCount] = {
    {graph::Op::kPatchify, "patchify", patchify_ok, run_patchify, "K = C P^2, the image at least a patch"},
    {graph::Op::kLinear, "gemm", linear_ok, run_linear,
     "one epilogue (activation, residual or QKV scatter), N <= 65535 * 64, a QKV scatter of 3 x heads x hd"},
    {graph::Op::kEmbed, "embed", any, run_embed, "any"},
    {graph::Op::kLayerNorm, "layernorm", layernorm_ok, run_layernorm, "eps >= 0"},
    {graph::Op::kAttention, "attention", attention_ok, run_attention, "heads 1..65535, head dims 1..128"},
    {graph::Op::kAdd, "add", any, run_add, "any"},
    {graph::Op::kAct, "act", any, run_act, "any"},
    {graph::Op::kGlu, "glu", any, run_glu, "any"},
    {graph::Op::kScale, "scale", any, run_scale, "any"},
    {graph::Op::kPool, "pool", pool_ok, run_pool, "the first row pooled inside the tokens"},
    {graph::Op::kMean2, "mean2", any, run_mean2, "any"},
    {graph::Op::kCrossAttention, "cross_attention", cross_attention_ok, run_cross_attention,
     "heads 1..65535, head dims up to 128, at most 65535 query rows, at least one key row"},
    {graph::Op::kTomeMerge, "tome_merge", tome_ok, run_tome_merge, "r in 1..(T - prefix) / 2"},
    {graph::Op::kCast, "to_f32", any, run_cast, "any"},
};

}  // namespace

const CudaOpRow* cuda_op_row(const graph::Graph& g, const graph::Node& n) {
  for (const CudaOpRow& r : kCudaOps)
    if (r.op == n.op && r.supports(g, n)) return &r;
  return nullptr;
}

std::vector<const CudaOpRow*> cuda_op_rows(const graph::Graph& g, const char* who) {
  std::vector<const CudaOpRow*> rows;
  for (const graph::Node& n : g.nodes) {
    const CudaOpRow* r = cuda_op_row(g, n);
    if (!r) {
      std::string limits;
      for (const CudaOpRow& k : kCudaOps)
        if (k.op == n.op) limits += std::string(limits.empty() ? "" : "; ") + k.limits;
      fail(ErrorCode::kUnsupported, std::string(who) + ": no CUDA kernel for " + graph::op_name(n.op) + " node '" +
                                        n.name + "'" + (limits.empty() ? "" : " (the kernels take: " + limits + ")"));
    }
    rows.push_back(r);
  }
  return rows;
}

}  // namespace vit::gpu
