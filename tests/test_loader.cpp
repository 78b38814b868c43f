// vit-infer tests: load_model on synthetic checkpoints. A random timm-layout weight set is
// converted to the HF and JAX layouts by the inverse of the documented mapping
// (vit-reference.md §2, written out index by index here), saved with write_safetensors /
// write_npz, loaded, and required to give bit-identical internal weights. Config precedence,
// every loader error (code + message fragment) and the NaN warning are covered too.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <string>
#include <tuple>
#include <vector>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/npz.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "test_util.h"

namespace vit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Shape = std::vector<int64_t>;
using TensorMap = std::map<std::string, Tensor>;

template <class F>
void expect_error(F&& f, ErrorCode code, std::initializer_list<std::string> fragments) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected " << error_code_name(code);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), code) << msg;
    for (const std::string& frag : fragments) {
      EXPECT_NE(msg.find(frag), std::string::npos) << "expected '" << frag << "' in: " << msg;
    }
  }
}

// A small ViT: width D, mlp I, patch P, C classes, Ci channels, gh x gw stored pos grid.
struct Spec {
  int64_t D = 32, depth = 2, I = 48, P = 4, C = 5, Ci = 3, gh = 3, gw = 3;
  bool qkv_bias = true;
  bool fc_norm = false;  // timm avg-pool fine-tune: fc_norm.* instead of norm.*
};

TensorMap make_timm(const Spec& s) {
  TensorMap m;
  auto r = [&](const std::string& n, Shape sh) { m[n] = test::random_tensor(std::move(sh)); };
  const int64_t D = s.D;
  r("cls_token", {1, 1, D});
  r("pos_embed", {1, 1 + s.gh * s.gw, D});
  r("patch_embed.proj.weight", {D, s.Ci, s.P, s.P});
  r("patch_embed.proj.bias", {D});
  for (int64_t i = 0; i < s.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    r(b + "norm1.weight", {D});
    r(b + "norm1.bias", {D});
    r(b + "attn.qkv.weight", {3 * D, D});
    if (s.qkv_bias) r(b + "attn.qkv.bias", {3 * D});
    r(b + "attn.proj.weight", {D, D});
    r(b + "attn.proj.bias", {D});
    r(b + "norm2.weight", {D});
    r(b + "norm2.bias", {D});
    r(b + "mlp.fc1.weight", {s.I, D});
    r(b + "mlp.fc1.bias", {s.I});
    r(b + "mlp.fc2.weight", {D, s.I});
    r(b + "mlp.fc2.bias", {D});
  }
  const std::string norm = s.fc_norm ? "fc_norm." : "norm.";
  r(norm + "weight", {D});
  r(norm + "bias", {D});
  if (s.C > 0) {
    r("head.weight", {s.C, D});
    r("head.bias", {s.C});
  }
  return m;
}

Tensor rows(const Tensor& t, int64_t r0, int64_t r1, int64_t cols) {
  Tensor o(cols > 1 ? Shape{r1 - r0, cols} : Shape{r1 - r0});
  std::copy(t.data.begin() + r0 * cols, t.data.begin() + r1 * cols, o.data.begin());
  return o;
}

// blocks.N.* -> "<pre>N.<module>.{weight,bias}" for HF-style layouts: attn.qkv split into the
// three q / k / v modules, the other modules renamed one to one (`same`: timm -> HF).
void split_qkv_blocks(const TensorMap& t, const Spec& s, const std::string& pre, const std::array<const char*, 3>& qkv,
                      std::initializer_list<std::pair<const char*, const char*>> same, TensorMap* m) {
  const int64_t D = s.D;
  for (int64_t i = 0; i < s.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    const std::string h = pre + std::to_string(i) + ".";
    for (int k = 0; k < 3; ++k) {
      (*m)[h + qkv[k] + ".weight"] = rows(t.at(b + "attn.qkv.weight"), k * D, (k + 1) * D, D);
      if (s.qkv_bias) (*m)[h + qkv[k] + ".bias"] = rows(t.at(b + "attn.qkv.bias"), k * D, (k + 1) * D, 1);
    }
    for (const auto& [from, to] : same) {
      (*m)[h + to + ".weight"] = t.at(b + from + ".weight");
      (*m)[h + to + ".bias"] = t.at(b + from + ".bias");
    }
  }
}

TensorMap timm_to_hf(const TensorMap& t, const Spec& s, const std::string& p) {
  TensorMap m;
  m[p + "embeddings.cls_token"] = t.at("cls_token");
  m[p + "embeddings.position_embeddings"] = t.at("pos_embed");
  m[p + "embeddings.patch_embeddings.projection.weight"] = t.at("patch_embed.proj.weight");
  m[p + "embeddings.patch_embeddings.projection.bias"] = t.at("patch_embed.proj.bias");
  split_qkv_blocks(t, s, p + "encoder.layer.",
                   {"attention.attention.query", "attention.attention.key", "attention.attention.value"},
                   {{"attn.proj", "attention.output.dense"}, {"norm1", "layernorm_before"}, {"norm2", "layernorm_after"},
                    {"mlp.fc1", "intermediate.dense"}, {"mlp.fc2", "output.dense"}},
                   &m);
  m[p + "layernorm.weight"] = t.at("norm.weight");
  m[p + "layernorm.bias"] = t.at("norm.bias");
  if (s.C > 0) {
    m["classifier.weight"] = t.at("head.weight");
    m["classifier.bias"] = t.at("head.bias");
  }
  return m;
}

TensorMap timm_to_jax(const TensorMap& t, const Spec& s, int64_t H) {
  TensorMap m;
  const int64_t D = s.D, P = s.P, Ci = s.Ci, I = s.I, C = s.C, hd = D / H;
  {
    const Tensor& w = t.at("patch_embed.proj.weight");  // [D, Ci, P, P]
    Tensor k({P, P, Ci, D});
    for (int64_t d = 0; d < D; ++d)
      for (int64_t c = 0; c < Ci; ++c)
        for (int64_t y = 0; y < P; ++y)
          for (int64_t x = 0; x < P; ++x) k.data[((y * P + x) * Ci + c) * D + d] = w.data[((d * Ci + c) * P + y) * P + x];
    m["embedding/kernel"] = k;
  }
  m["embedding/bias"] = t.at("patch_embed.proj.bias");
  m["cls"] = t.at("cls_token");
  m["Transformer/posembed_input/pos_embedding"] = t.at("pos_embed");
  auto kernT = [](const Tensor& w, int64_t out, int64_t in, Shape shape) {  // [out, in] -> [in, out]
    Tensor k(std::move(shape));
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) k.data[i * out + o] = w.data[o * in + i];
    return k;
  };
  for (int64_t i = 0; i < s.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    const std::string j = "Transformer/encoderblock_" + std::to_string(i) + "/";
    const std::string a = j + "MultiHeadDotProductAttention_1/";
    m[j + "LayerNorm_0/scale"] = t.at(b + "norm1.weight");
    m[j + "LayerNorm_0/bias"] = t.at(b + "norm1.bias");
    const char* qkv[] = {"query", "key", "value"};
    for (int q = 0; q < 3; ++q) {
      // kernel[i, h, j] = W_q[h*hd + j, i]
      const Tensor wq = rows(t.at(b + "attn.qkv.weight"), q * D, (q + 1) * D, D);
      Tensor k({D, H, hd});
      for (int64_t in = 0; in < D; ++in)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t e = 0; e < hd; ++e) k.data[(in * H + h) * hd + e] = wq.data[(h * hd + e) * D + in];
      m[a + qkv[q] + "/kernel"] = k;
      Tensor bq = rows(t.at(b + "attn.qkv.bias"), q * D, (q + 1) * D, 1);
      bq.shape = {H, hd};
      m[a + qkv[q] + "/bias"] = bq;
    }
    {
      // out kernel[h, j, o] = proj[o, h*hd + j]
      const Tensor& w = t.at(b + "attn.proj.weight");
      Tensor k({H, hd, D});
      for (int64_t h = 0; h < H; ++h)
        for (int64_t e = 0; e < hd; ++e)
          for (int64_t o = 0; o < D; ++o) k.data[(h * hd + e) * D + o] = w.data[o * D + h * hd + e];
      m[a + "out/kernel"] = k;
    }
    m[a + "out/bias"] = t.at(b + "attn.proj.bias");
    m[j + "LayerNorm_2/scale"] = t.at(b + "norm2.weight");
    m[j + "LayerNorm_2/bias"] = t.at(b + "norm2.bias");
    m[j + "MlpBlock_3/Dense_0/kernel"] = kernT(t.at(b + "mlp.fc1.weight"), I, D, {D, I});
    m[j + "MlpBlock_3/Dense_0/bias"] = t.at(b + "mlp.fc1.bias");
    m[j + "MlpBlock_3/Dense_1/kernel"] = kernT(t.at(b + "mlp.fc2.weight"), D, I, {I, D});
    m[j + "MlpBlock_3/Dense_1/bias"] = t.at(b + "mlp.fc2.bias");
  }
  m["Transformer/encoder_norm/scale"] = t.at("norm.weight");
  m["Transformer/encoder_norm/bias"] = t.at("norm.bias");
  if (C > 0) {
    m["head/kernel"] = kernT(t.at("head.weight"), C, D, {D, C});
    m["head/bias"] = t.at("head.bias");
  }
  return m;
}

void save_st(const std::string& path, const TensorMap& m, DType storage = DType::F32) {
  std::vector<std::pair<std::string, const Tensor*>> v;
  for (const auto& [n, t] : m) v.emplace_back(n, &t);
  write_safetensors(path, v, storage);
}

void save_json(const std::string& path, const json& j) {
  std::ofstream f(path);
  f << j.dump(2);
}

// A fresh directory holding `file` (model.safetensors / *.npz) and an optional config.json.
std::string make_dir(const TensorMap& m, const std::string& file = "model.safetensors", const json& cfg = nullptr) {
  const std::string dir = test::temp_dir();
  if (file.size() > 4 && file.substr(file.size() - 4) == ".npz") {
    write_npz(dir + "/" + file, m);
  } else {
    save_st(dir + "/" + file, m);
  }
  if (!cfg.is_null()) save_json(dir + "/config.json", cfg);
  return dir;
}

ConfigOverrides heads(int h) {
  ConfigOverrides o;
  o.heads = h;
  return o;
}

bool has_warning(const Model& m, const std::string& fragment) {
  for (const std::string& w : m.warnings)
    if (w.find(fragment) != std::string::npos) return true;
  return false;
}

void expect_tensor_eq(const Tensor& got, const Tensor& want, Shape shape, const std::string& what) {
  EXPECT_EQ(got.shape, shape) << what;
  ASSERT_EQ(got.data.size(), want.data.size()) << what;
  EXPECT_TRUE(got.data == want.data) << what << ": values differ";
}

