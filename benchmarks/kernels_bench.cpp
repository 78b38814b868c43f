// vit-kernels-bench: Google Benchmark over the SHIPPED launch path at the ViT-B/16 shapes of batch
// 256 (M = 256 * 197 token rows, D = 768, I = 3072, 12 heads of 64): the op table's perf cases
// (tests/op_cases.h, "op/..."; the graph nodes the engine runs, through its op-table rows on
// gpu::OpRunner, each GEMM implementation), the eager attention baseline (cuBLAS + softmax) and
// two accuracy checks, with the ceilings measured in the same run: an 8192^3 cuBLASLt GEMM and a
// device-to-device copy. Times are CUDA events
// (manual time), counters are TFLOP/s or GB/s at the median launch. Every activation operand
// is 77-310 MB, above the H200's L2, so no input rotation is needed; weights (<= 5 MB) stay
// cache-resident as they do in the engine. Without a GPU every benchmark skips with a message.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "attention.cuh"
#include "bench_util.h"
#include "core/error.h"
#include "cuda_check.h"
#include "gemm.cuh"
#include "gemm_sm90.cuh"
#include "gpu/lt_gemm.h"
#include "gpu/op_runner.h"
#include "op_cases.h"
#include "softmax.h"

namespace vit::bench {
namespace {

// ViT-B/16 at batch 256.
constexpr int kBatch = 256, kTokens = 197, kD = 768, kI = 3072, kHeads = 12, kHd = 64;

bool g_gpu = false;
std::string g_why;

// Lazily created shared state: one stream, the executor's cuBLASLt wrapper, a cuBLAS handle.
struct Ctx {
  cudaStream_t s = nullptr;
  std::unique_ptr<gpu::LtGemm> lt;
  cublasHandle_t blas = nullptr;
  Ctx() {
    VIT_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    lt = std::make_unique<gpu::LtGemm>(false);
    VIT_CUBLAS_CHECK(cublasCreate(&blas));
    VIT_CUBLAS_CHECK(cublasSetStream(blas, s));
  }
  ~Ctx() {
    lt.reset();
    if (blas) cublasDestroy(blas);
    if (s) cudaStreamDestroy(s);
  }
};
Ctx& ctx() {
  static Ctx c;
  return c;
}

const char* dname(DType d) { return d == DType::BF16 ? "bf16" : d == DType::F16 ? "fp16" : "fp32"; }
cudaDataType_t cuda_type(DType d) {
  return d == DType::BF16 ? CUDA_R_16BF : d == DType::F16 ? CUDA_R_16F : CUDA_R_32F;
}
size_t esize(DType d) { return dtype_size(d); }

// Runs `launch` under Google Benchmark's loop: a warm-up, then per iteration `inner`
// back-to-back launches between two events (inner sized so an iteration is >= ~1 ms, which
// hides the event and launch latency); the iteration time is the per-launch mean. Sets
// counters: ms (median per launch), and `rate_name` = work / median time.
void time_launches(benchmark::State& state, const std::function<void()>& launch, double work,
                   const char* rate_name, double rate_unit) {
  cudaStream_t s = ctx().s;
  EventPair ev;
  for (int i = 0; i < 3; ++i) launch();
  ev.start(s);
  launch();
  ev.stop(s);
  const double one = std::max(1e-3, static_cast<double>(ev.elapsed_ms()));
  const int inner = static_cast<int>(std::clamp(std::ceil(1.0 / one), 1.0, 200.0));
  std::vector<double> per;
  for (auto _ : state) {
    ev.start(s);
    for (int i = 0; i < inner; ++i) launch();
    ev.stop(s);
    const double ms = ev.elapsed_ms() / inner;
    per.push_back(ms);
    state.SetIterationTime(ms * 1e-3);
  }
  const double med = stats_of(per).median;
  state.counters["ms"] = med;
  state.counters["inner"] = inner;
  if (med > 0) state.counters[rate_name] = work / (med * 1e-3) / rate_unit;
}

// Wraps a benchmark body: no GPU -> skip with the reason; vit::Error / std::exception -> skip
// with the message (the run goes on with the other benchmarks).
template <class F>
void guarded(benchmark::State& state, F&& body) {
  if (!g_gpu) {
    state.SkipWithError(("no CUDA device: " + g_why).c_str());
    return;
  }
  try {
    body(state);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// Host copy of a device 16-bit / fp32 buffer as float (for the one-off accuracy counters).
std::vector<float> to_host_f32(const void* d, DType dt, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  if (dt == DType::F32) {
    VIT_CUDA_CHECK(cudaMemcpy(out.data(), d, static_cast<size_t>(n) * 4, cudaMemcpyDeviceToHost));
    return out;
  }
  std::vector<uint16_t> h(static_cast<size_t>(n));
  VIT_CUDA_CHECK(cudaMemcpy(h.data(), d, static_cast<size_t>(n) * 2, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < h.size(); ++i) out[i] = dt == DType::F16 ? half_to_float(h[i]) : bf16_to_float(h[i]);
  return out;
}

// ||a - b|| / ||b||; +inf when either holds a NaN/Inf.
double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : INFINITY;
}

// --- GEMMs ---------------------------------------------------------------------------------
// A dense row-major GEMM y[M, N] = x[M, K] W[N, K]^T + bias[N] on the given buffers.
GemmParams dense_gemm(DType dt, const void* x, const void* w, const void* bias, void* y, int M, int N, int K) {
  GemmParams p;
  p.dtype = dt;
  p.a = x;
  p.lda = K;
  p.w = w;
  p.ldw = K;
  p.c = y;
  p.ldc = N;
  p.bias = bias;
  p.M = M;
  p.N = N;
  p.K = K;
  return p;
}

// Custom vs cuBLASLt on the same plain GEMM (kNone + bias): ||custom - lt|| / ||lt||.
void bm_gemm_check(benchmark::State& state, DType dt) {
  guarded(state, [&](benchmark::State& st) {
    Ctx& c = ctx();
    const int M = 4096, N = kI, K = kD;
    DeviceMem a(static_cast<size_t>(M) * K * esize(dt)), w(static_cast<size_t>(N) * K * esize(dt));
    DeviceMem b(static_cast<size_t>(N) * esize(dt)), y1(static_cast<size_t>(M) * N * esize(dt)),
        y2(static_cast<size_t>(M) * N * esize(dt));
    fill_uniform(a.p, dt, int64_t{M} * K, -1.0f, 1.0f, 21, c.s);
    fill_uniform(w.p, dt, int64_t{N} * K, -0.06f, 0.06f, 22, c.s);
    fill_uniform(b.p, dt, N, -0.1f, 0.1f, 23, c.s);
    VIT_CUDA_CHECK(cudaMemsetAsync(y1.p, 0xFF, y1.bytes, c.s));  // NaN poison
    VIT_CUDA_CHECK(cudaMemsetAsync(y2.p, 0xFF, y2.bytes, c.s));
    GemmParams p = dense_gemm(dt, a.p, w.p, b.p, y1.p, M, N, K);
    launch_gemm(p, c.s);
    p.c = y2.p;
    if (!c.lt->supports(p)) {
      st.SkipWithError("cuBLASLt offers no algorithm for the check GEMM");
      return;
    }
    c.lt->run(p, c.s);
    VIT_CUDA_CHECK(cudaStreamSynchronize(c.s));
    const double err = rel_l2(to_host_f32(y1.p, dt, int64_t{M} * N), to_host_f32(y2.p, dt, int64_t{M} * N));
    for (auto _ : st) st.SetIterationTime(1e-6);
    st.counters["rel_err_custom_vs_lt"] = err;
  });
}

// --- attention ------------------------------------------------------------------------------
// Q, K, V: [3, B, H, T, hd] (the custom QKV epilogue's layout), random U(-1, 1).
struct AttnBuffers {
  DType dt;
  int64_t per;  // elements of one of q / k / v
  DeviceMem qkv, o, s;
  AttnBuffers(DType d, bool unfused) : dt(d), per(int64_t{kBatch} * kHeads * kTokens * kHd) {
    qkv = DeviceMem(static_cast<size_t>(3 * per) * esize(dt));
    o = DeviceMem(static_cast<size_t>(per) * esize(dt));
    if (unfused) s = DeviceMem(static_cast<size_t>(kBatch) * kHeads * kTokens * kTokens * esize(dt));
    fill_uniform(qkv.p, dt, 3 * per, -1.0f, 1.0f, 31, ctx().s);
  }
  const char* q() const { return static_cast<const char*>(qkv.p); }
  const char* k() const { return q() + per * esize(dt); }
  const char* v() const { return q() + 2 * per * esize(dt); }
};

AttentionParams fused_params(const AttnBuffers& b) {
  AttentionParams p;
  p.dtype = b.dt;
  p.q = b.q();
  p.k = b.k();
  p.v = b.v();
  p.stride_b = int64_t{kHeads} * kTokens * kHd;
  p.stride_h = int64_t{kTokens} * kHd;
  p.stride_t = kHd;
  p.o = b.o.p;  // [B, T, H*hd]
  p.B = kBatch;
  p.H = kHeads;
  p.T = kTokens;
  p.head_dim = kHd;
  p.scale = 1.0f / std::sqrt(static_cast<float>(kHd));
  return p;
}

// The eager baseline: S = scale * Q K^T (strided-batched cuBLAS, B*H problems, 16-bit out),
// P = softmax(S) in place, O = P V ([B, H, T, hd]). Row-major X is column-major X^T, so
// S^T = K Q^T is gemm(T, N) and O^T = V^T P^T is gemm(N, N).
void unfused_attention(const AttnBuffers& b, cudaStream_t s) {
  Ctx& c = ctx();
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHd)), one = 1.0f, zero = 0.0f;
  const cudaDataType_t t = cuda_type(b.dt);
  const int batch = kBatch * kHeads;
  VIT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(c.blas, CUBLAS_OP_T, CUBLAS_OP_N, kTokens, kTokens, kHd, &scale,
                                              b.k(), t, kHd, int64_t{kTokens} * kHd, b.q(), t, kHd,
                                              int64_t{kTokens} * kHd, &zero, b.s.p, t, kTokens,
                                              int64_t{kTokens} * kTokens, batch, CUBLAS_COMPUTE_32F,
                                              CUBLAS_GEMM_DEFAULT));
  launch_softmax_rows(b.s.p, b.s.p, b.dt, int64_t{batch} * kTokens, kTokens, s);
  VIT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(c.blas, CUBLAS_OP_N, CUBLAS_OP_N, kHd, kTokens, kTokens, &one,
                                              b.v(), t, kHd, int64_t{kTokens} * kHd, b.s.p, t, kTokens,
                                              int64_t{kTokens} * kTokens, &zero, b.o.p, t, kHd,
                                              int64_t{kTokens} * kHd, batch, CUBLAS_COMPUTE_32F,
                                              CUBLAS_GEMM_DEFAULT));
}

