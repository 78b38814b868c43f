// vit-infer: the CUDA engine's activation arena and its out-of-memory policy, apart from the
// executor. One device buffer, grown to the largest bucket plan a run needs (planned per bucket,
// so small batches never pay for max_batch) and zeroed when it grows, so that nothing ever reads
// uninitialised memory. A growth that does not fit is kOutOfMemory naming the batch and the bytes,
// with the CUDA error cleared and the arena still usable for smaller batches.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>

#include "gpu/cuda_raii.h"

namespace vit::gpu {

class DeviceArena {
 public:
  char* base() const { return buf_.c(); }
  int64_t bytes() const { return buf_.bytes; }
  // Grows the arena to `need` bytes for a batch of nb images (bucket `bucket`), for the messages.
  // Before the old buffer may go, the stream is synchronised (work in flight may still use it) and
  // before_move runs (the executor drops the CUDA graphs whose pointers are baked in). No-op when
  // the arena is large enough.
  void ensure(int64_t need, int nb, int bucket, cudaStream_t s, const std::function<void()>& before_move);

 private:
  DeviceBuffer buf_;
};

}  // namespace vit::gpu