// The internal weights must be the timm tensors, reshaped as model.h documents.
void expect_matches_timm(const Model& m, const TensorMap& t, const Spec& s) {
  const int64_t D = s.D;
  const ViTWeights& w = m.w;
  expect_tensor_eq(w.patch_w, t.at("patch_embed.proj.weight"), {D, s.Ci * s.P * s.P}, "patch_w");
  expect_tensor_eq(w.patch_b, t.at("patch_embed.proj.bias"), {D}, "patch_b");
  expect_tensor_eq(w.cls, t.at("cls_token"), {D}, "cls");
  expect_tensor_eq(w.pos, t.at("pos_embed"), {1 + s.gh * s.gw, D}, "pos");
  ASSERT_EQ(static_cast<int64_t>(w.blocks.size()), s.depth);
  for (int64_t i = 0; i < s.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    const BlockWeights& k = w.blocks[i];
    expect_tensor_eq(k.ln1_w, t.at(b + "norm1.weight"), {D}, b + "ln1_w");
    expect_tensor_eq(k.ln1_b, t.at(b + "norm1.bias"), {D}, b + "ln1_b");
    expect_tensor_eq(k.qkv_w, t.at(b + "attn.qkv.weight"), {3 * D, D}, b + "qkv_w");
    if (s.qkv_bias) {
      expect_tensor_eq(k.qkv_b, t.at(b + "attn.qkv.bias"), {3 * D}, b + "qkv_b");
    } else {
      expect_tensor_eq(k.qkv_b, Tensor({3 * D}), {3 * D}, b + "qkv_b zeros");
    }
    expect_tensor_eq(k.proj_w, t.at(b + "attn.proj.weight"), {D, D}, b + "proj_w");
    expect_tensor_eq(k.proj_b, t.at(b + "attn.proj.bias"), {D}, b + "proj_b");
    expect_tensor_eq(k.ln2_w, t.at(b + "norm2.weight"), {D}, b + "ln2_w");
    expect_tensor_eq(k.ln2_b, t.at(b + "norm2.bias"), {D}, b + "ln2_b");
    expect_tensor_eq(k.fc1_w, t.at(b + "mlp.fc1.weight"), {s.I, D}, b + "fc1_w");
    expect_tensor_eq(k.fc1_b, t.at(b + "mlp.fc1.bias"), {s.I}, b + "fc1_b");
    expect_tensor_eq(k.fc2_w, t.at(b + "mlp.fc2.weight"), {D, s.I}, b + "fc2_w");
    expect_tensor_eq(k.fc2_b, t.at(b + "mlp.fc2.bias"), {D}, b + "fc2_b");
  }
  if (s.fc_norm) {
    EXPECT_TRUE(w.norm_w.empty());
    expect_tensor_eq(w.fc_norm_w, t.at("fc_norm.weight"), {D}, "fc_norm_w");
    expect_tensor_eq(w.fc_norm_b, t.at("fc_norm.bias"), {D}, "fc_norm_b");
  } else {
    EXPECT_TRUE(w.fc_norm_w.empty());
    expect_tensor_eq(w.norm_w, t.at("norm.weight"), {D}, "norm_w");
    expect_tensor_eq(w.norm_b, t.at("norm.bias"), {D}, "norm_b");
  }
  if (s.C > 0) {
    expect_tensor_eq(w.head_w, t.at("head.weight"), {s.C, D}, "head_w");
    expect_tensor_eq(w.head_b, t.at("head.bias"), {s.C}, "head_b");
  } else {
    EXPECT_TRUE(w.head_w.empty());
    EXPECT_TRUE(w.head_b.empty());
  }
  const ViTConfig& c = m.cfg;
  EXPECT_EQ(c.hidden, D);
  EXPECT_EQ(c.depth, s.depth);
  EXPECT_EQ(c.mlp_hidden, s.I);
  EXPECT_EQ(c.patch, s.P);
  EXPECT_EQ(c.in_chans, s.Ci);
  EXPECT_EQ(c.num_classes, s.C);
  EXPECT_EQ(c.ckpt_grid_h, s.gh);
  EXPECT_EQ(c.ckpt_grid_w, s.gw);
  EXPECT_EQ(c.image_h, s.gh * s.P);
  EXPECT_EQ(c.image_w, s.gw * s.P);
  EXPECT_EQ(c.qkv_bias, s.qkv_bias);
}

// ---- mapping -------------------------------------------------------------------------------

TEST(Loader, TimmHfJaxGiveIdenticalWeights) {
  Spec s;
  s.gh = 3;
  s.gw = 2;  // non-square grid: only accepted because config.json / image size says 12x8
  const TensorMap timm = make_timm(s);
  json img = {{"architecture", "my_vit"}, {"pretrained_cfg", {{"input_size", {3, 12, 8}}}}};
  json hf = {{"model_type", "vit"}, {"num_attention_heads", 4}, {"image_size", {12, 8}}};

  auto mt = load_model(make_dir(timm, "model.safetensors", img), heads(4));
  auto mh = load_model(make_dir(timm_to_hf(timm, s, "vit."), "weights.safetensors", hf));
  auto mj = load_model(make_dir(timm_to_jax(timm, s, 4), "ViT-X.npz", hf));
  for (const Model* m : {mt.get(), mh.get(), mj.get()}) {
    SCOPED_TRACE(m->cfg.layout);
    expect_matches_timm(*m, timm, s);
    EXPECT_EQ(m->cfg.heads, 4);
    EXPECT_EQ(m->cfg.pool, GlobalPool::kToken);
    EXPECT_TRUE(m->cfg.final_norm);
    EXPECT_FALSE(m->cfg.fc_norm);
  }
  EXPECT_EQ(mt->cfg.layout, "timm");
  EXPECT_EQ(mh->cfg.layout, "hf");
  EXPECT_EQ(mj->cfg.layout, "jax");
  EXPECT_EQ(mh->source_path, fs::path(mh->source_path).parent_path().string() + "/weights.safetensors");
}

TEST(Loader, JaxHeadsFromShapesAndDefaults) {
  Spec s;
  const TensorMap timm = make_timm(s);
  const std::string dir = make_dir(timm_to_jax(timm, s, 8), "ViT.npz");
  auto m = load_model(dir + "/ViT.npz");  // a file path, no config: heads from the kernel shape
  expect_matches_timm(*m, timm, s);
  EXPECT_EQ(m->cfg.heads, 8);
  EXPECT_FLOAT_EQ(m->cfg.ln_eps, 1e-6f);
  EXPECT_EQ(m->cfg.preprocess.resize, PreprocessConfig::Resize::kDirect);
  EXPECT_EQ(m->cfg.preprocess.interpolation, "bilinear");
  EXPECT_FLOAT_EQ(m->cfg.preprocess.mean[0], 0.5f);
  EXPECT_EQ(m->cfg.preprocess.input_h, 12);
  // An override that disagrees with the stored head split is a shape error on the kernel.
  expect_error([&] { load_model(dir, heads(4)); }, ErrorCode::kFormat,
               {"Transformer/encoderblock_0/MultiHeadDotProductAttention_1/key/bias", "[8, 4]", "expected [4, 8]"});
}

TEST(Loader, HfBareViTModelWithPooler) {
  Spec s;
  s.C = 0;
  const TensorMap timm = make_timm(s);
  TensorMap hf = timm_to_hf(timm, s, "");
  hf["pooler.dense.weight"] = test::random_tensor({s.D, s.D});
  hf["pooler.dense.bias"] = test::random_tensor({s.D});
  auto m = load_model(make_dir(hf), heads(2));
  expect_matches_timm(*m, timm, s);
  EXPECT_EQ(m->cfg.num_classes, 0);
  EXPECT_FLOAT_EQ(m->cfg.ln_eps, 1e-12f);  // HF default without config.json
  EXPECT_EQ(m->cfg.preprocess.interpolation, "bilinear");
  EXPECT_TRUE(m->warnings.empty());
}

TEST(Loader, NoQkvBias) {
  Spec s;
  s.qkv_bias = false;
  const TensorMap timm = make_timm(s);
  expect_matches_timm(*load_model(make_dir(timm), heads(4)), timm, s);
  expect_matches_timm(*load_model(make_dir(timm_to_hf(timm, s, "vit.")), heads(4)), timm, s);
  // config.json insisting on qkv_bias=true makes the biases missing tensors
  expect_error([&] { load_model(make_dir(timm_to_hf(timm, s, "vit."), "model.safetensors",
                                         {{"model_type", "vit"}, {"num_attention_heads", 4}, {"qkv_bias", true}})); },
               ErrorCode::kFormat, {"missing", "vit.encoder.layer.0.attention.attention.key.bias"});
}

// LayerScale (timm init_values): blocks.N.ls1.gamma / ls2.gamma are read into the block's
// ls1 / ls2 and flag the config; a block missing one of them is a missing tensor.
TEST(Loader, TimmLayerScale) {
  Spec s;
  TensorMap timm = make_timm(s);
  for (int64_t i = 0; i < s.depth; ++i)
    for (const char* g : {"ls1.gamma", "ls2.gamma"})
      timm["blocks." + std::to_string(i) + "." + g] = test::random_tensor({s.D});
  json cfg = {{"architecture", "vit_ls"}, {"model_args", {{"init_values", 1e-5}, {"num_heads", 4}}},
              {"pretrained_cfg", {{"input_size", {3, 12, 12}}}}};
  auto m = load_model(make_dir(timm, "model.safetensors", cfg));
  expect_matches_timm(*m, timm, s);
  EXPECT_TRUE(m->cfg.layer_scale);
  for (int64_t i = 0; i < s.depth; ++i) {
    const BlockWeights& b = m->w.blocks[static_cast<size_t>(i)];
    EXPECT_EQ(b.ls1.data, timm.at("blocks." + std::to_string(i) + ".ls1.gamma").data);
    EXPECT_EQ(b.ls2.data, timm.at("blocks." + std::to_string(i) + ".ls2.gamma").data);
  }
  EXPECT_NE(m->cfg.describe().find("LayerScale"), std::string::npos) << m->cfg.describe();
  EXPECT_FALSE(load_model(make_dir(make_timm(s)), heads(4))->cfg.layer_scale);
  timm.erase("blocks.1.ls2.gamma");
  expect_error([&] { load_model(make_dir(timm), heads(4)); }, ErrorCode::kFormat, {"missing", "blocks.1.ls2.gamma"});
}

TEST(Loader, HalfPrecisionStorage) {
  Spec s;
  const TensorMap timm = make_timm(s);
  const std::string dir = test::temp_dir();
  save_st(dir + "/model.safetensors", timm, DType::BF16);
  auto m = load_model(dir, heads(4));
  TensorMap rounded = timm;
  for (auto& [n, t] : rounded)
    for (float& v : t.data) v = bf16_to_float(float_to_bf16(v));
  expect_matches_timm(*m, rounded, s);
}

