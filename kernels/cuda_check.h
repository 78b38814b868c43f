// vit-infer: host-side error checking shared by the kernel launchers and the CUDA executor.
// Every CUDA runtime call goes through VIT_CUDA_CHECK, which throws vit::Error(kDevice,
// "<call> failed: <error string> at file:line") (kOutOfMemory for allocation failures);
// launchers validate their params with vit::cuda::require (kInvalidArgument). Nothing aborts.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "core/error.h"

namespace vit::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line) {
  // Reset the (non-sticky) last-error state so that a later, unrelated check does not
  // report this failure a second time.
  (void)cudaGetLastError();
  const ErrorCode code = e == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kDevice;
  throw Error(code, std::string(call) + " failed: " + cudaGetErrorString(e) + " at " + file + ":" +
                        std::to_string(line));
}

inline void check(cudaError_t e, const char* call, const char* file, int line) {
  if (e != cudaSuccess) throw_cuda_error(e, call, file, line);
}

// Precondition of a launcher: throws kInvalidArgument naming the launcher and the problem.
inline void require(bool ok, const char* launcher, const std::string& what) {
  if (!ok) throw Error(ErrorCode::kInvalidArgument, std::string(launcher) + ": " + what);
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace vit::cuda

#define VIT_CUDA_CHECK(call) ::vit::cuda::check((call), #call, __FILE__, __LINE__)
// After a <<<>>> launch: reports bad configurations (and earlier asynchronous faults).
#define VIT_CHECK_LAUNCH(name) ::vit::cuda::check(cudaGetLastError(), name " launch", __FILE__, __LINE__)
