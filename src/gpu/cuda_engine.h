// vit-infer: entry point of the CUDA engine (graph executor + hand-written kernels).
// Declared unconditionally; implemented in src/gpu when built with VIT_WITH_CUDA, and by
// src/api's fallback (which throws kUnsupported "built without CUDA") otherwise.
#pragma once

#include <memory>
#include <string>

#include "engine/engine.h"
#include "gpu/cuda_types.h"  // CudaEngineOptions, GemmChoice

namespace vit {

// True when the CUDA runtime reports at least one usable device (never throws).
bool cuda_device_available() noexcept;

// Uploads weights once (converted to the run precision) and returns an engine whose run() serves
// any batch (chunks of at most max_batch). The activation arena is allocated lazily, sized for the
// largest batch bucket actually run: a run whose bucket does not fit in device memory throws
// kOutOfMemory (naming the batch and the bytes asked) and leaves the engine usable for smaller
// batches. Throws vit::Error(kDevice / kOutOfMemory / kUnsupported) with the CUDA error text.
std::unique_ptr<Engine> make_cuda_engine(std::shared_ptr<const Model> model, const CudaEngineOptions& opt);

}  // namespace vit