TEST(Loader, TimmAvgPoolFcNorm) {
  Spec s;
  s.fc_norm = true;
  const TensorMap timm = make_timm(s);
  json cfg = {{"architecture", "vit_custom"},
              {"num_classes", s.C},
              {"global_pool", "avg"},
              {"model_args", {{"global_pool", "avg"}, {"fc_norm", true}, {"num_heads", 2}}},
              {"pretrained_cfg",
               {{"input_size", {3, 12, 12}}, {"interpolation", "bicubic"}, {"crop_pct", 0.95}, {"crop_mode", "center"},
                {"mean", {0.485, 0.456, 0.406}}, {"std", {0.229, 0.224, 0.225}}}},
              {"label_names", {"a", "b", "c", "d", "e"}}};
  auto m = load_model(make_dir(timm, "model.safetensors", cfg));
  expect_matches_timm(*m, timm, s);
  EXPECT_EQ(m->cfg.pool, GlobalPool::kAvg);
  EXPECT_FALSE(m->cfg.final_norm);
  EXPECT_TRUE(m->cfg.fc_norm);
  EXPECT_EQ(m->cfg.heads, 2);
  EXPECT_EQ(m->cfg.labels, (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_FLOAT_EQ(m->cfg.preprocess.crop_pct, 0.95f);
  EXPECT_FLOAT_EQ(m->cfg.preprocess.std[2], 0.225f);
  EXPECT_EQ(m->cfg.preprocess.resize, PreprocessConfig::Resize::kShortestThenCrop);

  // avg pool with the final norm but no fc_norm tensors: norm before pooling.
  Spec s2;
  const TensorMap t2 = make_timm(s2);
  cfg["model_args"]["fc_norm"] = false;
  auto m2 = load_model(make_dir(t2, "model.safetensors", cfg));
  expect_matches_timm(*m2, t2, s2);
  EXPECT_EQ(m2->cfg.pool, GlobalPool::kAvg);
  EXPECT_TRUE(m2->cfg.final_norm);
  EXPECT_FALSE(m2->cfg.fc_norm);
}

// ---- config precedence ------------------------------------------------------------------

TEST(Loader, ConfigPrecedence) {
  Spec s;
  s.D = 192;  // ViT-Ti width, so the architecture name and the width table apply
  s.depth = 1;
  s.I = 16;
  s.P = 16;
  s.C = 3;
  s.gh = s.gw = 2;
  const TensorMap timm = make_timm(s);
  const TensorMap hf = timm_to_hf(timm, s, "vit.");

  // Nothing but tensors: heads from the standard-width table, size from the pos grid.
  auto m = load_model(make_dir(timm));
  EXPECT_EQ(m->cfg.heads, 3);
  EXPECT_EQ(m->cfg.image_h, 32);
  EXPECT_FLOAT_EQ(m->cfg.ln_eps, 1e-6f);
  EXPECT_EQ(m->cfg.preprocess.interpolation, "bicubic");  // timm ViT defaults
  EXPECT_FLOAT_EQ(m->cfg.preprocess.crop_pct, 0.9f);

  // Architecture name: image size 224 -> pos resampled from 2x2 to 14x14; depth/mlp from tensors.
  ConfigOverrides ov;
  ov.architecture = "vit_tiny_patch16_224.augreg_in21k_ft_in1k";
  m = load_model(make_dir(timm), ov);
  EXPECT_EQ(m->cfg.heads, 3);
  EXPECT_EQ(m->cfg.image_h, 224);
  EXPECT_EQ(m->cfg.grid_h(), 14);
  EXPECT_EQ(m->cfg.ckpt_grid_h, 2);
  EXPECT_EQ(m->cfg.depth, 1);
  EXPECT_EQ(m->cfg.architecture, "vit_tiny_patch16_224.augreg_in21k_ft_in1k");
  EXPECT_EQ(m->w.pos.shape, (Shape{197, 192}));
  Tensor stored_pos = timm.at("pos_embed");
  stored_pos.shape = {5, 192};
  const Tensor want_pos = resample_pos_embed(stored_pos, 2, 2, 14, 14);
  EXPECT_EQ(m->w.pos.data, want_pos.data);
  EXPECT_FALSE(m->warnings.empty());  // arch depth 12 vs tensors 1

  // HF config beats the architecture name; tensors beat the config's dimensions.
  json hcfg = {{"model_type", "vit"}, {"hidden_size", 768}, {"num_attention_heads", 6}, {"image_size", 64},
               {"layer_norm_eps", 1e-5}, {"id2label", {{"0", "x"}, {"1", "y"}, {"2", "z"}}}};
  const std::string hdir = make_dir(hf, "model.safetensors", hcfg);
  m = load_model(hdir, ov);
  EXPECT_EQ(m->cfg.heads, 6);
  EXPECT_EQ(m->cfg.image_h, 64);
  EXPECT_EQ(m->cfg.hidden, 192);
  EXPECT_FLOAT_EQ(m->cfg.ln_eps, 1e-5f);
  EXPECT_EQ(m->cfg.labels, (std::vector<std::string>{"x", "y", "z"}));
  bool warned = false;
  for (const std::string& w : m->warnings) warned |= w.find("width 768") != std::string::npos;
  EXPECT_TRUE(warned) << "config/tensor width conflict not reported";
  // The config's image size contradicts the stored 2x2 grid: taken (the table resampled), but
  // said, naming both values.
  std::string size_warning;
  for (const std::string& w : m->warnings)
    if (w.find("image size 64x64") != std::string::npos) size_warning = w;
  EXPECT_NE(size_warning.find("2x2 grid"), std::string::npos) << size_warning;
  EXPECT_NE(size_warning.find("config.json"), std::string::npos) << size_warning;

  // Overrides beat everything.
  ov.heads = 4;
  ov.image_size = 48;
  ov.ln_eps = 1e-3f;
  ov.pool = GlobalPool::kAvg;
  m = load_model(hdir, ov);
  EXPECT_EQ(m->cfg.heads, 4);
  EXPECT_EQ(m->cfg.image_h, 48);
  EXPECT_EQ(m->cfg.image_w, 48);
  EXPECT_EQ(m->cfg.preprocess.input_h, 48);
  EXPECT_FLOAT_EQ(m->cfg.ln_eps, 1e-3f);
  EXPECT_EQ(m->cfg.pool, GlobalPool::kAvg);
  EXPECT_TRUE(m->cfg.final_norm);  // HF: norm over all tokens, then the mean
  EXPECT_EQ(m->w.pos.shape, (Shape{10, 192}));
  for (const std::string& w : m->warnings)  // the override decides the size: nothing contradicts
    EXPECT_EQ(w.find("says image size"), std::string::npos) << w;
}

TEST(Loader, HfPreprocessorConfig) {
  Spec s;
  const TensorMap timm = make_timm(s);
  const std::string dir = make_dir(timm_to_hf(timm, s, "vit."), "model.safetensors",
                                   {{"model_type", "vit"}, {"num_attention_heads", 4}});
  save_json(dir + "/preprocessor_config.json", {{"do_resize", true},
                                                {"size", {{"height", 12}, {"width", 12}}},
                                                {"resample", 3},
                                                {"image_mean", {0.1, 0.2, 0.3}},
                                                {"image_std", {0.4, 0.5, 0.6}}});
  auto m = load_model(dir);
  const PreprocessConfig& p = m->cfg.preprocess;
  EXPECT_EQ(p.resize, PreprocessConfig::Resize::kDirect);
  EXPECT_EQ(p.interpolation, "bicubic");
  EXPECT_FLOAT_EQ(p.mean[2], 0.3f);
  EXPECT_FLOAT_EQ(p.std[0], 0.4f);
  EXPECT_FLOAT_EQ(p.rescale, 1.0f / 255.0f);
  EXPECT_TRUE(m->warnings.empty());
  // A processor size that disagrees with the model: the model runs at the processor's size, as
  // transformers with interpolate_pos_encoding=True (the only way it runs it), said once.
  save_json(dir + "/preprocessor_config.json", {{"size", {{"height", 16}, {"width", 16}}}});
  m = load_model(dir);
  EXPECT_EQ(m->cfg.image_h, 16);
  EXPECT_EQ(m->cfg.preprocess.input_h, 16);
  ASSERT_EQ(m->warnings.size(), 1u);
  EXPECT_NE(m->warnings[0].find("running at 16x16"), std::string::npos) << m->warnings[0];
  EXPECT_NE(m->warnings[0].find("interpolate_pos_encoding=True"), std::string::npos) << m->warnings[0];
  // --image-size wins over both, the processor's resize scaled to it.
  ConfigOverrides ov;
  ov.image_size = 8;
  m = load_model(dir, ov);
  EXPECT_EQ(m->cfg.image_h, 8);
  EXPECT_EQ(m->cfg.preprocess.input_h, 8);
}

TEST(Loader, LabelsFile) {
  Spec s;
  const TensorMap timm = make_timm(s);
  const std::string dir = make_dir(timm);
  const std::string lf = dir + "/labels.txt";
  {
    std::ofstream f(lf, std::ios::binary);
    f << "zero\r\none\ntwo two\nthree\nfour\n";
  }
  ConfigOverrides ov = heads(4);
  ov.labels_file = lf;
  auto m = load_model(dir, ov);
  EXPECT_EQ(m->cfg.labels, (std::vector<std::string>{"zero", "one", "two two", "three", "four"}));
  {
    std::ofstream f(lf, std::ios::binary);
    f << "a\nb\nc\n";
  }
  expect_error([&] { load_model(dir, ov); }, ErrorCode::kInvalidArgument, {lf, "3", "5 classes"});
  ov.labels_file = dir + "/nope.txt";
  expect_error([&] { load_model(dir, ov); }, ErrorCode::kIo, {"nope.txt"});
}

TEST(Loader, NanWeightWarns) {
  Spec s;
  TensorMap timm = make_timm(s);
  timm["blocks.1.mlp.fc2.weight"].data[7] = NAN;
  timm["cls_token"].data[0] = INFINITY;
  auto m = load_model(make_dir(timm), heads(4));
  std::string all;
  for (const std::string& w : m->warnings) all += w + "\n";
  ASSERT_EQ(m->warnings.size(), 2u) << all;
  EXPECT_NE(all.find("blocks.1.mlp.fc2.weight"), std::string::npos) << all;
  EXPECT_NE(all.find("cls_token"), std::string::npos) << all;
  EXPECT_TRUE(std::isnan(m->w.blocks[1].fc2_w.data[7]));  // loaded as stored

  // The HF name of the tensor is the one reported.
  TensorMap clean = make_timm(s);
  TensorMap hf = timm_to_hf(clean, s, "vit.");
  hf["vit.encoder.layer.0.attention.attention.value.weight"].data[3] = NAN;
  m = load_model(make_dir(hf), heads(4));
  ASSERT_EQ(m->warnings.size(), 1u);
  EXPECT_NE(m->warnings[0].find("vit.encoder.layer.0.attention.attention.value.weight"), std::string::npos);
}

// ---- errors --------------------------------------------------------------------------------

TEST(LoaderErrors, Paths) {
  expect_error([] { load_model("/nonexistent/vit"); }, ErrorCode::kIo, {"/nonexistent/vit"});
  const std::string empty = test::temp_dir();
  expect_error([&] { load_model(empty); }, ErrorCode::kIo, {empty, "no model.safetensors"});
  Spec s;
  const TensorMap timm = make_timm(s);
  const std::string two = make_dir(timm, "a.safetensors");
  save_st(two + "/b.safetensors", timm);
  expect_error([&] { load_model(two); }, ErrorCode::kInvalidArgument, {"a.safetensors", "b.safetensors"});
  // A lone *.safetensors in a directory is picked up.
  EXPECT_EQ(load_model(make_dir(timm, "x.safetensors"), heads(4))->cfg.depth, 2);
}

TEST(LoaderErrors, MissingExtraWrongShape) {
  Spec s;
  const TensorMap good = make_timm(s);
  TensorMap t = good;
  t.erase("blocks.1.mlp.fc2.bias");
  t.erase("norm.bias");
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat,
               {"missing 2", "blocks.1.mlp.fc2.bias", "norm.bias", "model.safetensors"});

  t = good;
  t["foo.bar"] = test::random_tensor({2});
  t["blocks.5.norm1.weight"] = test::random_tensor({s.D});  // a stray block index implies depth 6
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat, {"missing", "blocks.2."});
  t.erase("blocks.5.norm1.weight");
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat, {"unexpected 1", "foo.bar"});

  t = good;
  t["blocks.1.attn.proj.weight"] = test::random_tensor({s.D, s.D + 1});
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat,
               {"blocks.1.attn.proj.weight", "[32, 33]", "expected [32, 32]"});

  t = good;
  t["blocks.1.mlp.fc1.weight"] = test::random_tensor({s.I + 2, s.D});  // disagrees with block 0
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat,
               {"blocks.1.mlp.fc1.weight", "[50, 32]", "expected [48, 32]"});

  t = good;
  t["head.bias"] = test::random_tensor({s.C + 1});
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat, {"head.bias", "[6]", "expected [5]"});

  // HF: missing key projection; extra decoder tensor (e.g. ViTForMaskedImageModeling).
  TensorMap hf = timm_to_hf(good, s, "vit.");
  hf.erase("vit.encoder.layer.1.attention.attention.key.weight");
  expect_error([&] { load_model(make_dir(hf), heads(4)); }, ErrorCode::kFormat,
               {"missing 1", "vit.encoder.layer.1.attention.attention.key.weight"});
  hf = timm_to_hf(good, s, "vit.");
  hf["decoder.0.weight"] = test::random_tensor({4});
  expect_error([&] { load_model(make_dir(hf), heads(4)); }, ErrorCode::kFormat, {"unexpected", "decoder.0.weight"});

  // Unknown layout.
  expect_error([&] { load_model(make_dir({{"foo", test::random_tensor({2})}})); }, ErrorCode::kUnsupported,
               {"layout", "foo"});
}

