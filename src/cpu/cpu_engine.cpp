// vit-infer: the fp32 CPU reference engine, the oracle of every GPU test and `--device cpu`.
// Activations are batch-major, row-major fp32: tokens [B, T, D] with the cls token at row 0 of
// each image. One OpenMP team of `threads` does all the work: GEMMs are split into single-threaded
// OpenBLAS calls (OpenBLAS's own pool is held at 1 thread during a run, so the two pools never
// nest or compete); LayerNorm, GELU and attention are plain loops. The ops live in
// reference_ops.cpp (shared with the fast CPU engine and the tests); this file is the layer order.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/engine.h"
#include "cpu/reference_ops.h"

namespace vit {
namespace {

// Images processed per pass. Bounds the workspace (about T*(4D + max(3D, I)) floats per image,
// ~4 MB for ViT-B/16) while keeping GEMMs tall enough (16*197 rows) to run at full speed.
constexpr int kChunk = 16;

class CpuEngine final : public Engine {
 public:
  CpuEngine(std::shared_ptr<const Model> model, int threads) : model_(std::move(model)) {
    if (!model_) fail(ErrorCode::kInvalidArgument, "make_cpu_engine: model is null");
    ref::validate_model(*model_);
    threads_ = threads > 0 ? threads : std::max(1, omp_get_num_procs());
  }

  const char* name() const noexcept override { return "cpu"; }

  void run(const float* images, int batch, const RunOutputs& out,
           const std::atomic<bool>* cancel) override {
    if (batch < 1) {
      fail(ErrorCode::kInvalidArgument,
           "cpu engine run: batch must be >= 1, got " + std::to_string(batch));
    }
    if (!images) fail(ErrorCode::kInvalidArgument, "cpu engine run: images is null");

    std::lock_guard<std::mutex> lock(mu_);
    ref::BlasSingleThreaded blas_guard;
    const ViTConfig& c = model_->cfg;
    const int64_t image_size = int64_t{c.in_chans} * c.image_h * c.image_w;
    for (int b0 = 0; b0 < batch; b0 += kChunk) {
      const int nb = std::min(kChunk, batch - b0);
      RunOutputs o;
      o.logits = out.logits ? out.logits + int64_t{b0} * c.num_classes : nullptr;
      o.embeddings = out.embeddings ? out.embeddings + int64_t{b0} * c.hidden : nullptr;
      o.attention =
          out.attention ? out.attention + int64_t{b0} * c.heads * c.tokens() * c.tokens() : nullptr;
      o.attention_layers =
          out.attention_layers ? out.attention_layers + int64_t{b0} * c.tokens() * c.tokens() : nullptr;
      // attention_layers is [depth, batch, T, T]: one layer spans the whole batch, not the chunk.
      run_chunk(images + b0 * image_size, nb, o, int64_t{batch} * c.tokens() * c.tokens(), cancel);
    }
  }

 private:
  static void check_cancel(const std::atomic<bool>* cancel, const char* where) {
    if (cancel && cancel->load(std::memory_order_relaxed)) {
      fail(ErrorCode::kCancelled, std::string("cpu engine run: cancelled ") + where);
    }
  }

  // Grows the workspace to hold a chunk of `nb` images (never shrinks).
  void reserve(int64_t nb) {
    const ViTConfig& c = model_->cfg;
    const int64_t T = c.tokens(), D = c.hidden, I = c.mlp_hidden, N = c.num_patches();
    const int64_t K = int64_t{c.in_chans} * c.patch * c.patch;
    auto grow = [](std::vector<float>& v, int64_t n) {
      if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
    };
    try {
      grow(x_, nb * T * D);
      grow(h_, nb * T * D);
      grow(kt_, nb * T * D);
      grow(big_, nb * T * std::max(3 * D, I));
      grow(patches_, nb * N * K);
      grow(pooled_, nb * D);
      grow(scratch_, int64_t{threads_} * T);
    } catch (const std::bad_alloc&) {
      const int64_t floats = nb * (T * (3 * D + std::max(3 * D, I)) + N * K + D);
      fail(ErrorCode::kOutOfMemory, "cpu engine: cannot allocate the workspace for " +
                                        std::to_string(nb) + " images (" +
                                        std::to_string(floats * 4 / (1 << 20)) + " MiB)");
    }
  }