constexpr double kAttnFlops = 4.0 * kBatch * kHeads * kTokens * kTokens * kHd;  // QK^T + PV

void bm_attention_unfused(benchmark::State& state, DType dt) {
  guarded(state, [&](benchmark::State& st) {
    Ctx& c = ctx();
    AttnBuffers b(dt, true);
    time_launches(st, [&] { unfused_attention(b, c.s); }, kAttnFlops, "TFLOP/s", 1e12);
    VIT_CUDA_CHECK(cudaStreamSynchronize(c.s));
  });
}

// Fused vs unfused on the same Q/K/V: ||fused - unfused|| / ||unfused|| (O layouts differ:
// fused [B, T, H, hd], unfused [B, H, T, hd]; compared element by element after reindexing).
void bm_attention_check(benchmark::State& state, DType dt) {
  guarded(state, [&](benchmark::State& st) {
    Ctx& c = ctx();
    AttnBuffers b(dt, true);
    DeviceMem o2(b.o.bytes);
    VIT_CUDA_CHECK(cudaMemsetAsync(b.o.p, 0xFF, b.o.bytes, c.s));
    VIT_CUDA_CHECK(cudaMemsetAsync(o2.p, 0xFF, o2.bytes, c.s));
    AttentionParams p = fused_params(b);
    p.o = o2.p;
    launch_attention(p, c.s);
    unfused_attention(b, c.s);
    VIT_CUDA_CHECK(cudaStreamSynchronize(c.s));
    const std::vector<float> fused = to_host_f32(o2.p, dt, b.per), ref = to_host_f32(b.o.p, dt, b.per);
    std::vector<float> fused_bhtd(fused.size());
    for (int64_t bb = 0; bb < kBatch; ++bb)
      for (int64_t t = 0; t < kTokens; ++t)
        for (int64_t h = 0; h < kHeads; ++h)
          std::memcpy(&fused_bhtd[static_cast<size_t>(((bb * kHeads + h) * kTokens + t) * kHd)],
                      &fused[static_cast<size_t>(((bb * kTokens + t) * kHeads + h) * kHd)], kHd * sizeof(float));
    for (auto _ : st) st.SetIterationTime(1e-6);
    st.counters["rel_err_fused_vs_unfused"] = rel_l2(fused_bhtd, ref);
  });
}

