// vit-infer GPU emulator: LtGemm without cuBLASLt (see cublasLt.h here). By default supports()
// is false for every GEMM, so the engine's kAuto / kCublasLt choices fall back to the custom
// kernels, which the emulator runs. With env VIT_EMU_CUBLASLT=1 (read at each LtGemm
// construction) it stands in for cuBLASLt with a plain host reference GEMM run on the stream
// (double accumulation, bias, residual via beta = 1, then the activation after rounding, as
// lt_gemm.cpp's bias epilogue + launch_activation do), so that the executor's agreement check has a
// cuBLASLt to compare the custom kernels with. The real cuBLASLt path runs only on a GPU.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/activation_math.h"
#include "core/error.h"
#include "core/tensor.h"
#include "emu.h"
#include "gpu/lt_gemm.h"

namespace vit::gpu {
namespace {

bool emulated() {
  const char* e = std::getenv("VIT_EMU_CUBLASLT");
  return e && *e && std::strcmp(e, "0") != 0;
}

float ld(DType t, const void* p, int64_t i) {
  if (t == DType::F32) return static_cast<const float*>(p)[i];
  const uint16_t h = static_cast<const uint16_t*>(p)[i];
  return t == DType::F16 ? half_to_float(h) : bf16_to_float(h);
}
void st(DType t, void* p, int64_t i, float v) {
  if (t == DType::F32) static_cast<float*>(p)[i] = v;
  else static_cast<uint16_t*>(p)[i] = t == DType::F16 ? float_to_half(v) : float_to_bf16(v);
}
float rnd(DType t, float v) {
  if (t == DType::F16) return half_to_float(float_to_half(v));
  if (t == DType::BF16) return bf16_to_float(float_to_bf16(v));
  return v;
}

}  // namespace

void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(ErrorCode::kDevice, std::string(call) + " failed (emulated) at " + file + ":" + std::to_string(line));
}

LtGemm::LtGemm(bool allow_tf32) : tf32_(allow_tf32) { workspace_bytes_ = emulated() ? 1 : 0; }
LtGemm::~LtGemm() = default;

bool LtGemm::supports(const GemmParams& p) {
  return workspace_bytes_ != 0 && p.epilogue != GemmEpilogue::kQkv && p.residual_period == 0 && p.M > 0 &&
         p.N > 0 && p.K > 0;
}

void LtGemm::run(const GemmParams& p, cudaStream_t stream) {
  if (!supports(p)) throw Error(ErrorCode::kUnsupported, "LtGemm::run: cuBLASLt is not emulated");
  emu::check_unordered(stream, &p, sizeof p, "a cuBLASLt GEMM");
  emu::submit(stream, [p] {
    for (int m = 0; m < p.M; ++m)
      for (int n = 0; n < p.N; ++n) {
        double s = 0.0;
        for (int k = 0; k < p.K; ++k)
          s += static_cast<double>(ld(p.dtype, p.a, int64_t{m} * p.lda + k)) * ld(p.dtype, p.w, int64_t{n} * p.ldw + k);
        float v = static_cast<float>(s);
        if (p.bias) v += ld(p.dtype, p.bias, n);
        if (p.epilogue == GemmEpilogue::kResidual) v += ld(p.dtype, p.residual, int64_t{m} * p.ldr + n);
        if (p.epilogue == GemmEpilogue::kAct) {
          const float r = rnd(p.dtype, v);
          v = act::apply(p.act, r);
        }
        st(p.dtype, p.c, int64_t{m} * p.ldc + n, v);
      }
  });
}

}  // namespace vit::gpu
