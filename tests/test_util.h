// vit-infer tests: shared helpers (fixture paths, temp files, random tensors and bytes, raw
// .npy files, comparisons).
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
// Uniform random bytes in [0, 255], fresh per call (e.g. RGB8 pixels).
std::vector<uint8_t> random_bytes(size_t n);

// A .npy file with any dtype string (e.g. '<i4', '>f4'), fortran flag and shape, in numpy's
// version 1.0 layout (header padded to 64 bytes), followed by `payload` as is: for inputs
// the reader must reject or byte-swap.
void write_npy_raw(const std::string& path, const std::string& descr, bool fortran,
                   const std::vector<int64_t>& shape, const std::vector<uint8_t>& payload);

float max_abs(const float* a, size_t n);
float max_abs_diff(const float* a, const float* b, size_t n);

}  // namespace vit::test
