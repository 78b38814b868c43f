// vit-infer: GpuPreprocessor (see gpu_preprocess.h): host planning with the CPU path's own
// functions, one staged upload of tables + source rows, the two kernels of resize_normalize.cu.
#include "gpu/gpu_preprocess.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_check.h"
#include "image/preprocess.h"
#include "resize_normalize.cuh"

namespace vit {

static_assert(kGpuResamplePrecisionBits == kResamplePrecisionBits, "GPU and CPU resamplers must use the same precision");

namespace {
std::string num(int64_t v) { return std::to_string(v); }
size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }
}  // namespace

GpuPreprocessor::~GpuPreprocessor() {
  // No throwing here: wait for in-flight work on the scratch, then release (errors ignored,
  // e.g. when the CUDA context is already being torn down at exit).
  if (done_) (void)cudaEventSynchronize(done_);
  if (staged_) (void)cudaEventSynchronize(staged_);
  if (in_dev_) (void)cudaFree(in_dev_);
  if (tmp_dev_) (void)cudaFree(tmp_dev_);
  if (stage_host_) (void)cudaFreeHost(stage_host_);
  if (done_) (void)cudaEventDestroy(done_);
  if (staged_) (void)cudaEventDestroy(staged_);
  (void)cudaGetLastError();
}

void GpuPreprocessor::ensure(size_t in_bytes, size_t tmp_bytes) {
  if (!done_) VIT_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
  if (!staged_) VIT_CUDA_CHECK(cudaEventCreateWithFlags(&staged_, cudaEventDisableTiming));
  constexpr size_t kGranule = size_t(1) << 20;  // grow in whole MiB so small changes reuse
  if (in_bytes > in_bytes_ || tmp_bytes > tmp_bytes_) {
    // Earlier runs may still read the old buffers (any stream): let them finish first.
    VIT_CUDA_CHECK(cudaEventSynchronize(done_));
    VIT_CUDA_CHECK(cudaEventSynchronize(staged_));
  }
  if (in_bytes > in_bytes_) {
    if (in_dev_) VIT_CUDA_CHECK(cudaFree(in_dev_));
    if (stage_host_) VIT_CUDA_CHECK(cudaFreeHost(stage_host_));
    in_dev_ = nullptr;
    stage_host_ = nullptr;
    in_bytes_ = 0;
    const size_t n = align_up(in_bytes, kGranule);
    VIT_CUDA_CHECK(cudaMalloc(&in_dev_, n));
    VIT_CUDA_CHECK(cudaMallocHost(&stage_host_, n));
    in_bytes_ = n;
  }
  if (tmp_bytes > tmp_bytes_) {
    if (tmp_dev_) VIT_CUDA_CHECK(cudaFree(tmp_dev_));
    tmp_dev_ = nullptr;
    tmp_bytes_ = 0;
    const size_t n = align_up(tmp_bytes, kGranule);
    void* t = nullptr;
    VIT_CUDA_CHECK(cudaMalloc(&t, n));
    tmp_dev_ = static_cast<uint8_t*>(t);
    tmp_bytes_ = n;
  }
}

void GpuPreprocessor::run(const Image& img, const PreprocessConfig& cfg, void* dst, DType dtype, int64_t batch_index,
                          cudaStream_t stream, uint8_t* u8_out) {
  cuda::require(img.w > 0 && img.h > 0 && img.rgb.size() == static_cast<size_t>(img.w) * static_cast<size_t>(img.h) * 3,
                "GpuPreprocessor::run", "image is " + num(img.w) + "x" + num(img.h) + " with " +
                    num(static_cast<int64_t>(img.rgb.size())) + " bytes (want w * h * 3 > 0)");
  run(img.rgb.data(), img.w, img.h, cfg, dst, dtype, batch_index, stream, u8_out);
}

