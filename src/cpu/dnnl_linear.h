// vit-infer: a Linear layer of the fast CPU engine on oneDNN's matmul: y[M, N] = x[M, K] W^T + b,
// with the epilogue (an activation, or "+= into y" for the residual) fused as oneDNN post-ops. The
// weights are reordered once, at construction, from torch's [N, K] fp32 into the blocked layout
// oneDNN's kernel wants (bf16 VNNI tiles for AMX / AVX512-BF16, fp32 panels otherwise); the bias
// stays fp32, accumulation is fp32. x and y are row-major; x is bf16 (uint16) when the weights
// are, y is fp32 or bf16. One primitive per distinct M (batch size), created on first use.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/activation.h"
#include "core/tensor.h"
#include "cpu/cpu_isa.h"

namespace vit::fastcpu {

// kBiasAct: the bias, then LinearSpec::act as a oneDNN eltwise post-op (dnnl_has_activation);
// kBiasAccumulate: y += x W^T + b (the residual).
enum class LinearEpilogue { kBias, kBiasAct, kBiasAccumulate };

// Whether oneDNN has a post-op computing `a` as core/activation_math.h does (GELU erf and tanh;
// quick-GELU and SiLU as swish with alpha 1.702 / 1). Without one, the fast engine's rows leave
// the node to the reference rows.
bool dnnl_has_activation(Activation a);

// How the product is shared by the threads. kOn: the weights packed in column blocks of 128 / 256;
// a batch of fewer than two images per thread runs as tiles of (whole images' rows) x (a block),
// dynamically scheduled over the team, each a one-thread oneDNN call (a thread on a slower core
// takes fewer); a larger batch runs each block with oneDNN's own threading. kOff: one oneDNN call
// with its own static partition. kAuto: VIT_CPU_GEMM_TILES=1 / 0 when set; else tiles for an fp32
// GEMM on a CPU without AVX-512 (oneDNN's gemm:jit, where they were measured) whose session runs
// fewer than two images per thread (max_images < 2 x threads; on the Zen 3 AVX2 guest ViT-B batch 1
// ran 1.2x faster tiled, batch 8 ~8 % slower: docs/PERF.md 6.7), off otherwise. Both give the same
// numbers up to the order of float additions; a layer narrower than two blocks is never tiled.
enum class LinearTiles { kAuto, kOn, kOff };

struct LinearSpec {
  int64_t N = 0, K = 0;
  bool bf16 = false;      // weights and x in bf16 (else fp32)
  bool y_bf16 = false;    // y stored as bf16 (else fp32)
  LinearEpilogue epi = LinearEpilogue::kBias;
  Activation act = Activation::kGeluErf;  // kBiasAct
  bool has_bias = true;   // false: no bias (the bias tensor is ignored)
  int64_t hint_m = 197;   // the M whose preferred weight layout is packed (one image's rows)
  LinearTiles tiles = LinearTiles::kAuto;
  // What the session will run (kAuto's policy): the most images in one run and the threads (0: unknown).
  int max_images = 0, threads = 0;
  // int8 (W8A8, the int8 constructor): x u8 [M, K], weights s8, int32 accumulation; then
  // y = out_scales[n] * acc + bias[n] (bias in y's units) and the epilogue. bf16 is ignored.
  bool int8 = false;
  std::vector<float> out_scales;  // [N]
};

// Sets oneDNN's ISA ceiling to `isa` (once per process, before any primitive exists) and returns
// the ceiling in force; later calls with another value keep the first. Thread-safe.
CpuIsa dnnl_set_isa(CpuIsa isa);

class DnnlLinear {
 public:
  // w [N, K] fp32 (torch orientation), bias [N] fp32 (null when !spec.has_bias).
  DnnlLinear(const float* w, const float* bias, const LinearSpec& spec);
  // int8: wq [N, K] int8 (torch orientation, already quantised), bias [N] fp32 in y's units (null
  // when !spec.has_bias); spec.int8 set, spec.out_scales [N].
  DnnlLinear(const int8_t* wq, const float* bias, const LinearSpec& spec);
  ~DnnlLinear();
  DnnlLinear(const DnnlLinear&) = delete;
  DnnlLinear& operator=(const DnnlLinear&) = delete;

  // x [M, K], y [M, N] (for kBiasAccumulate y holds the addend on entry). Runs on the calling
  // thread's OpenMP team of `threads`.
  void run(const void* x, int64_t M, void* y, int threads);
  // oneDNN's name for the kernel it picked for M (e.g. "brg:avx512_core_amx"); for the tests.
  std::string impl_name(int64_t M);
  int64_t packed_bytes() const;
  bool tiled() const;  // the tile policy chose tiles for this layer

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// An activation (the same function as the linear epilogue's; dnnl_has_activation) applied in
// place to n fp32 values by oneDNN's eltwise primitive (the dynamic int8 GEMM's epilogue).
class DnnlEltwise {
 public:
  explicit DnnlEltwise(Activation act);
  ~DnnlEltwise();
  DnnlEltwise(const DnnlEltwise&) = delete;
  DnnlEltwise& operator=(const DnnlEltwise&) = delete;
  void run(float* y, int64_t n, int threads) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vit::fastcpu
