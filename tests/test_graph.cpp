// vit-infer tests: the graph IR (src/graph): the layer order build_vit emits, what the fusion
// pass folds (and what it must leave alone), and its off switch. Models are random in-memory
// ViTs (model_fixture.h); nothing here runs a kernel (the engines' tests compare fused and
// unfused runs numerically).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

#include "core/error.h"
#include "graph/graph.h"
#include "model_fixture.h"

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
            "gelu blocks.0.mlp.act (blocks.0.mlp.fc1.out) -> blocks.0.mlp.act.out\n"
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
    EXPECT_EQ(before.at(Op::kGelu), c.depth);
    graph::fuse(g);
    const auto after = op_counts(g);
    EXPECT_TRUE(g.fused);
    EXPECT_EQ(after.count(Op::kAdd), 0u) << g.describe();
    EXPECT_EQ(after.count(Op::kGelu), 0u) << g.describe();
    EXPECT_EQ(after.at(Op::kLinear), before.at(Op::kLinear));
    EXPECT_EQ(static_cast<int>(g.nodes.size()), static_cast<int>(graph::build_vit(*m, dt, "t").nodes.size()) - 3 * c.depth);
    int gelu = 0, residual = 0, qkv = 0, table = 0;
    for (const graph::Node& n : g.nodes) {
      if (n.op == Op::kEmbed) EXPECT_TRUE(n.p<graph::EmbedParams>().patches_final);
      if (n.op != Op::kLinear) continue;
      const auto& p = n.p<graph::LinearParams>();
      gelu += p.act == graph::Act::kGelu;
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

}  // namespace
}  // namespace vit