  // probs_ holds every block's per-head probabilities only when attention_layers is requested,
  // so the normal path never allocates it.
  void grow_probs(int64_t n) {
    if (static_cast<int64_t>(probs_.size()) >= n) return;
    try {
      probs_.resize(static_cast<size_t>(n));
    } catch (const std::bad_alloc&) {
      fail(ErrorCode::kOutOfMemory, "cpu engine: cannot allocate " + std::to_string(n * 4 / (1 << 20)) +
                                        " MiB for the per-head attention of attention_layers");
    }
  }

  // layer_stride: floats between consecutive layers of out.attention_layers (batch * T * T).
  void run_chunk(const float* images, int nb, const RunOutputs& out, int64_t layer_stride,
                 const std::atomic<bool>* cancel) {
    const ViTConfig& c = model_->cfg;
    const ViTWeights& w = model_->w;
    const int64_t T = c.tokens(), D = c.hidden, I = c.mlp_hidden, N = c.num_patches();
    const int64_t H = c.heads, hd = c.head_dim();
    const int64_t K = int64_t{c.in_chans} * c.patch * c.patch;
    const int64_t R = nb * T;  // token rows in this chunk
    const int nt = threads_;
    reserve(nb);
    float* x = x_.data();      // [nb, T, D]  residual stream
    float* h = h_.data();      // [nb, T, D]  LayerNorm output / attention output
    float* big = big_.data();  // [nb, T, 3D] qkv, or [nb, T, I] MLP hidden

    check_cancel(cancel, "before the patch embedding");

    // Patch embedding (the stride-P conv as a GEMM): [nb*N, K] x patch_w[D, K]^T -> h [nb*N, D].
    ref::im2col(c, images, nb, patches_.data(), nt);
    ref::linear(patches_.data(), nb * N, K, w.patch_w, w.patch_b, D, h, false, ref::Epilogue::kBias, nt);
    ref::assemble_tokens(c, w, h, x, nb, nt);

    for (size_t li = 0; li < w.blocks.size(); ++li) {
      check_cancel(cancel, "between blocks");
      const BlockWeights& bw = w.blocks[li];
      const bool last = li + 1 == w.blocks.size();

      // Attention half: x += proj(attn(LN1(x))); the residual add is the GEMM's accumulate.
      ref::layer_norm(x, D, h, D, R, D, bw.ln1_w, bw.ln1_b, c.ln_eps, nt);
      ref::linear(h, R, D, bw.qkv_w, bw.qkv_b, 3 * D, big, false, ref::Epilogue::kBias, nt);  // [R, 3D]
      // Per-head probabilities are stored only when asked for: the last block's for
      // out.attention, every block's (in a workspace) when head means are wanted.
      float* probs = last ? out.attention : nullptr;  // [nb, H, T, T]
      if (out.attention_layers && !probs) {
        grow_probs(nb * H * T * T);
        probs = probs_.data();
      }
      ref::attention(big, h, probs, kt_.data(), scratch_.data(), nb, T, H, hd, nt);
      if (out.attention_layers) {
        ref::head_mean(probs, out.attention_layers + static_cast<int64_t>(li) * layer_stride, nb, H, T, nt);
      }
      ref::linear(h, R, D, bw.proj_w, bw.proj_b, D, x, true, ref::Epilogue::kBias, nt);

      // MLP half: x += fc2(GELU(fc1(LN2(x)))).
      ref::layer_norm(x, D, h, D, R, D, bw.ln2_w, bw.ln2_b, c.ln_eps, nt);
      ref::linear(h, R, D, bw.fc1_w, bw.fc1_b, I, big, false, ref::Epilogue::kBiasGelu, nt);  // [R, I]
      ref::linear(big, R, I, bw.fc2_w, bw.fc2_b, D, x, true, ref::Epilogue::kBias, nt);
    }
    check_cancel(cancel, "before pooling");

    float* pooled = out.embeddings ? out.embeddings : pooled_.data();  // [nb, D]
    ref::pool_and_head(c, w, x, h, pooled, out.logits, nb, nt);
  }

  std::shared_ptr<const Model> model_;
  int threads_ = 1;
  std::mutex mu_;  // one run at a time: the workspace below is shared
  std::vector<float> x_, h_, kt_, big_, patches_, pooled_, scratch_;
  std::vector<float> probs_;  // [nb, H, T, T], only for attention_layers
};

}  // namespace

std::unique_ptr<Engine> make_cpu_engine(std::shared_ptr<const Model> model, int threads) {
  return std::make_unique<CpuEngine>(std::move(model), threads);
}

}  // namespace vit