TEST(LoaderErrors, Heads) {
  Spec s;  // width 32: not a standard width
  const TensorMap t = make_timm(s);
  const std::string dir = make_dir(t);
  expect_error([&] { load_model(dir); }, ErrorCode::kInvalidArgument, {"heads", "32", "--heads"});
  expect_error([&] { load_model(dir, heads(5)); }, ErrorCode::kInvalidArgument, {"5", "does not divide", "32"});
  expect_error([&] { load_model(dir, heads(0)); }, ErrorCode::kInvalidArgument, {"0", "32"});
  const std::string hdir =
      make_dir(timm_to_hf(t, s, "vit."), "model.safetensors", {{"model_type", "vit"}, {"num_attention_heads", 12}});
  expect_error([&] { load_model(hdir); }, ErrorCode::kInvalidArgument, {"12", "32"});
}

TEST(LoaderErrors, UnsupportedVariants) {
  Spec s;
  const TensorMap good = make_timm(s);
  struct C {
    std::string name;
    Shape shape;
    const char* frag;
  } cases[] = {
      {"blocks.0.attn.q_norm.weight", {8}, "qk_norm"},
      {"attn_pool.q_norm.weight", {8}, "qk_norm in the attention-pool head"},
      {"attn_pool.pos_embed", {9, s.D}, "position embedding in the attention-pool head"},
      {"blocks.0.mlp.w12.weight", {2 * s.I, s.D}, "fused SwiGLU"},
      {"blocks.1.attn_out_proj.weight", {s.D, s.D}, "parallel blocks"},
      {"blocks.0.attns.0.attn.qkv.weight", {3 * s.D, s.D}, "parallel blocks"},  // ParallelThingsBlock (18x2)
      {"patch_embed.backbone.conv.weight", {8, 3, 7, 7}, "hybrid CNN stem"},     // vit_*_r*_ hybrids
      {"blocks.0.attn.norm.weight", {s.D}, "norms inside the block"},
  };
  for (const C& c : cases) {
    TensorMap t = good;
    t[c.name] = test::random_tensor(c.shape);
    expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kUnsupported, {c.frag, c.name});
  }
  // A family tensor whose table does not fit: 4 registers with a cls-only 1 + 3x3 table.
  TensorMap t = good;
  t["reg_token"] = test::random_tensor({1, 4, s.D});
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat,
               {"pos_embed", "10 rows", "5 prefix row(s)"});
  // dist_token without head_dist: named as missing.
  t = good;
  t["dist_token"] = test::random_tensor({1, 1, s.D});
  t["pos_embed"] = test::random_tensor({1, 2 + 9, s.D});
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat, {"missing", "head_dist.weight"});
  // Token pooling asked of a model without a class token.
  t = good;
  t.erase("cls_token");
  t["pos_embed"] = test::random_tensor({1, 9, s.D});
  ConfigOverrides tok = heads(4);
  tok.pool = GlobalPool::kToken;
  expect_error([&] { load_model(make_dir(t), tok); }, ErrorCode::kInvalidArgument, {"needs a class token"});
  // JAX in21k pre_logits
  TensorMap j = timm_to_jax(good, s, 4);
  j["pre_logits/kernel"] = test::random_tensor({s.D, s.D});
  j["pre_logits/bias"] = test::random_tensor({s.D});
  expect_error([&] { load_model(make_dir(j, "m.npz")); }, ErrorCode::kUnsupported, {"pre_logits"});
  // timm config.json flags
  json cfg = {{"architecture", "vit_x"}, {"model_args", {{"reg_tokens", 4}}}, {"pretrained_cfg", json::object()}};
  auto said = load_model(make_dir(good, "model.safetensors", cfg), heads(4));  // the tensors decide: no registers
  EXPECT_EQ(said->cfg.reg_tokens, 0);
  ASSERT_FALSE(said->warnings.empty());
  EXPECT_NE(said->warnings.back().find("reg_tokens 4"), std::string::npos) << said->warnings.back();
  // HF GELU forms the engine does not run (tanh and quick-GELU it does: test_config.cpp).
  expect_error([&] { load_model(make_dir(timm_to_hf(good, s, "vit."), "model.safetensors",
                                         {{"model_type", "vit"}, {"hidden_act", "gelu_fast"}}), heads(4)); },
               ErrorCode::kUnsupported, {"gelu_fast"});
}

// The attention-pool head (global_pool 'map'): a timm no-cls model plus attn_pool.*, L latent rows.
TensorMap make_timm_map(const Spec& s, int64_t L) {
  TensorMap t = make_timm(s);
  t.erase("cls_token");
  t["pos_embed"] = test::random_tensor({1, s.gh * s.gw, s.D});
  auto r = [&](const std::string& n, Shape sh) { t["attn_pool." + n] = test::random_tensor(std::move(sh)); };
  const int64_t D = s.D, M = 2 * s.I;  // the head's MLP width differs from the blocks' here
  std::vector<std::pair<std::string, Shape>> head = {
      {"latent", {1, L, D}}, {"q.weight", {D, D}},       {"kv.weight", {2 * D, D}}, {"proj.weight", {D, D}},
      {"proj.bias", {D}},    {"norm.weight", {D}},       {"norm.bias", {D}},        {"mlp.fc1.weight", {M, D}},
      {"mlp.fc1.bias", {M}}, {"mlp.fc2.weight", {D, M}}, {"mlp.fc2.bias", {D}}};
  if (s.qkv_bias) head.insert(head.end(), {{"q.bias", {D}}, {"kv.bias", {2 * D}}});
  for (const auto& [n, sh] : head) r(n, sh);
  return t;
}

// transformers' SiglipVisionModel names for a make_timm_map model without a classifier
// (nn.MultiheadAttention in_proj = q | kv rows).
TensorMap timm_map_to_siglip(const TensorMap& t, const Spec& s, const std::string& p) {
  TensorMap m;
  const int64_t D = s.D;
  m[p + "embeddings.patch_embedding.weight"] = t.at("patch_embed.proj.weight");
  m[p + "embeddings.patch_embedding.bias"] = t.at("patch_embed.proj.bias");
  m[p + "embeddings.position_embedding.weight"] = rows(t.at("pos_embed"), 0, s.gh * s.gw, D);
  split_qkv_blocks(t, s, p + "encoder.layers.", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
                   {{"attn.proj", "self_attn.out_proj"}, {"norm1", "layer_norm1"}, {"norm2", "layer_norm2"},
                    {"mlp.fc1", "mlp.fc1"}, {"mlp.fc2", "mlp.fc2"}},
                   &m);
  m[p + "post_layernorm.weight"] = t.at("norm.weight");
  m[p + "post_layernorm.bias"] = t.at("norm.bias");
  const std::string h = p + "head.";
  m[h + "probe"] = t.at("attn_pool.latent");
  Tensor in_w({3 * D, D}), in_b({3 * D});
  std::copy(t.at("attn_pool.q.weight").data.begin(), t.at("attn_pool.q.weight").data.end(), in_w.data.begin());
  std::copy(t.at("attn_pool.kv.weight").data.begin(), t.at("attn_pool.kv.weight").data.end(), in_w.data.begin() + D * D);
  std::copy(t.at("attn_pool.q.bias").data.begin(), t.at("attn_pool.q.bias").data.end(), in_b.data.begin());
  std::copy(t.at("attn_pool.kv.bias").data.begin(), t.at("attn_pool.kv.bias").data.end(), in_b.data.begin() + D);
  m[h + "attention.in_proj_weight"] = in_w;
  m[h + "attention.in_proj_bias"] = in_b;
  const std::pair<const char*, const char*> head[] = {
      {"proj", "attention.out_proj"}, {"norm", "layernorm"}, {"mlp.fc1", "mlp.fc1"}, {"mlp.fc2", "mlp.fc2"}};
  for (const auto& [from, to] : head) {
    m[h + to + ".weight"] = t.at(std::string("attn_pool.") + from + ".weight");
    m[h + to + ".bias"] = t.at(std::string("attn_pool.") + from + ".bias");
  }
  return m;
}

void expect_same_attn_pool(const AttnPoolWeights& a, const AttnPoolWeights& b) {
  const std::pair<const Tensor*, const Tensor*> all[] = {
      {&a.latent, &b.latent}, {&a.q_w, &b.q_w},       {&a.q_b, &b.q_b},       {&a.kv_w, &b.kv_w},
      {&a.kv_b, &b.kv_b},     {&a.proj_w, &b.proj_w}, {&a.proj_b, &b.proj_b}, {&a.norm_w, &b.norm_w},
      {&a.norm_b, &b.norm_b}, {&a.fc1_w, &b.fc1_w},   {&a.fc1_b, &b.fc1_b},   {&a.fc2_w, &b.fc2_w},
      {&a.fc2_b, &b.fc2_b}};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) {
    EXPECT_FALSE(all[i].first->empty()) << "attn_pool tensor " << i;
    EXPECT_EQ(all[i].first->data, all[i].second->data) << "attn_pool tensor " << i;
  }
}

TEST(Loader, TimmMapHead) {
  Spec s;
  for (const int64_t L : {1, 2}) {  // latent_len > 1 runs too (pooled output: latent row 0)
    const TensorMap t = make_timm_map(s, L);
    auto m = load_model(make_dir(t), heads(4));  // no config.json: the tensors say map
    EXPECT_EQ(m->cfg.pool, GlobalPool::kMap);
    EXPECT_FALSE(m->cfg.class_token);
    EXPECT_FALSE(m->cfg.fc_norm);
    EXPECT_EQ(m->cfg.map_latent_len, L);
    EXPECT_EQ(m->cfg.map_mlp_hidden, 2 * s.I);
    EXPECT_TRUE(m->cfg.map_qkv_bias);
    EXPECT_EQ(m->w.attn_pool.latent.shape, (Shape{L, s.D}));
    EXPECT_EQ(m->w.attn_pool.latent.data, t.at("attn_pool.latent").data);
    EXPECT_EQ(m->w.attn_pool.kv_w.data, t.at("attn_pool.kv.weight").data);
    int64_t stored = 0;  // param_count counts the head too: every stored value once
    for (const auto& [n, x] : t) stored += x.numel();
    EXPECT_EQ(m->cfg.param_count(), stored);
    EXPECT_NE(m->cfg.describe().find("attention-pool head"), std::string::npos) << m->cfg.describe();
    EXPECT_NE(m->cfg.describe().find(std::to_string(L) + " latent row(s)"), std::string::npos) << m->cfg.describe();
  }
  // timm's config.json says map (global_pool), as the hub writes it.
  json cfg = {{"architecture", "vit_base_patch16_siglip_224"}, {"global_pool", "map"},
              {"model_args", {{"global_pool", "map"}}}, {"pretrained_cfg", json::object()}};
  auto m = load_model(make_dir(make_timm_map(s, 1), "model.safetensors", cfg), heads(4));
  EXPECT_EQ(m->cfg.pool, GlobalPool::kMap);
  EXPECT_EQ(m->cfg.family(), "SigLIP tower");
  EXPECT_EQ(m->cfg.act, Activation::kGeluErf);  // this SigLIP entrypoint keeps erf
  cfg["architecture"] = "vit_so400m_patch16_siglip_256.v2_webli";  // SigLIP 2: gelu_tanh in its entrypoint
  m = load_model(make_dir(make_timm_map(s, 1), "model.safetensors", cfg), heads(4));
  EXPECT_EQ(m->cfg.act, Activation::kGeluTanh);
  // qkv_bias=False: the head's q / kv have no bias either (zeros).
  Spec nb;
  nb.qkv_bias = false;
  m = load_model(make_dir(make_timm_map(nb, 1)), heads(4));
  EXPECT_FALSE(m->cfg.map_qkv_bias);
  EXPECT_EQ(m->w.attn_pool.kv_b.data, std::vector<float>(static_cast<size_t>(2 * nb.D), 0.0f));
}

