// vit-infer: antialiased resampling coefficients (Pillow precompute_coeffs semantics).
#include "core/resample.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace vit {

double resample_filter_support(ResampleFilter f) noexcept {
  return f == ResampleFilter::kBilinear ? 1.0 : 2.0;
}

double resample_filter_eval(ResampleFilter f, double x) noexcept {
  if (x < 0.0) x = -x;
  if (f == ResampleFilter::kBilinear) return x < 1.0 ? 1.0 - x : 0.0;
  constexpr double a = -0.5;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

ResampleCoeffs compute_resample_coeffs(int in_size, int out_size, ResampleFilter f, double box0,
                                       double box1) {
  if (in_size <= 0 || out_size <= 0) {
    fail(ErrorCode::kInvalidArgument, "resample: sizes must be positive (in " + std::to_string(in_size) +
                                          ", out " + std::to_string(out_size) + ")");
  }
  if (box1 < 0.0) box1 = in_size;
  const double scale = (box1 - box0) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = resample_filter_support(f) * filterscale;
  ResampleCoeffs c;
  c.in_size = in_size;
  c.out_size = out_size;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.w.assign(static_cast<size_t>(out_size) * c.ksize, 0.0);
  const double ss = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = box0 + (xx + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as the C cast
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    xmax = std::min(xmax, c.ksize);
    double* k = &c.w[static_cast<size_t>(xx) * c.ksize];
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = resample_filter_eval(f, (x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
    }
    c.first[xx] = xmin;
    c.count[xx] = std::max(xmax, 0);
  }
  return c;
}

}  // namespace vit
