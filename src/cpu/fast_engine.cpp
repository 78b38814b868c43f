// vit-infer: the fast CPU backend (`--device cpu`, fp32, bf16 or int8): op-table rows (cpu_backend.h)
// for the graph's heavy ops, the reference rows for the rest (embed, pool, cast, the unfused
// elementwise ops). Linear: oneDNN matmul with weights packed once per node at session creation
// and the epilogue fused (bias, GELU, residual accumulate; dnnl_linear.h: AMX / AVX512-BF16 for
// bf16, AVX-512 / AVX2 for fp32). Attention: flash-style (no T x T matrix), LayerNorm with the
// fused residual add; both fp32 statistics (fast_kernels.h), picked by CpuIsa. The map head's
// cross-attention (one query row per image) is the reference math, stored bf16 when annotated.
// bf16 is an annotation on the fp32 graph (annotate_bf16): the GEMM inputs that LayerNorm,
// attention, cross-attention, patchify and GELU-linear nodes produce are stored bf16; the
// residual stream, the QKV output (attention reads fp32), the head and every output stay fp32.
// int8 (make_int8_cpu_engine, cpu/int8.h) is an annotation too: the blocks' GEMMs get a QuantSpec
// and run on the linear_onednn_int8 row (the input quantised to u8 there, oneDNN's u8 x s8 matmul).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "cpu/cpu_isa.h"
#include "cpu/dnnl_linear.h"
#include "cpu/cpu_engine.h"
#include "cpu/fast_kernels.h"
#include "cpu/int8.h"
#include "cpu/ref_ops.h"