TEST(LoaderErrors, MapHeadTensors) {
  Spec s;
  const TensorMap good = make_timm_map(s, 1);
  // Each missing head tensor is named.
  for (const char* n :
       {"attn_pool.kv.weight", "attn_pool.proj.bias", "attn_pool.norm.weight", "attn_pool.mlp.fc2.weight"}) {
    TensorMap t = good;
    t.erase(n);
    expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat, {"missing", n});
  }
  TensorMap t = good;
  t.erase("attn_pool.mlp.fc1.weight");
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat, {"missing", "attn_pool.mlp.fc1.weight"});
  // A config that says map for a checkpoint without the head.
  TensorMap plain = make_timm(s);
  plain.erase("cls_token");
  plain["pos_embed"] = test::random_tensor({1, 9, s.D});
  json cfg = {{"architecture", "vit_x"}, {"global_pool", "map"}, {"pretrained_cfg", json::object()}};
  expect_error([&] { load_model(make_dir(plain, "model.safetensors", cfg), heads(4)); }, ErrorCode::kFormat,
               {"missing", "attn_pool.latent"});
  // A wrong head shape is named with both shapes.
  t = good;
  t["attn_pool.q.weight"] = test::random_tensor({s.D, s.D + 1});
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat, {"attn_pool.q.weight", "expected"});
  // Other pooling asked of a map checkpoint: its head tensors are named as unexpected.
  ConfigOverrides avg = heads(4);
  avg.pool = GlobalPool::kAvg;
  expect_error([&] { load_model(make_dir(good), avg); }, ErrorCode::kFormat, {"unexpected", "attn_pool."});
  // Map pooling for a layout without that head.
  ConfigOverrides map = heads(4);
  map.pool = GlobalPool::kMap;
  expect_error([&] { load_model(make_dir(timm_to_jax(make_timm(s), s, 4), "m.npz"), map); }, ErrorCode::kUnsupported,
               {"map pooling", "jax"});
}

TEST(Loader, HfSiglipVisionModel) {
  Spec s;
  s.C = 0;  // SiglipVisionModel has no classifier
  const TensorMap t = make_timm_map(s, 1);
  auto timm = load_model(make_dir(t), heads(4));
  const json cfg = {{"model_type", "siglip_vision_model"}, {"hidden_size", s.D}, {"num_attention_heads", 4},
                    {"num_hidden_layers", s.depth}, {"intermediate_size", s.I}, {"image_size", s.gh * s.P},
                    {"patch_size", s.P}, {"hidden_act", "gelu_pytorch_tanh"}, {"layer_norm_eps", 1e-6}};
  for (const char* prefix : {"", "vision_model."}) {  // transformers 5 / 4 save without / with the prefix
    SCOPED_TRACE(prefix);
    auto m = load_model(make_dir(timm_map_to_siglip(t, s, prefix), "model.safetensors", cfg));
    EXPECT_EQ(m->cfg.layout, "hf-siglip");
    EXPECT_EQ(m->cfg.pool, GlobalPool::kMap);
    EXPECT_FALSE(m->cfg.class_token);
    EXPECT_EQ(m->cfg.num_classes, 0);
    EXPECT_EQ(m->cfg.act, Activation::kGeluTanh);
    EXPECT_EQ(m->cfg.heads, 4);
    EXPECT_FLOAT_EQ(m->cfg.ln_eps, 1e-6f);
    EXPECT_EQ(m->cfg.map_latent_len, 1);
    EXPECT_EQ(m->w.pos.data, timm->w.pos.data);
    EXPECT_EQ(m->w.patch_w.data, timm->w.patch_w.data);
    for (int64_t i = 0; i < s.depth; ++i) {
      EXPECT_EQ(m->w.blocks[i].qkv_w.data, timm->w.blocks[i].qkv_w.data);
      EXPECT_EQ(m->w.blocks[i].qkv_b.data, timm->w.blocks[i].qkv_b.data);
      EXPECT_EQ(m->w.blocks[i].fc2_w.data, timm->w.blocks[i].fc2_w.data);
    }
    EXPECT_EQ(m->w.norm_w.data, timm->w.norm_w.data);
    expect_same_attn_pool(m->w.attn_pool, timm->w.attn_pool);
  }
  // Without config.json: SigLIP's defaults (tanh GELU, eps 1e-6), heads from --heads.
  auto m = load_model(make_dir(timm_map_to_siglip(t, s, "")), heads(4));
  EXPECT_EQ(m->cfg.act, Activation::kGeluTanh);
  EXPECT_FLOAT_EQ(m->cfg.ln_eps, 1e-6f);
  EXPECT_TRUE(m->warnings.empty());
  // Another run size: resampled with transformers' own rule (interpolate_pos_encoding: bicubic, no
  // antialias), the same numbers as the HF DINOv2 layout's; the golden case hf_siglip_vision_56
  // checks them against transformers.
  ConfigOverrides big = heads(4);
  big.image_size = 4 * s.P;
  m = load_model(make_dir(timm_map_to_siglip(t, s, "")), big);
  EXPECT_EQ(m->w.pos.shape, (Shape{16, s.D}));
  EXPECT_TRUE(m->warnings.empty());
  const Tensor table = timm_map_to_siglip(t, s, "").at("embeddings.position_embedding.weight");  // [gh * gw, D]
  const Tensor hf_rule = resample_pos_embed(table, static_cast<int>(s.gh), static_cast<int>(s.gw), 4, 4, 0, PosResample::kHF);
  EXPECT_EQ(m->w.pos.data, hf_rule.data);
  // A missing head tensor is named.
  TensorMap h = timm_map_to_siglip(t, s, "vision_model.");
  h.erase("vision_model.head.attention.in_proj_bias");
  expect_error([&] { load_model(make_dir(h, "model.safetensors", cfg)); }, ErrorCode::kFormat,
               {"missing", "vision_model.head.attention.in_proj_bias"});
}

// The timm families load from the tensors: registers (and no_embed_class tables), no class
// token (avg pooling), DeiT distilled, pre-norm without a patch bias. Their numerics are the
// golden fixtures' business (test_golden, tests/data/golden_families); this checks the config.
TEST(Loader, TimmFamiliesFromTensors) {
  Spec s;
  const TensorMap good = make_timm(s);
  TensorMap t = good;
  t["reg_token"] = test::random_tensor({1, 2, s.D});
  t["pos_embed"] = test::random_tensor({1, 9, s.D});  // no prefix rows (9 - 3 is no grid): no_embed_class
  auto m = load_model(make_dir(t), heads(4));
  EXPECT_EQ(m->cfg.reg_tokens, 2);
  EXPECT_TRUE(m->cfg.no_embed_class);
  EXPECT_EQ(m->cfg.tokens(), 3 + 9);
  EXPECT_EQ(m->w.prefix.shape, (Shape{3, s.D}));
  EXPECT_EQ(std::vector<float>(m->w.prefix.data.begin(), m->w.prefix.data.begin() + s.D), m->w.cls.data);
  EXPECT_EQ(std::vector<float>(m->w.prefix.data.begin() + s.D, m->w.prefix.data.end()), t["reg_token"].data);
  EXPECT_NE(m->cfg.describe().find("2 register token(s)"), std::string::npos) << m->cfg.describe();
  // Registers with prefix rows in the table, resampled to a 4x4 grid: the 3 prefix rows stay.
  t["pos_embed"] = test::random_tensor({1, 3 + 9, s.D});
  ConfigOverrides ov = heads(4);
  ov.image_size = 16;
  m = load_model(make_dir(t), ov);
  EXPECT_FALSE(m->cfg.no_embed_class);
  EXPECT_EQ(m->w.pos.shape, (Shape{3 + 16, s.D}));
  EXPECT_EQ(std::vector<float>(m->w.pos.data.begin(), m->w.pos.data.begin() + 3 * s.D),
            std::vector<float>(t["pos_embed"].data.begin(), t["pos_embed"].data.begin() + 3 * s.D));
  // No class token: pools avg.
  t = good;
  t.erase("cls_token");
  t["pos_embed"] = test::random_tensor({1, 9, s.D});
  m = load_model(make_dir(t), heads(4));
  EXPECT_FALSE(m->cfg.class_token);
  EXPECT_EQ(m->cfg.pool, GlobalPool::kAvg);
  EXPECT_EQ(m->cfg.tokens(), 9);
  // DeiT distilled.
  t = good;
  t["dist_token"] = test::random_tensor({1, 1, s.D});
  t["head_dist.weight"] = test::random_tensor({s.C, s.D});
  t["head_dist.bias"] = test::random_tensor({s.C});
  t["pos_embed"] = test::random_tensor({1, 2 + 9, s.D});
  m = load_model(make_dir(t), heads(4));
  EXPECT_TRUE(m->cfg.dist_token);
  EXPECT_EQ(m->cfg.family(), "DeiT distilled");
  EXPECT_EQ(m->w.head_dist_w.shape, (Shape{s.C, s.D}));
  // Pre-norm, no patch bias (CLIP's patch conv).
  t = good;
  t["norm_pre.weight"] = test::random_tensor({s.D});
  t["norm_pre.bias"] = test::random_tensor({s.D});
  t.erase("patch_embed.proj.bias");
  m = load_model(make_dir(t), heads(4));
  EXPECT_TRUE(m->cfg.pre_norm);
  EXPECT_FALSE(m->cfg.patch_bias);
  EXPECT_EQ(m->w.patch_b.data, std::vector<float>(static_cast<size_t>(s.D), 0.0f));
  // A norm_pre without its bias is named.
  t.erase("norm_pre.bias");
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat, {"missing", "norm_pre.bias"});
}

TEST(LoaderErrors, ImageSizeAndArch) {
  Spec s;  // patch 4
  const std::string dir = make_dir(make_timm(s));
  ConfigOverrides ov = heads(4);
  // Not a multiple of the patch: a floor(14 / 4) = 3 grid over the first 12 pixels (timm's conv),
  // said in the warnings; smaller than one patch is refused.
  ov.image_size = 14;
  {
    auto f = load_model(dir, ov);
    EXPECT_EQ(f->cfg.image_h, 14);
    EXPECT_EQ(f->cfg.grid_h(), 3);
    EXPECT_EQ(f->cfg.tokens(), 10);
    EXPECT_EQ(f->w.pos.shape, (Shape{10, 32}));
    EXPECT_TRUE(has_warning(*f, "14x14 is not a multiple of the patch size 4"));
  }
  ov.image_size = 3;
  expect_error([&] { load_model(dir, ov); }, ErrorCode::kInvalidArgument, {"3x3", "smaller than the patch size 4"});
  ov.image_size = 16;  // fine: resampled 3x3 -> 4x4
  auto m = load_model(dir, ov);
  EXPECT_EQ(m->w.pos.shape, (Shape{17, 32}));
  EXPECT_EQ(m->cfg.ckpt_grid_h, 3);
  ov.image_size.reset();
  ov.architecture = "vit_base_patch16_999";
  expect_error([&] { load_model(dir, ov); }, ErrorCode::kInvalidArgument, {"vit_base_patch16_999"});
  // A config image size that is not a multiple of the patch.
  const std::string hdir = make_dir(timm_to_hf(make_timm(s), s, "vit."), "model.safetensors",
                                    {{"model_type", "vit"}, {"num_attention_heads", 4}, {"image_size", 30}});
  auto hm = load_model(hdir);
  EXPECT_EQ(hm->cfg.grid_h(), 7);  // floor(30 / 4), the stored 3x3 table resampled to it
  EXPECT_EQ(hm->w.pos.shape, (Shape{50, 32}));
  EXPECT_TRUE(has_warning(*hm, "30x30 is not a multiple of the patch size 4"));
}

