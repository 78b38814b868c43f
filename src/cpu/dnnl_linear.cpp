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

// The oneDNN eltwise algorithm computing activation `a`; false where oneDNN has none.
bool activation(Activation a, dnnl::algorithm& alg, float& alpha) {
  alpha = 0.0f;
  switch (a) {
    case Activation::kGeluErf: alg = dnnl::algorithm::eltwise_gelu_erf; return true;
    case Activation::kGeluTanh: alg = dnnl::algorithm::eltwise_gelu_tanh; return true;
    case Activation::kQuickGelu: alg = dnnl::algorithm::eltwise_swish, alpha = 1.702f; return true;  // x sigmoid(1.702 x)
    case Activation::kSilu: alg = dnnl::algorithm::eltwise_swish, alpha = 1.0f; return true;
  }
  return false;
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

bool dnnl_has_activation(Activation a) {
  dnnl::algorithm alg;
  float alpha;
  return activation(a, alg, alpha);
}

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

  dnnl::memory scales;  // int8, oneDNN 3: the per-channel weight scales, a run-time argument

  dt x_type() const { return spec.int8 ? dt::u8 : spec.bf16 ? dt::bf16 : dt::f32; }

  dnnl::matmul::primitive_desc make_pd(int64_t M, const dnnl::memory::desc& w_md) const {
    const dt xt = x_type();
    dnnl::memory::desc src({M, spec.K}, xt, tag::ab);
    dnnl::memory::desc dst({M, spec.N}, spec.y_bf16 ? dt::bf16 : dt::f32, tag::ab);
    dnnl::memory::desc b_md = spec.has_bias ? dnnl::memory::desc({1, spec.N}, dt::f32, tag::ab) : dnnl::memory::desc();
    dnnl::post_ops po;
    dnnl::algorithm alg;
    float alpha = 0.0f;
    if (spec.epi == LinearEpilogue::kBiasAct) {
      if (!activation(spec.act, alg, alpha))
        fail(ErrorCode::kInternal, std::string("DnnlLinear: no oneDNN post-op for ") + activation_name(spec.act));
      append_eltwise(po, alg, alpha);
    }
    if (spec.epi == LinearEpilogue::kBiasAccumulate) po.append_sum(1.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(po);
    if (spec.int8) {
#if DNNL_VERSION_MAJOR >= 3
      attr.set_scales_mask(DNNL_ARG_WEIGHTS, 1 << 1);  // per N (dst = scale * acc + bias)
#else
      attr.set_output_scales(1 << 1, spec.out_scales);  // per N: dst = scale * (acc + bias)
#endif
    }
#if DNNL_VERSION_MAJOR >= 3
    return dnnl::matmul::primitive_desc(context().eng, src, w_md, b_md, dst, attr);
#else
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, w_md, b_md, dst), attr, context().eng);
#endif
  }

  // Packs torch's [N, K] row-major weights of type `wt` (the [K, N] matrix with strides {1, K}:
  // oneDNN's "ba") into the layout the hint M's primitive prefers; a bias buffer [1, N] when asked.
  void pack(const void* w, dt wt) {
    Context& ctx = context();
    dnnl::memory::desc any({spec.K, spec.N}, wt == dt::f32 && spec.bf16 ? dt::bf16 : wt, tag::any);
    wei_md = make_pd(spec.hint_m, any).weights_desc();
    dnnl::memory src({{spec.K, spec.N}, wt, tag::ba}, ctx.eng, const_cast<void*>(w));
    wei = dnnl::memory(wei_md, ctx.eng);
    dnnl::reorder(src, wei).execute(ctx.strm, src, wei);
    if (spec.has_bias) bias = dnnl::memory({{1, spec.N}, dt::f32, tag::ab}, ctx.eng);
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
  const int64_t N = spec.N;
  if (!w || (spec.has_bias && !bias)) fail(ErrorCode::kInvalidArgument, "DnnlLinear: weight / bias missing");
  dnnl_call("packing weights", [&] {
    impl_->pack(w, dt::f32);
    if (spec.has_bias) std::copy(bias, bias + N, static_cast<float*>(impl_->bias.get_data_handle()));
    context().strm.wait();
  });
}

