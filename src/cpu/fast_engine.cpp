// vit-infer: the fast CPU engine (`--device cpu`, fp32 or bf16). Same layer order and outputs
// as the reference (cpu_engine.cpp), different kernels: oneDNN matmuls with pre-packed weights
// and fused epilogues (dnnl_linear.h; AMX or AVX512-BF16 for bf16, AVX-512 / AVX2 for fp32),
// flash-style attention and fp32-statistics LayerNorm (fast_kernels.h), picked by CpuIsa.
// Activations: the residual stream x [B, T, D] and the QKV output [B, T, 3D] are fp32 always;
// in bf16 the GEMM inputs (LayerNorm / attention / GELU outputs) are bf16, stored as uint16.
// Patch embedding and pooling / head use the reference ops (small, and the head stays fp32).
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/cpu_isa.h"
#include "cpu/dnnl_linear.h"
#include "cpu/engine.h"
#include "cpu/fast_kernels.h"
#include "cpu/reference_ops.h"

namespace vit {
namespace {

using fastcpu::DnnlLinear;
using fastcpu::LinearEpilogue;
using fastcpu::LinearSpec;

constexpr int kChunk = 16;  // images per pass, as the reference: bounds the workspace

// A 64-byte aligned, growable scratch buffer (GEMM operands start on cache lines).
class Buffer {
 public:
  void reserve(size_t bytes, const char* what) {
    if (bytes <= size_) return;
    const size_t n = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, n);
    if (!p) fail(ErrorCode::kOutOfMemory, std::string("fast cpu engine: cannot allocate ") + what);
    mem_.reset(static_cast<char*>(p));
    size_ = n;
  }
  float* f32() { return reinterpret_cast<float*>(mem_.get()); }
  void* raw() { return mem_.get(); }

 private:
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, Free> mem_;
  size_t size_ = 0;
};

struct BlockLinears {
  std::unique_ptr<DnnlLinear> qkv, proj, fc1, fc2;
};

class FastCpuEngine final : public Engine {
 public:
  FastCpuEngine(std::shared_ptr<const Model> model, DType precision, int threads) : model_(std::move(model)) {
    if (!model_) fail(ErrorCode::kInvalidArgument, "make_fast_cpu_engine: model is null");
    if (precision != DType::F32 && precision != DType::BF16)
      fail(ErrorCode::kUnsupported, "make_fast_cpu_engine: precision must be fp32 or bf16");
    ref::validate_model(*model_);
    threads_ = threads > 0 ? threads : std::max(1, omp_get_num_procs());
    isa_ = fastcpu::dnnl_set_isa(effective_cpu_isa());
    // bf16 needs the bf16 dot-product instructions (AMX or AVX512-BF16); below that it runs fp32.
    bf16_ = precision == DType::BF16 && static_cast<int>(isa_) >= static_cast<int>(CpuIsa::kAvx512Bf16);
    kernels_ = &fastcpu::kernels_for(isa_);
    name_ = std::string("cpu-fast ") + (bf16_ ? "bf16" : "fp32") + " (" + cpu_isa_name(isa_) + ")";
    pack_weights();
  }

  const char* name() const noexcept override { return name_.c_str(); }

  void run(const float* images, int batch, const RunOutputs& out, const std::atomic<bool>* cancel) override {
    if (batch < 1) fail(ErrorCode::kInvalidArgument, "fast cpu engine run: batch must be >= 1, got " + std::to_string(batch));
    if (!images) fail(ErrorCode::kInvalidArgument, "fast cpu engine run: images is null");
    std::lock_guard<std::mutex> lock(mu_);
    ref::BlasSingleThreaded blas_guard;  // the patch and head GEMMs of the reference ops
    const ViTConfig& c = model_->cfg;
    const int64_t image_size = int64_t{c.in_chans} * c.image_h * c.image_w, TT = c.tokens() * c.tokens();
    for (int b0 = 0; b0 < batch; b0 += kChunk) {
      const int nb = std::min(kChunk, batch - b0);
      RunOutputs o;
      o.logits = out.logits ? out.logits + int64_t{b0} * c.num_classes : nullptr;
      o.embeddings = out.embeddings ? out.embeddings + int64_t{b0} * c.hidden : nullptr;
      o.attention = out.attention ? out.attention + int64_t{b0} * c.heads * TT : nullptr;
      o.attention_layers = out.attention_layers ? out.attention_layers + int64_t{b0} * TT : nullptr;
      run_chunk(images + b0 * image_size, nb, o, int64_t{batch} * TT, cancel);
    }
  }