// --- the op table's perf cases (tests/op_cases.h) on the CUDA rows -----------------------------
// The graph of the case (the node or pattern the engine runs, its fused epilogue included) on the
// engine's own launch path (gpu::OpRunner: the lowered graph and the op-table rows), each GEMM on
// `impl`. Counters: ms per run, TFLOP/s (GEMMs + attention) or GB/s (activation bytes read and
// written, for the memory-bound ops).
void bm_op(benchmark::State& state, const test::OpCase& c, DType dt, gpu::GemmImpl impl) {
  guarded(state, [&](benchmark::State& st) {
    gpu::OpRunner r(test::case_graph(c, dt, 71), dt, c.batch, impl);
    if (const std::string why = r.gemm_unsupported(); !why.empty()) {
      st.SkipWithError(why.c_str());
      return;
    }
    const graph::Graph& g = r.graph();
    double flops = 0, bytes = 0;
    for (const graph::Node& n : g.nodes) {
      if (n.op == graph::Op::kLinear) {
        const graph::TensorDesc& w = g.t(n.in[1]);
        flops += 2.0 * c.batch * g.t(n.in[0]).rows() * w.shape[0] * w.cols();
      } else if (n.op == graph::Op::kAttention) {
        const double T = static_cast<double>(g.t(n.in[0]).rows()), D = static_cast<double>(g.t(n.out[0]).cols());
        flops += 4.0 * c.batch * T * T * D;  // Q K^T and P V over every head
      }
      for (const std::vector<int>* ts : {&n.in, &n.out})
        for (int t : *ts)
          if (t >= 0 && g.t(t).kind != graph::TensorKind::kWeight)
            bytes += static_cast<double>(g.t(t).numel()) * c.batch * static_cast<double>(dtype_size(g.t(t).dtype));
    }
    for (const graph::TensorDesc& d : g.tensors) {
      if (d.kind != graph::TensorKind::kInput) continue;
      std::vector<float> v(static_cast<size_t>(d.numel() * c.batch));
      for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
      r.set_input(static_cast<int>(&d - g.tensors.data()), v);
    }
    const double one = std::max(1e-3, r.time_ms(1));
    const int inner = static_cast<int>(std::clamp(std::ceil(1.0 / one), 1.0, 200.0));
    std::vector<double> per;
    for (auto _ : st) {
      const double ms = r.time_ms(inner);
      per.push_back(ms);
      st.SetIterationTime(ms * 1e-3);
    }
    const double med = stats_of(per).median;
    st.counters["ms"] = med;
    if (med > 0) {
      if (flops > 0) st.counters["TFLOP/s"] = flops / (med * 1e-3) / 1e12;
      else st.counters["GB/s"] = bytes / (med * 1e-3) / 1e9;
    }
  });
}

