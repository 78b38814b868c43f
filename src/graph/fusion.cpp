// vit-infer: the fusion pass. Rewrites an unfused graph (build_vit) into fewer nodes with the
// same semantics; every backend runs either form (the off switch, VIT_DISABLE_FUSION=1 or the
// session option, keeps the unfused one so tests compare the two). Rules, each applied where
// the intermediate tensor has no other reader:
//   linear -> act                     => linear with that activation as its epilogue
//   linear -> add(residual, .)        => linear with a residual input (y = xW^T + b + r)
//   add -> layernorm                  => layernorm with a residual (outputs LN(a + b) and a + b)
//   patch linear -> embed (pos add)   => linear with the pos table as a periodic residual; the
//                                        embed copies final patch rows (one rounding, not two)
//   qkv linear -> attention           => qkv_scatter: the GEMM may write [3, B, H, T, hd]
// Dead intermediate tensors stay in the table unused (backends skip tensors no node touches).
#include <algorithm>

#include "graph/graph.h"

namespace vit::graph {
namespace {

int producer_of(const std::vector<Node>& nodes, int t) {
  for (size_t i = 0; i < nodes.size(); ++i)
    for (int o : nodes[i].out)
      if (o == t) return static_cast<int>(i);
  return -1;
}

int readers(const Graph& g, const std::vector<Node>& nodes, int t) {
  if (g.t(t).keep) return 1 << 20;  // a graph output has a reader outside the graph
  int n = 0;
  for (const Node& nd : nodes) n += static_cast<int>(std::count(nd.in.begin(), nd.in.end(), t));
  return n;
}

void erase_node(std::vector<Node>& nodes, int i) { nodes.erase(nodes.begin() + i); }

bool plain_linear(const Node& n) {
  if (n.op != Op::kLinear) return false;
  const LinearParams& p = n.p<LinearParams>();
  return !p.act && n.input(3) < 0 && !p.qkv_scatter;
}

// One rewrite somewhere in `nodes`; false when none applies.
bool fuse_once(Graph& g, std::vector<Node>& nodes) {
  for (size_t i = 0; i < nodes.size(); ++i) {
    Node& n = nodes[i];
    if (n.op == Op::kAct) {
      const int pi = producer_of(nodes, n.in[0]);
      if (pi >= 0 && plain_linear(nodes[static_cast<size_t>(pi)]) && readers(g, nodes, n.in[0]) == 1) {
        Node& lin = nodes[static_cast<size_t>(pi)];
        lin.p<LinearParams>().act = n.p<ActParams>().act;
        lin.out = n.out;
        erase_node(nodes, static_cast<int>(i));
        return true;
      }
    }
    if (n.op == Op::kAdd) {
      for (int side = 0; side < 2; ++side) {
        const int y = n.in[static_cast<size_t>(side)], r = n.in[static_cast<size_t>(1 - side)];
        const int pi = producer_of(nodes, y);
        if (pi < 0 || readers(g, nodes, y) != 1) continue;
        Node& lin = nodes[static_cast<size_t>(pi)];
        if (!plain_linear(lin)) continue;
        // The residual must exist when the GEMM runs: produced before it (or an input).
        const int ri = producer_of(nodes, r);
        if (ri > pi) continue;
        lin.in.resize(4, -1);
        lin.in[3] = r;
        lin.out = n.out;
        erase_node(nodes, static_cast<int>(i));
        return true;
      }
      // add -> layernorm: the LayerNorm computes the sum as a second output.
      const std::vector<int> cons = [&] {
        std::vector<int> v;
        for (size_t j = 0; j < nodes.size(); ++j)
          if (std::find(nodes[j].in.begin(), nodes[j].in.end(), n.out[0]) != nodes[j].in.end())
            v.push_back(static_cast<int>(j));
        return v;
      }();
      if (!cons.empty()) {
        Node& ln = nodes[static_cast<size_t>(cons.front())];
        if (ln.op == Op::kLayerNorm && ln.in[0] == n.out[0] && ln.input(3) < 0 &&
            g.t(n.in[0]).shape == g.t(n.in[1]).shape) {
          ln.in.resize(4, -1);
          ln.in[0] = n.in[0];
          ln.in[3] = n.in[1];
          ln.out = {ln.out[0], n.out[0]};
          erase_node(nodes, static_cast<int>(i));
          return true;
        }
      }
    }
    if (n.op == Op::kEmbed && !n.p<EmbedParams>().patches_final) {
      const int pi = producer_of(nodes, n.in[0]);
      if (pi >= 0 && plain_linear(nodes[static_cast<size_t>(pi)]) && readers(g, nodes, n.in[0]) == 1) {
        Node& lin = nodes[static_cast<size_t>(pi)];
        LinearParams& lp = lin.p<LinearParams>();
        lin.in.resize(4, -1);
        lin.in[2] = n.input(3);  // the conv bias
        lin.in[3] = n.in[2];     // pos: its patch rows, repeated per image
        n.in[3] = -1;
        lp.table_residual = true;
        // The patch rows of the table follow its prefix rows (none for no_embed_class).
        lp.table_row0 = n.p<EmbedParams>().pos_prefix ? static_cast<int>(g.t(n.out[0]).rows() - g.t(n.in[0]).rows()) : 0;
        n.p<EmbedParams>().patches_final = true;
        return true;
      }
    }
    if (n.op == Op::kAttention) {
      const int pi = producer_of(nodes, n.in[0]);
      if (pi >= 0 && nodes[static_cast<size_t>(pi)].op == Op::kLinear && readers(g, nodes, n.in[0]) == 1) {
        LinearParams& lp = nodes[static_cast<size_t>(pi)].p<LinearParams>();
        if (!lp.qkv_scatter && nodes[static_cast<size_t>(pi)].input(3) < 0 && !lp.act) {
          lp.qkv_scatter = true;
          lp.heads = n.p<AttentionParams>().heads;
          return true;
        }
      }
    }
  }
  return false;
}

}  // namespace

void fuse(Graph& g) {
  while (fuse_once(g, g.nodes)) {
  }
  g.fused = true;
}

}  // namespace vit::graph
