// vit-infer: GEMM y[M, N] = x[M, K] W[N, K]^T (+ bias) (+ activation | + residual | QKV scatter),
// the torch Linear orientation (W row-major [out, in]). Storage F32 / F16 / BF16, fp32
// accumulation. 16-bit inputs with K, lda, ldw multiples of 8 and 16-byte aligned x/W use the
// tensor-core kernel (mma.sync m16n8k16, ldmatrix, cp.async double buffering); everything else
// (fp32, odd shapes) the SIMT kernel. M, N, K need not be tile multiples.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/activation.h"
#include "core/pool.h"
#include "core/tensor.h"

namespace vit {

enum class GemmEpilogue {
  kNone,      // y = xW^T (+ bias)
  kAct,       // y = act(xW^T + bias), GemmParams::act says which activation
  kResidual,  // y = xW^T + bias + residual   (residual may alias y: in-place x += ...;
              //   residual_period > 0: residual row r % period, a per-image table)
  kQkv,       // xW^T + bias scattered to c as [3, B, heads, tokens, head_dim] (q | k | v)
};

// kSimt forces the SIMT kernel (tests, fp32); kSm90 the Hopper wgmma kernel (gemm_sm90.cuh:
// throws kUnsupported where it cannot run), e.g. for benchmarks.
enum class GemmKernel { kAuto, kSimt, kSm90 };

struct GemmParams {
  DType dtype = DType::F32;  // storage type of x, W, bias, residual and y
  const void* a = nullptr;   // x [M, K], rows lda apart
  int64_t lda = 0;
  const void* w = nullptr;   // W [N, K], rows ldw apart
  int64_t ldw = 0;
  void* c = nullptr;         // y [M, N], rows ldc apart (kQkv: [3, B, heads, tokens, head_dim])
  int64_t ldc = 0;
  const void* bias = nullptr;      // [N] or null (applied first, whatever the epilogue)
  const void* residual = nullptr;  // [M, N] rows ldr apart (kResidual only)
  int64_t ldr = 0;
  // kResidual: when > 0, output row r adds residual row r % residual_period (a table repeated
  // per image, e.g. the position embeddings added in the patch-embedding GEMM); the residual is
  // then read-only and must not alias y. cuBLASLt has no such epilogue (LtGemm::supports).
  int residual_period = 0;
  GemmEpilogue epilogue = GemmEpilogue::kNone;
  Activation act = Activation::kGeluErf;  // kAct: core/activation.h
  int M = 0, N = 0, K = 0;
  int tokens = 0, heads = 0, head_dim = 0;  // kQkv: M = B * tokens, N = 3 * heads * head_dim
  GemmKernel kernel = GemmKernel::kAuto;
};

// Validates the params (throws vit::Error kInvalidArgument) and launches on `stream`.
void launch_gemm(const GemmParams& p, cudaStream_t stream);
// The checks launch_gemm makes (shapes, pointers, leading dimensions, epilogue inputs); throws
// vit::Error(kInvalidArgument) naming `launcher`. Shared with launch_gemm_sm90 (gemm_sm90.cuh).
void validate_gemm_params(const GemmParams& p, const char* launcher);
// True when launch_gemm would use the tensor-core kernel for these params.
bool gemm_uses_tensor_cores(const GemmParams& p);

}  // namespace vit
