// vit-infer: DnnlLinear (dnnl_linear.h); builds against oneDNN 2.x (Debian) and 3.x. The packed
// weight layout is the one oneDNN prefers for the hint M (the engine's common row count); every
// other M reuses that layout (a primitive is created with the concrete blocked descriptor), so
// the weights exist once. Errors from oneDNN (dnnl::error) become vit::Error.
#include "cpu/dnnl_linear.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
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

namespace {

// The tile policy (dnnl_linear.h, LinearSpec::tiles). Measured on the Zen 3 AVX2 guest with
// oneDNN 2.x's gemm:jit (docs/PERF.md 6.7, quiet-run): ViT-B/16 fp32 batch 1 at 2 threads 1.2x
// faster tiled, batch 8 ~8 % slower (the blocked weights make every block's call pack its panels
// again). So kAuto tiles only there: fp32, no AVX-512 (brgemm ran at 97-100 % of its ceiling
// untiled, 6.4g), a session of fewer than two images per thread; VIT_CPU_GEMM_TILES=1 / 0 overrides.
bool tiles_wanted(const LinearSpec& s) {
  if (s.tiles != LinearTiles::kAuto) return s.tiles == LinearTiles::kOn;
  static const int env = [] {
    const char* e = std::getenv("VIT_CPU_GEMM_TILES");
    return !e || !*e ? -1 : std::string(e) == "1" ? 1 : 0;
  }();
  if (env >= 0) return env == 1;
  const bool measured = !s.int8 && !s.bf16 && static_cast<int>(effective_cpu_isa()) < static_cast<int>(CpuIsa::kAvx512);
  return measured && s.max_images > 0 && s.threads > 1 && s.max_images < 2 * s.threads;
}

// One CPU stream per thread: tiles execute primitives from every thread of the team at once.
dnnl::stream& thread_stream() {
  static thread_local dnnl::stream s(context().eng);
  return s;
}

}  // namespace

// A primitive for one M (primitives and their memory descriptors are created once per M).
struct Prim {
  dnnl::matmul matmul;
  size_t scratch_bytes;  // the size of its user scratchpad
};

// A column block of the layer, [n0, n0 + n) of y: its packed weights, bias, int8 scales and one
// primitive per M. An untiled layer is one block of all N columns.
struct LinearBlock {
  int64_t n0 = 0, n = 0;
  dnnl::memory::desc wei_md;  // the packed layout
  dnnl::memory wei, bias;
  dnnl::memory scales;             // int8, oneDNN 3: the block's weight scales, a run-time argument
  std::vector<float> out_scales;   // int8, oneDNN 2: the block's output scales (an attribute)
  std::mutex mu;                   // guards prims
  std::map<int64_t, Prim> prims;   // by M
};

struct DnnlLinear::Impl {
  LinearSpec spec;
  std::vector<std::unique_ptr<LinearBlock>> blocks;
  // Tiled: one image's rows (hint_m; several images when hint_m is under 256), the unit of the row
  // chunks (run()); tiles = row chunks x blocks run by the team with dynamic scheduling, each a
  // one-thread oneDNN call; 0: one call of oneDNN's own threading over the whole product.
  int64_t m_tile = 0;

  dt x_type() const { return spec.int8 ? dt::u8 : spec.bf16 ? dt::bf16 : dt::f32; }