DnnlLinear::DnnlLinear(const int8_t* wq, const float* bias, const LinearSpec& spec) : impl_(std::make_unique<Impl>()) {
  impl_->spec = spec;
  const int64_t N = spec.N;
  if (!wq || (spec.has_bias && !bias)) fail(ErrorCode::kInvalidArgument, "DnnlLinear: int8 weight / bias missing");
  if (!spec.int8 || static_cast<int64_t>(spec.out_scales.size()) != N)
    fail(ErrorCode::kInvalidArgument, "DnnlLinear: int8 weights need spec.int8 and N output scales");
  dnnl_call("packing int8 weights", [&] {
    Context& ctx = context();
    impl_->pack(wq, dt::s8);
    if (spec.has_bias) {
      float* b = static_cast<float*>(impl_->bias.get_data_handle());
#if DNNL_VERSION_MAJOR >= 3
      std::copy(bias, bias + N, b);
#else
      // oneDNN 2.x adds the bias before the output scales: in accumulator units.
      for (int64_t n = 0; n < N; ++n) b[n] = spec.out_scales[static_cast<size_t>(n)] != 0.0f
                                                 ? bias[n] / spec.out_scales[static_cast<size_t>(n)] : 0.0f;
#endif
    }
#if DNNL_VERSION_MAJOR >= 3
    impl_->scales = dnnl::memory({{N}, dt::f32, tag::a}, ctx.eng);
    std::copy(spec.out_scales.begin(), spec.out_scales.end(), static_cast<float*>(impl_->scales.get_data_handle()));
#endif
    ctx.strm.wait();
  });
}

DnnlLinear::~DnnlLinear() = default;

void DnnlLinear::run(const void* x, int64_t M, void* y, int threads) {
  dnnl_call("matmul", [&] {
    Context& ctx = context();
    dnnl::matmul& p = impl_->prim(M);
    const LinearSpec& s = impl_->spec;
    dnnl::memory src({{M, s.K}, impl_->x_type(), tag::ab}, ctx.eng, const_cast<void*>(x));
    dnnl::memory dst({{M, s.N}, s.y_bf16 ? dt::bf16 : dt::f32, tag::ab}, ctx.eng, y);
    // oneDNN (OpenMP build) runs on omp_get_max_threads() of the calling thread.
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, impl_->wei}, {DNNL_ARG_DST, dst}};
    if (s.has_bias) args.emplace(DNNL_ARG_BIAS, impl_->bias);
#if DNNL_VERSION_MAJOR >= 3
    if (s.int8) args.emplace(DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS, impl_->scales);
#endif
    p.execute(ctx.strm, args);
    ctx.strm.wait();
    omp_set_num_threads(saved);
  });
}

std::string DnnlLinear::impl_name(int64_t M) {
  return dnnl_call("query", [&] { return std::string(impl_->make_pd(M, impl_->wei_md).impl_info_str()); });
}

struct DnnlEltwise::Impl {
  dnnl::algorithm alg;
  float alpha = 0.0f;
  std::mutex mu;
  std::map<int64_t, dnnl::eltwise_forward> prims;  // by n
};

DnnlEltwise::DnnlEltwise(Activation act) : impl_(std::make_unique<Impl>()) {
  if (!activation(act, impl_->alg, impl_->alpha))
    fail(ErrorCode::kInternal, std::string("DnnlEltwise: no oneDNN eltwise for ") + activation_name(act));
}

DnnlEltwise::~DnnlEltwise() = default;

void DnnlEltwise::run(float* y, int64_t n, int threads) const {
  dnnl_call("eltwise", [&] {
    Context& ctx = context();
    dnnl::memory::desc md({n}, dt::f32, tag::a);
    dnnl::eltwise_forward* p;
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      auto it = impl_->prims.find(n);
      if (it == impl_->prims.end()) {
#if DNNL_VERSION_MAJOR >= 3
        dnnl::eltwise_forward::primitive_desc pd(ctx.eng, dnnl::prop_kind::forward_inference, impl_->alg, md, md,
                                                 impl_->alpha, 0.0f);
#else
        dnnl::eltwise_forward::primitive_desc pd(
            dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, impl_->alg, md, impl_->alpha, 0.0f), ctx.eng);
#endif
        it = impl_->prims.emplace(n, dnnl::eltwise_forward(pd)).first;
      }
      p = &it->second;
    }
    dnnl::memory m(md, ctx.eng, y);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    p->execute(ctx.strm, {{DNNL_ARG_SRC, m}, {DNNL_ARG_DST, m}});
    ctx.strm.wait();
    omp_set_num_threads(saved);
  });
}

int64_t DnnlLinear::packed_bytes() const { return static_cast<int64_t>(impl_->wei_md.get_size()); }

}  // namespace vit::fastcpu
