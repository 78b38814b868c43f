// vit-infer GPU tests: GpuPreprocessor / the resize_normalize kernels against the CPU path
// (image/preprocess.h, itself bit-exact to Pillow + timm / HF) on the fixture images and on
// fresh random images of awkward sizes. GPU output: [B, 3, H, W] fp32 / fp16 / bf16, poisoned
// with NaN before each run; uint8 intermediate [H, W, 3]. Device tests GTEST_SKIP without a GPU.
//
// Tolerances. Required: every normalised value within one 8-bit level of the CPU path, i.e.
// |gpu - cpu| <= 1/255 / min(std) (+1e-6 fp32 rounding; fp16 / bf16: + half an ulp of the
// storage type). Because the kernels run the CPU's integer arithmetic on the CPU's own tables,
// the uint8 intermediate must be identical (asserted exactly), and every output value must be
// exactly the host lookup table applied to the GPU's own uint8 pixel (asserted exactly); the
// fraction of output values bit-identical to the CPU path is printed (expected 1.0).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "image/decode.h"
#include "image/preprocess.h"
#include "gpu/gpu_preprocess.h"
#include "resize_normalize.cuh"
#include "test_gpu_util.h"
#include "image_fixtures.h"
#include "test_util.h"

namespace vit {
namespace {

using nlohmann::json;
using test::config_from;
using test::hf_crop_config;
using test::img_path;
using test::manifest;
using test::source_image;




// Fresh uniform random RGB8 image (noise overshoots bicubic taps, so clip8 is exercised).
Image random_image(int w, int h) {
  Image img;
  img.w = w;
  img.h = h;
  const auto v = test::random_vec(size_t(w) * h * 3, 0.0f, 256.0f);
  img.rgb.resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) img.rgb[i] = static_cast<uint8_t>(std::min(255.0f, std::floor(v[i])));
  return img;
}

PreprocessConfig timm_cfg(const std::string& interp, float crop_pct = 0.9f, int h = 224, int w = 224) {
  PreprocessConfig c;
  c.resize = PreprocessConfig::Resize::kShortestThenCrop;
  c.interpolation = interp;
  c.crop_pct = crop_pct;
  c.input_h = h;
  c.input_w = w;
  return c;
}

PreprocessConfig hf_cfg(const std::string& interp, int size = 224) {
  PreprocessConfig c;
  c.resize = PreprocessConfig::Resize::kDirect;
  c.interpolation = interp;
  c.input_h = c.input_w = size;
  return c;
}

class DevU8 {
 public:
  explicit DevU8(size_t n) : n_(n) {
    if (cudaMalloc(&p_, n ? n : 1) != cudaSuccess) throw std::runtime_error("cudaMalloc failed in test");
  }
  ~DevU8() { cudaFree(p_); }
  DevU8(const DevU8&) = delete;
  DevU8& operator=(const DevU8&) = delete;
  void fill(uint8_t v) {
    if (cudaMemset(p_, v, n_) != cudaSuccess) throw std::runtime_error("cudaMemset failed in test");
  }
  std::vector<uint8_t> download() const {
    std::vector<uint8_t> h(n_);
    if (cudaMemcpy(h.data(), p_, n_, cudaMemcpyDeviceToHost) != cudaSuccess)
      throw std::runtime_error("cudaMemcpy D2H failed in test");
    return h;
  }
  uint8_t* get() const { return static_cast<uint8_t*>(p_); }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

// v as the device stores it (round to nearest even, as __float2half_rn / __float2bfloat16_rn).
float storage_round(DType t, float v) {
  if (t == DType::F16) return half_to_float(float_to_half(v));
  if (t == DType::BF16) return bf16_to_float(float_to_bf16(v));
  return v;
}

// Checks one slot of GPU output against the CPU path; returns the fraction of bit-exact values.
double check_against_cpu(const std::string& what, const Image& img, const PreprocessConfig& cfg, DType dt,
                         const std::vector<float>& gpu, const std::vector<uint8_t>& gpu_u8) {
  const size_t hw = size_t(cfg.input_h) * cfg.input_w, n = 3 * hw;
  EXPECT_EQ(gpu.size(), n) << what;
  EXPECT_EQ(gpu_u8.size(), n) << what;
  if (gpu.size() != n || gpu_u8.size() != n) return 0.0;
  const Image ref_u8 = resize_crop(img, plan_resize_crop(img.w, img.h, cfg));
  std::vector<float> ref(n, std::nanf(""));
  preprocess_image(img, cfg, ref.data());
  const std::vector<float> lut = normalize_lut(cfg);

  size_t u8_exact = 0;
  int u8_max = 0;
  size_t first_bad = n;
  for (size_t i = 0; i < n; ++i) {
    const int d = std::abs(int(gpu_u8[i]) - int(ref_u8.rgb[i]));
    u8_exact += d == 0;
    u8_max = std::max(u8_max, d);
    if (d && first_bad == n) first_bad = i;
  }
  EXPECT_EQ(u8_exact, n) << what << ": uint8 intermediate differs from the CPU port at " << u8_exact
                         << " of " << n << " exact, max diff " << u8_max << ", first at pixel " << first_bad / 3
                         << " (y " << first_bad / 3 / cfg.input_w << ", x " << first_bad / 3 % cfg.input_w << ", c "
                         << first_bad % 3 << ")";

  const float min_std = std::min({std::fabs(cfg.std[0]), std::fabs(cfg.std[1]), std::fabs(cfg.std[2])});
  const double level = 1.0 / 255.0 / min_std + 1e-6;
  const double rel_store = dt == DType::F32 ? 0.0 : dt == DType::F16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
  size_t exact = 0, lut_mismatch = 0, over_tol = 0;
  double maxd = 0.0;
  for (int c = 0; c < 3; ++c) {
    for (size_t i = 0; i < hw; ++i) {
      const size_t o = c * hw + i;
      const float g = gpu[o];
      if (!std::isfinite(g)) {
        ADD_FAILURE() << what << ": non-finite output " << g << " at channel " << c << " pixel " << i;
        return 0.0;
      }
      const float want = storage_round(dt, ref[o]);
      const double d = std::fabs(double(g) - double(ref[o]));
      maxd = std::max(maxd, d);
      exact += g == want;
      over_tol += d > level + rel_store * std::fabs(ref[o]);
      lut_mismatch += g != storage_round(dt, lut[c * 256 + gpu_u8[i * 3 + c]]);
    }
  }
  EXPECT_EQ(over_tol, 0u) << what << ": values beyond one 8-bit level (" << level << "); max diff " << maxd;
  EXPECT_EQ(lut_mismatch, 0u) << what << ": outputs that are not lut[uint8 pixel]";
  EXPECT_GT(test::max_abs(gpu.data(), n), 0.1f) << what << ": blank output";
  const double frac = double(exact) / n;
  std::printf("  [%s %s] uint8 exact %.6f, output bit-exact %.6f, max abs diff %.3g (tolerance %.3g)\n", what.c_str(),
              test::dt_label(dt), double(u8_exact) / n, frac, maxd, level);
  return frac;
}

// One image through GpuPreprocessor into a fresh NaN-poisoned single-slot buffer (and a
// 0xA5-filled uint8 buffer); returns the output widened to fp32 and the uint8 image.
struct GpuOut {
  std::vector<float> out;    // [3, H, W]
  std::vector<uint8_t> u8;   // [H, W, 3]
};
GpuOut gpu_run(GpuPreprocessor& pre, const Image& img, const PreprocessConfig& cfg, DType dt) {
  const size_t n = size_t(3) * cfg.input_h * cfg.input_w;
  test::DevMem out(dt, n);
  out.poison();
  DevU8 u8(n);
  u8.fill(0xA5);
  pre.run(img, cfg, out.get(), dt, 0, nullptr, u8.get());  // legacy stream: ordered after the fills
  test::sync_or_throw();
  return GpuOut{out.download(), u8.download()};
}

GpuOut run_and_check(GpuPreprocessor& pre, const std::string& what, const Image& img, const PreprocessConfig& cfg,
                     DType dt = DType::F32) {
  SCOPED_TRACE(what);
  GpuOut g = gpu_run(pre, img, cfg, dt);
  check_against_cpu(what, img, cfg, dt, g.out, g.u8);
  return g;
}

// The framework's own fp32 tensor (the CPU path is bit-exact to these fixtures).
void expect_equals_fixture(const std::vector<float>& got, const std::string& f32_name) {
  const auto b = test::read_file(img_path(f32_name));
  ASSERT_EQ(b.size(), got.size() * 4) << f32_name;
  std::vector<float> ref(got.size());
  std::memcpy(ref.data(), b.data(), b.size());  // little-endian host
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) bad += !(got[i] == ref[i]);
  EXPECT_EQ(bad, 0u) << "values differing from " << f32_name;
}

std::string size_str(const Image& img) { return std::to_string(img.w) + "x" + std::to_string(img.h); }

// ---- fixtures ------------------------------------------------------------------------------

TEST(GpuPreprocess, TimmFixturesMatchCpuAndPillow) {
  VIT_SKIP_WITHOUT_GPU();
  GpuPreprocessor pre;
  int n = 0;
  for (const auto& e : manifest()["timm"]) {
    PreprocessConfig cfg = config_from(e);
    cfg.resize = PreprocessConfig::Resize::kShortestThenCrop;
    cfg.crop_pct = e["crop_pct"].get<float>();
    cfg.input_h = e["input_h"];
    cfg.input_w = e["input_w"];
    const std::string src = e["src"];
    const std::string what = "timm " + src + " -> " + std::to_string(cfg.input_w) + "x" + std::to_string(cfg.input_h);
    SCOPED_TRACE(what);
    const Image img = source_image(src);
    const GpuOut g = run_and_check(pre, what, img, cfg);
    // Straight against timm's own uint8 image (Pillow resize + CenterCrop) and fp32 tensor.
    EXPECT_TRUE(g.u8 == test::read_file(img_path(e["u8"].get<std::string>())))
        << "GPU uint8 image differs from timm/Pillow's";
    expect_equals_fixture(g.out, e["f32"].get<std::string>());
    ++n;
  }
  EXPECT_GE(n, 6);
}

TEST(GpuPreprocess, HfPilFixturesMatchCpu) {
  VIT_SKIP_WITHOUT_GPU();
  GpuPreprocessor pre;
  int n = 0;
  for (const auto& e : manifest()["hf"]) {
    if (e["backend"] != "pil") continue;  // the torchvision backend is not Pillow's resampler
    PreprocessConfig cfg = config_from(e);
    cfg.resize = PreprocessConfig::Resize::kDirect;
    cfg.input_h = cfg.input_w = e["size"];
    const std::string src = e["src"];
    const std::string what = "HF " + src + " -> " + std::to_string(cfg.input_w);
    SCOPED_TRACE(what);
    const GpuOut g = run_and_check(pre, what, source_image(src), cfg);
    expect_equals_fixture(g.out, e["f32"].get<std::string>());  // ViTImageProcessorPil's tensor
    ++n;
  }
  EXPECT_GE(n, 2);
}

TEST(GpuPreprocess, HfShortestEdgeCropFixturesMatchCpu) {
  VIT_SKIP_WITHOUT_GPU();
  GpuPreprocessor pre;
  int n = 0;
  for (const auto& e : manifest()["hf_crop"]) {
    const PreprocessConfig cfg = hf_crop_config(e);
    const std::string src = e["src"];
    const std::string what = "HF crop " + src + " -> " + std::to_string(cfg.input_h) + "x" + std::to_string(cfg.input_w);
    SCOPED_TRACE(what);
    const GpuOut g = run_and_check(pre, what, source_image(src), cfg);
    expect_equals_fixture(g.out, e["f32"].get<std::string>());  // the processor's own tensor
    ++n;
  }
  EXPECT_GE(n, 4);
}

TEST(GpuPreprocess, PillowResizeFixtures) {
  VIT_SKIP_WITHOUT_GPU();
  // Plain Image.resize((w, h)): HF direct mode at a non-square size, checked against Pillow.
  GpuPreprocessor pre;
  int n = 0;
  for (const auto& e : manifest()["resize"]) {
    const Image img = source_image(e["src"].get<std::string>());
    PreprocessConfig cfg = hf_cfg(e["filter"].get<std::string>());
    cfg.input_w = e["w"];
    cfg.input_h = e["h"];
    const std::string what = "resize " + e["src"].get<std::string>() + " -> " + std::to_string(cfg.input_w) + "x" +
                             std::to_string(cfg.input_h) + " " + cfg.interpolation;
    SCOPED_TRACE(what);
    const GpuOut g = run_and_check(pre, what, img, cfg);
    EXPECT_TRUE(g.u8 == test::read_file(img_path(e["ref"].get<std::string>()))) << "GPU uint8 image differs from Pillow's";
    ++n;
  }
  EXPECT_GE(n, 8);
}

// ---- random images of awkward sizes ----------------------------------------------------------

TEST(GpuPreprocess, RandomAwkwardSizes) {
  VIT_SKIP_WITHOUT_GPU();
  struct Cfg {
    const char* name;
    PreprocessConfig cfg;
  };
  PreprocessConfig deit = timm_cfg("bicubic", 0.875f);
  deit.mean = {0.485f, 0.456f, 0.406f};
  deit.std = {0.229f, 0.224f, 0.225f};
  PreprocessConfig jax = hf_cfg("bilinear");
  jax.mean = {0.5f, 0.5f, 0.5f};
  jax.std = {0.5f, 0.5f, 0.5f};
  const std::vector<Cfg> cfgs = {
      {"timm bicubic 0.9", timm_cfg("bicubic")},
      {"timm bilinear 0.9", timm_cfg("bilinear")},
      {"timm bicubic 1.25 (zero pad)", timm_cfg("bicubic", 1.25f)},
      {"timm bicubic 160x224 keep-ratio", timm_cfg("bicubic", 0.9f, 160, 224)},
      {"deit bicubic 0.875", deit},
      {"hf bilinear direct", hf_cfg("bilinear")},
      {"hf bicubic direct", hf_cfg("bicubic")},
      {"hf bilinear 384", hf_cfg("bilinear", 384)},
  };
  const int sizes[][2] = {{1, 1}, {7, 300}, {300, 7}, {640, 480}, {20, 30}, {224, 224}, {248, 331}, {1, 500}};
  GpuPreprocessor pre;  // one instance for all: the scratch grows and shrinks-in-use across calls
  for (const auto& s : sizes) {
    const Image img = random_image(s[0], s[1]);
    for (const auto& c : cfgs) run_and_check(pre, "random " + size_str(img) + " " + c.name, img, c.cfg);
  }
}

TEST(GpuPreprocess, HalfAndBf16Outputs) {
  VIT_SKIP_WITHOUT_GPU();
  GpuPreprocessor pre;
  const Image photo = source_image("photo_640x480.jpg");
  const Image noise = random_image(333, 257);
  for (DType dt : {DType::F16, DType::BF16}) {
    run_and_check(pre, "photo 640x480 timm", photo, timm_cfg("bicubic"), dt);
    PreprocessConfig deit = timm_cfg("bicubic", 0.875f);
    deit.mean = {0.485f, 0.456f, 0.406f};
    deit.std = {0.229f, 0.224f, 0.225f};
    run_and_check(pre, "random 333x257 deit", noise, deit, dt);
    run_and_check(pre, "random 333x257 hf", noise, hf_cfg("bilinear"), dt);
  }
}

// Batch slots, several streams and scratch growth: each run writes exactly its own slot.
TEST(GpuPreprocess, BatchSlotsStreamsAndReuse) {
  VIT_SKIP_WITHOUT_GPU();
  const PreprocessConfig cfg = timm_cfg("bicubic");
  const int B = 4;
  const size_t slot = size_t(3) * cfg.input_h * cfg.input_w;
  cudaStream_t s1 = nullptr, s2 = nullptr;
  VIT_TEST_CUDA(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
  VIT_TEST_CUDA(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
  {
    GpuPreprocessor pre;
    // Small first, then large (scratch must grow while the small one may still be in flight),
    // then small again on the other stream (reusing the larger scratch).
    const std::vector<Image> imgs = {random_image(20, 30), random_image(1500, 1100), random_image(300, 7)};
    const int slots[] = {2, 0, 3};
    const cudaStream_t streams[] = {s1, s2, s1};
    test::DevMem out(DType::F32, B * slot);
    out.poison();
    test::sync_or_throw();  // the runs below use non-blocking streams: finish the poison first
    for (int r = 0; r < 2; ++r) {  // twice: the second round runs entirely on grown scratch
      for (size_t i = 0; i < imgs.size(); ++i) pre.run(imgs[i], cfg, out.get(), DType::F32, slots[i], streams[i]);
    }
    EXPECT_GT(pre.device_bytes(), 0u);
    VIT_TEST_CUDA(cudaStreamSynchronize(s1));
    VIT_TEST_CUDA(cudaStreamSynchronize(s2));
    const auto all = out.download();
    for (size_t i = 0; i < imgs.size(); ++i) {
      std::vector<float> want(slot);
      preprocess_image(imgs[i], cfg, want.data());
      const float* got = all.data() + slots[i] * slot;
      size_t bad = 0;
      for (size_t j = 0; j < slot; ++j) bad += !(got[j] == want[j]);  // same uint8 + same lut: bit-exact
      EXPECT_EQ(bad, 0u) << "slot " << slots[i] << " (" << size_str(imgs[i]) << ")";
    }
    // Slot 1 was never a destination: still all NaN.
    size_t touched = 0;
    for (size_t j = 0; j < slot; ++j) touched += !std::isnan(all[1 * slot + j]);
    EXPECT_EQ(touched, 0u) << "slot 1 was written";
  }
  cudaStreamDestroy(s1);
  cudaStreamDestroy(s2);
}

// ---- argument checks (no device needed: they throw before any CUDA call) ---------------------

ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kOk;
}

TEST(GpuPreprocessArgs, RejectedBeforeDeviceWork) {
  GpuPreprocessor pre;
  const Image img = random_image(10, 12);
  const PreprocessConfig cfg = timm_cfg("bicubic", 0.9f, 32, 32);
  float dummy = 0.0f;
  void* dst = &dummy;  // never written: every call below must throw first
  EXPECT_EQ(code_of([&] { pre.run(img, cfg, nullptr, DType::F32, 0, nullptr); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { pre.run(img, cfg, dst, DType::F64, 0, nullptr); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { pre.run(img, cfg, dst, DType::F32, -1, nullptr); }), ErrorCode::kInvalidArgument);
  Image bad = img;
  bad.rgb.pop_back();
  EXPECT_EQ(code_of([&] { pre.run(bad, cfg, dst, DType::F32, 0, nullptr); }), ErrorCode::kInvalidArgument);
  Image empty;
  EXPECT_EQ(code_of([&] { pre.run(empty, cfg, dst, DType::F32, 0, nullptr); }), ErrorCode::kInvalidArgument);
  PreprocessConfig unknown = cfg;
  unknown.interpolation = "sinc";  // not a Pillow filter (lanczos, box, hamming, nearest are)
  EXPECT_EQ(code_of([&] { pre.run(img, unknown, dst, DType::F32, 0, nullptr); }), ErrorCode::kUnsupported);
  PreprocessConfig zero_std = cfg;
  zero_std.std[2] = 0.0f;
  EXPECT_EQ(code_of([&] { pre.run(img, zero_std, dst, DType::F32, 0, nullptr); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(pre.device_bytes(), 0u);  // nothing was allocated
}

TEST(GpuPreprocessArgs, LaunchersValidate) {
  uint8_t byte = 0;
  int32_t tab = 0;
  float lut = 0.0f;
  ResizeHorizontalParams h;
  h.src = &byte;
  h.tmp = &byte;
  h.src_w = 10;
  h.src_h = 5;
  h.tmp_rows = 6;  // more rows than the source has
  h.nx = 4;
  EXPECT_EQ(code_of([&] { launch_resize_horizontal(h, nullptr); }), ErrorCode::kInvalidArgument);
  h.tmp_rows = 5;
  h.rx0 = 7;  // columns [7, 11) of a 10-column source (copy mode)
  EXPECT_EQ(code_of([&] { launch_resize_horizontal(h, nullptr); }), ErrorCode::kInvalidArgument);
  h.rx0 = 0;
  h.resize_x = true;  // no tables
  EXPECT_EQ(code_of([&] { launch_resize_horizontal(h, nullptr); }), ErrorCode::kInvalidArgument);
  h.first = h.count = h.k = &tab;
  h.ksize = 3;
  h.out_size = 3;  // 4 columns wanted from a 3-output table
  EXPECT_EQ(code_of([&] { launch_resize_horizontal(h, nullptr); }), ErrorCode::kInvalidArgument);

  ResizeVerticalNormalizeParams v;
  v.tmp = &byte;
  v.lut = &lut;
  v.dst = &lut;
  v.out_w = v.out_h = 8;
  v.x0 = 0;
  v.x1 = 9;  // wider than the output
  v.y1 = 8;
  v.nx = 9;
  v.tmp_rows = 8;
  EXPECT_EQ(code_of([&] { launch_resize_vertical_normalize(v, nullptr); }), ErrorCode::kInvalidArgument);
  v.x1 = 8;
  v.nx = 7;  // does not match the window
  EXPECT_EQ(code_of([&] { launch_resize_vertical_normalize(v, nullptr); }), ErrorCode::kInvalidArgument);
  v.nx = 8;
  v.tmp_rows = 7;  // copy mode needs 8 tmp rows
  EXPECT_EQ(code_of([&] { launch_resize_vertical_normalize(v, nullptr); }), ErrorCode::kInvalidArgument);
  v.tmp_rows = 8;
  v.dtype = DType::F64;
  EXPECT_EQ(code_of([&] { launch_resize_vertical_normalize(v, nullptr); }), ErrorCode::kInvalidArgument);
  v.dtype = DType::F32;
  v.lut = nullptr;
  EXPECT_EQ(code_of([&] { launch_resize_vertical_normalize(v, nullptr); }), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace vit