  // y's rows are spec.N apart whatever the block's width (blocks write their columns of one y).
  dnnl::matmul::primitive_desc make_pd(int64_t M, const LinearBlock& b, const dnnl::memory::desc& w_md) const {
    const dt xt = x_type();
    dnnl::memory::desc src({M, spec.K}, xt, tag::ab);
    dnnl::memory::desc dst({M, b.n}, spec.y_bf16 ? dt::bf16 : dt::f32, dnnl::memory::dims{spec.N, 1});
    dnnl::memory::desc b_md = spec.has_bias ? dnnl::memory::desc({1, b.n}, dt::f32, tag::ab) : dnnl::memory::desc();
    dnnl::post_ops po;
    dnnl::algorithm alg;
    float alpha = 0.0f;
    if (spec.epi == LinearEpilogue::kBiasAct) {
      if (!activation(spec.act, alg, alpha))
        fail(ErrorCode::kInternal, "DnnlLinear: no oneDNN post-op for activation #" + std::to_string(static_cast<int>(spec.act)));
      append_eltwise(po, alg, alpha);
    }
    if (spec.epi == LinearEpilogue::kBiasAccumulate) po.append_sum(1.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(po);
    // The caller's scratchpad (one per thread, execute()): oneDNN 2's library scratchpad is shared
    // by the process, and tiles run primitives on every thread at once (the int8 gemm:jit's
    // int32 buffer was overwritten across threads with it).
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (spec.int8) {
#if DNNL_VERSION_MAJOR >= 3
      attr.set_scales_mask(DNNL_ARG_WEIGHTS, 1 << 1);  // per N (dst = scale * acc + bias)
#else
      attr.set_output_scales(1 << 1, b.out_scales);  // per N: dst = scale * (acc + bias)
#endif
    }
#if DNNL_VERSION_MAJOR >= 3
    return dnnl::matmul::primitive_desc(context().eng, src, w_md, b_md, dst, attr);
#else
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, w_md, b_md, dst), attr, context().eng);
#endif
  }

  // Cuts the N columns into blocks (one block when untiled) and packs each block's rows of torch's
  // [N, K] row-major weights of type `wt` (the [K, n] matrix with strides {1, K}: oneDNN's "ba")
  // into the layout the hint M's primitive prefers; bias / scale buffers when asked.
  void pack(const void* w, dt wt, size_t elem) {
    Context& ctx = context();
    const int64_t N = spec.N;
    // Tiles when there are at least two blocks to share: 128 columns for N <= 1024 (ViT-B's
    // proj / fc2: 6 blocks), else 256 (qkv 9, fc1 12).
    const int64_t width = N <= 1024 ? 128 : 256;
    const bool tiled = tiles_wanted(spec) && N >= 2 * width;
    m_tile = tiled ? spec.hint_m * std::max<int64_t>(1, 256 / std::max<int64_t>(1, spec.hint_m)) : 0;
    for (int64_t n0 = 0; n0 < N; n0 += tiled ? width : N) {
      auto b = std::make_unique<LinearBlock>();
      b->n0 = n0;
      b->n = tiled ? std::min(width, N - n0) : N;
      if (spec.int8) b->out_scales.assign(spec.out_scales.begin() + n0, spec.out_scales.begin() + n0 + b->n);
      dnnl::memory::desc any({spec.K, b->n}, wt == dt::f32 && spec.bf16 ? dt::bf16 : wt, tag::any);
      b->wei_md = make_pd(spec.hint_m, *b, any).weights_desc();
      const char* rows = static_cast<const char*>(w) + static_cast<size_t>(n0 * spec.K) * elem;
      dnnl::memory src({{spec.K, b->n}, wt, tag::ba}, ctx.eng, const_cast<char*>(rows));
      b->wei = dnnl::memory(b->wei_md, ctx.eng);
      dnnl::reorder(src, b->wei).execute(ctx.strm, src, b->wei);
      if (spec.has_bias) b->bias = dnnl::memory({{1, b->n}, dt::f32, tag::ab}, ctx.eng);
#if DNNL_VERSION_MAJOR >= 3
      if (spec.int8) {
        b->scales = dnnl::memory({{b->n}, dt::f32, tag::a}, ctx.eng);
        std::copy(b->out_scales.begin(), b->out_scales.end(), static_cast<float*>(b->scales.get_data_handle()));
      }
#endif
      blocks.push_back(std::move(b));
    }
  }

  // Writes bias[n] (per column: f maps the column to its stored value) into each block's buffer.
  template <class F>
  void set_bias(F&& f) {
    for (auto& b : blocks) {
      float* d = static_cast<float*>(b->bias.get_data_handle());
      for (int64_t j = 0; j < b->n; ++j) d[j] = f(b->n0 + j);
    }
  }

  Prim& prim(LinearBlock& b, int64_t M) {
    std::lock_guard<std::mutex> lock(b.mu);
    auto it = b.prims.find(M);
    if (it == b.prims.end()) {
      const auto pd = make_pd(M, b, b.wei_md);
      it = b.prims.emplace(M, Prim{dnnl::matmul(pd), pd.scratchpad_desc().get_size()}).first;
    }
    return it->second;
  }

  // Rows [m0, m0 + M) of x and y, block b's columns, on stream s.
  void execute(const LinearBlock& b, const Prim& p, dnnl::stream& s, const void* x, int64_t m0, int64_t M, void* y) const {
    Context& ctx = context();
    const size_t scratch_bytes = p.scratch_bytes;
    const size_t xe = spec.int8 ? 1 : spec.bf16 ? 2 : 4, ye = spec.y_bf16 ? 2 : 4;
    const char* xp = static_cast<const char*>(x) + static_cast<size_t>(m0 * spec.K) * xe;
    char* yp = static_cast<char*>(y) + static_cast<size_t>(m0 * spec.N + b.n0) * ye;
    dnnl::memory src({{M, spec.K}, x_type(), tag::ab}, ctx.eng, const_cast<char*>(xp));
    dnnl::memory dst({{M, b.n}, spec.y_bf16 ? dt::bf16 : dt::f32, dnnl::memory::dims{spec.N, 1}}, ctx.eng, yp);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, b.wei}, {DNNL_ARG_DST, dst}};
    if (spec.has_bias) args.emplace(DNNL_ARG_BIAS, b.bias);
