// vit-infer: entry point of the CUDA engine (graph executor + hand-written kernels).
// Declared unconditionally; implemented in src/gpu when built with VIT_WITH_CUDA, and by
// src/api's fallback (which throws kUnsupported "built without CUDA") otherwise.
#pragma once

#include <memory>

#include "cpu/engine.h"

namespace vit {

enum class Precision { kFP32, kFP16, kBF16 };
enum class GemmChoice { kAuto, kCustom, kCublasLt };

struct CudaEngineOptions {
  int device_id = 0;
  Precision precision = Precision::kFP32;
  int max_batch = 64;
  GemmChoice gemm = GemmChoice::kAuto;
  bool cuda_graphs = true;
  bool allow_tf32 = false;  // fp32 is true fp32 unless asked
  void* stream = nullptr;   // cudaStream_t of the caller; null = the engine's own stream
};

// True when the CUDA runtime reports at least one usable device (never throws).
bool cuda_device_available() noexcept;

// Uploads weights once (converted to the run precision), plans the arena for max_batch,
// and returns an engine whose run() serves any 1 <= batch <= max_batch.
// Throws vit::Error(kDevice / kOutOfMemory / kUnsupported) with the CUDA error text.
std::unique_ptr<Engine> make_cuda_engine(std::shared_ptr<const Model> model, const CudaEngineOptions& opt);

}  // namespace vit