 private:
  static void check_cancel(const std::atomic<bool>* cancel, const char* where) {
    if (cancel && cancel->load(std::memory_order_relaxed))
      fail(ErrorCode::kCancelled, std::string("fast cpu engine run: cancelled ") + where);
  }

  void pack_weights() {
    const ViTConfig& c = model_->cfg;
    const int64_t D = c.hidden, I = c.mlp_hidden, T = c.tokens();
    auto make = [&](const Tensor& w, const Tensor& b, int64_t N, int64_t K, LinearEpilogue epi, bool y_bf16) {
      LinearSpec s;
      s.N = N;
      s.K = K;
      s.bf16 = bf16_;
      s.y_bf16 = bf16_ && y_bf16;
      s.epi = epi;
      s.hint_m = T;
      return std::make_unique<DnnlLinear>(w, b, s);
    };
    for (const BlockWeights& bw : model_->w.blocks) {
      BlockLinears l;
      l.qkv = make(bw.qkv_w, bw.qkv_b, 3 * D, D, LinearEpilogue::kBias, false);  // fp32 out: attention reads fp32
      l.proj = make(bw.proj_w, bw.proj_b, D, D, LinearEpilogue::kBiasAccumulate, false);
      l.fc1 = make(bw.fc1_w, bw.fc1_b, I, D, LinearEpilogue::kBiasGelu, true);
      l.fc2 = make(bw.fc2_w, bw.fc2_b, D, I, LinearEpilogue::kBiasAccumulate, false);
      blocks_.push_back(std::move(l));
    }
    const int64_t K = int64_t{c.in_chans} * c.patch * c.patch;
    patch_ = make(model_->w.patch_w, model_->w.patch_b, D, K, LinearEpilogue::kBias, false);
  }

  void reserve(int64_t nb, bool probs) {
    const ViTConfig& c = model_->cfg;
    const int64_t T = c.tokens(), D = c.hidden, I = c.mlp_hidden, N = c.num_patches();
    const int64_t K = int64_t{c.in_chans} * c.patch * c.patch;
    const size_t es = bf16_ ? 2 : 4;  // bytes of a GEMM-input element
    const size_t R = static_cast<size_t>(nb * T);
    x_.reserve(R * D * 4, "the residual stream");
    a_.reserve(R * D * std::max<size_t>(es, 4), "the LayerNorm / attention output");  // fp32 for pooling too
    qkv_.reserve(R * 3 * D * 4, "the QKV output");
    mid_.reserve(R * I * es, "the MLP hidden");
    patches_.reserve(static_cast<size_t>(nb * N * K) * 4, "the patches");
    patches16_.reserve(bf16_ ? static_cast<size_t>(nb * N * K) * 2 : 0, "the bf16 patches");
    pooled_.reserve(static_cast<size_t>(nb * D) * 4, "the pooled features");
    if (probs) {
      kt_.reserve(R * D * 4, "the attention-map workspace");
      attn32_.reserve(R * D * 4, "the attention-map workspace");
      scratch_.reserve(static_cast<size_t>(threads_ * T) * 4, "the attention-map workspace");
    }
  }

  void grow_probs(size_t n) {
    if (probs_.size() >= n) return;
    try {
      probs_.resize(n);
    } catch (const std::bad_alloc&) {
      fail(ErrorCode::kOutOfMemory, "fast cpu engine: cannot allocate the per-head attention of attention_layers");
    }
  }

