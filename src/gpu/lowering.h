// vit-infer: the shared graph (graph/graph.h) lowered for the CUDA engine. Per graph tensor: its
// arena entry (activations: elements per image, lifetime, row pitch) or its offset in the packed
// weight buffer (weights, in the run precision); per linear node the GEMM description that the
// GEMM candidates (mma.sync, wgmma, cuBLASLt) and the tuner (gemm_tuner.h) read; per batch
// bucket the arena plan and the per-node GEMM choice. Host code only: no CUDA call but the
// weight upload.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/activation.h"
#include "core/pool.h"
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
  Activation act = Activation::kGeluErf;  // kAct
  bool qkv = false;
  int heads = 0;  // qkv: the scatter's heads (head dim = N / 3 / heads; tokens = rows_per_image)
  // kResidual from a weight table: row r adds row r % rows_per_image of the table at this
  // weight-buffer offset (the position embeddings, in the patch-embedding GEMM).
  int64_t res_w = -1;
};

// Weights in the run precision, packed into device segments (256-byte aligned entries) addressed
// by one byte-offset space: the model's weights are registered once and shared by every run
// size's graph; a size's own tables (its resampled position embeddings) go into a segment of
// their own, freed when that size is dropped. Offsets are never reused.
class WeightStore {
 public:
  explicit WeightStore(DType dt) : dt_(dt), elem_(static_cast<int64_t>(dtype_size(dt))) {}
  // Registers a [rows, cols] host tensor, zero-padding each row to cols_pad; returns its offset.
  // shared: the tensor lives as long as the engine (a model weight), so a second registration
  // with the same padding returns the first offset; a graph's derived tensors are not shared.
  int64_t add(const Tensor& t, int64_t rows, int64_t cols, int64_t cols_pad, const std::string& name,
              bool shared = true);
  // Device bytes held (uploaded segments) and registered but not yet uploaded.
  int64_t total() const;
  // Copies every tensor registered since the last upload into a new device segment, converted to
  // the run precision; returns the segment (its first offset), -1 when nothing was pending.
  int64_t upload();
  // Frees a segment upload() returned (-1: nothing).
  void release(int64_t segment);
  // The device address of offset `off` (-1: null).
  const char* ptr(int64_t off) const;

 private:
  struct Entry {
    const Tensor* t;
    int64_t rows, cols, cols_pad, offset;
  };
  struct Segment {
    int64_t end = 0;
    DeviceBuffer buf;
  };
  DType dt_;
  int64_t elem_;
  int64_t next_ = 0;                                       // the next entry's offset
  std::vector<Entry> pending_;                             // registered, not uploaded
  std::map<std::pair<const Tensor*, int64_t>, int64_t> shared_;  // (tensor, cols_pad) -> offset
  std::map<int64_t, Segment> segments_;                    // by first offset
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
  int last_attention = -1;             // the last block's attention node (its maps on request)

  const std::vector<graph::Node>& nodes() const { return graph.nodes; }
  const graph::TensorDesc& t(int id) const { return graph.t(id); }
  // The arena of one bucket: every tensor at `batch` images, packed by lifetime.
  ArenaPlan plan_for(int batch) const;
};

// A graph lowered as it is (any graph: the ViT's, or the op tests' one-node graphs): its weights
// registered in `weights`, activations and inputs (TensorKind::kInput) sized for the arena. The
// QKV GEMM feeding the last attention node keeps its output alive to the end of the graph.
LoweredGraph lower_graph(graph::Graph g, DType dt, WeightStore& weights);

// The shared graph of `model` at run size `size` (graph::RunSize: {} = the model's own) in the
// run precision `dt`, fused when `fusion`; its weights are registered in `weights` (not
// uploaded; the model's own shared with every other size's graph), its activations sized for the arena. The 16-bit
// tensor-core GEMM needs K % 8 == 0: patch columns are zero-padded (P = 14: K = 588 -> 592),
// and so are the rows of the weight that reads them. The last block's Q/K stay alive to the end
// of the graph (attention probabilities are computed after the forward on request).
LoweredGraph lower_graph(const Model& model, DType dt, bool fusion, WeightStore& weights,
                         graph::RunSize size = {}, int tome = 0);

}  // namespace vit::gpu
