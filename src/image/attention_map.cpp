// vit-infer: attention rollout, class-token maps and their rendering (attention_map.h).
// Matrices: [T, T] row-major, row i = the attention of query token i over the keys; rollout
// in fp64. Grids: [gh, gw] fp32 row-major. Images: RGB8 [h, w, 3].
#include "image/attention_map.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"

namespace vit {

namespace {

void check_stack(const AttentionStack& a, const char* fn) {
  if (!a.layers) fail(ErrorCode::kInvalidArgument, std::string(fn) + ": attention layers pointer is null");
  if (a.depth < 1) fail(ErrorCode::kInvalidArgument, std::string(fn) + ": depth " + std::to_string(a.depth) + " < 1");
  if (a.tokens < 2)
    fail(ErrorCode::kInvalidArgument,
         std::string(fn) + ": " + std::to_string(a.tokens) + " tokens; need a class token and at least one patch");
  const int64_t tt = int64_t{a.tokens} * a.tokens;
  if (a.layer_stride < tt)
    fail(ErrorCode::kInvalidArgument, std::string(fn) + ": layer stride " + std::to_string(a.layer_stride) +
                                          " is smaller than tokens^2 = " + std::to_string(tt));
}

// Row i of A' = renormalise(0.5 A + 0.5 I), into out[T] (fp64).
void residual_row(const float* A, int T, int i, double* out, int layer) {
  const float* r = A + static_cast<int64_t>(i) * T;
  double s = 0.0;
  for (int j = 0; j < T; ++j) {
    out[j] = 0.5 * static_cast<double>(r[j]) + (j == i ? 0.5 : 0.0);
    s += out[j];
  }
  if (!(s > 0.0) || !std::isfinite(s)) {
    fail(ErrorCode::kInvalidArgument, "attention rollout: block " + std::to_string(layer) + " row " +
                                          std::to_string(i) + " sums to " + std::to_string(s) +
                                          " after adding the identity (negative or non-finite attention?)");
  }
  const double inv = 1.0 / s;
  for (int j = 0; j < T; ++j) out[j] *= inv;
}

// The full A' of one block: [T, T] fp64.
std::vector<double> residual_matrix(const float* A, int T, int layer) {
  std::vector<double> m(static_cast<size_t>(T) * T);
  for (int i = 0; i < T; ++i) residual_row(A, T, i, &m[static_cast<size_t>(i) * T], layer);
  return m;
}

}  // namespace

std::vector<double> attention_rollout(const AttentionStack& a) {
  check_stack(a, "attention_rollout");
  const int T = a.tokens;
  const size_t n = static_cast<size_t>(T);
  std::vector<double> R = residual_matrix(a.layer(0), T, 0);  // R = A'_1
  std::vector<double> next(n * n);
  for (int l = 1; l < a.depth; ++l) {
    const std::vector<double> Ap = residual_matrix(a.layer(l), T, l);
    // next = A'_l R (i-k-j order: the inner loop runs over contiguous rows of R).
    std::fill(next.begin(), next.end(), 0.0);
    for (size_t i = 0; i < n; ++i) {
      double* dst = &next[i * n];
      for (size_t k = 0; k < n; ++k) {
        const double aik = Ap[i * n + k];
        if (aik == 0.0) continue;
        const double* src = &R[k * n];
        for (size_t j = 0; j < n; ++j) dst[j] += aik * src[j];
      }
    }
    R.swap(next);
  }
  return R;
}

std::vector<float> rollout_cls_map(const AttentionStack& a) {
  check_stack(a, "rollout_cls_map");
  const int T = a.tokens;
  // v^T = e_0^T A'_depth ... A'_1, applied from the last block down to the first.
  std::vector<double> v(static_cast<size_t>(T), 0.0), nv(static_cast<size_t>(T)), row(static_cast<size_t>(T));
  v[0] = 1.0;
  for (int l = a.depth - 1; l >= 0; --l) {
    std::fill(nv.begin(), nv.end(), 0.0);
    for (int i = 0; i < T; ++i) {
      if (v[i] == 0.0) continue;  // rows that carry no weight need not be built
      residual_row(a.layer(l), T, i, row.data(), l);
      for (int j = 0; j < T; ++j) nv[j] += v[i] * row[j];
    }
    v.swap(nv);
  }
  return std::vector<float>(v.begin() + 1, v.end());
}

std::vector<float> last_layer_cls_map(const AttentionStack& a) {
  check_stack(a, "last_layer_cls_map");
  const float* row0 = a.layer(a.depth - 1);  // class token = query row 0
  return std::vector<float>(row0 + 1, row0 + a.tokens);
}

std::vector<float> upsample_bilinear(const float* grid, int gh, int gw, int out_h, int out_w) {
  if (!grid || gh < 1 || gw < 1 || out_h < 1 || out_w < 1) {
    fail(ErrorCode::kInvalidArgument, "upsample_bilinear: grid " + std::to_string(gh) + "x" + std::to_string(gw) +
                                          " to " + std::to_string(out_h) + "x" + std::to_string(out_w) +
                                          ": sizes must be positive and the grid non-null");
  }
  // Source coordinate of output pixel o: (o + 0.5) * in / out - 0.5, clamped to [0, in - 1].
  struct Tap {
    int i0, i1;
    float w1;
  };
  auto taps = [](int in, int out) {
    std::vector<Tap> t(static_cast<size_t>(out));
    const double scale = static_cast<double>(in) / out;
    for (int o = 0; o < out; ++o) {
      double s = (o + 0.5) * scale - 0.5;
      s = std::min(std::max(s, 0.0), static_cast<double>(in - 1));
      const int i0 = static_cast<int>(std::floor(s));
      const int i1 = std::min(i0 + 1, in - 1);
      t[static_cast<size_t>(o)] = {i0, i1, static_cast<float>(s - i0)};
    }
    return t;
  };
  const std::vector<Tap> ty = taps(gh, out_h), tx = taps(gw, out_w);
  std::vector<float> out(static_cast<size_t>(out_h) * out_w);
  for (int y = 0; y < out_h; ++y) {
    const Tap& a = ty[static_cast<size_t>(y)];
    const float* r0 = grid + static_cast<int64_t>(a.i0) * gw;
    const float* r1 = grid + static_cast<int64_t>(a.i1) * gw;
    for (int x = 0; x < out_w; ++x) {
      const Tap& b = tx[static_cast<size_t>(x)];
      const float top = r0[b.i0] + (r0[b.i1] - r0[b.i0]) * b.w1;
      const float bot = r1[b.i0] + (r1[b.i1] - r1[b.i0]) * b.w1;
      out[static_cast<size_t>(y) * out_w + x] = top + (bot - top) * a.w1;
    }
  }
  return out;
}

void normalize_unit(std::vector<float>& v) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (float x : v) {
    if (!std::isfinite(x)) continue;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  if (!(hi > lo)) {
    std::fill(v.begin(), v.end(), 0.0f);
    return;
  }
  const float inv = 1.0f / (hi - lo);
  for (float& x : v) x = std::isfinite(x) ? std::min(1.0f, std::max(0.0f, (x - lo) * inv)) : 0.0f;
}

const uint8_t (&inferno_table())[256][3] {
  // matplotlib _cm_listed._inferno_data (van der Walt & Smith), each channel round(255 * v).
  static const uint8_t kTable[256][3] = {
    {0,0,4}, {1,0,5}, {1,1,6}, {1,1,8}, {2,1,10}, {2,2,12}, {2,2,14}, {3,2,16}, {4,3,18}, {4,3,20},
    {5,4,23}, {6,4,25}, {7,5,27}, {8,5,29}, {9,6,31}, {10,7,34}, {11,7,36}, {12,8,38}, {13,8,41},
    {14,9,43}, {16,9,45}, {17,10,48}, {18,10,50}, {20,11,52}, {21,11,55}, {22,11,57}, {24,12,60},
    {25,12,62}, {27,12,65}, {28,12,67}, {30,12,69}, {31,12,72}, {33,12,74}, {35,12,76}, {36,12,79},
    {38,12,81}, {40,11,83}, {41,11,85}, {43,11,87}, {45,11,89}, {47,10,91}, {49,10,92}, {50,10,94},
    {52,10,95}, {54,9,97}, {56,9,98}, {57,9,99}, {59,9,100}, {61,9,101}, {62,9,102}, {64,10,103},
    {66,10,104}, {68,10,104}, {69,10,105}, {71,11,106}, {73,11,106}, {74,12,107}, {76,12,107},
    {77,13,108}, {79,13,108}, {81,14,108}, {82,14,109}, {84,15,109}, {85,15,109}, {87,16,110},
    {89,16,110}, {90,17,110}, {92,18,110}, {93,18,110}, {95,19,110}, {97,19,110}, {98,20,110},
    {100,21,110}, {101,21,110}, {103,22,110}, {105,22,110}, {106,23,110}, {108,24,110},
    {109,24,110}, {111,25,110}, {113,25,110}, {114,26,110}, {116,26,110}, {117,27,110},
    {119,28,109}, {120,28,109}, {122,29,109}, {124,29,109}, {125,30,109}, {127,30,108},
    {128,31,108}, {130,32,108}, {132,32,107}, {133,33,107}, {135,33,107}, {136,34,106},
    {138,34,106}, {140,35,105}, {141,35,105}, {143,36,105}, {144,37,104}, {146,37,104},
    {147,38,103}, {149,38,103}, {151,39,102}, {152,39,102}, {154,40,101}, {155,41,100},
    {157,41,100}, {159,42,99}, {160,42,99}, {162,43,98}, {163,44,97}, {165,44,96}, {166,45,96},
    {168,46,95}, {169,46,94}, {171,47,94}, {173,48,93}, {174,48,92}, {176,49,91}, {177,50,90},
    {179,50,90}, {180,51,89}, {182,52,88}, {183,53,87}, {185,53,86}, {186,54,85}, {188,55,84},
    {189,56,83}, {191,57,82}, {192,58,81}, {193,58,80}, {195,59,79}, {196,60,78}, {198,61,77},
    {199,62,76}, {200,63,75}, {202,64,74}, {203,65,73}, {204,66,72}, {206,67,71}, {207,68,70},
    {208,69,69}, {210,70,68}, {211,71,67}, {212,72,66}, {213,74,65}, {215,75,63}, {216,76,62},
    {217,77,61}, {218,78,60}, {219,80,59}, {221,81,58}, {222,82,56}, {223,83,55}, {224,85,54},
    {225,86,53}, {226,87,52}, {227,89,51}, {228,90,49}, {229,92,48}, {230,93,47}, {231,94,46},
    {232,96,45}, {233,97,43}, {234,99,42}, {235,100,41}, {235,102,40}, {236,103,38}, {237,105,37},
    {238,106,36}, {239,108,35}, {239,110,33}, {240,111,32}, {241,113,31}, {241,115,29},
    {242,116,28}, {243,118,27}, {243,120,25}, {244,121,24}, {245,123,23}, {245,125,21},
    {246,126,20}, {246,128,19}, {247,130,18}, {247,132,16}, {248,133,15}, {248,135,14},
    {248,137,12}, {249,139,11}, {249,140,10}, {249,142,9}, {250,144,8}, {250,146,7}, {250,148,7},
    {251,150,6}, {251,151,6}, {251,153,6}, {251,155,6}, {251,157,7}, {252,159,7}, {252,161,8},
    {252,163,9}, {252,165,10}, {252,166,12}, {252,168,13}, {252,170,15}, {252,172,17}, {252,174,18},
    {252,176,20}, {252,178,22}, {252,180,24}, {251,182,26}, {251,184,29}, {251,186,31},
    {251,188,33}, {251,190,35}, {250,192,38}, {250,194,40}, {250,196,42}, {250,198,45},
    {249,199,47}, {249,201,50}, {249,203,53}, {248,205,55}, {248,207,58}, {247,209,61},
    {247,211,64}, {246,213,67}, {246,215,70}, {245,217,73}, {245,219,76}, {244,221,79},
    {244,223,83}, {244,225,86}, {243,227,90}, {243,229,93}, {242,230,97}, {242,232,101},
    {242,234,105}, {241,236,109}, {241,237,113}, {241,239,117}, {241,241,121}, {242,242,125},
    {242,244,130}, {243,245,134}, {243,246,138}, {244,248,142}, {245,249,146}, {246,250,150},
    {248,251,154}, {249,252,157}, {250,253,161}, {252,255,164},
  };
  return kTable;
}

void inferno(float v, uint8_t rgb[3]) {
  if (!(v > 0.0f)) v = 0.0f;  // also NaN
  if (v > 1.0f) v = 1.0f;
  const int i = static_cast<int>(std::lround(v * 255.0f));
  const uint8_t* c = inferno_table()[i];
  rgb[0] = c[0];
  rgb[1] = c[1];
  rgb[2] = c[2];
}

Image scale_nearest(const Image& img, int factor) {
  if (factor < 1) fail(ErrorCode::kInvalidArgument, "scale_nearest: factor " + std::to_string(factor) + " < 1");
  Image out;
  out.w = img.w * factor;
  out.h = img.h * factor;
  out.rgb.resize(static_cast<size_t>(out.w) * out.h * 3);
  for (int y = 0; y < out.h; ++y) {
    const uint8_t* src = &img.rgb[static_cast<size_t>(y / factor) * img.w * 3];
    uint8_t* dst = &out.rgb[static_cast<size_t>(y) * out.w * 3];
    for (int x = 0; x < out.w; ++x) std::copy(src + (x / factor) * 3, src + (x / factor) * 3 + 3, dst + x * 3);
  }
  return out;
}

Image overlay_heatmap(const Image& img, const std::vector<float>& heat, float alpha) {
  const size_t px = static_cast<size_t>(img.w) * img.h;
  if (heat.size() != px || img.rgb.size() != px * 3) {
    fail(ErrorCode::kInvalidArgument, "overlay_heatmap: heat has " + std::to_string(heat.size()) +
                                          " values for a " + std::to_string(img.w) + "x" + std::to_string(img.h) +
                                          " image");
  }
  if (!(alpha >= 0.0f && alpha <= 1.0f))
    fail(ErrorCode::kInvalidArgument, "overlay_heatmap: alpha " + std::to_string(alpha) + " not in [0, 1]");
  Image out = img;
  for (size_t i = 0; i < px; ++i) {
    uint8_t c[3];
    inferno(heat[i], c);
    for (int k = 0; k < 3; ++k) {
      const float v = (1.0f - alpha) * img.rgb[3 * i + k] + alpha * c[k];
      out.rgb[3 * i + k] = static_cast<uint8_t>(std::lround(std::min(255.0f, std::max(0.0f, v))));
    }
  }
  return out;
}

Image hstack(const std::vector<Image>& images, int gap, uint8_t fill) {
  if (images.empty()) fail(ErrorCode::kInvalidArgument, "hstack: no images");
  if (gap < 0) fail(ErrorCode::kInvalidArgument, "hstack: negative gap");
  Image out;
  for (const Image& im : images) {
    out.w += im.w;
    out.h = std::max(out.h, im.h);
  }
  out.w += gap * static_cast<int>(images.size() - 1);
  out.rgb.assign(static_cast<size_t>(out.w) * out.h * 3, fill);
  int x0 = 0;
  for (const Image& im : images) {
    for (int y = 0; y < im.h; ++y) {
      const uint8_t* src = &im.rgb[static_cast<size_t>(y) * im.w * 3];
      std::copy(src, src + static_cast<size_t>(im.w) * 3, &out.rgb[(static_cast<size_t>(y) * out.w + x0) * 3]);
    }
    x0 += im.w + gap;
  }
  return out;
}

Image attention_panel(const Image& shown, const float* patch_map, int gh, int gw, float alpha) {
  std::vector<float> heat = upsample_bilinear(patch_map, gh, gw, shown.h, shown.w);
  normalize_unit(heat);
  return overlay_heatmap(shown, heat, alpha);
}

}  // namespace vit
