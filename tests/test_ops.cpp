// vit-infer op tests: every case of the declarative op table (op_cases.h) on every backend
// present, against the CPU reference rows (the fp32 oracle) run on the same inputs. Built three
// times: test_ops (the fast CPU engine's rows, fp32 and bf16), test_ops_cuda (the CUDA rows on a
// device: skipped without one) and test_gpu_emu_ops (the same CUDA rows in the CPU emulator, ctest
// "emu.Ops*"), the last two with every GEMM implementation a case's linear nodes can run on.
// Inputs are fresh random values each run (the seed is printed on failure), outputs are poisoned
// (NaN) before the run, and each backend's inputs are rounded to its storage type before the
// reference sees them, so the bound (tolerances.h tol_rel: 1e-4 fp32, 2e-2 16-bit, of max |ref|)
// measures the op's own error.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "op_cases.h"
#include "tolerances.h"

#ifdef VIT_TEST_OPS_CUDA
#include "gpu/op_runner.h"
#include "test_gpu_util.h"
#endif

namespace vit::test {
namespace {

uint32_t fresh_seed() {
  static std::random_device rd;
  return rd();
}

std::vector<float> round_to_type(DType t, std::vector<float> v) {
  if (t == DType::F16) for (float& x : v) x = half_to_float(float_to_half(x));
  if (t == DType::BF16) for (float& x : v) x = bf16_to_float(float_to_bf16(x));
  return v;
}

// Random values for every kInput tensor of g ([batch, shape]), rounded to that tensor's type.
std::map<int, std::vector<float>> make_inputs(const graph::Graph& g, const OpCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-c.input_spread, c.input_spread);
  std::map<int, std::vector<float>> in;
  std::uniform_int_distribution<int> whole(1, 8);
  for (size_t t = 0; t < g.tensors.size(); ++t) {
    const graph::TensorDesc& d = g.tensors[t];
    if (d.kind != graph::TensorKind::kInput) continue;
    std::vector<float> v(static_cast<size_t>(d.numel() * c.batch));
    const bool sizes = std::find(c.size_inputs.begin(), c.size_inputs.end(), d.name) != c.size_inputs.end();
    for (float& x : v) x = sizes ? static_cast<float>(whole(rng)) : u(rng);
    in[static_cast<int>(t)] = round_to_type(d.dtype, std::move(v));
  }
  return in;
}

// The tensors a case is judged on: the outputs of its last node (earlier nodes' outputs, such as
// a scattered QKV, have backend-specific layouts).
std::vector<int> judged(const graph::Graph& g) { return g.nodes.back().out; }

// Runs `g` on a CPU backend; returns every judged output widened to fp32. The reference backend
// reads the same fp32 values the tested backend got (rounded to its types), stored fp32.
std::map<int, std::vector<float>> run_cpu(const graph::Graph& g, const cpu::CpuBackend& be, const OpCase& c,
                                          const std::map<int, std::vector<float>>& inputs) {
  cpu::GraphRunner runner(g, be);
  runner.set_poison(true);
  std::map<int, std::vector<uint16_t>> half;  // bf16 inputs, stored as the runner reads them
  std::map<int, const void*> bound;
  for (const auto& [t, v] : inputs) {
    if (g.t(t).dtype == DType::BF16) {
      std::vector<uint16_t>& h = half[t];
      for (float x : v) h.push_back(float_to_bf16(x));
      bound[t] = h.data();
    } else {
      bound[t] = v.data();
    }
  }
  cpu::Workspace ws;
  runner.run(ws, c.batch, 2, bound, RunOutputs{}, 0, nullptr);
  std::map<int, std::vector<float>> out;
  for (int t : judged(g)) {
    std::vector<float> v(static_cast<size_t>(g.t(t).numel() * c.batch));
    widen_to_f32(g.t(t).dtype, ws.ptr[static_cast<size_t>(t)], static_cast<int64_t>(v.size()), v.data());
    out[t] = std::move(v);
  }
  return out;
}

// The reference rows on the case's fp32 graph with the given (already rounded) inputs.
std::map<int, std::vector<float>> reference(const OpCase& c, uint32_t wseed, const std::map<int, std::vector<float>>& in) {
  return run_cpu(case_graph(c, DType::F32, wseed), cpu::reference_backend(), c, in);
}

void expect_outputs(const graph::Graph& g, const std::map<int, std::vector<float>>& got,
                    const std::map<int, std::vector<float>>& want, float tol) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [t, w] : want) {
    EXPECT_TRUE(close_rel(got.at(t), w, tol)) << "output '" << g.t(t).name << "'";
  }
}

class OpCheck : public ::testing::TestWithParam<OpCase> {};