namespace vit {
namespace {

using cpu::CpuCtx;
using cpu::CpuOpRow;
using graph::Graph;
using graph::Node;
using graph::Op;

// The ISA of this process's fast engines (oneDNN's ceiling is process-wide, set once).
CpuIsa fast_isa() { return fastcpu::dnnl_set_isa(effective_cpu_isa()); }
const fastcpu::Kernels& kernels() { return fastcpu::kernels_for(fast_isa()); }
bool is_bf16(const Graph& g, int t) { return t >= 0 && g.t(t).dtype == DType::BF16; }
bool is_f32(const Graph& g, int t) { return t < 0 || g.t(t).dtype == DType::F32; }

void grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

// --- patchify into bf16 (fp32 im2col into scratch, then rounded) -------------------------------
bool supports_patchify(const Graph& g, const Node& n) { return is_bf16(g, n.out[0]); }

void run_patchify(CpuCtx& c, const Node& n, void*) {
  const graph::TensorDesc& img = c.g.t(n.in[0]);
  const int64_t C = img.shape[0], H = img.shape[1], W = img.shape[2], K = c.g.t(n.out[0]).cols();
  int64_t P = 1;
  while (C * P * P < K) ++P;  // K = C * P * P
  const int64_t count = c.rows(n.out[0]) * K;
  grow(c.scratch, count);
  ref::im2col(c.p(n.in[0]), c.scratch.data(), c.nb, C, H, W, P, c.nt);
  kernels().to_bf16(c.scratch.data(), static_cast<uint16_t*>(c.v(n.out[0])), count, c.nt);
}

// --- linear: oneDNN, packed weights ------------------------------------------------------------
// An activation epilogue needs oneDNN's post-op for it (else the reference row runs the node).
bool act_epilogue_ok(const Node& n) {
  const auto& p = n.p<graph::LinearParams>();
  return !p.act || (n.input(3) < 0 && fastcpu::dnnl_has_activation(*p.act));
}

bool supports_linear(const Graph& g, const Node& n) {
  return act_epilogue_ok(n) && is_f32(g, n.input(3)) && is_f32(g, n.input(2));
}

// The node's epilogue: the residual accumulated, or its activation, or the bias alone.
void set_epilogue(const Node& n, fastcpu::LinearSpec* s) {
  const auto& p = n.p<graph::LinearParams>();
  s->epi = n.input(3) >= 0 ? fastcpu::LinearEpilogue::kBiasAccumulate
           : p.act         ? fastcpu::LinearEpilogue::kBiasAct
                           : fastcpu::LinearEpilogue::kBias;
  if (p.act) s->act = *p.act;
}

std::shared_ptr<void> prepare_linear(const Graph& g, const Node& n) {
  const graph::TensorDesc& w = g.t(n.in[1]);
  fastcpu::LinearSpec s;
  s.N = w.shape[0];
  s.K = w.cols();
  s.bf16 = is_bf16(g, n.in[0]);  // the weights follow the input's dtype
  s.y_bf16 = is_bf16(g, n.out[0]);
  set_epilogue(n, &s);
  s.has_bias = n.input(2) >= 0;
  s.hint_m = g.t(n.in[0]).rows();  // one image's rows: batch 1 is what latency is about
  s.max_images = g.max_images;
  s.threads = g.threads;
  return std::make_shared<fastcpu::DnnlLinear>(w.host->ptr(), s.has_bias ? g.t(n.in[2]).host->ptr() : nullptr, s);
}

void run_linear(CpuCtx& c, const Node& n, void* state) {
  const int64_t M = c.rows(n.in[0]), N = c.g.t(n.in[1]).shape[0];
  if (n.input(3) >= 0) cpu::fill_residual(c, n, c.p(n.out[0]), M, N);  // y starts as the residual
  static_cast<fastcpu::DnnlLinear*>(state)->run(c.v(n.in[0]), M, c.v(n.out[0]), c.nt);
}

// --- linear, int8 (W8A8): oneDNN's u8 x s8 matmul, the input quantised here (int8.h) -----------
// Weights: W' = W * smooth (per input channel), int8 per output channel, w_scale[n] = max|W'[n]| /
// weight_max. Static: q = round(x / (smooth * scale)) + zp, y = scale * w_scale[n] * (acc - zp *
// colsum[n]) + bias[n]: the zero point folded into the bias, oneDNN's output scales and post-ops
// (GELU, += residual) the whole epilogue. Dynamic: per row scale / zp, oneDNN's output w_scale[n] *
// acc into fp32 scratch, the row terms, bias and residual added by dequant_rows, the activation by
// a oneDNN eltwise pass.
struct Int8Linear {
  std::unique_ptr<fastcpu::DnnlLinear> mm;
  std::unique_ptr<fastcpu::DnnlEltwise> act;  // dynamic, with an activation
  bool dynamic = true;
  std::vector<float> mul;     // static: 1 / (smooth[k] * scale)
  int32_t zp = 0;             // static
  std::vector<float> inv_smooth;  // dynamic: 1 / smooth[k], empty without smoothing
  std::vector<float> colsum;  // dynamic: w_scale[n] * sum_k wq[n, k]
  std::vector<float> bias;    // dynamic: the node's bias (empty without)
  std::vector<int> outliers;  // input channels in fp32: y += x[:, k] * wo[j] (k = outliers[j])
  std::vector<float> wo;      // [outliers, N]: their weight columns
};

// y[m, :] += sum_j x[m, outliers[j]] * wo[j, :] (the outlier channels' exact term).
void add_outlier_term(const Int8Linear& st, const void* x, bool x_bf16, float* y, int64_t M, int64_t K, int64_t N,
                      int nt) {
  const int64_t J = static_cast<int64_t>(st.outliers.size());
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    float* yr = y + m * N;
    for (int64_t j = 0; j < J; ++j) {
      const int64_t i = m * K + st.outliers[static_cast<size_t>(j)];
      const float a = x_bf16 ? fastcpu::from_bf16(static_cast<const uint16_t*>(x)[i]) : static_cast<const float*>(x)[i];
      const float* w = st.wo.data() + j * N;
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) yr[n] += a * w[n];
    }
  }
}

bool supports_linear_int8(const Graph& g, const Node& n) {
  const auto& p = n.p<graph::LinearParams>();
  return p.quant && !p.table_residual && act_epilogue_ok(n) && is_f32(g, n.out[0]) &&
         is_f32(g, n.input(3)) && (is_f32(g, n.in[0]) || is_bf16(g, n.in[0]));
}

