// vit-infer (internal): the layout row of the original Google JAX checkpoints (ViT-*.npz, flax
// names Transformer/encoderblock_N/...): everything from the shapes, kernels in flax's orientation
// (Convention::kJax: Dense [in, out], attention [D, H, hd] / [H, hd, D], the patch kernel HWIO),
// the head count from the query kernel.
#include "core/error.h"
#include "model/resolve.h"

namespace vit::detail {

namespace {

bool detect(const NameIndex& ix, Match*) { return ix.forms() == 1 && ix.jax_marked(); }

LayoutNames names(const Match&) {
  LayoutNames n;
  n.conv = Convention::kJax;
  n.patch = {"embedding/kernel", "embedding/bias"};
  n.cls = "cls";
  n.pos = "Transformer/posembed_input/pos_embedding";
  n.norm = {"Transformer/encoder_norm/scale", "Transformer/encoder_norm/bias"};
  n.head = {"head/kernel", "head/bias"};
  n.block_prefix = "Transformer/encoderblock_";
  n.block_sep = "/";
  const auto dense = [](const std::string& m) { return Module{m + "/kernel", m + "/bias"}; };
  const auto ln = [](const std::string& m) { return Module{m + "/scale", m + "/bias"}; };
  const std::string a = "MultiHeadDotProductAttention_1/";
  BlockNames& b = n.block;
  b.ln1 = ln("LayerNorm_0");
  b.q = dense(a + "query");
  b.k = dense(a + "key");
  b.v = dense(a + "value");
  b.proj = dense(a + "out");
  b.ln2 = ln("LayerNorm_2");
  b.fc1 = dense("MlpBlock_3/Dense_0");
  b.fc2 = dense("MlpBlock_3/Dense_1");
  n.heads_tensor = n.in_block(0, b.q.w);  // [D, H, hd]
  return n;
}

void reject(const NameIndex& ix, const Match&, const std::string& file) {
  for (const std::string& n : ix.names()) {
    if (starts_with(n, "pre_logits/")) {
      unsupported_variant(file, "the pre_logits layer of in21k-only JAX checkpoints (use a fine-tuned checkpoint)", n);
    }
  }
  if (!ix.has("cls") && ix.has("embedding/kernel")) {
    fail(ErrorCode::kUnsupported, file + ": no 'cls' array: JAX models without a class token (classifier='gap') are "
                                         "not supported by vit-infer");
  }
}

RowResolved resolve(const ResolveCtx&, ViTConfig*) { return {}; }

}  // namespace

// Without a preprocessor config: ViTImageProcessor's bilinear squash, as the HF ports of these
// checkpoints.
const LayoutRow kJaxLayout = {
    "jax", nullptr, {}, nullptr, detect, names, reject, resolve, 1e-6f, Activation::kGeluErf, hf_default_preprocess,
};

}  // namespace vit::detail
