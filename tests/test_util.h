// vit-infer tests: shared helpers (fixture paths, temp files, random tensors, comparisons).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace vit::test {

// Absolute path of a file under tests/data.
std::string data_path(const std::string& rel);
// A fresh empty directory under the system temp dir, removed at process exit.
std::string temp_dir();
void write_file(const std::string& path, const std::vector<uint8_t>& bytes);
std::vector<uint8_t> read_file(const std::string& path);

// Uniform random values in [lo, hi), fresh per call (seeded from the test name + counter).
std::vector<float> random_vec(size_t n, float lo = -1.0f, float hi = 1.0f);
Tensor random_tensor(std::vector<int64_t> shape, float lo = -1.0f, float hi = 1.0f);

float max_abs(const float* a, size_t n);
float max_abs_diff(const float* a, const float* b, size_t n);

}  // namespace vit::test
