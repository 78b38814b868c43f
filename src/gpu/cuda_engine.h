// vit-infer: entry point of the CUDA engine (graph executor + hand-written kernels).
// Declared unconditionally; implemented in src/gpu when built with VIT_WITH_CUDA, and by
// src/api's fallback (which throws kUnsupported "built without CUDA") otherwise.
#pragma once

#include <memory>
#include <string>

#include "core/precision.h"
#include "engine/engine.h"

namespace vit {

// kAuto: per GEMM shape, the fastest of cuBLASLt and the custom kernels that agree with cuBLASLt
// on a random input; kCustom: the hand-written kernels (the wgmma one on sm_90); kCublasLt.
enum class GemmChoice { kAuto, kCustom, kCublasLt };

struct CudaEngineOptions {
  int device_id = 0;
  Precision precision = Precision::kFP32;
  int max_batch = 64;
  GemmChoice gemm = GemmChoice::kAuto;
  bool cuda_graphs = true;
  bool allow_tf32 = false;  // fp32 is true fp32 unless asked
  // Run the fused graph (graph::fuse); false (or env VIT_DISABLE_FUSION=1) runs the unfused one,
  // which computes the same function with more nodes (tests compare the two).
  bool fusion = true;
  // > 0: token merging (ToMe), this many tokens per block (graph::build_vit; graph::check_tome).
  int tome = 0;
  void* stream = nullptr;   // cudaStream_t of the caller; null = the engine's own stream
};

// True when the CUDA runtime reports at least one usable device (never throws).
bool cuda_device_available() noexcept;

// Uploads weights once (converted to the run precision) and returns an engine whose run() serves
// any batch (chunks of at most max_batch). The activation arena is allocated lazily, sized for the
// largest batch bucket actually run: a run whose bucket does not fit in device memory throws
// kOutOfMemory (naming the batch and the bytes asked) and leaves the engine usable for smaller
// batches. Throws vit::Error(kDevice / kOutOfMemory / kUnsupported) with the CUDA error text.
std::unique_ptr<Engine> make_cuda_engine(std::shared_ptr<const Model> model, const CudaEngineOptions& opt);

}  // namespace vit
