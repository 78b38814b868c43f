// vit-infer: position-embedding resampling for running at another resolution, exactly as
// timm's resample_abs_pos_embed: the cls row is kept, the [gh, gw] grid of each channel is
// resized with F.interpolate(mode='bicubic', antialias=True, align_corners=False), which is
// separable with Pillow-style antialiased coefficients (core/resample.h); or, for the HF
// layouts, as HF's interpolate_pos_encoding: the same call without antialias (PyTorch's
// upsample_bicubic2d: Keys a = -0.75, 4 taps, edge-clamped, also when downscaling).
// pos layout: [prefix + gh*gw, D] fp32, the prefix rows (cls, dist, registers; none for
// no_embed_class tables) kept, then patches row-major (y, x).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/resample.h"
#include "model/model.h"

namespace vit {

namespace {

// PyTorch upsample_bicubic2d (align_corners=False, size given): source x = (i + 0.5) * in / out
// - 0.5, taps floor(x) - 1 .. floor(x) + 2 clamped to the edge, Keys weights with A = -0.75.
// Clamped taps land on the edge sample, so each output's taps stay one contiguous range.
ResampleCoeffs torch_bicubic_coeffs(int in, int out) {
  constexpr double A = -0.75;
  const auto near = [&](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };  // |x| <= 1
  const auto far = [&](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };  // 1 < |x| < 2
  ResampleCoeffs c;
  c.in_size = in;
  c.out_size = out;
  c.ksize = 4;
  c.first.resize(static_cast<size_t>(out));
  c.count.resize(static_cast<size_t>(out));
  c.w.assign(static_cast<size_t>(out) * 4, 0.0);
  const double scale = static_cast<double>(in) / out;
  for (int i = 0; i < out; ++i) {
    const double x = (i + 0.5) * scale - 0.5;
    const double fl = std::floor(x), t = x - fl;
    const double wk[4] = {far(t + 1), near(t), near(1 - t), far(2 - t)};
    const int x0 = static_cast<int>(fl) - 1;
    const int lo = std::clamp(x0, 0, in - 1), hi = std::clamp(x0 + 3, 0, in - 1);
    c.first[static_cast<size_t>(i)] = lo;
    c.count[static_cast<size_t>(i)] = hi - lo + 1;
    for (int k = 0; k < 4; ++k) c.w[static_cast<size_t>(i) * 4 + (std::clamp(x0 + k, 0, in - 1) - lo)] += wk[k];
  }
  return c;
}

}  // namespace

Tensor resample_pos_embed(const Tensor& pos, int gh, int gw, int nh, int nw, int prefix, PosResample rule) {
  if (gh <= 0 || gw <= 0 || nh <= 0 || nw <= 0 || prefix < 0) {
    fail(ErrorCode::kInvalidArgument, "resample_pos_embed: grid sizes must be positive (" + std::to_string(gh) + "x" +
                                          std::to_string(gw) + " -> " + std::to_string(nh) + "x" +
                                          std::to_string(nw) + ", prefix " + std::to_string(prefix) + ")");
  }
  const int64_t P = prefix;
  if (pos.shape.size() != 2 || pos.shape[0] != P + static_cast<int64_t>(gh) * gw) {
    fail(ErrorCode::kInvalidArgument, "resample_pos_embed: pos has shape " + shape_str(pos.shape) + ", expected [" +
                                          std::to_string(P + static_cast<int64_t>(gh) * gw) + ", D] for a " +
                                          std::to_string(gh) + "x" + std::to_string(gw) + " grid plus " +
                                          std::to_string(P) + " prefix row(s)");
  }
  const int64_t D = pos.shape[1];
  Tensor out({P + static_cast<int64_t>(nh) * nw, D});
  for (int64_t d = 0; d < P * D; ++d) out.data[d] = pos.data[d];  // prefix slots unchanged
  if (gh == nh && gw == nw) {
    out.data = pos.data;
    return out;
  }
  const bool timm = rule == PosResample::kTimm;
  const ResampleCoeffs cw = timm ? compute_resample_coeffs(gw, nw, ResampleFilter::kBicubic) : torch_bicubic_coeffs(gw, nw);
  const ResampleCoeffs ch = timm ? compute_resample_coeffs(gh, nh, ResampleFilter::kBicubic) : torch_bicubic_coeffs(gh, nh);
  const float* grid = pos.ptr() + P * D;  // [gh, gw, D]
  // Horizontal pass first: [gh, gw, D] -> [gh, nw, D], accumulated in double.
  std::vector<double> tmp(static_cast<size_t>(gh) * nw * D, 0.0);
  for (int y = 0; y < gh; ++y) {
    for (int x = 0; x < nw; ++x) {
      double* dst = &tmp[(static_cast<size_t>(y) * nw + x) * D];
      const double* wk = &cw.w[static_cast<size_t>(x) * cw.ksize];
      for (int k = 0; k < cw.count[x]; ++k) {
        const float* src = grid + (static_cast<int64_t>(y) * gw + cw.first[x] + k) * D;
        const double w = wk[k];
        for (int64_t d = 0; d < D; ++d) dst[d] += w * src[d];
      }
    }
  }
  // Vertical pass: [gh, nw, D] -> [nh, nw, D].
  float* o = out.ptr() + P * D;
  std::vector<double> acc(static_cast<size_t>(D));
  for (int y = 0; y < nh; ++y) {
    const double* wk = &ch.w[static_cast<size_t>(y) * ch.ksize];
    for (int x = 0; x < nw; ++x) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int k = 0; k < ch.count[y]; ++k) {
        const double* src = &tmp[(static_cast<size_t>(ch.first[y] + k) * nw + x) * D];
        const double w = wk[k];
        for (int64_t d = 0; d < D; ++d) acc[d] += w * src[d];
      }
      float* dst = o + (static_cast<int64_t>(y) * nw + x) * D;
      for (int64_t d = 0; d < D; ++d) dst[d] = static_cast<float>(acc[d]);
    }
  }
  return out;
}

Tensor pos_embed_at(const Model& m, int gh, int gw) {
  const ViTConfig& c = m.cfg;
  if (gh == c.grid_h() && gw == c.grid_w()) return m.w.pos;
  const int prefix = c.no_embed_class ? 0 : c.prefix_tokens();
  if (c.pos_rule == PosResample::kHF && !m.w.pos_ckpt.empty())
    return resample_pos_embed(m.w.pos_ckpt, c.ckpt_grid_h, c.ckpt_grid_w, gh, gw, prefix, PosResample::kHF);
  return resample_pos_embed(m.w.pos, c.grid_h(), c.grid_w(), gh, gw, prefix, c.pos_rule);
}

}  // namespace vit
