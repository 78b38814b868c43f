// vit-infer: attention maps of a ViT, as pure functions. Inputs are head-mean attention
// probabilities, one [T, T] row-stochastic matrix per block (token 0 = class token, tokens
// 1..T-1 = patches in row-major grid order), i.e. one image's slices of the engine's
// attention_layers [depth, B, T, T]. Maps over the patches are [gh, gw] fp32; pictures are
// Image RGB8 [h, w, 3] (image/decode.h).
#pragma once

#include <cstdint>
#include <vector>

#include "image/decode.h"

namespace vit {

// `layers` points at block 0's [T, T] matrix; block l starts at layers + l * layer_stride
// (T * T when the blocks are contiguous, batch * T * T for the engine's layout).
struct AttentionStack {
  const float* layers = nullptr;
  int depth = 0;
  int tokens = 0;  // T = 1 + patches (no register / distillation tokens)
  int64_t layer_stride = 0;
  const float* layer(int l) const { return layers + static_cast<int64_t>(l) * layer_stride; }
};

// Attention rollout (Abnar & Zuidema 2020): for every block A' = 0.5 A + 0.5 I with rows
// renormalised to sum 1 (the 0.5 I stands for the residual connection), and
// R = A'_depth ... A'_2 A'_1. Returns R, [T, T] row-major in fp64 (a product of up to ~30
// stochastic matrices: fp64 keeps the row sums at 1 to ~1e-15).
// Throws kInvalidArgument for depth < 1, tokens < 2, a null pointer, a stride < T*T, or a
// row whose sum is not positive and finite.
std::vector<double> attention_rollout(const AttentionStack& a);

// Row 0 of the rollout (how much each token flows into the class token) over the patches:
// [T - 1]. Computed as e_0^T A'_depth ... A'_1, vector times matrix (O(depth T^2), not the
// O(depth T^3) of the full product); equal to attention_rollout(a)[0, 1:] up to rounding.
std::vector<float> rollout_cls_map(const AttentionStack& a);

// The class token's row of the last block's attention over the patches: [T - 1].
std::vector<float> last_layer_cls_map(const AttentionStack& a);

// Bilinear resampling of a [gh, gw] grid to [out_h, out_w], pixel centres aligned
// (align_corners = false, as torch/PIL), edges clamped. Returns [out_h, out_w].
std::vector<float> upsample_bilinear(const float* grid, int gh, int gw, int out_h, int out_w);

// Min-max normalisation to [0, 1] in place; a constant (or empty) map becomes all 0.
// Non-finite values are treated as the minimum.
void normalize_unit(std::vector<float>& v);

// Matplotlib's "inferno" colormap (perceptually uniform, dark -> bright): 256 RGB8 entries.
const uint8_t (&inferno_table())[256][3];
// v in [0, 1] (clamped; NaN -> 0) to the nearest of the 256 entries.
void inferno(float v, uint8_t rgb[3]);

// Nearest-neighbour upscaling by an integer factor >= 1: [h * f, w * f, 3].
Image scale_nearest(const Image& img, int factor);

// out = (1 - alpha) * img + alpha * inferno(heat), per pixel, rounded. heat: [img.h, img.w]
// values in [0, 1]; alpha in [0, 1].
Image overlay_heatmap(const Image& img, const std::vector<float>& heat, float alpha);

// Places images side by side, top-aligned, separated by `gap` columns of `fill` (grey); shorter
// images are padded with `fill` below.
Image hstack(const std::vector<Image>& images, int gap, uint8_t fill);

// One panel: the displayed image `shown` (already scaled for viewing) with the patch map
// [gh, gw] upsampled bilinearly to its size, normalised to [0, 1] and blended at `alpha`.
Image attention_panel(const Image& shown, const float* patch_map, int gh, int gw, float alpha);

}  // namespace vit
