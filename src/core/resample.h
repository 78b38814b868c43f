// vit-infer: separable antialiased resampling coefficients, as Pillow's
// ImagingResample (precompute_coeffs) and PyTorch's interpolate(antialias=True) compute
// them: for output i, centre = (i + 0.5) * scale, support widened by max(scale, 1) when
// downscaling, weights normalised to sum 1. Shared by position-embedding resampling
// (float) and image preprocessing (Pillow's 8-bit fixed-point path).
#pragma once

#include <vector>

namespace vit {

// Pillow's filters (PIL.Image.Resampling): the convolution ones of libImaging/Resample.c, and
// NEAREST, which Pillow runs as an affine scale (one source pixel per output, no filter).
enum class ResampleFilter {
  kBilinear,  // triangle, support 1
  kBicubic,   // Keys cubic with a = -0.5 (Pillow, and PyTorch when antialias=True), support 2
  kNearest,   // Pillow NEAREST (0): source floor((o + 0.5) * in / out), accumulated as Pillow does
  kBox,       // Pillow BOX (4): 1 on (-0.5, 0.5], support 0.5
  kHamming,   // Pillow HAMMING (5): sinc windowed by 0.54 + 0.46 cos, support 1
  kLanczos,   // Pillow LANCZOS (1): sinc(x) sinc(x / 3), support 3
};

// Pillow's name of a filter ("bicubic", "nearest", ...), as timm's pretrained_cfg spells it.
const char* resample_filter_name(ResampleFilter f) noexcept;

struct ResampleCoeffs {
  int in_size = 0, out_size = 0;
  int ksize = 0;              // taps stored per output (max over outputs)
  std::vector<int> first;     // [out]: first input index
  std::vector<int> count;     // [out]: number of valid taps (<= ksize)
  std::vector<double> w;      // [out * ksize]: normalised weights, zero-padded
};

double resample_filter_support(ResampleFilter f) noexcept;
double resample_filter_eval(ResampleFilter f, double x) noexcept;

// Coefficients mapping the input range [0, in_size) onto out_size samples (kNearest: one tap of
// weight 1 per output, the source pixel Pillow's ImagingScaleAffine picks).
// `box0`/`box1` select a sub-range of the input (Pillow's box argument); by default the
// whole input. Throws vit::Error(kInvalidArgument) on non-positive sizes.
ResampleCoeffs compute_resample_coeffs(int in_size, int out_size, ResampleFilter f,
                                       double box0 = 0.0, double box1 = -1.0);

}  // namespace vit
