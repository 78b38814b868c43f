// vit-infer: the host side of the GPU image preprocessing (kernels/resize_normalize.cuh): the
// CPU path's plan and fixed-point tables (image/preprocess.h), uploaded with the image, then the
// two kernels. Bit-identical to the CPU path.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/tensor.h"
#include "image/decode.h"
#include "model/config.h"

namespace vit {

// Host-side driver for one image at a time, used by the classify pipeline. Owns the device
// scratch (tables + source image, horizontal-pass intermediate) and a pinned staging buffer,
// grown on demand and reused. run() is asynchronous on `stream`: the image is copied into the
// pinned staging buffer, so the caller may drop it on return. Successive runs may use
// different streams (each waits for the previous one's work on the shared scratch).
// Not thread-safe: one GpuPreprocessor per host thread. The constructor makes no CUDA call.
class GpuPreprocessor {
 public:
  GpuPreprocessor() = default;
  ~GpuPreprocessor();
  GpuPreprocessor(const GpuPreprocessor&) = delete;
  GpuPreprocessor& operator=(const GpuPreprocessor&) = delete;

  // Writes the preprocessed image to slot `batch_index` of dst [B, 3, cfg.input_h, cfg.input_w]
  // (dtype F32 / F16 / BF16; slot offset batch_index * 3 * H * W elements). u8_out, when
  // non-null, is a device buffer [input_h, input_w, 3] that receives the uint8 resized image.
  // Throws vit::Error: kInvalidArgument / kUnsupported for a bad image, config or argument
  // (before any device work), kDevice / kOutOfMemory for CUDA failures.
  void run(const Image& img, const PreprocessConfig& cfg, void* dst, DType dtype, int64_t batch_index,
           cudaStream_t stream, uint8_t* u8_out = nullptr);
  // The same for a borrowed image: rgb [h, w, 3] u8 row-major (read before run() returns).
  void run(const uint8_t* rgb, int w, int h, const PreprocessConfig& cfg, void* dst, DType dtype,
           int64_t batch_index, cudaStream_t stream, uint8_t* u8_out = nullptr);

  // Bytes of device scratch currently held (for logging / tests of the growth policy).
  size_t device_bytes() const noexcept { return in_bytes_ + tmp_bytes_; }

 private:
  void ensure(size_t in_bytes, size_t tmp_bytes);

  void* in_dev_ = nullptr;      // tables + lut + source image (layout set by run())
  size_t in_bytes_ = 0;
  void* stage_host_ = nullptr;  // pinned mirror of in_dev_
  uint8_t* tmp_dev_ = nullptr;  // [tmp_rows, nx, 3] u8
  size_t tmp_bytes_ = 0;
  cudaEvent_t staged_ = nullptr;  // the last H2D copy out of stage_host_ has finished
  cudaEvent_t done_ = nullptr;    // the last run's kernels have finished with the scratch
};

}  // namespace vit
