// vit-infer tests: random in-memory ViT models (see model_fixture.h for the value ranges).
#include "model_fixture.h"

#include <cmath>
#include <random>

namespace vit::test {

namespace {

struct Filler {
  std::mt19937_64 rng;
  explicit Filler(uint64_t seed) : rng(seed) {}
  Tensor uniform(std::vector<int64_t> shape, float lo, float hi) {
    Tensor t(std::move(shape));
    std::uniform_real_distribution<float> dist(lo, hi);
    for (float& v : t.data) v = dist(rng);
    return t;
  }
  Tensor linear_w(int64_t out, int64_t in, float s) {
    const float a = s * std::sqrt(3.0f / static_cast<float>(in));
    return uniform({out, in}, -a, a);
  }
  Tensor bias(int64_t n, float s) { return uniform({n}, -0.2f * s, 0.2f * s); }
  void layer_norm(int64_t n, Tensor* w, Tensor* b) {
    *w = uniform({n}, 0.8f, 1.2f);
    *b = uniform({n}, -0.2f, 0.2f);
  }
};

}  // namespace

std::shared_ptr<Model> random_model(const ViTConfig& cfg, uint64_t seed, float scale) {
  auto m = std::make_shared<Model>();
  m->cfg = cfg;
  m->source_path = "<random_model seed " + std::to_string(seed) + ">";
  Filler f(seed);
  const int64_t D = cfg.hidden, I = cfg.mlp_hidden, T = cfg.tokens();
  const int64_t K = int64_t{cfg.in_chans} * cfg.patch * cfg.patch;
  ViTWeights& w = m->w;
  w.patch_w = f.linear_w(D, K, scale);
  w.patch_b = f.bias(D, scale);
  w.cls = f.uniform({D}, -scale, scale);
  w.pos = f.uniform({T, D}, -scale, scale);
  w.blocks.resize(static_cast<size_t>(cfg.depth));
  for (BlockWeights& b : w.blocks) {
    f.layer_norm(D, &b.ln1_w, &b.ln1_b);
    b.qkv_w = f.linear_w(3 * D, D, scale);
    b.qkv_b = f.bias(3 * D, scale);
    b.proj_w = f.linear_w(D, D, scale);
    b.proj_b = f.bias(D, scale);
    f.layer_norm(D, &b.ln2_w, &b.ln2_b);
    b.fc1_w = f.linear_w(I, D, scale);
    b.fc1_b = f.bias(I, scale);
    b.fc2_w = f.linear_w(D, I, scale);
    b.fc2_b = f.bias(D, scale);
    if (cfg.layer_scale) {  // far from timm's init 1e-5, and signed, so a wrong gamma shows
      b.ls1 = f.uniform({D}, -1.5f, 1.5f);
      b.ls2 = f.uniform({D}, -1.5f, 1.5f);
    }
  }
  if (cfg.final_norm) f.layer_norm(D, &w.norm_w, &w.norm_b);
  if (cfg.fc_norm) f.layer_norm(D, &w.fc_norm_w, &w.fc_norm_b);
  if (cfg.num_classes > 0) {
    w.head_w = f.linear_w(cfg.num_classes, D, scale);
    w.head_b = f.bias(cfg.num_classes, scale);
  }
  return m;
}

ViTConfig small_config(int image_h, int image_w, int patch, int hidden, int heads, int depth,
                       int num_classes) {
  ViTConfig c;
  c.image_h = image_h;
  c.image_w = image_w;
  c.patch = patch;
  c.hidden = hidden;
  c.heads = heads;
  c.depth = depth;
  c.mlp_hidden = 2 * hidden;
  c.num_classes = num_classes;
  c.ckpt_grid_h = c.grid_h();
  c.ckpt_grid_w = c.grid_w();
  c.architecture = "random";
  return c;
}

}  // namespace vit::test
