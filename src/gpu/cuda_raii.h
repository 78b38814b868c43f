// vit-infer: RAII holders of the CUDA engine's device resources (buffers, pinned staging, the
// stream, event pairs, the current device). Each cleans up after itself, so a constructor that
// throws halfway leaks nothing. Every call that can fail is checked (cuda_check.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "cuda_check.h"

namespace vit::gpu {

inline void log_line(const std::string& s) { std::fprintf(stderr, "[vit-gpu] %s\n", s.c_str()); }

struct DeviceBuffer {
  void* p = nullptr;
  int64_t bytes = 0;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }
  void reset() {
    if (p) cudaFree(p);
    p = nullptr;
    bytes = 0;
  }
  void alloc(int64_t n, const char* what) {
    reset();
    if (n <= 0) return;
    const cudaError_t e = cudaMalloc(&p, static_cast<size_t>(n));
    if (e != cudaSuccess) {
      p = nullptr;
      cuda::throw_cuda_error(e, (std::string("cudaMalloc(") + what + ", " + std::to_string(n) + " bytes)").c_str(),
                             __FILE__, __LINE__);
    }
    bytes = n;
  }
  char* c() const { return static_cast<char*>(p); }
};

// Pinned host staging, grown on demand (never shrunk). Callers grow it only when no copy out of
// or into it is in flight (run() synchronises its stream before returning).
struct PinnedBuffer {
  void* p = nullptr;
  int64_t bytes = 0;
  PinnedBuffer() = default;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() { reset(); }
  void reset() {
    if (p) cudaFreeHost(p);
    p = nullptr;
    bytes = 0;
  }
  void grow(int64_t n, const char* what) {
    if (n <= bytes) return;
    reset();
    const cudaError_t e = cudaMallocHost(&p, static_cast<size_t>(n));
    if (e != cudaSuccess) {
      p = nullptr;
      cuda::throw_cuda_error(e, (std::string("cudaMallocHost(") + what + ", " + std::to_string(n) + " bytes)").c_str(),
                             __FILE__, __LINE__);
    }
    bytes = n;
  }
};

struct StreamHolder {
  cudaStream_t s = nullptr;
  bool owned = false;
  StreamHolder() = default;
  StreamHolder(const StreamHolder&) = delete;
  StreamHolder& operator=(const StreamHolder&) = delete;
  ~StreamHolder() {
    if (owned && s) cudaStreamDestroy(s);
  }
};

struct EventPair {
  cudaEvent_t a = nullptr, b = nullptr;
  EventPair() {
    VIT_CUDA_CHECK(cudaEventCreate(&a));
    const cudaError_t e = cudaEventCreate(&b);
    if (e != cudaSuccess) {
      cudaEventDestroy(a);
      cuda::throw_cuda_error(e, "cudaEventCreate", __FILE__, __LINE__);
    }
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  ~EventPair() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
};

// Makes device `d` current for the scope and restores the caller's device afterwards.
struct DeviceGuard {
  int prev = -1;
  explicit DeviceGuard(int d) {
    if (cudaGetDevice(&prev) != cudaSuccess) {
      (void)cudaGetLastError();
      prev = -1;
    }
    VIT_CUDA_CHECK(cudaSetDevice(d));
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  ~DeviceGuard() {
    if (prev >= 0) cudaSetDevice(prev);
  }
};

}  // namespace vit::gpu
