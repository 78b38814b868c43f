// vit-infer: safetensors reader (memory-mapped). Layout: u64-LE header length N,
// N bytes of UTF-8 JSON {name: {dtype, shape, data_offsets:[begin,end)}, "__metadata__"?},
// then the data buffer. Makes every check huggingface/safetensors makes (see
// shared/docs/vit-reference.md §6); each failure is a vit::Error(kFormat) naming the file
// (and the tensor, where one is at fault).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace vit {

class MappedFile;

struct SafetensorsEntry {
  std::string name;
  std::string dtype_str;  // as written in the header ("F32", "BF16", "I64", ...)
  bool dtype_known = false;   // one of F32/F16/BF16/F64, i.e. readable as fp32 by read()
  DType dtype = DType::F32;  // valid when dtype_known
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the data buffer
};

class SafetensorsFile {
 public:
  // Opens, maps and validates the whole header. Throws vit::Error.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();

  const std::string& path() const noexcept;
  bool has(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const;  // throws kFormat if missing
  std::vector<std::string> names() const;                      // sorted
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  // Raw bytes of a tensor inside the mapping (unaligned in general).
  const uint8_t* raw(const std::string& name) const;
  // Tensor widened to fp32. Throws kUnsupported for dtypes other than F32/F16/BF16/F64.
  // A 0-d tensor comes back with shape [1] (an empty Tensor shape means "absent").
  Tensor read(const std::string& name) const;

 private:
  std::unique_ptr<MappedFile> file_;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
  const uint8_t* buffer_ = nullptr;  // start of the data buffer (file byte 8+N)
};

// Writes a safetensors file (F32 or F16/BF16 storage). Used by tests and tools.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                       DType storage = DType::F32,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace vit