#if DNNL_VERSION_MAJOR >= 3
    if (spec.int8) args.emplace(DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS, b.scales);
#endif
    if (scratch_bytes > 0) {
      // This thread's scratchpad, grown to the largest any primitive asked for (64-byte aligned).
      static thread_local std::vector<uint64_t> pad;
      if (pad.size() * sizeof(uint64_t) < scratch_bytes + 64) pad.resize((scratch_bytes + 64) / sizeof(uint64_t) + 1);
      char* base = reinterpret_cast<char*>(pad.data());
      base += (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64;
      args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory({{static_cast<int64_t>(scratch_bytes)}, dt::u8, tag::a}, ctx.eng, base));
    }
    p.matmul.execute(s, args);
    s.wait();
  }
};

DnnlLinear::DnnlLinear(const float* w, const float* bias, const LinearSpec& spec) : impl_(std::make_unique<Impl>()) {
  impl_->spec = spec;
  if (!w || (spec.has_bias && !bias)) fail(ErrorCode::kInvalidArgument, "DnnlLinear: weight / bias missing");
  dnnl_call("packing weights", [&] {
    impl_->pack(w, dt::f32, sizeof(float));
    if (spec.has_bias) impl_->set_bias([&](int64_t n) { return bias[n]; });
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
    impl_->pack(wq, dt::s8, 1);
    if (spec.has_bias) {
#if DNNL_VERSION_MAJOR >= 3
      impl_->set_bias([&](int64_t n) { return bias[n]; });
#else
      // oneDNN 2.x adds the bias before the output scales: in accumulator units.
      impl_->set_bias([&](int64_t n) {
        const float sc = spec.out_scales[static_cast<size_t>(n)];
        return sc != 0.0f ? bias[n] / sc : 0.0f;
      });
#endif
    }
    context().strm.wait();
  });
}

DnnlLinear::~DnnlLinear() = default;

