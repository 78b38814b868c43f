// vit-infer: antialiased resampling coefficients (Pillow precompute_coeffs semantics).
#include "core/resample.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace vit {

const char* resample_filter_name(ResampleFilter f) noexcept {
  switch (f) {
    case ResampleFilter::kBilinear: return "bilinear";
    case ResampleFilter::kBicubic: return "bicubic";
    case ResampleFilter::kNearest: return "nearest";
    case ResampleFilter::kBox: return "box";
    case ResampleFilter::kHamming: return "hamming";
    case ResampleFilter::kLanczos: return "lanczos";
  }
  return "?";
}

double resample_filter_support(ResampleFilter f) noexcept {
  switch (f) {
    case ResampleFilter::kBox: return 0.5;
    case ResampleFilter::kBilinear:
    case ResampleFilter::kHamming: return 1.0;
    case ResampleFilter::kLanczos: return 3.0;
    case ResampleFilter::kNearest: return 0.0;
    case ResampleFilter::kBicubic: break;
  }
  return 2.0;
}

namespace {
constexpr double kPi = 3.14159265358979323846;  // M_PI
double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= kPi;
  return std::sin(x) / x;
}
}  // namespace

// libImaging/Resample.c's filter functions, term for term (hamming's 0.54f / 0.46f are float
// literals there, widened to double).
double resample_filter_eval(ResampleFilter f, double x) noexcept {
  if (f == ResampleFilter::kBox) return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;  // not symmetric
  if (f == ResampleFilter::kLanczos) return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0;
  if (x < 0.0) x = -x;
  if (f == ResampleFilter::kBilinear) return x < 1.0 ? 1.0 - x : 0.0;
  if (f == ResampleFilter::kHamming) {
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x *= kPi;
    return std::sin(x) / x * (static_cast<double>(0.54f) + static_cast<double>(0.46f) * std::cos(x));
  }
  if (f == ResampleFilter::kNearest) return x == 0.0 ? 1.0 : 0.0;  // unused: nearest has its own table
  constexpr double a = -0.5;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

namespace {
// Pillow's NEAREST resize (_imaging.c _resize -> ImagingTransform affine -> ImagingScaleAffine):
// xo = box0 + a * 0.5 with a = (box1 - box0) / out, then per output xin = COORD(xo), xo += a.
ResampleCoeffs nearest_coeffs(int in_size, int out_size, double box0, double box1) {
  ResampleCoeffs c;
  c.in_size = in_size;
  c.out_size = out_size;
  c.ksize = 1;
  c.first.resize(out_size);
  c.count.assign(out_size, 1);
  c.w.assign(out_size, 1.0);
  const double a = (box1 - box0) / out_size;
  double xo = box0 + a * 0.5;
  for (int x = 0; x < out_size; ++x) {
    int xin = xo < 0.0 ? -1 : static_cast<int>(xo);  // COORD
    c.first[x] = std::min(std::max(xin, 0), in_size - 1);
    xo += a;
  }
  return c;
}
}  // namespace

ResampleCoeffs compute_resample_coeffs(int in_size, int out_size, ResampleFilter f, double box0,
                                       double box1) {
  if (in_size <= 0 || out_size <= 0) {
    fail(ErrorCode::kInvalidArgument, "resample: sizes must be positive (in " + std::to_string(in_size) +
                                          ", out " + std::to_string(out_size) + ")");
  }
  if (box1 < 0.0) box1 = in_size;
  if (f == ResampleFilter::kNearest) return nearest_coeffs(in_size, out_size, box0, box1);
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
