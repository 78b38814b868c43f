// vit-infer: the small types the CUDA engine's layers share (a leaf header: no CUDA include), so
// that the tuner (gemm_tuner.h) and the executor interface (executor.h) need not reach up to the
// entry point (cuda_engine.h): the options of make_cuda_engine and their GEMM choice, the test
// hooks, and what the executor reports (node timings, GEMM choice statistics).
#pragma once

#include <string>

#include "core/precision.h"

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

}  // namespace vit

namespace vit::gpu {

// One node of the forward graph timed by profile_nodes (kind: "patchify", "gemm", "embed",
// "layernorm", "attention", "pool", "to_f32"; cuBLASLt GEMMs are named "... [cublaslt]").
struct NodeTiming {
  std::string name;
  std::string kind;
  double ms = 0;
};

// What the GEMM choice (GemmChoice) has done so far: agreement checks actually run (each
// distinct (N, K, epilogue, check rows, candidate) once per engine), timed shape comparisons
// (kAuto), and whether the GPU was warmed up before the first of them.
struct GemmPickStats {
  int agreement_checks = 0;
  int timings = 0;
  bool warmed = false;
};

// Test hooks of the CUDA engine, injected by tests (make_cuda_engine below); the product's
// options (CudaEngineOptions) carry none. Each can also be set from the environment, so that a
// shipped program can be driven into the same paths (the env wins where both are given).
struct CudaTestHooks {
  // Every CUDA graph capture fails (as an illegal call inside the capture would), so that the
  // fallback to plain launches runs. Env VIT_TEST_FAIL_GRAPH_CAPTURE=1.
  bool fail_graph_capture = false;
  // The GEMM agreement check (gemm_tuner.h): implementations ("mma_sync", "wgmma", "cublaslt",
  // comma-separated) whose check result is perturbed so that the check must reject them, and
  // ones that kAuto selects whenever they pass the check (instead of timing).
  // Env VIT_TEST_GEMM_CORRUPT / VIT_TEST_GEMM_PREFER.
  std::string corrupt_gemm, prefer_gemm;
  // Rows of the agreement check's input, whole images up to this many (0: 8192), so that small
  // emulated models reach the size from which buckets share their checks.
  int check_rows = 0;
};

}  // namespace vit::gpu
