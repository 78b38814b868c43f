// vit-infer: the device-agnostic forward graph every backend executes (CPU reference, CUDA).
// IR: a list of nodes {op, in[], out[], params} in execution order over named tensors. Each
// tensor has a dtype and a shape; activation tensors are per image (the batch is the leading,
// implicit dim: a tensor of shape [T, D] is [B, T, D] in memory, batch-major, row-major) and
// weights are whole host fp32 tensors (Model's, borrowed) that a backend converts as it likes.
// Tensors are SSA: one producer each, so lifetimes (and arena packing) follow from node order.
// Absent optional inputs are -1. Params are per op (one struct each, no shared fields).
// build_vit (graph.cpp) alone knows the ViT layer order; fuse (fusion.cpp) rewrites the graph.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/activation.h"
#include "core/pool.h"
#include "core/tensor.h"
#include "model/model.h"

namespace vit::graph {

enum class Op : uint8_t {
  // in: {images [C, H, W] f32} -> out: {cols [N, K]}: the stride-P conv's im2col, rows in
  // row-major grid order, each patch flattened (c, py, px) like the OIHW conv weight.
  kPatchify,
  // in: {x [R, K], W [N, K], bias [N] | -1, residual [R, N] | -1} -> {y [R, N]}:
  // y = act(x W^T + bias) + residual (torch Linear orientation). LinearParams say which
  // epilogue (act) and whether the residual is an activation or a per-image weight table.
  kLinear,
  // in: {patches [N, D], prefix [P, D] | -1, pos [P+N, D] or [N, D], bias [D] | -1} ->
  // {tokens [P+N, D]}: the prefix rows (cls, dist, registers) then the patch rows;
  // tokens[p] = prefix[p] (+ pos[p] unless no_embed_class); tokens[P+n] = patches[n] (+ bias +
  // pos[P+n], or pos[n] for no_embed_class tables, unless patches_final).
  kEmbed,
  // in: {x [R, D], gamma [D], beta [D], residual [R, D] | -1} -> {y [R, D]} or, with a
  // residual, {y, sum}: sum = x + residual, y = LN(sum). Statistics in fp32 or wider.
  kLayerNorm,
  // in: {qkv [T, 3D], size [T] f32 | -1} -> {o [T, D], metric [T, hd] f32 (optional)}:
  // softmax(q k^T / sqrt(hd) + log size) v per head; q | k | v each head-major. The producer may
  // write qkv scattered (LinearParams::qkv_scatter). size (token merging's proportional attention,
  // ToMe): every key's logit gains log(size[key]). A second output, when the node has one, is
  // ToMe's matching metric: the keys averaged over the heads (ToMeAttention's k.mean(1)).
  kAttention,
  // in: {a, b} -> {a + b}, same shapes (the residual adds of a block, before fusion).
  kAdd,
  // in: {x} -> {act(x)}: the activation op; ActParams name the activation (core/activation.h).
  kAct,
  // in: {x [R, 2I]} -> {y [R, I]}: the gated MLP's middle, y = act(x[:, :I]) * x[:, I:] (the gate
  // half first: timm SwiGLUPacked, HF DINOv2's SwiGLU FFN); ActParams say which act (SiLU).
  kGlu,
  // in: {x [R, D], gamma [D]} -> {x * gamma} per column (LayerScale, timm ls1 / ls2).
  kScale,
  // in: {tokens [T, D]} -> {pooled [D]}: one row (the cls / dist token), or the mean, max or
  // (mean + max) / 2 of the patch rows first..T-1.
  kPool,
  // in: {a, b} -> {(a + b) / 2} (DeiT distilled: the mean of the head and head_dist outputs).
  kMean2,
  // in: {q [L, D], kv [T, 2D]} -> {o [L, D]}: per head h, softmax(q_h k_h^T / sqrt(hd)) v_h over
  // the kv rows first..T-1 (the patch rows: the attention-pool head skips the prefix tokens);
  // kv holds k | v, each head-major like qkv. q is a weight (one query for every image: the map
  // head's projected latent) or a per-image activation. Scores and softmax in fp32 or wider.
  kCrossAttention,
  // in: {x [T, D], metric [T, hd] f32, size [T] f32 | -1 (all ones)} -> {y [T - r, D], size' [T - r] f32}:
  // token merging (ToMe, Bolya et al. 2023: bipartite soft matching + merge_wavg), TomeParams r
  // and prefix. Tokens alternate into sets A (even rows) and B (odd rows); each A token's edge is
  // its most cosine-similar B token (metric rows); the r A tokens with the most similar edges are
  // merged into their B partners by size-weighted averaging (sizes add). The first `prefix` rows
  // (cls, dist, registers) are never merged. Output rows: the prefix rows in their order, the
  // unmerged A rows (ascending when prefix > 0, else in descending edge order as ToMe leaves
  // them), then the B rows. r <= (T - prefix) / 2.
  kTomeMerge,
  // in: {x} -> {x as f32} (outputs leave the graph in fp32 whatever the run precision).
  kCast,
};
constexpr int kOpCount = static_cast<int>(Op::kCast) + 1;  // keep kCast last
const char* op_name(Op op) noexcept;

// An int8 (W8A8) GEMM's input quantisation, set by the fast CPU backend's int8 annotation
// (src/cpu/int8.h): x' = x / smooth per input channel (SmoothQuant; the weights carry smooth), then
// u8 with one scale and zero point per tensor (static, from calibration) or per row (dynamic).
struct QuantSpec {
  std::vector<float> smooth;  // per input channel; empty: 1
  bool dynamic = true;        // per row (token) from the row's own range; else scale / zero_point
  float scale = 1.0f;         // static: x' = scale * (q - zero_point), q in 0..255
  int zero_point = 0;
  int weight_max = 127;       // weights per output channel in -weight_max..weight_max
  std::vector<int> outliers;  // input channels whose GEMM term stays fp32 (excluded from the scales)
};

struct LinearParams {
  std::optional<Activation> act;  // the epilogue's activation (fusion: linear -> act), if any
  // The residual input (in[3]) is a weight table of `rows` rows repeated per image, starting at
  // row table_row0 of that weight (the position embeddings added in the patch GEMM), rather
  // than an activation.
  bool table_residual = false;
  int table_row0 = 0;
  // Set by the fusion pass on the QKV GEMM feeding an attention node: the backend may write y
  // as [3, B, heads, T, hd] instead of [B, T, 3D] (the attention node reads either).
  bool qkv_scatter = false;
  int heads = 0;  // with qkv_scatter
  // Set on an int8 run's GEMMs (the fast CPU backend's annotation): W8A8 with this quantisation.
  std::shared_ptr<const QuantSpec> quant;
};
struct LayerNormParams {
  float eps = 1e-6f;
  bool rms = false;  // RMSNorm (timm RmsNorm, aimv2): no centring; the absent bias is zeros
};
struct AttentionParams {
  int heads = 0;
  int layer = 0;  // block index, for attention-map outputs
};
struct EmbedParams {
  bool patches_final = false;  // patch rows already hold bias + pos (fused into the GEMM)
  bool pos_prefix = true;      // pos has prefix rows (false: timm no_embed_class)
};
struct PoolParams {
  PoolMode mode = PoolMode::kRow;  // core/pool.h
  int first = 0;  // kRow: the row taken; the others: the first row pooled (the prefix tokens skipped)
};
struct ActParams {
  Activation act = Activation::kGeluErf;
};
struct CrossAttentionParams {
  int heads = 0;
  int first = 0;  // the first kv row attended to (rows before it are prefix tokens)
};
struct TomeParams {
  int r = 0;       // tokens merged (already clipped to (T - prefix) / 2 by the builder)
  int prefix = 0;  // protected leading rows (cls, dist, registers)
};
using OpParams = std::variant<std::monostate, LinearParams, LayerNormParams, AttentionParams, EmbedParams, PoolParams,
                              ActParams, CrossAttentionParams, TomeParams>;

enum class TensorKind : uint8_t { kInput, kActivation, kWeight };

struct TensorDesc {
  std::string name;
  TensorKind kind = TensorKind::kActivation;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;     // per image for activations / the input; whole for weights
  const Tensor* host = nullptr;   // weights: the host fp32 data (owned by the Model)
  bool keep = false;              // read after the forward (graph outputs): alive to the end
  int64_t numel() const noexcept;
  int64_t rows() const noexcept;  // product of all dims but the last
  int64_t cols() const noexcept { return shape.empty() ? 1 : shape.back(); }
};

struct Node {
  Op op = Op::kAdd;
  std::string name;      // e.g. "blocks.3.mlp.fc1"
  std::vector<int> in;   // tensor ids, -1 for an absent optional input
  std::vector<int> out;  // tensor ids
  OpParams params;
  template <class P> const P& p() const { return std::get<P>(params); }
  template <class P> P& p() { return std::get<P>(params); }
  int input(size_t i) const { return i < in.size() ? in[i] : -1; }
};

struct Graph {
  std::vector<TensorDesc> tensors;
  std::vector<Node> nodes;
  DType act_dtype = DType::F32;  // storage type of the activations (the run precision)
  int images = -1;               // input [C, H, W] f32
  int logits = -1;               // output [num_classes] f32, -1 without a classifier
  int embeddings = -1;           // output [E] f32 (pooled features fed to the head; E = cfg.embed_dim())
  // Output [T, D] in the activation type (kept to the end; a backend converts it to f32 only
  // when a run asks): the final tokens after the final norm, timm's forward_features.
  int features = -1;
  int depth = 0, heads = 0, tokens = 0;  // tokens: the input's (before any merge)
  int tome_r = 0;                         // tokens merged per block (0: no kTomeMerge nodes)
  int image_h = 0, image_w = 0;  // the run size the graph is built for (its input [C, H, W])
  // What the engine will run the graph with (0: not said): the most images in one run and the
  // threads. A backend may prepare for them (the fast CPU GEMMs' tile policy, cpu/dnnl_linear.h).
  int max_images = 0, threads = 0;
  bool fused = false;
  // Weights the builder derives from the model's (the map head's projected latent query); the
  // tensor table's host pointers point into these, so they live as long as the graph.
  std::vector<std::shared_ptr<const Tensor>> derived;