void DnnlLinear::run(const void* x, int64_t M, void* y, int threads) {
  dnnl_call("matmul", [&] {
    Impl& im = *impl_;
    if (im.m_tile == 0) {
      // oneDNN (OpenMP build) runs on omp_get_max_threads() of the calling thread.
      LinearBlock& b = *im.blocks.front();
      Prim& p = im.prim(b, M);
      const int saved = omp_get_max_threads();
      omp_set_num_threads(threads);
      im.execute(b, p, context().strm, x, 0, M, y);
      omp_set_num_threads(saved);
      return;
    }
    // Tiles: (row chunk, column block), dynamically scheduled so that a thread whose core runs
    // slower (a busy sibling, a preempted vCPU) takes fewer; each tile is a one-thread oneDNN
    // call (oneDNN runs sequentially inside an OpenMP parallel region). Primitives are made
    // before the team starts (at most two row counts: the chunk and the remainder).
    // A batch of at least two images per thread: oneDNN's own partition of each block's rows
    // (tiles of one image each ran ViT-B b8 ~10 % slower than one untiled call, of a thread's
    // share of the images each ~5 %: every tile's call packs its panels again).
    const int64_t images = std::max<int64_t>(1, M / im.m_tile);
    if (images >= 2 * threads) {
      const int saved = omp_get_max_threads();
      omp_set_num_threads(threads);
      for (auto& b : im.blocks) im.execute(*b, im.prim(*b, M), context().strm, x, 0, M, y);
      omp_set_num_threads(saved);
      return;
    }
    // Row chunks of whole images, as many as a thread's share of the batch.
    const int64_t rows = im.m_tile * std::max<int64_t>(1, images / std::max(1, threads));
    const int64_t chunks = (M + rows - 1) / rows, nb = static_cast<int64_t>(im.blocks.size());
    const int64_t last = M - (chunks - 1) * rows;
    std::vector<Prim*> full(static_cast<size_t>(nb)), tail(static_cast<size_t>(nb));
    for (int64_t j = 0; j < nb; ++j) {
      full[j] = chunks > 1 ? &im.prim(*im.blocks[j], rows) : nullptr;
      tail[j] = &im.prim(*im.blocks[j], last);
    }
    std::exception_ptr err;
    std::mutex err_mu;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t t = 0; t < chunks * nb; ++t) {
      const int64_t c = t / nb, j = t % nb;
      try {
        im.execute(*im.blocks[j], c + 1 < chunks ? *full[j] : *tail[j], thread_stream(), x, c * rows,
                   c + 1 < chunks ? rows : last, y);
      } catch (...) {
        std::lock_guard<std::mutex> lock(err_mu);
        if (!err) err = std::current_exception();
      }
    }
    if (err) std::rethrow_exception(err);
  });
}

std::string DnnlLinear::impl_name(int64_t M) {
  return dnnl_call("query", [&] {
    Impl& im = *impl_;
    std::string name = im.make_pd(M, *im.blocks.front(), im.blocks.front()->wei_md).impl_info_str();
    if (im.m_tile > 0)
      name += " (tiles: " + std::to_string(im.blocks.size()) + " column blocks x chunks of whole images of " + std::to_string(im.m_tile) + " rows)";
    return name;
  });
}

struct DnnlEltwise::Impl {
  dnnl::algorithm alg;
  float alpha = 0.0f;
  std::mutex mu;
  std::map<int64_t, dnnl::eltwise_forward> prims;  // by n
};

DnnlEltwise::DnnlEltwise(Activation act) : impl_(std::make_unique<Impl>()) {
  if (!activation(act, impl_->alg, impl_->alpha))
    fail(ErrorCode::kInternal, "DnnlEltwise: no oneDNN eltwise for activation #" + std::to_string(static_cast<int>(act)));
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

int64_t DnnlLinear::packed_bytes() const {
  int64_t n = 0;
  for (const auto& b : impl_->blocks) n += static_cast<int64_t>(b->wei_md.get_size());
  return n;
}

bool DnnlLinear::tiled() const { return impl_->m_tile > 0; }

}  // namespace vit::fastcpu