// --- ceilings -------------------------------------------------------------------------------
void bm_ceiling_gemm(benchmark::State& state, DType dt, bool lt) {
  guarded(state, [&](benchmark::State& st) {
    Ctx& c = ctx();
    const int n = 8192;
    DeviceMem a(static_cast<size_t>(n) * n * esize(dt)), w(static_cast<size_t>(n) * n * esize(dt)),
        y(static_cast<size_t>(n) * n * esize(dt));
    const float wa = std::sqrt(3.0f / n);
    fill_uniform(a.p, dt, int64_t{n} * n, -1.0f, 1.0f, 51, c.s);
    fill_uniform(w.p, dt, int64_t{n} * n, -wa, wa, 52, c.s);
    const GemmParams p = dense_gemm(dt, a.p, w.p, nullptr, y.p, n, n, n);  // no bias: the plain ceiling
    if (lt && !c.lt->supports(p)) {
      st.SkipWithError("cuBLASLt offers no algorithm for 8192^3");
      return;
    }
    time_launches(
        st, [&] { lt ? c.lt->run(p, c.s) : launch_gemm(p, c.s); }, 2.0 * n * n * n, "TFLOP/s", 1e12);
    VIT_CUDA_CHECK(cudaStreamSynchronize(c.s));
  });
}

