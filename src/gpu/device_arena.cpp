// vit-infer: the CUDA engine's activation arena (see device_arena.h).
#include "gpu/device_arena.h"

#include <sstream>

#include "core/error.h"
#include "cuda_check.h"

namespace vit::gpu {

void DeviceArena::ensure(int64_t need, int nb, int bucket, cudaStream_t s, const std::function<void()>& before_move) {
  if (need <= buf_.bytes) return;
  VIT_CUDA_CHECK(cudaStreamSynchronize(s));
  before_move();
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, static_cast<size_t>(need));
  if (e == cudaErrorMemoryAllocation && buf_.p) {
    // Old and new together may not fit where the new one alone does.
    (void)cudaGetLastError();
    buf_.reset();
    e = cudaMalloc(&p, static_cast<size_t>(need));
  }
  if (e != cudaSuccess) {
    // cudaErrorMemoryAllocation is not sticky, but it stays the "last error" until read: clear
    // it so that the next launch check of a smaller batch does not report it.
    (void)cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    const bool info = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
    (void)cudaGetLastError();
    std::ostringstream os;
    os << "cuda engine: batch " << nb << " (bucket " << bucket << ") needs an activation arena of " << need
       << " bytes (" << static_cast<double>(need) / (1024.0 * 1024.0) << " MiB); cudaMalloc failed: "
       << cudaGetErrorString(e);
    if (info) os << " (" << free_b << " of " << total_b << " device bytes free)";
    os << "; the engine stays usable for smaller batches";
    fail(e == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kDevice, os.str());
  }
  buf_.reset();
  buf_.p = p;
  buf_.bytes = need;
  VIT_CUDA_CHECK(cudaMemsetAsync(p, 0, static_cast<size_t>(need), s));
}

}  // namespace vit::gpu
