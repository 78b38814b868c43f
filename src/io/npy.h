// vit-infer: NumPy .npy reading/writing (format versions 1.0-3.0). Reads '<f4', '<f2',
// '<f8', '>f4' ... little- or big-endian floats (and '|u1' / '<i4' for completeness of
// errors), in C or Fortran order (returned in C order). Writes '<f4' version 1.0. Errors are vit::Error(kFormat) naming
// the file (or archive member) and the problem.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace vit {

struct NpyHeader {
  std::string descr;   // e.g. "<f4"
  bool fortran_order = false;
  std::vector<int64_t> shape;
  size_t data_offset = 0;  // byte offset of the array data
};

// Parses the header of an in-memory .npy image. `what` names the source in errors.
NpyHeader parse_npy_header(const uint8_t* data, size_t size, const std::string& what);
// Parses a whole in-memory .npy image into fp32 (float types only; others -> kUnsupported).
// A 0-d array comes back with shape [1] (an empty Tensor shape means "absent").
Tensor parse_npy(const uint8_t* data, size_t size, const std::string& what);
Tensor read_npy(const std::string& path);
// Serializes fp32 data as a '<f4' C-order .npy image (version 1.0, header padded to 64 bytes
// like numpy; version 2.0 only if the header would not fit a u16 length). Used by write_npz.
std::vector<uint8_t> encode_npy(const float* data, const std::vector<int64_t>& shape);
void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape);
inline void write_npy(const std::string& path, const Tensor& t) { write_npy(path, t.ptr(), t.shape); }

}  // namespace vit
