// vit-infer benchmarks: helpers shared by vit-bench and vit-kernels-bench: device random fill
// (never zeros: they hide unwritten outputs and can run faster than real data), a description
// of the GPU for the JSON results, CUDA event pairs, and latency statistics.
// Device buffers are flat arrays of the storage type; statistics are over milliseconds.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace vit::bench {

// The commit under test: $VIT_GIT_HASH when set (the device machine has no .git), else the
// hash CMake read at configure time ("unknown" without git).
std::string git_hash();

// True when a CUDA device is usable; otherwise *why says what the runtime answered.
bool gpu_present(std::string* why);

struct GpuInfo {
  int device = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  int64_t l2_bytes = 0;
  int64_t total_mem = 0;
  int driver_version = 0, runtime_version = 0;
};
GpuInfo gpu_info(int device);
nlohmann::json to_json(const GpuInfo& g);

// p[0..n) = U(lo, hi) in storage type dt (F32 / F16 / BF16), from a counter-based hash of
// (seed, index): reproducible, no state, any n. Enqueued on `s`; launch is checked.
void fill_uniform(void* p, DType dt, int64_t n, float lo, float hi, uint64_t seed, cudaStream_t s);

// Two events; elapsed() synchronises on the second.
struct EventPair {
  cudaEvent_t a = nullptr, b = nullptr;
  EventPair();
  ~EventPair();
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  void start(cudaStream_t s);
  void stop(cudaStream_t s);
  float elapsed_ms() const;  // waits for b
};

// Owning device buffer (cudaMalloc; never managed memory).
struct DeviceMem {
  void* p = nullptr;
  size_t bytes = 0;
  DeviceMem() = default;
  explicit DeviceMem(size_t n);
  ~DeviceMem();
  DeviceMem(DeviceMem&& o) noexcept : p(o.p), bytes(o.bytes) { o.p = nullptr; o.bytes = 0; }
  DeviceMem& operator=(DeviceMem&& o) noexcept;
  DeviceMem(const DeviceMem&) = delete;
  DeviceMem& operator=(const DeviceMem&) = delete;
  template <typename T> T* as() const { return static_cast<T*>(p); }
};

struct Stats {
  int n = 0;
  double min = 0, mean = 0, median = 0, p90 = 0, p95 = 0, p99 = 0, max = 0;
};
// Nearest-rank percentiles of `v` (copied and sorted); all zero when v is empty.
Stats stats_of(std::vector<double> v);
nlohmann::json to_json(const Stats& s);

}  // namespace vit::bench