std::shared_ptr<void> prepare_linear_int8(const Graph& g, const Node& n) {
  const graph::TensorDesc& w = g.t(n.in[1]);
  const auto& p = n.p<graph::LinearParams>();
  const graph::QuantSpec& q = *p.quant;
  const int64_t N = w.shape[0], K = w.cols();
  const float* W = w.host->ptr();
  const float* b = n.input(2) >= 0 ? g.t(n.in[2]).host->ptr() : nullptr;
  auto st = std::make_shared<Int8Linear>();
  st->dynamic = q.dynamic;
  std::vector<char> out(static_cast<size_t>(K), 0);
  st->outliers = q.outliers;
  st->wo.resize(q.outliers.size() * static_cast<size_t>(N));
  for (size_t j = 0; j < q.outliers.size(); ++j) {
    const int k = q.outliers[j];
    out[static_cast<size_t>(k)] = 1;
    for (int64_t r = 0; r < N; ++r) st->wo[j * N + r] = W[r * K + k];
  }
  std::vector<int8_t> wq(static_cast<size_t>(N * K));
  std::vector<float> wscale(static_cast<size_t>(N));
  std::vector<double> colsum(static_cast<size_t>(N));
  const float wmax = static_cast<float>(q.weight_max);
  for (int64_t r = 0; r < N; ++r) {
    float amax = 0.0f;
    for (int64_t k = 0; k < K; ++k)
      if (!out[k]) amax = std::max(amax, std::fabs(W[r * K + k] * (q.smooth.empty() ? 1.0f : q.smooth[k])));
    const float s = amax > 0.0f ? amax / wmax : 1.0f;
    wscale[r] = s;
    int64_t sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      const float v = W[r * K + k] * (q.smooth.empty() ? 1.0f : q.smooth[k]) / s;
      const int iv = out[k] ? 0 : static_cast<int>(std::max(-wmax, std::min(wmax, std::nearbyint(v))));
      wq[static_cast<size_t>(r * K + k)] = static_cast<int8_t>(iv);
      sum += iv;
    }
    colsum[r] = static_cast<double>(sum);
  }
  fastcpu::LinearSpec s;
  s.N = N;
  s.K = K;
  s.int8 = true;
  s.hint_m = g.t(n.in[0]).rows();
  s.max_images = g.max_images;
  s.threads = g.threads;
  if (q.dynamic) {
    s.out_scales = wscale;
    s.has_bias = false;
    s.epi = fastcpu::LinearEpilogue::kBias;
    st->mm = std::make_unique<fastcpu::DnnlLinear>(wq.data(), nullptr, s);
    st->colsum.resize(static_cast<size_t>(N));
    for (int64_t r = 0; r < N; ++r) st->colsum[r] = static_cast<float>(wscale[r] * colsum[r]);
    if (b) st->bias.assign(b, b + N);
    if (!q.smooth.empty()) {
      st->inv_smooth.resize(static_cast<size_t>(K));
      for (int64_t k = 0; k < K; ++k) st->inv_smooth[k] = 1.0f / q.smooth[k];
    }
    if (p.act) st->act = std::make_unique<fastcpu::DnnlEltwise>(*p.act);
    return st;
  }
  s.out_scales.resize(static_cast<size_t>(N));
  std::vector<float> bias(static_cast<size_t>(N));
  for (int64_t r = 0; r < N; ++r) {
    s.out_scales[r] = q.scale * wscale[r];
    bias[r] = static_cast<float>((b ? b[r] : 0.0) - double{q.scale} * wscale[r] * q.zero_point * colsum[r]);
  }
  s.has_bias = true;
  set_epilogue(n, &s);
  // With fp32 outlier channels the activation follows their term: oneDNN stops at the bias.
  if (!q.outliers.empty() && p.act) {
    s.epi = fastcpu::LinearEpilogue::kBias;
    st->act = std::make_unique<fastcpu::DnnlEltwise>(*p.act);
  }
  st->mm = std::make_unique<fastcpu::DnnlLinear>(wq.data(), bias.data(), s);
  st->zp = q.zero_point;
  st->mul.resize(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) st->mul[k] = out[k] ? 0.0f : 1.0f / ((q.smooth.empty() ? 1.0f : q.smooth[k]) * q.scale);
  return st;
}

