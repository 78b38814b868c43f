// vit-infer GPU tests: shared helpers. Device buffers holding a host fp32 vector converted to
// the storage dtype, poisoned outputs (0xFF bytes = NaN in fp32 / fp16 / bf16), and the one
// statement of the tolerances (tolerances.h).
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "gpu/cuda_engine.h"
#include "tolerances.h"

namespace vit::test {

#define VIT_SKIP_WITHOUT_GPU()                                             \
  do {                                                                     \
    if (!::vit::cuda_device_available()) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

#define VIT_TEST_CUDA(call) ASSERT_EQ((call), cudaSuccess) << #call

inline const char* dt_label(DType t) { return t == DType::F32 ? "f32" : t == DType::F16 ? "f16" : "bf16"; }

// Rounds host values through the storage type (what the device will actually see).
inline std::vector<float> round_to(DType t, std::vector<float> v) {
  if (t == DType::F16) for (float& x : v) x = half_to_float(float_to_half(x));
  if (t == DType::BF16) for (float& x : v) x = bf16_to_float(float_to_bf16(x));
  return v;
}

class DevMem {
 public:
  DevMem() = default;
  DevMem(DType t, size_t n) { alloc(t, n); }
  DevMem(DType t, const std::vector<float>& host) { upload(t, host); }
  DevMem(const DevMem&) = delete;
  DevMem& operator=(const DevMem&) = delete;
  ~DevMem() {
    if (p_) cudaFree(p_);
  }
  void alloc(DType t, size_t n) {
    if (p_) cudaFree(p_);
    p_ = nullptr;
    t_ = t;
    n_ = n;
    if (cudaMalloc(&p_, bytes() ? bytes() : 1) != cudaSuccess) throw std::runtime_error("cudaMalloc failed in test");
  }
  void upload(DType t, const std::vector<float>& host) {
    alloc(t, host.size());
    std::vector<uint8_t> buf(bytes());
    for (size_t i = 0; i < n_; ++i) {
      if (t == DType::F32) std::memcpy(&buf[i * 4], &host[i], 4);
      else {
        const uint16_t h = t == DType::F16 ? float_to_half(host[i]) : float_to_bf16(host[i]);
        std::memcpy(&buf[i * 2], &h, 2);
      }
    }
    if (cudaMemcpy(p_, buf.data(), bytes(), cudaMemcpyHostToDevice) != cudaSuccess)
      throw std::runtime_error("cudaMemcpy H2D failed in test");
  }
  std::vector<float> download() const {
    std::vector<uint8_t> buf(bytes());
    if (cudaMemcpy(buf.data(), p_, bytes(), cudaMemcpyDeviceToHost) != cudaSuccess)
      throw std::runtime_error("cudaMemcpy D2H failed in test");
    std::vector<float> out(n_);
    for (size_t i = 0; i < n_; ++i) {
      if (t_ == DType::F32) std::memcpy(&out[i], &buf[i * 4], 4);
      else {
        uint16_t h;
        std::memcpy(&h, &buf[i * 2], 2);
        out[i] = t_ == DType::F16 ? half_to_float(h) : bf16_to_float(h);
      }
    }
    return out;
  }
  void poison() {
    if (cudaMemset(p_, 0xFF, bytes()) != cudaSuccess) throw std::runtime_error("cudaMemset failed in test");
  }
  void* get() const { return p_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * dtype_size(t_); }

 private:
  void* p_ = nullptr;
  DType t_ = DType::F32;
  size_t n_ = 0;
};

inline void sync_or_throw() {
  const cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) throw std::runtime_error(std::string("cudaDeviceSynchronize: ") + cudaGetErrorString(e));
}

}  // namespace vit::test