void bm_ceiling_copy(benchmark::State& state) {
  guarded(state, [&](benchmark::State& st) {
    Ctx& c = ctx();
    const size_t bytes = size_t{2} << 30;  // 2 GiB each way, ~70x the L2
    DeviceMem src(bytes), dst(bytes);
    fill_uniform(src.p, DType::F32, static_cast<int64_t>(bytes / 4), -1.0f, 1.0f, 61, c.s);
    time_launches(
        st, [&] { VIT_CUDA_CHECK(cudaMemcpyAsync(dst.p, src.p, bytes, cudaMemcpyDeviceToDevice, c.s)); },
        2.0 * static_cast<double>(bytes), "GB/s", 1e9);  // bytes read + bytes written
    VIT_CUDA_CHECK(cudaStreamSynchronize(c.s));
  });
}

void register_all() {
  const DType dts[] = {DType::BF16, DType::F16};
  auto reg = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->UseManualTime()->Unit(benchmark::kMillisecond);
  };
  // Accuracy checks: one pass, the result is the counter.
  auto check = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
  };
  reg("ceiling/copy_d2d_2GiB", [](benchmark::State& s) { bm_ceiling_copy(s); });
  for (DType dt : dts) {
    const std::string d = dname(dt);
    reg("ceiling/gemm_8192^3/cublaslt/" + d, [dt](benchmark::State& s) { bm_ceiling_gemm(s, dt, true); });
    reg("ceiling/gemm_8192^3/custom/" + d, [dt](benchmark::State& s) { bm_ceiling_gemm(s, dt, false); });
    // The op table's perf cases (ViT-B/16 at batch 256), every GEMM implementation where the
    // case has GEMMs: the same rows the op tests check, timed.
    for (const test::OpCase& oc : test::perf_cases()) {
      bool gemm = false;
      for (const graph::Node& n : oc.build(DType::F32, 1).nodes) gemm = gemm || n.op == graph::Op::kLinear;
      const std::vector<gpu::GemmImpl> impls = gemm ? std::vector<gpu::GemmImpl>{gpu::GemmImpl::kMmaSync,
                                                                                 gpu::GemmImpl::kWgmma,
                                                                                 gpu::GemmImpl::kCublasLt}
                                                    : std::vector<gpu::GemmImpl>{gpu::GemmImpl::kMmaSync};
      for (gpu::GemmImpl impl : impls) {
        const std::string name = "op/" + oc.name + (gemm ? std::string("/") + gpu::impl_name(impl) : "") + "/" + d;
        reg(name, [&oc, dt, impl](benchmark::State& s) { bm_op(s, oc, dt, impl); });
      }
    }
    check("check/gemm_custom_vs_cublaslt/" + d, [dt](benchmark::State& s) { bm_gemm_check(s, dt); });
    reg("attention/unfused_cublas_softmax/" + d, [dt](benchmark::State& s) { bm_attention_unfused(s, dt); });
    check("check/attention_fused_vs_unfused/" + d, [dt](benchmark::State& s) { bm_attention_check(s, dt); });
  }
}

}  // namespace
}  // namespace vit::bench

int main(int argc, char** argv) {
  using namespace vit::bench;
  g_gpu = gpu_present(&g_why);
  benchmark::AddCustomContext("git_hash", git_hash());
  if (g_gpu) {
    try {
      const GpuInfo gi = gpu_info(0);
      benchmark::AddCustomContext("gpu", gi.name);
      benchmark::AddCustomContext("gpu_sm_count", std::to_string(gi.sm_count));
      benchmark::AddCustomContext("gpu_l2_bytes", std::to_string(gi.l2_bytes));
    } catch (const std::exception& e) {
      g_gpu = false;
      g_why = e.what();
    }
  }
  if (!g_gpu) {
    benchmark::AddCustomContext("gpu", "none");
    std::fprintf(stderr, "vit-kernels-bench: no CUDA device (%s): every benchmark is skipped\n", g_why.c_str());
  }
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
