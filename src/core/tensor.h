// vit-infer: host tensors. Model weights live on the host as dense, row-major fp32
// (whatever their stored dtype: F16/BF16/F64 are widened on load), plus the storage
// dtype conversions shared by the readers and the GPU upload path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vit {

enum class DType { F32, F16, BF16, F64 };

const char* dtype_name(DType t) noexcept;
size_t dtype_size(DType t) noexcept;

// IEEE half / bfloat16 <-> float, bit-exact (round to nearest even on narrowing).
float half_to_float(uint16_t h) noexcept;
uint16_t float_to_half(float f) noexcept;
float bf16_to_float(uint16_t b) noexcept;
uint16_t float_to_bf16(float f) noexcept;
// n values of storage type `t` (F32, F16 or BF16) at src -> fp32 at dst (exact: widening).
void widen_to_f32(DType t, const void* src, int64_t n, float* dst) noexcept;

// Dense row-major fp32 tensor. An empty shape with empty data means "absent".
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s, float fill = 0.0f);

  int64_t numel() const noexcept;
  int64_t dim(int i) const { return shape.at(static_cast<size_t>(i < 0 ? i + static_cast<int>(shape.size()) : i)); }
  bool empty() const noexcept { return data.empty(); }
  float* ptr() noexcept { return data.data(); }
  const float* ptr() const noexcept { return data.data(); }
};

std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace vit
