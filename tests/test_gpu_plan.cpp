// vit-infer GPU tests that need no device: the arena planner (greedy interval packing) and the
// launchers' argument validation, which throws kInvalidArgument before touching the GPU; plus
// the engine factory's clean kDevice error when no GPU is present.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "attention.cuh"
#include "core/error.h"
#include "gemm.cuh"
#include "graph/arena.h"
#include "gpu/cuda_engine.h"
#include "gpu/cuda_ops.h"
#include "graph/graph.h"
#include "layernorm.cuh"
#include "model_fixture.h"
#include "patch_embed.cuh"
#include "test_util.h"

namespace vit::test {
namespace {


void expect_valid(const std::vector<ArenaRequest>& req, const ArenaPlan& p, int64_t align) {
  ASSERT_EQ(p.offsets.size(), req.size());
  for (size_t i = 0; i < req.size(); ++i) {
    EXPECT_EQ(p.offsets[i] % align, 0);
    EXPECT_LE(p.offsets[i] + req[i].bytes, p.total);
    for (size_t j = i + 1; j < req.size(); ++j) {
      const bool live_together = req[i].first <= req[j].last && req[j].first <= req[i].last;
      const bool overlap = p.offsets[i] < p.offsets[j] + req[j].bytes && p.offsets[j] < p.offsets[i] + req[i].bytes;
      if (req[i].bytes > 0 && req[j].bytes > 0) EXPECT_FALSE(live_together && overlap) << i << " vs " << j;
    }
  }
}

TEST(GpuArena, ReusesMemoryOfDeadTensors) {
  // A chain a -> b -> c -> d: only neighbours are alive together, so two slots suffice.
  std::vector<ArenaRequest> req = {{1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}, {1000, 3, 4}};
  const auto p = plan_arena(req, 256);
  expect_valid(req, p, 256);
  EXPECT_EQ(p.total, 2 * 1024);
  EXPECT_EQ(p.naive, 4 * 1024);
}

TEST(GpuArena, RandomLifetimesNeverOverlap) {
  std::mt19937 rng(42);
  for (int round = 0; round < 50; ++round) {
    std::vector<ArenaRequest> req;
    const int n = 1 + static_cast<int>(rng() % 60);
    for (int i = 0; i < n; ++i) {
      const int a = static_cast<int>(rng() % 40), b = static_cast<int>(rng() % 40);
      req.push_back({static_cast<int64_t>(rng() % 100000), std::min(a, b), std::max(a, b)});
    }
    const auto p = plan_arena(req, 256);
    expect_valid(req, p, 256);
    EXPECT_LE(p.total, p.naive);
    // Lower bound: the bytes alive at the busiest node.
    int64_t peak = 0;
    for (int t = 0; t < 40; ++t) {
      int64_t live = 0;
      for (const auto& r : req)
        if (r.first <= t && t <= r.last) live += (r.bytes + 255) / 256 * 256;
      peak = std::max(peak, live);
    }
    EXPECT_GE(p.total, peak);
  }
}

TEST(GpuArena, RejectsBadRequests) {
  EXPECT_THROW(plan_arena({{-1, 0, 0}}), Error);
  EXPECT_THROW(plan_arena({{10, 3, 2}}), Error);
  EXPECT_THROW(plan_arena({{10, 0, 0}}, 0), Error);
}

template <typename F>
void expect_invalid(F&& f) {
  try {
    f();
    ADD_FAILURE() << "expected kInvalidArgument";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
  }
}

TEST(GpuLaunchers, ValidateBeforeLaunching) {
  int dummy[64];
  GemmParams g;
  g.c = dummy;
  g.a = g.w = dummy;
  g.M = 0;
  g.N = g.K = 8;
  g.lda = g.ldw = g.ldc = 8;
  expect_invalid([&] { launch_gemm(g, nullptr); });  // M = 0
  g.M = 8;
  g.lda = 4;
  expect_invalid([&] { launch_gemm(g, nullptr); });  // lda < K
  g.lda = 8;
  g.epilogue = GemmEpilogue::kResidual;
  expect_invalid([&] { launch_gemm(g, nullptr); });  // no residual
  g.epilogue = GemmEpilogue::kQkv;
  g.tokens = 3;
  g.heads = 1;
  g.head_dim = 8;
  expect_invalid([&] { launch_gemm(g, nullptr); });  // M % tokens != 0 and N != 3*heads*hd

  AttentionParams a;
  a.o = dummy;
  a.q = a.k = a.v = dummy;
  a.B = a.H = 1;
  a.T = 4;
  a.head_dim = 136;  // > 128
  a.stride_t = 136;
  a.scale = 0.1f;
  expect_invalid([&] { launch_attention(a, nullptr); });
  a.head_dim = 24;
  a.stride_t = 16;  // < head_dim
  expect_invalid([&] { launch_attention(a, nullptr); });

  LayerNormParams l;
  l.y = dummy;
  l.x = l.gamma = l.beta = dummy;
  l.rows = 2;
  l.D = 8;
  l.x_stride = 4;  // < D
  l.y_stride = 8;
  expect_invalid([&] { launch_layernorm(l, nullptr); });

  PatchifyParams pp;
  pp.images = reinterpret_cast<const float*>(dummy);
  pp.cols = dummy;
  pp.B = pp.C = 1;
  pp.H = pp.W = 12;
  pp.P = 16;  // smaller than one patch (30 at patch 16 is a floor(30 / 16) = 1 grid, as timm's conv)
  pp.k_pad = 256;
  expect_invalid([&] { launch_patchify(pp, nullptr); });
}

// The op table's rows hold their limits: an attention node of head dim 136 has no row (the
// kernels take 1..128) and the refusal names the node and the limits; one of head dim 64 has.
TEST(GpuOpTable, RowsStateTheirLimits) {
  for (int64_t hd : {int64_t{64}, int64_t{136}}) {
    SCOPED_TRACE("head dim " + std::to_string(hd));
    graph::Graph g;
    graph::TensorDesc qkv, o;
    qkv.name = "qkv";
    qkv.kind = graph::TensorKind::kInput;
    qkv.shape = {50, 3 * 2 * hd};
    o.name = "o";
    o.shape = {50, 2 * hd};
    graph::Node n;
    n.op = graph::Op::kAttention;
    n.name = "blocks.0.attn";
    n.in = {g.add_tensor(qkv)};
    n.out = {g.add_tensor(o)};
    n.params = graph::AttentionParams{2, 0};
    g.nodes.push_back(n);
    if (hd <= 128) {
      EXPECT_NE(gpu::cuda_op_row(g, g.nodes[0]), nullptr);
      continue;
    }
    EXPECT_EQ(gpu::cuda_op_row(g, g.nodes[0]), nullptr);
    try {
      gpu::cuda_op_rows(g, "test");
      ADD_FAILURE() << "expected kUnsupported";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
      EXPECT_NE(std::string(e.what()).find("blocks.0.attn"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("head dims 1..128"), std::string::npos) << e.what();
    }
  }
}

TEST(GpuEngineFactory, CleanErrorWithoutDevice) {
  if (cuda_device_available()) GTEST_SKIP() << "a CUDA device is present";
  ViTConfig cfg = small_config(32, 32, 16, 64, 2, 1, 4);
  std::shared_ptr<const Model> model = random_model(cfg, 1, 1.0f);
  try {
    make_cuda_engine(model, CudaEngineOptions{});
    FAIL() << "expected kDevice";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDevice) << e.what();
  }
}

}  // namespace
}  // namespace vit::test