void run_linear_int8(CpuCtx& c, const Node& n, void* state) {
  const Int8Linear& st = *static_cast<Int8Linear*>(state);
  const int64_t M = c.rows(n.in[0]), K = c.g.t(n.in[0]).cols(), N = c.g.t(n.in[1]).shape[0];
  const bool x_bf16 = is_bf16(c.g, n.in[0]);
  // scratch: q [M, K] u8, then (dynamic) acc [M, N], row scales and zero points [M] each.
  const int64_t qf = (M * K + 63) / 64 * 16;
  grow(c.scratch, qf + (st.dynamic ? M * N + 2 * M : 0));
  auto* q = reinterpret_cast<uint8_t*>(c.scratch.data());
  float* y = c.p(n.out[0]);
  const bool res = n.input(3) >= 0;
  if (!st.dynamic) {
    kernels().quantize_u8(c.v(n.in[0]), x_bf16, q, M, K, st.mul.data(), st.zp, c.nt);
    if (res) cpu::fill_residual(c, n, y, M, N);
    st.mm->run(q, M, y, c.nt);
    if (!st.outliers.empty()) add_outlier_term(st, c.v(n.in[0]), x_bf16, y, M, K, N, c.nt);
    if (st.act) st.act->run(y, M * N, c.nt);
    return;
  }
  float* acc = c.scratch.data() + qf;
  float* rs = acc + M * N;
  float* rz = rs + M;
  kernels().quantize_u8_rows(c.v(n.in[0]), x_bf16, q, rs, rz, M, K, st.inv_smooth.empty() ? nullptr : st.inv_smooth.data(),
                             c.nt);
  st.mm->run(q, M, acc, c.nt);
  if (res) cpu::fill_residual(c, n, y, M, N);
  kernels().dequant_rows(acc, y, M, N, rs, rz, st.colsum.data(), st.bias.empty() ? nullptr : st.bias.data(), res, c.nt);
  if (!st.outliers.empty()) add_outlier_term(st, c.v(n.in[0]), x_bf16, y, M, K, N, c.nt);
  if (st.act) st.act->run(y, M * N, c.nt);
}

// --- LayerNorm (+ fused residual add) ----------------------------------------------------------
bool supports_layernorm(const Graph& g, const Node& n) {
  return is_f32(g, n.in[0]) && is_f32(g, n.input(3)) &&
         (n.out.size() < 2 || is_f32(g, n.out[1]));
}

void run_layernorm(CpuCtx& c, const Node& n, void*) {
  const int64_t D = c.g.t(n.in[0]).cols(), R = c.rows(n.in[0]);
  const bool res = n.input(3) >= 0;
  kernels().layer_norm(c.p(n.in[0]), res ? c.p(n.in[3]) : nullptr, res ? c.p(n.out[1]) : nullptr, c.v(n.out[0]),
                       is_bf16(c.g, n.out[0]), R, D, c.p(n.in[1]), c.p(n.in[2]), n.p<graph::LayerNormParams>().eps,
                       n.p<graph::LayerNormParams>().rms, c.nt);
}

// --- attention: flash kernel; the reference one as well when the maps are wanted ---------------
bool supports_attention(const Graph& g, const Node& n) {
  return is_f32(g, n.in[0]) && is_f32(g, n.input(1)) && (n.out.size() < 2 || is_f32(g, n.out[1]));
}

void run_attention(CpuCtx& c, const Node& n, void*) {
  const int64_t T = c.g.t(n.in[0]).rows(), D = c.g.t(n.out[0]).cols();
  const int64_t H = n.p<graph::AttentionParams>().heads;
  if (cpu::wants_maps(c, n)) {
    // The maps come from the reference attention (its output is dropped, so that asking for
    // maps never changes the logits: those always come from the kernel below).
    std::vector<float> out(static_cast<size_t>(c.nb * T * D));
    cpu::reference_attention(c, n, out.data());
  }
  kernels().attention(c.p(n.in[0]), c.v(n.out[0]), is_bf16(c.g, n.out[0]), c.nb, T, H, D / H, c.nt,
                      cpu::attention_sizes(c, n));
  cpu::attention_metric(c, n);  // ToMe's matching metric, when the node has it
}