// ---- hostile inputs (fuzz/regressions/fuzz_load_model, fuzz_config_json) ------------------

// A .safetensors file written byte by byte, so that shapes can be anything (zero-sized
// tensors with absurd dimensions cost no data). Data: zeros, numel * 4 bytes (F32).
std::string raw_st(const std::vector<std::pair<std::string, Shape>>& entries) {
  json h = json::object();
  uint64_t off = 0;
  for (const auto& [n, sh] : entries) {
    uint64_t numel = 1;
    for (int64_t d : sh) numel *= static_cast<uint64_t>(d);
    h[n] = {{"dtype", "F32"}, {"shape", sh}, {"data_offsets", {off, off + 4 * numel}}};
    off += 4 * numel;
  }
  const std::string hdr = h.dump();
  std::vector<uint8_t> bytes(8 + hdr.size() + off, 0);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(static_cast<uint64_t>(hdr.size()) >> (8 * i));
  std::copy(hdr.begin(), hdr.end(), bytes.begin() + 8);
  const std::string dir = test::temp_dir();
  test::write_file(dir + "/model.safetensors", bytes);
  return dir;
}

// The minimal timm tensors that get the loader as far as the position table.
std::vector<std::pair<std::string, Shape>> timm_base(Shape patch = {8, 3, 4, 4}) {
  return {{"patch_embed.proj.weight", patch}, {"blocks.0.mlp.fc1.weight", {16, 8}}, {"cls_token", {1, 1, 8}}};
}

TEST(LoaderErrors, HugeTensorNamesAndBlockIndices) {
  Spec s;
  const TensorMap good = make_timm(s);
  // Once a stack overflow: std::regex recursed once per digit of a 100k-digit block index.
  TensorMap t = good;
  const std::string huge = "blocks." + std::string(100000, '1') + ".ls1.gamma";
  t[huge] = test::random_tensor({s.D});
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat,
               {"model.safetensors", "tensor name of 100017 characters", "'blocks.111", "limit of 1024"});
  // Below the name limit the plain parser still recognises variants with long indices.
  t = good;
  t["blocks.0000000000000000000001.attn.k_norm.bias"] = test::random_tensor({8});
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kUnsupported,
               {"qk_norm", "blocks.0000000000000000000001.attn.k_norm.bias"});
  // Not of the form blocks.<digits>.<rest>: ordinary unexpected tensors, not variants.
  for (const char* n : {"blocks..ls1.gamma", "blocks.x1.ls1.gamma", "blocks.1ls1.gamma", "blocks.1.ls3.gamma"}) {
    t = good;
    t[n] = test::random_tensor({s.D});
    expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat, {"unexpected", n});
  }
  // A block index no int holds is no block (and no std::stoi out_of_range).
  t = good;
  t["blocks.99999999999.norm1.weight"] = test::random_tensor({s.D});
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat, {"unexpected 1", "blocks.99999999999"});
  t = good;
  t["blocks.999999.norm1.weight"] = test::random_tensor({s.D});
  expect_error([&] { load_model(make_dir(t), heads(4)); }, ErrorCode::kFormat, {"block index 999999", "implausible"});
}

TEST(LoaderErrors, AbsurdShapesAreFormatErrors) {
  // Once UBSan: isqrt_exact squared ~3e9 in int64 for a [1, 2^63 - 1, 0] position table.
  auto e = timm_base();
  e.push_back({"pos_embed", {1, INT64_MAX, 0}});
  expect_error([&] { load_model(raw_st(e), heads(2)); }, ErrorCode::kFormat,
               {"model.safetensors", "'pos_embed'", "position rows 9223372036854775807 is outside 1..65537"});
  // A width beyond int (2^32 + 8) once truncated to 8.
  e = timm_base({(int64_t{1} << 32) + 8, 0, 4, 4});
  e.push_back({"pos_embed", {1, 5, 0}});
  expect_error([&] { load_model(raw_st(e), heads(2)); }, ErrorCode::kFormat,
               {"'patch_embed.proj.weight'", "width 4294967304 is outside 1..16384"});
  e = timm_base({8, 0, 4, 4});
  e.push_back({"pos_embed", {1, 5, 0}});
  expect_error([&] { load_model(raw_st(e), heads(2)); }, ErrorCode::kFormat, {"input channels 0 is outside 1..256"});
  // Once UBSan: ckpt_grid_h * patch in int. Now a 256x256 stored grid at patch 1024 is a
  // 262144-pixel input, refused before any size is multiplied in int.
  e = {{"patch_embed.proj.weight", {1, 1, 1024, 1024}}, {"blocks.0.mlp.fc1.weight", {4, 1}}, {"cls_token", {1, 1, 1}},
       {"pos_embed", {1, 1 + 256 * 256, 0}}};
  expect_error([&] { load_model(raw_st(e), heads(1)); }, ErrorCode::kFormat,
               {"'pos_embed'", "256x256 grid", "patch size 1024", "262144x262144", "limit of 8192"});
}

TEST(LoaderErrors, RunSizeLimits) {
  Spec s;  // patch 4, 3x3 stored grid
  const TensorMap t = make_timm(s);
  const std::string dir = make_dir(t);
  ConfigOverrides ov = heads(4);
  ov.image_size = 40000;  // once a 3 GB position table
  expect_error([&] { load_model(dir, ov); }, ErrorCode::kInvalidArgument,
               {"image size 40000", "limit of 8192 pixels a side", "model.safetensors"});
  ov.image_size = 8192;  // within the side limit, but 2048^2 patches at patch 4
  expect_error([&] { load_model(dir, ov); }, ErrorCode::kInvalidArgument,
               {"8192x8192", "the image size override", "4194304 patches", "65536 patches"});
  ov.image_size = 1024;  // 256^2 = 65536 patches: the largest accepted
  const auto m = load_model(dir, ov);
  EXPECT_EQ(m->cfg.tokens(), 65537);
  EXPECT_EQ(m->w.pos.shape, (Shape{65537, s.D}));
  // From config.json: the parser refuses sides beyond the limit, the loader patch counts.
  json cfg = {{"architecture", "x"}, {"pretrained_cfg", {{"input_size", {3, 1000000000, 1000000000}}}}};
  std::string cdir = make_dir(t, "model.safetensors", cfg);
  expect_error([&] { load_model(cdir, heads(4)); }, ErrorCode::kFormat,
               {"config.json", "pretrained_cfg.input_size H", "1000000000", "1..8192"});
  cfg["pretrained_cfg"]["input_size"] = {3, 4096, 4096};
  cdir = make_dir(t, "model.safetensors", cfg);
  expect_error([&] { load_model(cdir, heads(4)); }, ErrorCode::kFormat,
               {"4096x4096", "config.json", "1048576 patches"});
  // HF image_size, too.
  const std::string hdir = make_dir(timm_to_hf(t, s, "vit."), "model.safetensors",
                                    {{"model_type", "vit"}, {"num_attention_heads", 4}, {"image_size", 40000}});
  expect_error([&] { load_model(hdir); }, ErrorCode::kFormat, {"config.json", "'image_size'", "40000", "1..8192"});
}

}  // namespace
}  // namespace vit

