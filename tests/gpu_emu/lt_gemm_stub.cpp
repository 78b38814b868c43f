// vit-infer GPU emulator: LtGemm without cuBLASLt (see cublasLt.h here). supports() is false for
// every GEMM, so the engine's kAuto / kCublasLt choices fall back to the custom kernels, which
// the emulator runs; the cuBLASLt path itself is only exercised on a real GPU.
#include <string>

#include "core/error.h"
#include "gpu/lt_gemm.h"

namespace vit::gpu {

void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(ErrorCode::kDevice, std::string(call) + " failed (emulated) at " + file + ":" + std::to_string(line));
}

LtGemm::LtGemm(bool allow_tf32) : tf32_(allow_tf32) {}
LtGemm::~LtGemm() = default;
bool LtGemm::supports(const GemmParams&) { return false; }
void LtGemm::run(const GemmParams&, cudaStream_t) {
  throw Error(ErrorCode::kUnsupported, "LtGemm::run: cuBLASLt is not emulated");
}

}  // namespace vit::gpu
