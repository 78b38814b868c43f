// vit-infer: DnnlLinear (dnnl_linear.h); builds against oneDNN 2.x (Debian) and 3.x. The packed
// weight layout is the one oneDNN prefers for the hint M (the engine's common row count); every
// other M reuses that layout (a primitive is created with the concrete blocked descriptor), so
// the weights exist once. Errors from oneDNN (dnnl::error) become vit::Error.
#include "cpu/dnnl_linear.h"

#include <omp.h>

#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>

#include "core/error.h"

namespace vit::fastcpu {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

namespace {

dnnl::cpu_isa to_dnnl(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAmx: return dnnl::cpu_isa::avx512_core_amx;
    case CpuIsa::kAvx512Bf16: return dnnl::cpu_isa::avx512_core_bf16;
    case CpuIsa::kAvx512: return dnnl::cpu_isa::avx512_core;
    case CpuIsa::kAvx2: return dnnl::cpu_isa::avx2;
    case CpuIsa::kScalar: return dnnl::cpu_isa::sse41;
  }
  return dnnl::cpu_isa::sse41;
}

struct Context {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
};

std::mutex g_isa_mu;
bool g_isa_set = false;
CpuIsa g_isa = CpuIsa::kScalar;

Context& context() {
  static Context ctx;
  return ctx;
}

// oneDNN 3 dropped the post-op scale argument (2.x: scale, algorithm, alpha, beta).
void append_eltwise(dnnl::post_ops& po, dnnl::algorithm alg, float alpha) {
#if DNNL_VERSION_MAJOR >= 3
  po.append_eltwise(alg, alpha, 0.0f);
#else
  po.append_eltwise(1.0f, alg, alpha, 0.0f);
#endif
}

template <class F>
auto dnnl_call(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const dnnl::error& e) {
    fail(ErrorCode::kInternal, std::string("oneDNN ") + what + ": " + e.what());
  }
}

}  // namespace

CpuIsa dnnl_set_isa(CpuIsa isa) {
  std::lock_guard<std::mutex> lock(g_isa_mu);
  if (!g_isa_set) {
    // AMX is behind a ceiling in oneDNN 2.6 (off unless asked for); lower values force a path.
    dnnl::set_max_cpu_isa(to_dnnl(isa));
    g_isa_set = true;
    g_isa = isa;
  }
  return g_isa;
}

struct DnnlLinear::Impl {
  LinearSpec spec;
  dnnl::memory::desc wei_md;  // the packed layout
  dnnl::memory wei, bias;
  std::mutex mu;  // guards prims
  std::map<int64_t, dnnl::matmul> prims;

  dnnl::matmul::primitive_desc make_pd(int64_t M, const dnnl::memory::desc& w_md) const {
    const dt xt = spec.bf16 ? dt::bf16 : dt::f32;
    dnnl::memory::desc src({M, spec.K}, xt, tag::ab);
    dnnl::memory::desc dst({M, spec.N}, spec.y_bf16 ? dt::bf16 : dt::f32, tag::ab);
    dnnl::memory::desc b_md = spec.has_bias ? dnnl::memory::desc({1, spec.N}, dt::f32, tag::ab) : dnnl::memory::desc();
    dnnl::post_ops po;
    if (spec.epi == LinearEpilogue::kBiasGelu) append_eltwise(po, dnnl::algorithm::eltwise_gelu_erf, 0.0f);
    if (spec.epi == LinearEpilogue::kBiasGeluTanh) append_eltwise(po, dnnl::algorithm::eltwise_gelu_tanh, 0.0f);
    if (spec.epi == LinearEpilogue::kBiasQuickGelu)  // swish: x * sigmoid(alpha x)
      append_eltwise(po, dnnl::algorithm::eltwise_swish, 1.702f);
    if (spec.epi == LinearEpilogue::kBiasSilu) append_eltwise(po, dnnl::algorithm::eltwise_swish, 1.0f);
    if (spec.epi == LinearEpilogue::kBiasAccumulate) po.append_sum(1.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(po);
#if DNNL_VERSION_MAJOR >= 3
    return dnnl::matmul::primitive_desc(context().eng, src, w_md, b_md, dst, attr);
#else
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, w_md, b_md, dst), attr, context().eng);
#endif
  }

  dnnl::matmul& prim(int64_t M) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = prims.find(M);
    if (it == prims.end()) it = prims.emplace(M, dnnl::matmul(make_pd(M, wei_md))).first;
    return it->second;
  }
};

DnnlLinear::DnnlLinear(const float* w, const float* bias, const LinearSpec& spec) : impl_(std::make_unique<Impl>()) {
  impl_->spec = spec;
  const int64_t N = spec.N, K = spec.K;
  if (!w || (spec.has_bias && !bias)) fail(ErrorCode::kInvalidArgument, "DnnlLinear: weight / bias missing");
  dnnl_call("packing weights", [&] {
    Context& ctx = context();
    const dt wt = spec.bf16 ? dt::bf16 : dt::f32;
    dnnl::memory::desc any({K, N}, wt, tag::any);
    impl_->wei_md = impl_->make_pd(spec.hint_m, any).weights_desc();
    // torch's [N, K] row-major is the [K, N] matrix with strides {1, K}: oneDNN's "ba".
    dnnl::memory::desc user({K, N}, dt::f32, tag::ba);
    dnnl::memory src(user, ctx.eng, const_cast<float*>(w));
    impl_->wei = dnnl::memory(impl_->wei_md, ctx.eng);
    dnnl::reorder(src, impl_->wei).execute(ctx.strm, src, impl_->wei);
    if (spec.has_bias) {
      dnnl::memory::desc b_md({1, N}, dt::f32, tag::ab);
      impl_->bias = dnnl::memory(b_md, ctx.eng);
      std::copy(bias, bias + N, static_cast<float*>(impl_->bias.get_data_handle()));
    }
    ctx.strm.wait();
  });
}

DnnlLinear::~DnnlLinear() = default;

void DnnlLinear::run(const void* x, int64_t M, void* y, int threads) {
  dnnl_call("matmul", [&] {
    Context& ctx = context();
    dnnl::matmul& p = impl_->prim(M);
    const LinearSpec& s = impl_->spec;
    dnnl::memory src({{M, s.K}, s.bf16 ? dt::bf16 : dt::f32, tag::ab}, ctx.eng, const_cast<void*>(x));
    dnnl::memory dst({{M, s.N}, s.y_bf16 ? dt::bf16 : dt::f32, tag::ab}, ctx.eng, y);
    // oneDNN (OpenMP build) runs on omp_get_max_threads() of the calling thread.
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, impl_->wei}, {DNNL_ARG_DST, dst}};
    if (s.has_bias) args.emplace(DNNL_ARG_BIAS, impl_->bias);
    p.execute(ctx.strm, args);
    ctx.strm.wait();
    omp_set_num_threads(saved);
  });
}

std::string DnnlLinear::impl_name(int64_t M) {
  return dnnl_call("query", [&] { return std::string(impl_->make_pd(M, impl_->wei_md).impl_info_str()); });
}

int64_t DnnlLinear::packed_bytes() const { return static_cast<int64_t>(impl_->wei_md.get_size()); }

}  // namespace vit::fastcpu
