// vit-infer: separable antialiased resampling coefficients, as Pillow's
// ImagingResample (precompute_coeffs) and PyTorch's interpolate(antialias=True) compute
// them: for output i, centre = (i + 0.5) * scale, support widened by max(scale, 1) when
// downscaling, weights normalised to sum 1. Shared by position-embedding resampling
// (float) and image preprocessing (Pillow's 8-bit fixed-point path).
#pragma once

#include <vector>

namespace vit {

enum class ResampleFilter {
  kBilinear,  // triangle, support 1
  kBicubic,   // Keys cubic with a = -0.5 (Pillow, and PyTorch when antialias=True), support 2
};

struct ResampleCoeffs {
  int in_size = 0, out_size = 0;
  int ksize = 0;              // taps stored per output (max over outputs)
  std::vector<int> first;     // [out]: first input index
  std::vector<int> count;     // [out]: number of valid taps (<= ksize)
  std::vector<double> w;      // [out * ksize]: normalised weights, zero-padded
};

double resample_filter_support(ResampleFilter f) noexcept;
double resample_filter_eval(ResampleFilter f, double x) noexcept;

// Coefficients mapping the input range [0, in_size) onto out_size samples.
// `box0`/`box1` select a sub-range of the input (Pillow's box argument); by default the
// whole input. Throws vit::Error(kInvalidArgument) on non-positive sizes.
ResampleCoeffs compute_resample_coeffs(int in_size, int out_size, ResampleFilter f,
                                       double box0 = 0.0, double box1 = -1.0);

}  // namespace vit
