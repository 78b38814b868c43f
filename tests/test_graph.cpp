// vit-infer tests: the graph IR (src/graph): the layer order build_vit emits, what the fusion
// pass folds (and what it must leave alone), and its off switch. Models are random in-memory
// ViTs (model_fixture.h); nothing here runs a kernel (the engines' tests compare fused and
// unfused runs numerically).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <string>

#include "core/error.h"
#include "graph/graph.h"
#include "model_fixture.h"
#include "test_util.h"

namespace vit {
namespace {

using graph::Graph;
using graph::Op;

std::map<Op, int> op_counts(const Graph& g) {
  std::map<Op, int> m;
  for (const graph::Node& n : g.nodes) ++m[n.op];
  return m;
}

// Every tensor a node reads is produced by an earlier node (or is the input / a weight): the
// node order is an execution order, before and after fusion.
void expect_topological(const Graph& g) {
  std::vector<bool> ready(g.tensors.size(), false);
  for (size_t t = 0; t < g.tensors.size(); ++t) ready[t] = g.tensors[t].kind != graph::TensorKind::kActivation;
  for (const graph::Node& n : g.nodes) {
    for (int t : n.in)
      if (t >= 0) EXPECT_TRUE(ready[static_cast<size_t>(t)]) << n.name << " reads " << g.t(t).name << " before it is written";
    for (int t : n.out) ready[static_cast<size_t>(t)] = true;
  }
  EXPECT_TRUE(ready[static_cast<size_t>(g.embeddings)]);
}

TEST(Graph, UnfusedLayerOrderOfOneBlock) {
  ViTConfig c = test::small_config(16, 16, 8, 16, 2, 1, 3);
  auto m = test::random_model(c, 1);
  const Graph g = graph::build_vit(*m, DType::F32, "test");
  EXPECT_EQ(g.describe(),
            "patchify patchify (images) -> patchify.out\n"
            "linear patch_embed (patchify.out, patch_embed.proj.weight, -, -) -> patch_embed.out\n"
            "embed embed (patch_embed.out, cls_token, pos_embed, patch_embed.proj.bias) -> embed.out\n"
            "layernorm blocks.0.norm1 (embed.out, blocks.0.norm1.weight, blocks.0.norm1.bias, -) -> blocks.0.norm1.out\n"
            "linear blocks.0.attn.qkv (blocks.0.norm1.out, blocks.0.attn.qkv.weight, blocks.0.attn.qkv.bias, -) -> blocks.0.attn.qkv.out\n"
            "attention blocks.0.attn (blocks.0.attn.qkv.out) -> blocks.0.attn.out\n"
            "linear blocks.0.attn.proj (blocks.0.attn.out, blocks.0.attn.proj.weight, blocks.0.attn.proj.bias, -) -> blocks.0.attn.proj.out\n"
            "add blocks.0.add1 (embed.out, blocks.0.attn.proj.out) -> blocks.0.add1.out\n"
            "layernorm blocks.0.norm2 (blocks.0.add1.out, blocks.0.norm2.weight, blocks.0.norm2.bias, -) -> blocks.0.norm2.out\n"
            "linear blocks.0.mlp.fc1 (blocks.0.norm2.out, blocks.0.mlp.fc1.weight, blocks.0.mlp.fc1.bias, -) -> blocks.0.mlp.fc1.out\n"
            "act blocks.0.mlp.act (blocks.0.mlp.fc1.out) -> blocks.0.mlp.act.out\n"
            "linear blocks.0.mlp.fc2 (blocks.0.mlp.act.out, blocks.0.mlp.fc2.weight, blocks.0.mlp.fc2.bias, -) -> blocks.0.mlp.fc2.out\n"
            "add blocks.0.add2 (blocks.0.add1.out, blocks.0.mlp.fc2.out) -> blocks.0.add2.out\n"
            "layernorm norm (blocks.0.add2.out, norm.weight, norm.bias, -) -> norm.out\n"
            "pool pool (norm.out) -> pool.out\n"
            "linear head (pool.out, head.weight, head.bias, -) -> head.out\n"
            "cast logits (head.out) -> logits.out\n"
            "cast embeddings (pool.out) -> embeddings.out\n");
  expect_topological(g);
  EXPECT_EQ(g.t(g.logits).dtype, DType::F32);
}

TEST(Graph, FusionFoldsGeluResidualPatchAndQkv) {
  ViTConfig c = test::small_config(24, 16, 8, 24, 3, 3, 5);
  auto m = test::random_model(c, 2);
  for (DType dt : {DType::F32, DType::BF16}) {
    Graph g = graph::build_vit(*m, dt, "test");
    const auto before = op_counts(g);
    EXPECT_EQ(before.at(Op::kAdd), 2 * c.depth);
    EXPECT_EQ(before.at(Op::kAct), c.depth);
    graph::fuse(g);
    const auto after = op_counts(g);
    EXPECT_TRUE(g.fused);
    EXPECT_EQ(after.count(Op::kAdd), 0u) << g.describe();
    EXPECT_EQ(after.count(Op::kAct), 0u) << g.describe();
    EXPECT_EQ(after.at(Op::kLinear), before.at(Op::kLinear));
    EXPECT_EQ(static_cast<int>(g.nodes.size()), static_cast<int>(graph::build_vit(*m, dt, "t").nodes.size()) - 3 * c.depth);
    int gelu = 0, residual = 0, qkv = 0, table = 0;
    for (const graph::Node& n : g.nodes) {
      if (n.op == Op::kEmbed) EXPECT_TRUE(n.p<graph::EmbedParams>().patches_final);
      if (n.op != Op::kLinear) continue;
      const auto& p = n.p<graph::LinearParams>();
      gelu += p.act == Activation::kGeluErf;
      residual += n.input(3) >= 0 && !p.table_residual;
      table += p.table_residual;
      qkv += p.qkv_scatter;
    }
    EXPECT_EQ(gelu, c.depth);
    EXPECT_EQ(residual, 2 * c.depth);  // proj and fc2 of every block
    EXPECT_EQ(table, 1);               // the patch GEMM adds bias + pos
    EXPECT_EQ(qkv, c.depth);
    expect_topological(g);
  }
}

// LayerScale sits between the GEMM and the residual add: the add is not folded into the GEMM
// but into the following LayerNorm (which then outputs the sum too), the last block's second
// add into the final norm over the tokens (the features output), so no add is left.
TEST(Graph, LayerScaleBlocksGemmResidualFusion) {
  ViTConfig c = test::small_config(16, 16, 8, 16, 2, 2, 3);
  c.layer_scale = true;
  auto m = test::random_model(c, 3);
  Graph g = graph::build_vit(*m, DType::F32, "test");
  EXPECT_EQ(op_counts(g).at(Op::kScale), 2 * c.depth);
  graph::fuse(g);
  const auto after = op_counts(g);
  EXPECT_EQ(after.at(Op::kScale), 2 * c.depth);
  EXPECT_EQ(after.count(Op::kAdd), 0u) << g.describe();
  int ln_res = 0;
  for (const graph::Node& n : g.nodes)
    if (n.op == Op::kLayerNorm && n.input(3) >= 0) {
      ++ln_res;
      EXPECT_EQ(n.out.size(), 2u);
    }
  EXPECT_EQ(ln_res, 2 * c.depth);
  expect_topological(g);
}

TEST(Graph, BuilderNamesAWrongWeight) {
  ViTConfig c = test::small_config(16, 16, 8, 16, 2, 2, 3);
  c.layer_scale = true;
  auto m = test::random_model(c, 4);
  m->w.blocks[1].ls2 = Tensor({15});
  try {
    graph::build_vit(*m, DType::F32, "test engine");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("test engine: weight 'blocks.1.ls2.gamma'"), std::string::npos) << e.what();
  }
}

TEST(Graph, FusionSwitch) {
  unsetenv("VIT_DISABLE_FUSION");
  EXPECT_TRUE(graph::fusion_enabled(true));
  EXPECT_FALSE(graph::fusion_enabled(false));
  setenv("VIT_DISABLE_FUSION", "1", 1);
  EXPECT_FALSE(graph::fusion_enabled(true));
  setenv("VIT_DISABLE_FUSION", "0", 1);
  EXPECT_TRUE(graph::fusion_enabled(true));
  unsetenv("VIT_DISABLE_FUSION");
}

// The map head (attention pool) is composed of existing ops plus one cross-attention whose query
// is the latent projected once at build time (a derived weight, the same for every image); its
// kv GEMM reads every normed token and the cross-attention skips the prefix rows. Fusion folds
// the head's GELU into fc1 and its residual add into fc2.
TEST(Graph, MapHead) {
  ViTConfig c = test::small_config(16, 16, 4, 16, 2, 1, 3);
  c.class_token = false;
  c.reg_tokens = 2;
  c.pool = GlobalPool::kMap;
  c.map_latent_len = 1;
  c.map_mlp_hidden = 24;
  auto m = test::random_model(c, 3);
  Model& mm = *m;
  const int64_t D = c.hidden, M = c.map_mlp_hidden;
  auto r = [](std::vector<int64_t> s) { return test::random_tensor(std::move(s)); };
  AttnPoolWeights& w = mm.w.attn_pool;
  w.latent = r({1, D});
  w.q_w = r({D, D});
  w.q_b = r({D});
  w.kv_w = r({2 * D, D});
  w.kv_b = r({2 * D});
  w.proj_w = r({D, D});
  w.proj_b = r({D});
  w.norm_w = r({D});
  w.norm_b = r({D});
  w.fc1_w = r({M, D});
  w.fc1_b = r({M});
  w.fc2_w = r({D, M});
  w.fc2_b = r({D});
  mm.w.reg = r({2, D});
  mm.w.prefix = mm.w.reg;
  mm.w.pos = r({c.pos_rows(c.num_patches()), D});
  Graph g = graph::build_vit(mm, DType::F32, "test");
  expect_topological(g);
  std::map<Op, int> n = op_counts(g);
  EXPECT_EQ(n[Op::kCrossAttention], 1);
  const graph::Node* ca = nullptr;
  for (const graph::Node& nd : g.nodes)
    if (nd.op == Op::kCrossAttention) ca = &nd;
  ASSERT_NE(ca, nullptr);
  EXPECT_EQ(ca->p<graph::CrossAttentionParams>().first, 2);
  EXPECT_EQ(ca->p<graph::CrossAttentionParams>().heads, c.heads);
  const graph::TensorDesc& q = g.t(ca->in[0]);
  EXPECT_EQ(q.kind, graph::TensorKind::kWeight);
  ASSERT_EQ(g.derived.size(), 1u);
  EXPECT_EQ(q.host, g.derived[0].get());
  // q = latent Wq^T + bq, computed once.
  for (int64_t o = 0; o < D; ++o) {
    double s = w.q_b.data[o];
    for (int64_t i = 0; i < D; ++i) s += static_cast<double>(w.latent.data[i]) * w.q_w.data[o * D + i];
    EXPECT_NEAR(q.host->data[o], s, 1e-5 * (1 + std::fabs(s)));
  }
  EXPECT_EQ(g.t(ca->in[1]).shape, (std::vector<int64_t>{c.tokens(), 2 * D}));
  EXPECT_EQ(g.t(g.embeddings).shape, (std::vector<int64_t>{D}));
  // The map model keeps its head after a copy (the derived weight is shared, not dangling).
  const Graph copy = g;
  EXPECT_EQ(copy.t(ca->in[0]).host, g.derived[0].get());
  graph::fuse(g);
  expect_topological(g);
  n = op_counts(g);
  EXPECT_EQ(n[Op::kCrossAttention], 1);
  EXPECT_EQ(n[Op::kAct], 0);
  EXPECT_EQ(n[Op::kAdd], 0);
  // A map config without the head's weights is refused by name.
  mm.w.attn_pool.kv_w = Tensor();
  EXPECT_THROW(
      {
        try {
          graph::build_vit(mm, DType::F32, "test");
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("attn_pool.kv.weight"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
}

}  // namespace
}  // namespace vit