void GpuPreprocessor::run(const uint8_t* rgb, int w, int h, const PreprocessConfig& cfg, void* dst, DType dtype,
                          int64_t batch_index, cudaStream_t stream, uint8_t* u8_out) {
  const char* L = "GpuPreprocessor::run";
  using cuda::require;
  require(dst != nullptr, L, "dst must not be null");
  require(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16, L,
          std::string("dst dtype must be F32, F16 or BF16 (got ") + dtype_name(dtype) + ")");
  require(batch_index >= 0, L, "batch_index must be >= 0 (got " + num(batch_index) + ")");
  require(rgb != nullptr && w > 0 && h > 0, L,
          "image is " + num(w) + "x" + num(h) + (rgb ? "" : " with null pixels") + " (want w, h > 0)");
  struct {
    int w, h;
  } img{w, h};

  // Host planning: exactly the CPU path's plan, tables and lookup table.
  ResizeCropPlan p = plan_resize_crop(img.w, img.h, cfg);  // throws on a bad config
  // Where Pillow runs the vertical pass first (preprocess.h vertical_pass_first), that pass runs
  // here on the host, as the CPU path runs it, and the device finishes the plan (horizontal pass,
  // crop, normalisation) from its output.
  Image first_pass;
  if (vertical_pass_first(p)) {
    Image src;
    src.w = w;
    src.h = h;
    src.rgb.assign(rgb, rgb + static_cast<size_t>(w) * h * 3);
    ResizeCropPlan rest;
    first_pass = vertical_pass(src, p, &rest);
    p = rest;
    rgb = first_pass.rgb.data();
    img.w = first_pass.w;
    img.h = first_pass.h;
  }
  const std::vector<float> lut = normalize_lut(cfg);             // [3 * 256]
  const int x0 = std::max(0, -p.crop_x), x1 = std::max(x0, std::min(p.out_w, p.resize_w - p.crop_x));
  const int y0 = std::max(0, -p.crop_y), y1 = std::max(y0, std::min(p.out_h, p.resize_h - p.crop_y));
  const int nx = x1 - x0, ny = y1 - y0;
  const int rx0 = p.crop_x + x0, ry0 = p.crop_y + y0;
  FixedResampleCoeffs ch, cv;
  if (nx > 0 && ny > 0) {
    if (p.resize_x) ch = fixed_resample_coeffs(p.src_w, p.resize_w, p.filter);
    if (p.resize_y) cv = fixed_resample_coeffs(p.src_h, p.resize_h, p.filter);
  }
  // Source rows the vertical pass reads (the CPU port's sy0 / sy1).
  int sy0 = ry0, sy1 = ry0 + ny;
  if (nx > 0 && ny > 0 && p.resize_y) {
    sy0 = p.src_h;
    sy1 = 0;
    for (int r = ry0; r < ry0 + ny; ++r) {
      sy0 = std::min(sy0, cv.first[r]);
      sy1 = std::max(sy1, cv.first[r] + cv.count[r]);
    }
  }
  const int tmp_rows = nx > 0 && ny > 0 ? sy1 - sy0 : 0;

  // One upload: [lut | h first | h count | h k | v first | v count | v k | source rows used].
  struct Seg {
    const void* host;
    size_t bytes;
    size_t off;
  };
  Seg seg[8];
  int nseg = 0;
  size_t total = 0;
  auto add = [&](const void* h, size_t bytes) {
    total = align_up(total, 256);
    seg[nseg++] = Seg{h, bytes, total};
    total += bytes;
    return nseg - 1;
  };
  const int s_lut = add(lut.data(), lut.size() * sizeof(float));
  const int s_hf = add(ch.first.data(), ch.first.size() * sizeof(int32_t));
  const int s_hc = add(ch.count.data(), ch.count.size() * sizeof(int32_t));
  const int s_hk = add(ch.k.data(), ch.k.size() * sizeof(int32_t));
  const int s_vf = add(cv.first.data(), cv.first.size() * sizeof(int32_t));
  const int s_vc = add(cv.count.data(), cv.count.size() * sizeof(int32_t));
  const int s_vk = add(cv.k.data(), cv.k.size() * sizeof(int32_t));
  const size_t row_bytes = static_cast<size_t>(img.w) * 3;
  const int s_img = add(rgb + static_cast<size_t>(tmp_rows > 0 ? sy0 : 0) * row_bytes,
                        static_cast<size_t>(tmp_rows) * row_bytes);  // [tmp_rows, src_w, 3]
  const size_t tmp_bytes = static_cast<size_t>(tmp_rows) * static_cast<size_t>(nx) * 3;

  ensure(total, std::max<size_t>(tmp_bytes, 1));
  // The previous run's H2D copy may still be reading the staging buffer.
  VIT_CUDA_CHECK(cudaEventSynchronize(staged_));
  auto* stage = static_cast<uint8_t*>(stage_host_);
  for (int i = 0; i < nseg; ++i) {
    if (seg[i].bytes) std::memcpy(stage + seg[i].off, seg[i].host, seg[i].bytes);
  }
  // A previous run on another stream may still use the device scratch.
  VIT_CUDA_CHECK(cudaStreamWaitEvent(stream, done_, 0));
  VIT_CUDA_CHECK(cudaMemcpyAsync(in_dev_, stage_host_, total, cudaMemcpyHostToDevice, stream));
  VIT_CUDA_CHECK(cudaEventRecord(staged_, stream));

  auto* base = static_cast<uint8_t*>(in_dev_);
  auto dev_i32 = [&](int s) { return seg[s].bytes ? reinterpret_cast<const int32_t*>(base + seg[s].off) : nullptr; };

  ResizeHorizontalParams hp;
  hp.src = base + seg[s_img].off;
  hp.src_w = img.w;
  hp.src_h = tmp_rows;  // only the rows used were uploaded: row 0 is source row sy0
  hp.tmp = tmp_dev_;
  hp.tmp_rows = tmp_rows;
  hp.nx = tmp_rows > 0 ? nx : 0;
  hp.sy0 = 0;
  hp.rx0 = rx0;
  hp.resize_x = p.resize_x;
  hp.out_size = p.resize_w;
  hp.ksize = ch.ksize;
  hp.first = dev_i32(s_hf);
  hp.count = dev_i32(s_hc);
  hp.k = dev_i32(s_hk);
  launch_resize_horizontal(hp, stream);

  ResizeVerticalNormalizeParams vp;
  vp.tmp = tmp_dev_;
  vp.tmp_rows = tmp_rows;
  vp.nx = nx;
  vp.sy0 = sy0;
  vp.ry0 = ry0;
  vp.x0 = x0;
  vp.x1 = tmp_rows > 0 ? x1 : x0;
  vp.y0 = y0;
  vp.y1 = tmp_rows > 0 ? y1 : y0;
  vp.out_w = p.out_w;
  vp.out_h = p.out_h;
  vp.resize_y = p.resize_y;
  vp.out_size = p.resize_h;
  vp.ksize = cv.ksize;
  vp.first = dev_i32(s_vf);
  vp.count = dev_i32(s_vc);
  vp.k = dev_i32(s_vk);
  vp.lut = reinterpret_cast<const float*>(base + seg[s_lut].off);
  vp.dtype = dtype;
  const size_t slot = static_cast<size_t>(batch_index) * 3 * static_cast<size_t>(p.out_h) * p.out_w;
  vp.dst = static_cast<uint8_t*>(dst) + slot * dtype_size(dtype);
  vp.u8_out = u8_out;
  launch_resize_vertical_normalize(vp, stream);
  VIT_CUDA_CHECK(cudaEventRecord(done_, stream));
}

}  // namespace vit