// --- cross-attention (the map head): the exact reference math, stored bf16 when annotated ------
// One query row per image against T keys: too small to be worth a kernel of its own.
bool supports_cross_attention(const Graph& g, const Node& n) { return is_f32(g, n.in[0]) && is_f32(g, n.in[1]); }

void run_cross_attention(CpuCtx& c, const Node& n, void*) {
  if (!is_bf16(c.g, n.out[0])) {
    cpu::reference_cross_attention(c, n, c.p(n.out[0]));
    return;
  }
  const int64_t count = c.rows(n.out[0]) * c.g.t(n.out[0]).cols();
  grow(c.scratch, count);
  cpu::reference_cross_attention(c, n, c.scratch.data());
  kernels().to_bf16(c.scratch.data(), static_cast<uint16_t*>(c.v(n.out[0])), count, c.nt);
}

// --- the gated MLP's act(gate) * value: SiLU (SwiGLU) by the vectorised kernel, other forms by the
// reference math; stored bf16 when annotated (fc2 then reads bf16 like every other MLP's second GEMM)
bool supports_glu(const Graph& g, const Node& n) { return is_f32(g, n.in[0]); }

void run_glu(CpuCtx& c, const Node& n, void*) {
  const int64_t rows = c.rows(n.out[0]), I = c.g.t(n.out[0]).cols();
  const Activation form = n.p<graph::ActParams>().act;
  if (form == Activation::kSilu) {  // SwiGLU (DINOv2 giants, AIMv2): the vectorised kernel
    kernels().glu_silu(c.p(n.in[0]), c.v(n.out[0]), is_bf16(c.g, n.out[0]), rows, I, c.nt);
    return;
  }
  if (!is_bf16(c.g, n.out[0])) {
    ref::glu(c.p(n.in[0]), c.p(n.out[0]), rows, I, c.nt, form);
    return;
  }
  grow(c.scratch, rows * I);
  ref::glu(c.p(n.in[0]), c.scratch.data(), rows, I, c.nt, form);
  kernels().to_bf16(c.scratch.data(), static_cast<uint16_t*>(c.v(n.out[0])), rows * I, c.nt);
}

const std::vector<CpuOpRow>& fast_rows() {
  static const std::vector<CpuOpRow> rows = {
      {Op::kLinear, "linear_onednn_int8", supports_linear_int8, prepare_linear_int8, run_linear_int8},
      {Op::kPatchify, "im2col_bf16", supports_patchify, nullptr, run_patchify},
      {Op::kLinear, "linear_onednn", supports_linear, prepare_linear, run_linear},
      {Op::kLayerNorm, "layernorm_fast", supports_layernorm, nullptr, run_layernorm},
      {Op::kAttention, "attention_flash", supports_attention, nullptr, run_attention},
      {Op::kCrossAttention, "cross_attention_bf16out", supports_cross_attention, nullptr, run_cross_attention},
      {Op::kGlu, "glu_bf16out", supports_glu, nullptr, run_glu},
  };
  return rows;
}

// bf16 storage for a tensor whose producer can write bf16 (LayerNorm's normalised output,
// attention, cross-attention, the gated MLP's middle, patchify, a Linear without residual) and whose every reader is a
// Linear taking it as x (not the head or the visual projection: logits and embeddings stay fp32
// end to end). Everything else stays fp32.
void annotate_bf16(Graph& g) {
  for (const Node& p : g.nodes) {
    const bool producer = p.op == Op::kLayerNorm || p.op == Op::kAttention || p.op == Op::kCrossAttention ||
                          p.op == Op::kPatchify || p.op == Op::kGlu ||
                          (p.op == Op::kLinear && p.input(3) < 0);
    if (!producer) continue;
    const int t = p.out[0];
    if (g.t(t).keep || (p.op == Op::kLinear && p.p<graph::LinearParams>().qkv_scatter)) continue;
    bool all_linear = true, any = false;
    for (int ci : g.consumers(t)) {
      const Node& r = g.nodes[static_cast<size_t>(ci)];
      any = true;
      for (size_t k = 1; k < r.in.size(); ++k) all_linear = all_linear && r.in[k] != t;
      all_linear = all_linear && r.op == Op::kLinear && r.name != "head" && r.name != "visual_projection";
    }
    if (any && all_linear) g.tensors[static_cast<size_t>(t)].dtype = DType::BF16;
  }
}

