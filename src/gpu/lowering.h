// vit-infer: the shared graph (graph/graph.h) lowered for the CUDA engine. Per graph tensor: its
// arena entry (activations: elements per image, lifetime, row pitch) or its offset in the packed
// weight buffer (weights, in the run precision); per linear node the GEMM description that the
// GEMM candidates (mma.sync, wgmma, cuBLASLt) and the tuner (gemm_tuner.h) read; per batch
// bucket the arena plan and the per-node GEMM choice. Host code only: no CUDA call but the
// weight upload.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/op_forms.h"
#include "core/tensor.h"
#include "gemm.cuh"
#include "gpu/cuda_raii.h"
#include "graph/arena.h"
#include "graph/graph.h"

namespace vit::gpu {

struct TensorInfo {
  std::string name;
  int64_t per_image = 0;  // elements per image (0: not in the arena: weights, unused tensors)
  DType dtype = DType::F32;
  int first = 0, last = 0;
  int64_t bytes(int batch) const { return per_image * batch * static_cast<int64_t>(dtype_size(dtype)); }
};

struct GemmNode {
  std::string name;
  int in = -1, out = -1, res = -1;  // tensor ids (res: an activation residual, or -1)
  int64_t w = -1, b = -1;           // weight-buffer byte offsets (-1: none)
  int rows_per_image = 0, N = 0, K = 0;
  int64_t lda = 0, ldw = 0, ldc = 0;
  GemmEpilogue epi = GemmEpilogue::kNone;
  ActForm gelu = ActForm::kErf;  // kGelu
  bool qkv = false;
  // kResidual from a weight table: row r adds row r % rows_per_image of the table at this
  // weight-buffer offset (the position embeddings, in the patch-embedding GEMM).
  int64_t res_w = -1;
};

// Weights in the run precision, packed into one device buffer (256-byte aligned entries).
class WeightStore {
 public:
  explicit WeightStore(DType dt) : dt_(dt), elem_(static_cast<int64_t>(dtype_size(dt))) {}
  // Registers a [rows, cols] host tensor, zero-padding each row to cols_pad; returns its offset.
  int64_t add(const Tensor& t, int64_t rows, int64_t cols, int64_t cols_pad, const std::string& name);
  int64_t total() const { return total_; }
  // Allocates `buf` and copies every registered tensor into it, converted to the run precision.
  void upload(DeviceBuffer& buf) const;

 private:
  struct Entry {
    const Tensor* t;
    int64_t rows, cols, cols_pad, offset;
  };
  DType dt_;
  std::vector<Entry> entries_;
  int64_t total_ = 0;
  int64_t elem_;
};

// The implementations a GEMM node can run on. kMmaSync: kernels/gemm.cu (mma.sync, or SIMT for
// fp32 / odd shapes); kWgmma: kernels/gemm_sm90.cu (sm_90 only); kCublasLt: src/gpu/lt_gemm.
enum class GemmImpl : char { kMmaSync = 0, kCublasLt = 1, kWgmma = 2 };
const char* impl_name(GemmImpl g);

// One batch bucket: the arena plan at `batch` images, the GEMM choice per node, its CUDA graph.
struct Bucket {
  int batch = 0;
  ArenaPlan plan;                   // tensor offsets for this batch (tensor id -> byte offset)
  bool gemms_chosen = false;        // gemm_impl is decided (lazily: kAuto checks and times GEMMs)
  std::vector<GemmImpl> gemm_impl;  // per node: where the GEMM runs
  cudaGraphExec_t exec = nullptr;   // valid for the current arena only (dropped when it moves)
  bool capture_tried = false;
};

struct LoweredGraph {
  graph::Graph graph;                  // fused unless switched off
  std::vector<TensorInfo> tensors;     // per graph tensor
  std::vector<int64_t> woff, pitch;    // per graph tensor: weight offset (-1), row pitch (elements)
  std::vector<int> producer;           // per graph tensor: the node writing it (-1)
  std::vector<GemmNode> gemm;          // per node (linear nodes only)
  int last_qkv_node = -1;              // the QKV GEMM of the last block (attention on request)

  const std::vector<graph::Node>& nodes() const { return graph.nodes; }
  const graph::TensorDesc& t(int id) const { return graph.t(id); }
  // The arena of one bucket: every tensor at `batch` images, packed by lifetime.
  ArenaPlan plan_for(int batch) const;
};

// The shared graph of `model` in the run precision `dt`, fused when `fusion`; its weights are
// registered in `weights` (not uploaded), its activations sized for the arena. The 16-bit
// tensor-core GEMM needs K % 8 == 0: patch columns are zero-padded (P = 14: K = 588 -> 592),
// and so are the rows of the weight that reads them. The last block's Q/K stay alive to the end
// of the graph (attention probabilities are computed after the forward on request).
LoweredGraph lower_graph(const Model& model, DType dt, bool fusion, WeightStore& weights);

}  // namespace vit::gpu
