// vit-infer: the default Engine::run_images: raw RGB8 images [h, w, 3] u8 are preprocessed on
// the host (image/preprocess.h: Pillow-exact resize, timm/HF crop, normalisation) into one
// [n, 3, H, W] fp32 batch, in parallel over the images, which then goes through run_at().
// Engines that can preprocess on their own device (CUDA: GpuPreprocessor) override it.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "core/error.h"
#include "engine/engine.h"
#include "image/decode.h"
#include "image/preprocess.h"

namespace vit {

void check_images(const ImageView* images, int n, const char* who) {
  for (int i = 0; i < n; ++i) {
    const ImageView& v = images[i];
    if (!v.rgb || v.w <= 0 || v.h <= 0)
      fail(ErrorCode::kInvalidArgument, std::string(who) + ": image " + std::to_string(i) + " is empty (" +
                                            std::to_string(v.w) + "x" + std::to_string(v.h) +
                                            (v.rgb ? "" : ", pixels NULL") + ")");
  }
}

void Engine::run_images(const ImageView* images, int n, const PreprocessConfig& pp, const RunOutputs& out,
                        const std::atomic<bool>* cancel) {
  if (n < 1) fail(ErrorCode::kInvalidArgument, "run_images: image count " + std::to_string(n) + " must be >= 1");
  if (!images) fail(ErrorCode::kInvalidArgument, "run_images: images is null");
  if (pp.input_h <= 0 || pp.input_w <= 0)
    fail(ErrorCode::kInvalidArgument, "run_images: preprocessing size " + std::to_string(pp.input_h) + "x" +
                                          std::to_string(pp.input_w) + " is not positive");
  check_images(images, n, "run_images");

  const size_t per = static_cast<size_t>(3) * pp.input_h * pp.input_w;
  std::vector<float> batch(per * static_cast<size_t>(n));  // [n, 3, H, W] fp32
  // One image per iteration; exceptions cannot leave an OpenMP region, so the first one is
  // kept and rethrown afterwards (the others are the same kind of failure on other images).
  std::exception_ptr first_error;
  int first_index = n;
  const int team = std::max(1, std::min(n, omp_get_max_threads()));
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
  for (int i = 0; i < n; ++i) {
    try {
      // preprocess_image takes an owning Image; the copy costs one memcpy next to a resample
      // that reads every pixel several times.
      Image img;
      img.w = images[i].w;
      img.h = images[i].h;
      img.rgb.assign(images[i].rgb, images[i].rgb + static_cast<size_t>(img.w) * img.h * 3);
      preprocess_image(img, pp, batch.data() + per * static_cast<size_t>(i));
    } catch (...) {
#pragma omp critical(vit_run_images_error)
      if (i < first_index) {
        first_index = i;
        first_error = std::current_exception();
      }
    }
  }
  if (first_error) {
    try {
      std::rethrow_exception(first_error);
    } catch (const Error& e) {
      fail(e.code(), "run_images: image " + std::to_string(first_index) + ": " + e.what());
    }
    // bad_alloc and anything else propagate unchanged from the rethrow above.
  }
  run_at(batch.data(), n, pp.input_h, pp.input_w, out, cancel);
}

}  // namespace vit
