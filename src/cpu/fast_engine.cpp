// vit-infer: the fast CPU backend (`--device cpu`, fp32 or bf16): op-table rows (cpu_backend.h)
// for the graph's heavy ops, the reference rows for the rest (embed, pool, cast, the unfused
// elementwise ops). Linear: oneDNN matmul with weights packed once per node at session creation
// and the epilogue fused (bias, GELU, residual accumulate; dnnl_linear.h: AMX / AVX512-BF16 for
// bf16, AVX-512 / AVX2 for fp32). Attention: flash-style (no T x T matrix), LayerNorm with the
// fused residual add; both fp32 statistics (fast_kernels.h), picked by CpuIsa. The map head's
// cross-attention (one query row per image) is the reference math, stored bf16 when annotated.
// bf16 is an annotation on the fp32 graph (annotate_bf16): the GEMM inputs that LayerNorm,
// attention, cross-attention, patchify and GELU-linear nodes produce are stored bf16; the
// residual stream, the QKV output (attention reads fp32), the head and every output stay fp32.
#include <omp.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "cpu/cpu_isa.h"
#include "cpu/dnnl_linear.h"
#include "cpu/cpu_engine.h"
#include "cpu/fast_kernels.h"
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
bool supports_linear(const Graph& g, const Node& n) {
  const auto& p = n.p<graph::LinearParams>();
  return !(p.act != graph::Act::kNone && n.input(3) >= 0) && is_f32(g, n.input(3)) && is_f32(g, n.input(2));
}

// Every activation a Linear node can carry has its oneDNN post-op: none is dropped silently.
fastcpu::LinearEpilogue linear_epilogue(graph::Act a) {
  switch (a) {
    case graph::Act::kNone: return fastcpu::LinearEpilogue::kBias;
    case graph::Act::kGelu: return fastcpu::LinearEpilogue::kBiasGelu;
    case graph::Act::kGeluTanh: return fastcpu::LinearEpilogue::kBiasGeluTanh;
    case graph::Act::kQuickGelu: return fastcpu::LinearEpilogue::kBiasQuickGelu;
    case graph::Act::kSilu: return fastcpu::LinearEpilogue::kBiasSilu;
  }
  fail(ErrorCode::kUnsupported, "fast cpu engine: a linear activation without a oneDNN post-op");
}

std::shared_ptr<void> prepare_linear(const Graph& g, const Node& n) {
  const graph::TensorDesc& w = g.t(n.in[1]);
  const auto& p = n.p<graph::LinearParams>();
  fastcpu::LinearSpec s;
  s.N = w.shape[0];
  s.K = w.cols();
  s.bf16 = is_bf16(g, n.in[0]);  // the weights follow the input's dtype
  s.y_bf16 = is_bf16(g, n.out[0]);
  s.epi = n.input(3) >= 0 ? fastcpu::LinearEpilogue::kBiasAccumulate : linear_epilogue(p.act);
  s.has_bias = n.input(2) >= 0;
  s.hint_m = g.t(n.in[0]).rows();  // one image's rows: batch 1 is what latency is about
  return std::make_shared<fastcpu::DnnlLinear>(w.host->ptr(), s.has_bias ? g.t(n.in[2]).host->ptr() : nullptr, s);
}

void run_linear(CpuCtx& c, const Node& n, void* state) {
  const int64_t M = c.rows(n.in[0]), N = c.g.t(n.in[1]).shape[0];
  if (n.input(3) >= 0) cpu::fill_residual(c, n, c.p(n.out[0]), M, N);  // y starts as the residual
  static_cast<fastcpu::DnnlLinear*>(state)->run(c.v(n.in[0]), M, c.v(n.out[0]), c.nt);
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
bool supports_attention(const Graph& g, const Node& n) { return is_f32(g, n.in[0]); }

void run_attention(CpuCtx& c, const Node& n, void*) {
  const int64_t T = c.g.t(n.in[0]).rows(), D = c.g.t(n.out[0]).cols();
  const int64_t H = n.p<graph::AttentionParams>().heads;
  if (cpu::wants_maps(c, n)) {
    // The maps come from the reference attention (its output is dropped, so that asking for
    // maps never changes the logits: those always come from the kernel below).
    std::vector<float> out(static_cast<size_t>(c.nb * T * D));
    cpu::reference_attention(c, n, out.data());
  }
  kernels().attention(c.p(n.in[0]), c.v(n.out[0]), is_bf16(c.g, n.out[0]), c.nb, T, H, D / H, c.nt);
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
  const ActForm form = graph::act_form(n.p<graph::ActParams>().act);
  if (form == ActForm::kSilu) {  // SwiGLU (DINOv2 giants, AIMv2): the vectorised kernel
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
                                             bool fusion) {
  return cpu::make_graph_engine(std::move(model), threads, fusion, cpu::fast_backend(precision));
}

}  // namespace vit