  const TensorDesc& t(int id) const { return tensors.at(static_cast<size_t>(id)); }
  int add_tensor(TensorDesc d);
  // Consumers of tensor `id` (node indices, ascending).
  std::vector<int> consumers(int id) const;
  // Node index -> first / last node touching each tensor (inputs and outputs; kept tensors
  // last to nodes.size()). Weights are excluded (-1, -1).
  void lifetimes(std::vector<int>& first, std::vector<int>& last) const;
  // Multi-line listing (one node per line) for reports and tests.
  std::string describe() const;
};

// A run size in pixels; {0, 0}: the model's own (cfg.image_h x cfg.image_w).
struct RunSize {
  int h = 0, w = 0;
  bool operator<(const RunSize& o) const noexcept { return h != o.h ? h < o.h : w < o.w; }
  bool operator==(const RunSize& o) const noexcept { return h == o.h && w == o.w; }
};

// The ViT forward of `m`, unfused, activations in `act` (F32 / F16 / BF16), outputs in f32, for
// input images at `size` (default: the model's own). At another size the token count follows the
// grid and the position table is the model's resampled as its framework does per forward
// (pos_embed_at: timm dynamic_img_size, HF interpolate_pos_encoding), a derived weight of the
// graph; every other weight is the model's, shared. Validates every weight against the config
// (throws vit::Error kInvalidArgument naming the tensor, its shape and the shape the config
// implies) and the size (ViTConfig::check_run_size). `who` prefixes error messages.
// tome_r > 0: token merging (ToMe) in every block, between the attention and the MLP halves, r
// tokens per block clipped as ToMe clips it (to half the unprotected tokens), the attention of
// every block after the first proportional (log size bias); check_tome says which r can apply.
Graph build_vit(const Model& m, DType act, const char* who, RunSize size = {}, int tome_r = 0);
// The config checks build_vit makes before it builds (sizes positive, hidden divisible by heads, the
// image at least a patch, eps, the block count, tome_r >= 0), at the model's own size, for an
// engine that validates before it builds (throws vit::Error kInvalidArgument prefixed `who`).
void check_model(const Model& m, int tome_r, const char* who);

// The token counts of a ToMe schedule: entry l is what block l's attention sees, the last entry
// what the head gets (depth + 1 entries); r_l = min(r, (T_l - prefix) / 2) as ToMe clips it.
std::vector<int> tome_schedule(int tokens, int prefix, int depth, int r);
// Throws vit::Error(kInvalidArgument) naming the value unless r can apply to `c` at its own size:
// 0 <= r <= (T - prefix) / 2, the most the first block can merge. `who` prefixes the message.
void check_tome(const ViTConfig& c, int r, const char* who);
// Throws vit::Error(kUnsupported) when a run with token merging asks for an output defined over
// the unmerged tokens (attention maps, per-token features): a merged block has no such tokens.
void check_tome_outputs(bool attention, bool attention_layers, bool features, const char* who);

// The fusion pass (fusion.cpp): GEMM + GELU, GEMM + residual add, add + LayerNorm, patch GEMM +
// bias + pos (periodic table residual), QKV GEMM -> attention scatter. Semantics unchanged.
void fuse(Graph& g);

// Whether fusion runs: `requested` (session option) and not VIT_DISABLE_FUSION=1 in the env.
bool fusion_enabled(bool requested);

}  // namespace vit::graph
