// vit-infer benchmarks: random_vit (see random_model.h). A xorshift generator keeps the
// 86M-parameter ViT-B fill well under a second; the values only need to be non-degenerate.
#include "random_model.h"

#include <cmath>
#include <string>
#include <vector>

namespace vit::bench {

namespace {

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 0x1234567ull) {
    if (s_ == 0) s_ = 1;
  }
  float uniform(float lo, float hi) {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return lo + (hi - lo) * static_cast<float>(s_ >> 40) * (1.0f / 16777216.0f);
  }
  Tensor tensor(std::vector<int64_t> shape, float lo, float hi) {
    Tensor t(std::move(shape));
    for (float& v : t.data) v = uniform(lo, hi);
    return t;
  }
  Tensor linear(int64_t out, int64_t in) {
    const float a = std::sqrt(3.0f / static_cast<float>(in));
    return tensor({out, in}, -a, a);
  }
  void layer_norm(int64_t n, Tensor* w, Tensor* b) {
    *w = tensor({n}, 0.8f, 1.2f);
    *b = tensor({n}, -0.1f, 0.1f);
  }

 private:
  uint64_t s_;
};

}  // namespace

std::shared_ptr<Model> random_vit(const ViTConfig& cfg, uint64_t seed) {
  auto m = std::make_shared<Model>();
  m->cfg = cfg;
  m->source_path = "<random weights, seed " + std::to_string(seed) + ">";
  Rng r(seed);
  const int64_t D = cfg.hidden, I = cfg.mlp_hidden, T = cfg.tokens();
  const int64_t K = int64_t{cfg.in_chans} * cfg.patch * cfg.patch;
  ViTWeights& w = m->w;
  w.patch_w = r.linear(D, K);
  w.patch_b = r.tensor({D}, -0.1f, 0.1f);
  w.cls = r.tensor({D}, -0.5f, 0.5f);
  w.pos = r.tensor({T, D}, -0.5f, 0.5f);
  w.blocks.resize(static_cast<size_t>(cfg.depth));
  for (BlockWeights& b : w.blocks) {
    r.layer_norm(D, &b.ln1_w, &b.ln1_b);
    b.qkv_w = r.linear(3 * D, D);
    b.qkv_b = r.tensor({3 * D}, -0.1f, 0.1f);
    b.proj_w = r.linear(D, D);
    b.proj_b = r.tensor({D}, -0.1f, 0.1f);
    r.layer_norm(D, &b.ln2_w, &b.ln2_b);
    b.fc1_w = r.linear(I, D);
    b.fc1_b = r.tensor({I}, -0.1f, 0.1f);
    b.fc2_w = r.linear(D, I);
    b.fc2_b = r.tensor({D}, -0.1f, 0.1f);
  }
  if (cfg.final_norm) r.layer_norm(D, &w.norm_w, &w.norm_b);
  if (cfg.fc_norm) r.layer_norm(D, &w.fc_norm_w, &w.fc_norm_b);
  if (cfg.num_classes > 0) {
    w.head_w = r.linear(cfg.num_classes, D);
    w.head_b = r.tensor({cfg.num_classes}, -0.1f, 0.1f);
  }
  return m;
}

}  // namespace vit::bench