  void run_chunk(const float* images, int nb, const RunOutputs& out, int64_t layer_stride,
                 const std::atomic<bool>* cancel) {
    const ViTConfig& c = model_->cfg;
    const ViTWeights& w = model_->w;
    const int64_t T = c.tokens(), D = c.hidden, N = c.num_patches(), H = c.heads, hd = c.head_dim();
    const int64_t K = int64_t{c.in_chans} * c.patch * c.patch, R = nb * T;
    const int nt = threads_;
    const bool want_probs = out.attention || out.attention_layers;
    reserve(nb, want_probs);
    float* x = x_.f32();  // [nb, T, D] fp32 residual stream
    void* a = a_.raw();   // [nb, T, D] GEMM input: LN / attention output (bf16 or fp32)
    float* qkv = qkv_.f32();  // [nb, T, 3D] fp32
    void* mid = mid_.raw();   // [nb, T, I] GELU output (bf16 or fp32)

    check_cancel(cancel, "before the patch embedding");
    ref::im2col(c, images, nb, patches_.f32(), nt);
    const void* pin = patches_.f32();
    if (bf16_) {
      kernels_->to_bf16(patches_.f32(), static_cast<uint16_t*>(patches16_.raw()), nb * N * K, nt);
      pin = patches16_.raw();
    }
    patch_->run(pin, nb * N, qkv, nt);  // [nb*N, D] into the (not yet used) QKV buffer
    ref::assemble_tokens(c, w, qkv, x, nb, nt);

    for (size_t li = 0; li < blocks_.size(); ++li) {
      check_cancel(cancel, "between blocks");
      const BlockWeights& bw = w.blocks[li];
      const BlockLinears& L = blocks_[li];
      const bool last = li + 1 == blocks_.size();
      kernels_->layer_norm(x, D, a, D, bf16_, R, D, bw.ln1_w.ptr(), bw.ln1_b.ptr(), c.ln_eps, nt);
      L.qkv->run(a, R, qkv, nt);
      float* probs = last ? out.attention : nullptr;  // [nb, H, T, T]
      if (out.attention_layers && !probs) {
        grow_probs(static_cast<size_t>(nb * H * T * T));
        probs = probs_.data();
      }
      if (probs) {
        // The maps are wanted: the reference attention writes them (its output is dropped, so
        // that asking for maps never changes the logits: those always come from the kernel below).
        ref::attention(qkv, attn32_.f32(), probs, kt_.f32(), scratch_.f32(), nb, T, H, hd, nt);
        if (out.attention_layers)
          ref::head_mean(probs, out.attention_layers + static_cast<int64_t>(li) * layer_stride, nb, H, T, nt);
      }
      kernels_->attention(qkv, a, bf16_, nb, T, H, hd, nt);
      L.proj->run(a, R, x, nt);  // x += proj(attn)
      kernels_->layer_norm(x, D, a, D, bf16_, R, D, bw.ln2_w.ptr(), bw.ln2_b.ptr(), c.ln_eps, nt);
      L.fc1->run(a, R, mid, nt);  // GELU(fc1)
      L.fc2->run(mid, R, x, nt);  // x += fc2(mid)
    }
    check_cancel(cancel, "before pooling");
    float* pooled = out.embeddings ? out.embeddings : pooled_.f32();  // [nb, D]
    ref::pool_and_head(c, w, x, a_.f32(), pooled, out.logits, nb, nt);
  }

  std::shared_ptr<const Model> model_;
  int threads_ = 1;
  CpuIsa isa_ = CpuIsa::kScalar;
  bool bf16_ = false;
  const fastcpu::Kernels* kernels_ = nullptr;
  std::string name_;
  std::vector<BlockLinears> blocks_;
  std::unique_ptr<DnnlLinear> patch_;
  std::mutex mu_;  // one run at a time: the workspace is shared
  Buffer x_, a_, qkv_, mid_, patches_, patches16_, pooled_, kt_, attn32_, scratch_;
  std::vector<float> probs_;  // [nb, H, T, T], only for attention_layers
};

}  // namespace

std::unique_ptr<Engine> make_fast_cpu_engine(std::shared_ptr<const Model> model, DType precision, int threads) {
  return std::make_unique<FastCpuEngine>(std::move(model), precision, threads);
}

}  // namespace vit
