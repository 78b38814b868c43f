// vit-infer: read-only memory-mapped file (RAII). Used by the safetensors reader so
// that multi-GB checkpoints are never copied whole into memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace vit {

class MappedFile {
 public:
  // Throws vit::Error(kIo) naming the path if it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace vit