std::string case_test_name(const ::testing::TestParamInfo<OpCase>& info) {
  std::string s = info.param.name;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

#ifndef VIT_TEST_OPS_CUDA

// The fast CPU engine's rows (oneDNN GEMMs, flash attention, the vectorised LayerNorm / GLU, bf16
// producers) in fp32 and, where the case has a bf16 variant and the CPU bf16 dot products, bf16.
TEST_P(OpCheck, FastCpuMatchesReference) {
  const OpCase& c = GetParam();
  const uint32_t seed = fresh_seed(), wseed = seed ^ 0x5bd1e995u;
  SCOPED_TRACE(c.name + ", seed " + std::to_string(seed));
  for (bool bf16 : {false, true}) {
    if (bf16 && c.cpu_bf16.empty()) continue;
    const cpu::CpuBackend be = cpu::fast_backend(bf16 ? DType::BF16 : DType::F32);
    if (bf16 && be.name.find("bf16") == std::string::npos) {
      std::printf("  %s: no bf16 variant on this CPU (%s)\n", c.name.c_str(), be.name.c_str());
      continue;
    }
    SCOPED_TRACE(be.name);
    const graph::Graph g = case_graph(c, DType::F32, wseed, bf16);
    const auto inputs = make_inputs(g, c, seed);
    const auto got = run_cpu(g, be, c, inputs);
    expect_outputs(g, got, reference(c, wseed, inputs), tol_rel(bf16 ? DType::BF16 : DType::F32));
  }
}

// The reference rows run every op of the graph IR, and so does the table.
TEST(OpTable, CoversEveryOp) {
  const std::vector<graph::Op> ops = ops_covered();
  EXPECT_EQ(static_cast<int>(ops.size()), graph::kOpCount);
  for (int o = 0; o < graph::kOpCount; ++o)
    EXPECT_NE(std::find(ops.begin(), ops.end(), static_cast<graph::Op>(o)), ops.end())
        << "no case runs " << graph::op_name(static_cast<graph::Op>(o));
  EXPECT_FALSE(perf_cases().empty());
}

// A reference result is not vacuous: a poisoned, never-written output would be NaN and fail
// close_rel; here a case whose op is swapped for another (activations) must be told apart.
TEST(OpTable, CheckTellsFormsApart) {
  const OpCase* tanh_case = nullptr;
  for (const OpCase& c : op_cases())
    if (c.name.rfind("act/gelu_tanh", 0) == 0) tanh_case = &c;
  ASSERT_NE(tanh_case, nullptr);
  graph::Graph g = case_graph(*tanh_case, DType::F32, 7);
  const auto inputs = make_inputs(g, *tanh_case, 11);
  const auto want = run_cpu(g, cpu::reference_backend(), *tanh_case, inputs);
  g.nodes.back().p<graph::ActParams>().act = Activation::kGeluErf;  // erf instead of tanh
  const auto got = run_cpu(g, cpu::reference_backend(), *tanh_case, inputs);
  EXPECT_FALSE(close_rel(got.begin()->second, want.begin()->second, tol_rel(DType::F32)));
}

#else  // VIT_TEST_OPS_CUDA

const char* impl_label(gpu::GemmImpl g) { return gpu::impl_name(g); }

// The CUDA rows (or the emulator's) in fp32, fp16 and bf16; a case with linear nodes once per
// GEMM implementation that takes its shapes here (others are listed as not run).
TEST_P(OpCheck, CudaMatchesReference) {
  VIT_SKIP_WITHOUT_GPU();
  const OpCase& c = GetParam();
#ifdef VIT_GPU_EMU_BUILD
  if (!c.emulated) GTEST_SKIP() << c.name << ": left to a GPU (tens of emulated seconds; a smaller case stands in)";
#endif
  const uint32_t seed = fresh_seed(), wseed = seed ^ 0x5bd1e995u;
  SCOPED_TRACE(c.name + ", seed " + std::to_string(seed));
  bool has_linear = false;
  for (const graph::Node& n : c.build(DType::F32, wseed).nodes) has_linear = has_linear || n.op == graph::Op::kLinear;
  int ran = 0;
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    const std::vector<gpu::GemmImpl> impls =
        has_linear ? std::vector<gpu::GemmImpl>{gpu::GemmImpl::kMmaSync, gpu::GemmImpl::kWgmma, gpu::GemmImpl::kCublasLt}
                   : std::vector<gpu::GemmImpl>{gpu::GemmImpl::kMmaSync};
    for (gpu::GemmImpl impl : impls) {
      SCOPED_TRACE(std::string(dt_label(dt)) + (has_linear ? std::string(", ") + impl_label(impl) : ""));
      const graph::Graph g = case_graph(c, dt, wseed);
      gpu::OpRunner r(g, dt, c.batch, impl);
      if (const std::string why = r.gemm_unsupported(); !why.empty()) {
        std::printf("  %s %s: not run (%s)\n", c.name.c_str(), dt_label(dt), why.c_str());
        continue;
      }
      const auto inputs = make_inputs(g, c, seed);
      r.poison();
      for (const auto& [t, v] : inputs) r.set_input(t, v);
      r.run();
      std::map<int, std::vector<float>> got;
      for (int t : judged(g)) got[t] = r.output(t);
      expect_outputs(g, got, reference(c, wseed, inputs), tol_rel(dt));
      ++ran;
    }
  }
  EXPECT_GE(ran, 3) << "every precision runs on the mma.sync kernel at least";
}

#endif  // VIT_TEST_OPS_CUDA

INSTANTIATE_TEST_SUITE_P(Ops, OpCheck, ::testing::ValuesIn(op_cases()), case_test_name);

}  // namespace
}  // namespace vit::test
