// vit-infer: entry point of the CUDA engine (graph executor + hand-written kernels).
// Declared unconditionally; implemented in src/gpu when built with VIT_WITH_CUDA, and by
// src/api's fallback (which throws kUnsupported "built without CUDA") otherwise.
#pragma once

#include <memory>
#include <string>

#include "cpu/engine.h"

namespace vit {

enum class Precision { kFP32, kFP16, kBF16 };
// The storage type of activations and weights in a precision (accumulation is always fp32).
inline DType storage_type(Precision p) {
  return p == Precision::kFP16 ? DType::F16 : p == Precision::kBF16 ? DType::BF16 : DType::F32;
}
inline const char* precision_name(Precision p) {
  return p == Precision::kFP16 ? "fp16" : p == Precision::kBF16 ? "bf16" : "fp32";
}
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
  void* stream = nullptr;   // cudaStream_t of the caller; null = the engine's own stream
  // Testing: make every CUDA graph capture fail (as an illegal call inside the capture would), so
  // that the fallback to plain launches runs. Also set by env VIT_TEST_FAIL_GRAPH_CAPTURE=1.
  bool fail_graph_capture = false;
  // Testing the GEMM agreement check (executor.h): implementations ("mma_sync", "wgmma",
  // "cublaslt", comma-separated) whose check result is perturbed so that the check must reject
  // them, and ones that kAuto selects whenever they pass the check (instead of timing).
  // Also set by env VIT_TEST_GEMM_CORRUPT / VIT_TEST_GEMM_PREFER.
  std::string test_corrupt_gemm, test_prefer_gemm;
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