namespace vit {
namespace {

// ---- HF family layouts (the golden fixtures of tools/make_golden_hf.py, edited) ----------------

// The tensors and config.json of a golden_families case's model directory.
struct HfCase {
  TensorMap t;
  json cfg;
};

HfCase read_hf_case(const std::string& name) {
  const std::string dir = test::data_path("golden_families/" + name + "/model");
  HfCase c;
  const SafetensorsFile f(dir + "/model.safetensors");
  for (const std::string& n : f.names()) c.t[n] = f.read(n);
  std::ifstream in(dir + "/config.json");
  c.cfg = json::parse(in);
  return c;
}

std::string hf_dir(const HfCase& c) { return make_dir(c.t, "model.safetensors", c.cfg); }

// transformers' Aimv2VisionModel (the golden fixtures hf_aimv2_vision / _bias, whose numbers
// test_golden checks): RMSNorm on the patches, in the blocks and at the end, SwiGLU from
// gate_proj / up_proj, no class token, the attention-pool head with the raw cls_token as query
// and no MLP, biases as qkv_bias / mlp_bias say; without config.json the same from the tensors.
TEST(Loader, HfAimv2VisionModel) {
  for (const bool with_cfg : {true, false}) {
    SCOPED_TRACE(with_cfg ? "config.json" : "tensors only");
    HfCase c = read_hf_case("hf_aimv2_vision");
    auto m = load_model(make_dir(c.t, "model.safetensors", with_cfg ? c.cfg : json(nullptr)), with_cfg ? ConfigOverrides{} : heads(4));
    const ViTConfig& k = m->cfg;
    EXPECT_EQ(k.layout, "hf-aimv2");
    EXPECT_EQ(k.family(), "AIMv2");
    EXPECT_FALSE(k.class_token);
    EXPECT_EQ(k.prefix_tokens(), 0);
    EXPECT_TRUE(k.rms_norm && k.embed_norm && k.glu && k.final_norm);
    EXPECT_FALSE(k.qkv_bias);
    EXPECT_FALSE(k.proj_bias);
    EXPECT_EQ(k.act, Activation::kSilu);
    EXPECT_FLOAT_EQ(k.ln_eps, 1e-5f);
    EXPECT_EQ(k.mlp_hidden, 88);
    EXPECT_EQ(k.pool, GlobalPool::kMap);
    EXPECT_EQ(k.map_latent_len, 1);
    EXPECT_EQ(k.map_mlp_hidden, 0);
    EXPECT_FALSE(k.map_qkv_bias);
    EXPECT_EQ(k.num_classes, 0);
    EXPECT_EQ(k.tokens(), 16);
    // CLIPImageProcessor's plan (apple/aimv2-*): shorter side, then the centre crop; OpenAI mean.
    EXPECT_EQ(k.preprocess.resize, PreprocessConfig::Resize::kShortestEdgeCrop);
    EXPECT_NEAR(k.preprocess.mean[0], 0.48145466f, 1e-7f);
    // The SwiGLU fc1: gate rows first, then up; the head's query is the cls_token itself.
    const Tensor& g = c.t.at("encoder.layers.1.ffn.gate_proj.weight");
    const Tensor& u = c.t.at("encoder.layers.1.ffn.up_proj.weight");
    const std::vector<float>& fc1 = m->w.blocks[1].fc1_w.data;
    ASSERT_EQ(fc1.size(), g.data.size() + u.data.size());
    EXPECT_TRUE(std::equal(g.data.begin(), g.data.end(), fc1.begin()));
    EXPECT_TRUE(std::equal(u.data.begin(), u.data.end(), fc1.begin() + static_cast<std::ptrdiff_t>(g.data.size())));
    EXPECT_EQ(m->w.attn_pool.latent.data, c.t.at("head.cls_token").data);
    EXPECT_EQ(m->w.patch_norm_w.data, c.t.at("embeddings.rms_norm.weight").data);
    int64_t stored = 0;  // no identity q in the count: the head has no q projection
    for (const auto& kv : c.t) stored += kv.second.numel();
    EXPECT_EQ(k.param_count(), stored);
    if (with_cfg) EXPECT_TRUE(m->warnings.empty()) << m->warnings.front();
  }
  {
    SCOPED_TRACE("qkv_bias, mlp_bias, no head");
    auto m = load_model(test::data_path("golden_families/hf_aimv2_vision_bias/model"));
    EXPECT_TRUE(m->cfg.qkv_bias);
    EXPECT_TRUE(m->cfg.proj_bias);
    EXPECT_EQ(m->cfg.pool, GlobalPool::kAvg);
    EXPECT_FLOAT_EQ(m->cfg.ln_eps, 1e-6f);
  }
  HfCase c = read_hf_case("hf_aimv2_vision");
  {
    SCOPED_TRACE("is_native");
    json cfg = c.cfg;
    cfg["is_native"] = true;
    expect_error([&] { load_model(make_dir(c.t, "model.safetensors", cfg)); }, ErrorCode::kUnsupported, {"is_native"});
  }
  {
    SCOPED_TRACE("a missing head tensor is named");
    TensorMap t = c.t;
    t.erase("head.v_proj.weight");
    expect_error([&] { load_model(make_dir(t, "model.safetensors", c.cfg)); }, ErrorCode::kFormat,
                 {"missing", "head.v_proj.weight"});
  }
  {
    SCOPED_TRACE("a bias the config does not expect");
    TensorMap t = c.t;
    t["encoder.layers.0.ffn.gate_proj.bias"] = Tensor({88});
    expect_error([&] { load_model(make_dir(t, "model.safetensors", c.cfg)); }, ErrorCode::kFormat, {"missing"});
  }
  {
    SCOPED_TRACE("the whole AIMv2 model");
    json cfg = c.cfg;
    cfg["model_type"] = "aimv2";
    expect_error([&] { load_model(make_dir(c.t, "model.safetensors", cfg)); }, ErrorCode::kUnsupported,
                 {"aimv2_vision_model"});
  }
}


TEST(Loader, HfFamiliesConfig) {
  struct Want {
    const char* name;
    const char* family;
    int prefix, reg, classes, embed;
    bool dist, dist_head, pre_norm, patch_bias, layer_scale;
    Activation act;
    float eps;
  } wants[] = {
      {"hf_deit_teacher", "DeiT distilled", 2, 0, 7, 64, true, true, false, true, false, Activation::kGeluErf, 1e-12f},
      {"hf_deit_cls", "DeiT", 2, 0, 5, 64, true, false, false, true, false, Activation::kGeluErf, 1e-12f},
      {"hf_deit_bare", "DeiT", 2, 0, 0, 96, true, false, false, true, false, Activation::kGeluErf, 1e-12f},
      {"hf_clip", "CLIP tower", 1, 0, 0, 64, false, true, true, false, false, Activation::kQuickGelu, 1e-5f},
      {"hf_clip_proj", "CLIP tower", 1, 0, 0, 24, false, true, true, false, false, Activation::kGeluErf, 1e-6f},
      {"hf_dinov2", "DINOv2", 1, 0, 0, 64, false, true, false, true, true, Activation::kGeluErf, 1e-6f},
      {"hf_dinov2_reg", "DINOv2", 5, 4, 0, 64, false, true, false, true, true, Activation::kGeluErf, 1e-6f},
      {"hf_dinov2_cls", "DINOv2", 1, 0, 5, 64, false, true, false, true, true, Activation::kGeluErf, 1e-6f},
      {"hf_dinov2_reg_cls", "DINOv2", 5, 4, 7, 64, false, true, false, true, true, Activation::kGeluErf, 1e-6f},
      // A whole CLIPModel: its vision_config, projection_dim 24 (the text tower is not read).
      {"hf_clip_model", "CLIP tower", 1, 0, 0, 24, false, true, true, false, false, Activation::kQuickGelu, 1e-5f},
  };
  for (const Want& w : wants) {
    SCOPED_TRACE(w.name);
    const auto m = load_model(test::data_path(std::string("golden_families/") + w.name + "/model"));
    const ViTConfig& c = m->cfg;
    EXPECT_EQ(c.layout, "hf");
    EXPECT_EQ(c.family(), w.family);
    EXPECT_EQ(c.prefix_tokens(), w.prefix);
    EXPECT_EQ(c.reg_tokens, w.reg);
    EXPECT_EQ(c.num_classes, w.classes);
    EXPECT_EQ(c.embed_dim(), w.embed);
    EXPECT_EQ(c.dist_token, w.dist);
    if (c.dist_token) EXPECT_EQ(c.dist_head, w.dist_head);
    EXPECT_EQ(c.pre_norm, w.pre_norm);
    EXPECT_EQ(c.patch_bias, w.patch_bias);
    EXPECT_EQ(c.layer_scale, w.layer_scale);
    EXPECT_EQ(c.act, w.act);
    EXPECT_FLOAT_EQ(c.ln_eps, w.eps);
    EXPECT_EQ(c.tokens(), 16 + w.prefix);
    EXPECT_EQ(c.no_embed_class, w.reg > 0);
    if (c.hf_class == "CLIPModel") {  // the one warning says which tensors are not read
      ASSERT_EQ(m->warnings.size(), 1u);
      EXPECT_NE(m->warnings[0].find("CLIPModel: its text tower (22 tensors) is not used"), std::string::npos)
          << m->warnings[0];
    } else {
      EXPECT_TRUE(m->warnings.empty()) << m->warnings.front();
    }
    EXPECT_EQ(c.hf_class, m->cfg.hf_class);
    EXPECT_NE(c.describe().find(c.hf_class), std::string::npos) << c.describe();
  }
  // Without a preprocessor_config.json, each family's own processor (at the 32 px run size): CLIP
  // shorter side 32 + crop, OpenAI mean / std; DINOv2 256 / 224 of it (37) + crop, ImageNet; DeiT
  // ViTImageProcessor's bilinear squash.
  {
    const auto clip = load_model(test::data_path("golden_families/hf_clip/model"));
    const PreprocessConfig& pc = clip->cfg.preprocess;
    EXPECT_EQ(pc.resize, PreprocessConfig::Resize::kShortestEdgeCrop);
    EXPECT_EQ(pc.shortest_edge, 32);
    EXPECT_EQ(pc.interpolation, "bicubic");
    EXPECT_FLOAT_EQ(pc.mean[0], 0.48145466f);
    const auto dino = load_model(test::data_path("golden_families/hf_dinov2/model"));
    EXPECT_EQ(dino->cfg.preprocess.resize, PreprocessConfig::Resize::kShortestEdgeCrop);
    EXPECT_EQ(dino->cfg.preprocess.shortest_edge, 37);  // round(256 * 32 / 224)
    EXPECT_FLOAT_EQ(dino->cfg.preprocess.std[2], 0.225f);
    const auto deit = load_model(test::data_path("golden_families/hf_deit_cls/model"));
    EXPECT_EQ(deit->cfg.preprocess.resize, PreprocessConfig::Resize::kDirect);
    // A hub DINOv2 preprocessor_config.json (BitImageProcessor: 256 -> crop 224), the model at 32:
    // the crop's share of the shorter side is kept (256 * 32 / 224 = 36.6 -> 37).
    HfCase h = read_hf_case("hf_dinov2");
    const std::string dir = hf_dir(h);
    save_json(dir + "/preprocessor_config.json",
              {{"do_center_crop", true}, {"crop_size", {{"height", 224}, {"width", 224}}},
               {"size", {{"shortest_edge", 256}}}, {"resample", 3}, {"image_mean", {0.485, 0.456, 0.406}},
               {"image_std", {0.229, 0.224, 0.225}}, {"image_processor_type", "BitImageProcessor"}});
    // The model runs at the processor's 224 crop, its table interpolated as Dinov2Model does on
    // every forward (issue 25: facebook/dinov2-* ship image_size 518 beside a 224 crop).
    const auto hub = load_model(dir);
    EXPECT_EQ(hub->cfg.preprocess.resize, PreprocessConfig::Resize::kShortestEdgeCrop);
    EXPECT_EQ(hub->cfg.preprocess.shortest_edge, 256);
    EXPECT_EQ(hub->cfg.preprocess.input_h, 224);
    EXPECT_EQ(hub->cfg.image_h, 224);
    EXPECT_EQ(hub->cfg.pos_rule, PosResample::kHF);
    EXPECT_TRUE(has_warning(*hub, "running at 224x224 as transformers does")) << hub->cfg.describe();
    EXPECT_TRUE(has_warning(*hub, "on every forward"));
    // Without the centre crop, shortest_edge gives each image its own size: refused by name.
    save_json(dir + "/preprocessor_config.json", {{"size", {{"shortest_edge", 32}}}});
    EXPECT_THROW(load_model(dir), Error);
  }
  // The projection's width is what info prints for the embeddings.
  const auto p = load_model(test::data_path("golden_families/hf_clip_proj/model"));
  EXPECT_NE(p->cfg.describe().find("embeddings   : 24 (the projected image embedding"), std::string::npos)
      << p->cfg.describe();
  EXPECT_EQ(p->w.proj_w.shape, (Shape{24, 64}));
}

// DINOv2-with-registers: HF adds the table to (cls, patches) and inserts the registers after cls;
// internally the cls row's position is folded into the token and the table holds the patch rows.
TEST(Loader, HfDinov2RegistersFoldClsPosition) {
  const HfCase c = read_hf_case("hf_dinov2_reg");
  const auto m = load_model(hf_dir(c));
  const Tensor& cls = c.t.at("embeddings.cls_token");          // [1, 1, D]
  const Tensor& pos = c.t.at("embeddings.position_embeddings");  // [1, 1 + 16, D]
  const Tensor& reg = c.t.at("embeddings.register_tokens");      // [1, 4, D]
  const int64_t D = 64;
  ASSERT_EQ(m->w.prefix.shape, (Shape{5, D}));
  for (int64_t d = 0; d < D; ++d) EXPECT_EQ(m->w.prefix.data[d], cls.data[d] + pos.data[d]) << d;
  EXPECT_TRUE(std::equal(reg.data.begin(), reg.data.end(), m->w.prefix.data.begin() + D));
  ASSERT_EQ(m->w.pos.shape, (Shape{16, D}));
  EXPECT_TRUE(std::equal(pos.data.begin() + D, pos.data.end(), m->w.pos.data.begin()));
}

TEST(LoaderErrors, HfFamilyMappings) {
  // A missing tensor of each family's own names is named.
  const struct {
    const char* name;
    const char* drop;
  } missing[] = {
      {"hf_deit_teacher", "distillation_classifier.bias"},
      {"hf_deit_cls", "deit.embeddings.distillation_token"},
      {"hf_clip", "pre_layrnorm.bias"},
      {"hf_clip", "encoder.layers.1.self_attn.k_proj.weight"},
      {"hf_clip_proj", "vision_model.post_layernorm.weight"},
      {"hf_dinov2", "encoder.layer.1.layer_scale2.lambda1"},
      {"hf_dinov2_reg", "encoder.layer.0.mlp.fc2.bias"},
  };
  for (const auto& c : missing) {
    SCOPED_TRACE(c.name);
    HfCase h = read_hf_case(c.name);
    ASSERT_EQ(h.t.erase(c.drop), 1u) << c.drop;
    expect_error([&] { load_model(hf_dir(h)); }, ErrorCode::kFormat, {"missing 1", c.drop, "hf layout"});
  }
  // A wrong shape is named with both shapes.
  const struct {
    const char* name;
    const char* tensor;
    Shape bad;
    const char* want;
  } shapes[] = {
      {"hf_deit_teacher", "distillation_classifier.weight", {7, 63}, "expected [7, 64]"},
      {"hf_clip", "embeddings.class_embedding", {1, 1, 64}, "expected [64]"},
      {"hf_clip_proj", "visual_projection.weight", {24, 65}, "expected [24, 64]"},
      {"hf_dinov2", "encoder.layer.0.layer_scale1.lambda1", {65}, "expected [64]"},
      {"hf_dinov2_reg", "embeddings.position_embeddings", {1, 21, 64}, "position_embeddings"},
  };
  for (const auto& c : shapes) {
    SCOPED_TRACE(c.name);
    HfCase h = read_hf_case(c.name);
    h.t[c.tensor] = test::random_tensor(c.bad);
    expect_error([&] { load_model(hf_dir(h)); }, ErrorCode::kFormat, {c.tensor, c.want});
  }
  // config.json naming another family than the tensors.
  HfCase h = read_hf_case("hf_dinov2");
  h.cfg["model_type"] = "vit";
  expect_error([&] { load_model(hf_dir(h)); }, ErrorCode::kFormat, {"model_type 'vit'", "HF DINOv2 layout"});
  h = read_hf_case("hf_deit_cls");
  h.cfg["model_type"] = "clip_vision_model";
  expect_error([&] { load_model(hf_dir(h)); }, ErrorCode::kFormat, {"'clip_vision_model'", "HF DeiT layout"});
  // A config projection width that the tensor contradicts is reported, the tensor decides.
  h = read_hf_case("hf_clip_proj");
  h.cfg["projection_dim"] = 512;
  const auto m = load_model(hf_dir(h));
  EXPECT_EQ(m->cfg.proj_dim, 24);
  ASSERT_FALSE(m->warnings.empty());
  EXPECT_NE(m->warnings.back().find("projection_dim 512"), std::string::npos) << m->warnings.back();
}

TEST(LoaderErrors, HfFamilyRunSizesAndRefusals) {
  // Another run size: each HF family's own interpolate_pos_encoding rule (prefix rows kept).
  // The numerics are the golden fixtures' (hf_*_48 / _56 / _24); this checks which rule is used.
  const struct {
    const char* name;
    int prefix;  // stored prefix rows kept as they are
    PosResample rule;
  } sized[] = {
      {"hf_dinov2", 1, PosResample::kHF},
      {"hf_clip", 1, PosResample::kHF},
      {"hf_deit_teacher", 2, PosResample::kHF},
      {"hf_dinov2_reg", 0, PosResample::kTimm},  // its own copy passes antialias=True; cls row folded
  };
  for (const auto& c : sized) {
    SCOPED_TRACE(c.name);
    ConfigOverrides ov;
    ov.image_size = 48;
    const auto m48 = load_model(test::data_path(std::string("golden_families/") + c.name + "/model"), ov);
    const auto m32 = load_model(test::data_path(std::string("golden_families/") + c.name + "/model"));
    EXPECT_EQ(m48->cfg.grid_h(), 6);
    const Tensor want = resample_pos_embed(m32->w.pos, 4, 4, 6, 6, c.prefix, c.rule);
    EXPECT_EQ(m48->w.pos.shape, want.shape);
    EXPECT_EQ(m48->w.pos.data, want.data);
    const Tensor other = resample_pos_embed(m32->w.pos, 4, 4, 6, 6, c.prefix,
                                            c.rule == PosResample::kHF ? PosResample::kTimm : PosResample::kHF);
    EXPECT_NE(m48->w.pos.data, other.data);
  }
  // Dinov2ForImageClassification: its [C, 2D] classifier split into the cls and patch-mean halves.
  {
    const HfCase c = read_hf_case("hf_dinov2_cls");
    const auto m = load_model(hf_dir(c));
    EXPECT_TRUE(m->cfg.head_cls_mean);
    EXPECT_EQ(m->cfg.num_classes, 5);
    const Tensor& hw = c.t.at("classifier.weight");  // [5, 128]
    ASSERT_EQ(m->w.head_w.shape, (Shape{5, 64}));
    ASSERT_EQ(m->w.head_mean_w.shape, (Shape{5, 64}));
    for (int64_t r = 0; r < 5; ++r)
      for (int64_t d = 0; d < 64; ++d) {
        EXPECT_EQ(m->w.head_w.data[r * 64 + d], hw.data[r * 128 + d]);
        EXPECT_EQ(m->w.head_mean_w.data[r * 64 + d], hw.data[r * 128 + 64 + d]);
      }
    EXPECT_NE(m->cfg.describe().find("classifier over concat(cls, mean of the patch tokens)"), std::string::npos);
    HfCase bad = c;
    bad.t["classifier.weight"] = test::random_tensor({5, 64});  // a ViT-style [C, D] head
    expect_error([&] { load_model(hf_dir(bad)); }, ErrorCode::kFormat, {"classifier.weight", "expected [5, 128]"});
  }
  HfCase h;
  // A config that says SwiGLU for a plain MLP's tensors is a contradiction, named.
  h = read_hf_case("hf_dinov2");
  h.cfg["use_swiglu_ffn"] = true;
  expect_error([&] { load_model(hf_dir(h)); }, ErrorCode::kFormat, {"gated (SwiGLU)", "mlp.fc1.weight", "a plain one"});
  // Refused by a config flag, or (without a config.json) by a tensor: the original DINOv2 code's
  // fused SwiGLU names (mlp.w12), and SigLIP's attention-pooling head in a ViT layout.
  const struct {
    const char* name;
    const char* cfg_key;  // set in config.json, or null
    json cfg_value;
    const char* tensor;  // added (config.json dropped), or null
    Shape shape;
    std::vector<std::string> frags;
  } refused[] = {
      {"hf_dinov2", nullptr, nullptr, "encoder.layer.0.mlp.w12.weight", {256, 64}, {"SwiGLU", "mlp.w12"}},
      {"hf_clip", nullptr, nullptr, "head.attention.in_proj_weight", {192, 64}, {"attention-pooling head", "head.attention"}},
  };
  for (const auto& r : refused) {
    SCOPED_TRACE(r.name);
    h = read_hf_case(r.name);
    if (r.cfg_key) h.cfg[r.cfg_key] = r.cfg_value;
    if (r.tensor) {
      h.t[r.tensor] = test::random_tensor(r.shape);
      h.cfg = nullptr;
    }
    try {
      load_model(hf_dir(h));
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
      for (const std::string& f : r.frags) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    }
  }
  // A whole-model model_type without its vision_config is malformed, named; a whole SiglipModel
  // runs its image tower (the text tower's tensors, logit_scale and logit_bias not read).
  h = read_hf_case("hf_clip");
  h.cfg["model_type"] = "siglip";
  expect_error([&] { load_model(hf_dir(h)); }, ErrorCode::kFormat, {"model_type 'siglip'", "SiglipModel", "no vision_config"});
  {
    const auto m = load_model(test::data_path("golden_families/hf_siglip_model/model"));
    EXPECT_EQ(m->cfg.family(), "SigLIP tower");
    EXPECT_EQ(m->cfg.pool, GlobalPool::kMap);
    EXPECT_EQ(m->cfg.hf_class, "SiglipModel");
    ASSERT_EQ(m->warnings.size(), 1u);
    EXPECT_NE(m->warnings[0].find("SiglipModel: its text tower"), std::string::npos) << m->warnings[0];
  }
  // A CLIPModel without its visual projection: the missing tensor named (not a text-tower one).
  h = read_hf_case("hf_clip_model");
  h.t.erase("visual_projection.weight");
  expect_error([&] { load_model(hf_dir(h)); }, ErrorCode::kFormat, {"visual_projection.weight"});
  // Two base-model prefixes in one file.
  h = read_hf_case("hf_deit_cls");
  h.t["vit.embeddings.cls_token"] = test::random_tensor({1, 1, 64});
  expect_error([&] { load_model(hf_dir(h)); }, ErrorCode::kFormat, {"found a mix"});
}

}  // namespace
}  // namespace vit

