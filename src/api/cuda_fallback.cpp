// vit-infer: stand-ins for the CUDA engine entry points (src/gpu/cuda_engine.h) when the
// library is built without CUDA (VIT_WITH_CUDA undefined), so that callers link and get a
// clear kUnsupported error instead of a missing symbol.
#ifndef VIT_WITH_CUDA

#include "core/error.h"
#include "gpu/cuda_engine.h"

namespace vit {

bool cuda_device_available() noexcept { return false; }

std::unique_ptr<Engine> make_cuda_engine(std::shared_ptr<const Model> /*model*/, const CudaEngineOptions& /*opt*/) {
  fail(ErrorCode::kUnsupported, "make_cuda_engine: built without CUDA support");
}

}  // namespace vit

#endif  // VIT_WITH_CUDA