// The int8 run's annotation: the quantised GEMMs' QuantSpecs (int8.h), then, where the CPU has
// bf16 dot products, the attention and gated-MLP outputs that only quantised GEMMs read stored
// bf16 (attention then runs as the bf16 run's; the GEMM quantises from bf16).
void annotate_int8(Graph& g, const int8::Calibration* cal, CpuIsa isa) {
  int8::annotate(g, cal, int8::weight_max_for(isa));
  if (static_cast<int>(isa) < static_cast<int>(CpuIsa::kAvx512Bf16)) return;
  for (const Node& p : g.nodes) {
    if (p.op != Op::kAttention && p.op != Op::kGlu) continue;
    const int t = p.out[0];
    if (g.t(t).keep) continue;
    bool all = true, any = false;
    for (int ci : g.consumers(t)) {
      const Node& r = g.nodes[static_cast<size_t>(ci)];
      any = true;
      all = all && r.op == Op::kLinear && r.in[0] == t && r.p<graph::LinearParams>().quant;
    }
    if (any && all) g.tensors[static_cast<size_t>(t)].dtype = DType::BF16;
  }
}

}  // namespace

namespace cpu {
CpuBackend fast_backend(DType precision) {
  if (precision != DType::F32 && precision != DType::BF16)
    fail(ErrorCode::kUnsupported, "make_fast_cpu_engine: precision must be fp32 or bf16");
  const CpuIsa isa = fast_isa();
  // bf16 needs the bf16 dot-product instructions (AMX or AVX512-BF16); below that it runs fp32.
  const bool bf16 = precision == DType::BF16 && static_cast<int>(isa) >= static_cast<int>(CpuIsa::kAvx512Bf16);
  CpuBackend be;
  be.name = std::string("cpu-fast ") + (bf16 ? "bf16" : "fp32") + " (" + cpu_isa_name(isa) + ")";
  be.rows = fast_rows();
  if (bf16) be.annotate = annotate_bf16;
  return be;
}
}  // namespace cpu

std::unique_ptr<Engine> make_fast_cpu_engine(std::shared_ptr<const Model> model, DType precision, int threads,
                                             bool fusion, int tome, int max_batch) {
  return cpu::make_graph_engine(std::move(model), threads, fusion, cpu::fast_backend(precision), tome, max_batch);
}

std::unique_ptr<Engine> make_int8_cpu_engine(std::shared_ptr<const Model> model, const Int8Options& opt, int threads,
                                             bool fusion, int tome, int max_batch) {
  if (!model) fail(ErrorCode::kInvalidArgument, "int8 cpu engine: model is null");
  std::shared_ptr<const int8::Calibration> cal = opt.calibration;
  if (!cal) {
    std::string path = opt.calibration_path;
    if (path.empty() && opt.find_calibration) {
      const std::string next = int8::default_calibration_path(*model);
      if (std::FILE* f = std::fopen(next.c_str(), "rb")) {
        std::fclose(f);
        path = next;
      }
    }
    if (!path.empty()) cal = std::make_shared<int8::Calibration>(int8::load_calibration(path, *model));
  }
  const CpuIsa isa = fast_isa();
  cpu::CpuBackend be = cpu::fast_backend(DType::F32);
  be.name = std::string("cpu-fast int8 ") + (cal ? "static" : "dynamic") + " (" + cpu_isa_name(isa) + ")";
  be.annotate = [cal, isa](Graph& g) { annotate_int8(g, cal.get(), isa); };
  return cpu::make_graph_engine(std::move(model), threads, fusion, std::move(be), tome, max_batch);
}

}  // namespace vit