namespace vit {
namespace {

// open_clip's own layout (the golden fixtures oc_openai / oc_avg_ls, whose numbers test_golden
// checks): the image tower under timm's names, the text tower not read; what open_clip_config.json
// says (QuickGELU, heads from head_width, avg pooling with ln_post on the pooled row as fc_norm)
// and, without it, eps 1e-5 and a warning that GELU is assumed; the variants it does not run
// refused by name.
TEST(Loader, OpenClipLayout) {
  const std::string oc = test::data_path("golden_families/oc_openai/model");
  {
    const auto m = load_model(oc);
    const ViTConfig& c = m->cfg;
    EXPECT_EQ(c.family(), "CLIP tower");
    EXPECT_EQ(c.act, Activation::kQuickGelu);
    EXPECT_EQ(c.heads, 4);
    EXPECT_FLOAT_EQ(c.ln_eps, 1e-5f);
    EXPECT_TRUE(c.pre_norm);
    EXPECT_FALSE(c.patch_bias);
    EXPECT_EQ(c.proj_dim, 24);
    EXPECT_EQ(c.embed_dim(), 24);
    EXPECT_EQ(c.num_classes, 0);
    EXPECT_TRUE(c.final_norm);
    EXPECT_EQ(c.preprocess.resize, PreprocessConfig::Resize::kShortestThenCrop);
    EXPECT_FLOAT_EQ(c.preprocess.crop_pct, 1.0f);
    EXPECT_TRUE(has_warning(*m, "open_clip CLIP: its text tower (18 tensors) is not used"));
  }
  {
    const auto m = load_model(test::data_path("golden_families/oc_avg_ls/model"));
    EXPECT_EQ(m->cfg.pool, GlobalPool::kAvg);
    EXPECT_TRUE(m->cfg.fc_norm);
    EXPECT_FALSE(m->cfg.final_norm);
    EXPECT_TRUE(m->cfg.layer_scale);
    EXPECT_FALSE(m->cfg.pre_norm);
    EXPECT_EQ(m->cfg.act, Activation::kGeluErf);
  }
  // The safetensors file alone: heads from the caller, eps 1e-5, GELU assumed with a warning.
  TensorMap t;
  {
    const SafetensorsFile f(oc + "/open_clip_model.safetensors");
    for (const std::string& n : f.names()) t[n] = f.read(n);
  }
  {
    const auto m = load_model(make_dir(t, "open_clip_model.safetensors"), heads(4));
    EXPECT_FLOAT_EQ(m->cfg.ln_eps, 1e-5f);
    EXPECT_EQ(m->cfg.act, Activation::kGeluErf);
    EXPECT_TRUE(has_warning(*m, "without open_clip_config.json: GELU (erf) assumed"));
  }
  // CoCa's attentional pooler and a missing tensor, each named.
  TensorMap coca = t;
  coca["visual.attn_pool.query"] = test::random_tensor({4, 64});
  expect_error([&] { load_model(make_dir(coca, "open_clip_model.safetensors"), heads(4)); }, ErrorCode::kUnsupported,
               {"attentional pooler", "visual.attn_pool.query"});
  TensorMap missing = t;
  missing.erase("visual.transformer.resblocks.1.mlp.c_fc.bias");
  expect_error([&] { load_model(make_dir(missing, "open_clip_model.safetensors"), heads(4)); }, ErrorCode::kFormat,
               {"blocks.1.mlp.fc1.bias"});
  // open_clip_config.json variants the engine does not run.
  const json base = json::parse(std::ifstream(oc + "/open_clip_config.json"));
  for (const auto& [key, value, frag] : std::vector<std::tuple<std::string, json, std::string>>{
           {"timm_model_name", "vit_base_patch16_siglip_224", "timm trunk"},
           {"attentional_pool", true, "attentional pooler"},
           {"qk_norm", true, "qk_norm"},
           {"pool_type", "none", "pool_type 'none'"}}) {
    SCOPED_TRACE(key);
    json cfg = base;
    cfg["model_cfg"]["vision_cfg"][key] = value;
    const std::string dir = make_dir(t, "open_clip_model.safetensors");
    save_json(dir + "/open_clip_config.json", cfg);
    expect_error([&] { load_model(dir); }, ErrorCode::kUnsupported, {frag});
  }
}

}  // namespace
}  // namespace vit
