// vit-infer: the CUDA backend's plain graph executor (see op_runner.h).
#include "gpu/op_runner.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "cuda_check.h"
#include "gemm_sm90.cuh"

namespace vit::gpu {

OpRunner::OpRunner(graph::Graph g, DType dt, int batch, GemmImpl gemm) : dt_(dt), weights_(dt) {
  if (batch < 1) fail(ErrorCode::kInvalidArgument, "op runner: batch must be >= 1");
  L_ = lower_graph(std::move(g), dt, weights_);
  rows_ = cuda_op_rows(L_.graph, "op runner");
  bk_.batch = batch;
  bk_.plan = L_.plan_for(batch);
  bk_.gemms_chosen = true;
  bk_.gemm_impl.assign(L_.nodes().size(), gemm);
  VIT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_.s, cudaStreamNonBlocking));
  stream_.owned = true;
  weights_.upload();
  arena_.alloc(bk_.plan.total, "op runner arena");
  VIT_CUDA_CHECK(cudaDeviceSynchronize());  // the weight upload ran on the legacy stream
  lt_ = std::make_unique<LtGemm>(false);
  gemm_ = std::make_unique<GemmLauncher>(dt, weights_, lt_.get());
}

std::string OpRunner::gemm_unsupported() const {
  const CudaRunCtx c = ctx();
  for (size_t i = 0; i < L_.nodes().size(); ++i) {
    if (L_.nodes()[i].op != graph::Op::kLinear) continue;
    const GemmImpl impl = bk_.gemm_impl[i];
    const GemmParams p = gemm_->params(L_.gemm[i], c.operands(L_.gemm[i]), impl);
    if (impl == GemmImpl::kCublasLt && !lt_->supports(p)) return "cuBLASLt has no algorithm for " + L_.nodes()[i].name;
    if (impl == GemmImpl::kWgmma && !(gemm_sm90_available() && gemm_sm90_supports(p)))
      return "the wgmma kernel does not run " + L_.nodes()[i].name + " here";
  }
  return "";
}

void OpRunner::set_input(int t, const std::vector<float>& host) {
  const graph::TensorDesc& d = L_.t(t);
  if (d.kind != graph::TensorKind::kInput) fail(ErrorCode::kInvalidArgument, "op runner: '" + d.name + "' is no input");
  const int64_t n = d.numel() * bk_.batch;
  if (static_cast<int64_t>(host.size()) != n)
    fail(ErrorCode::kInvalidArgument, "op runner: input '" + d.name + "' takes " + std::to_string(n) + " values");
  // Rows are stored at the tensor's pitch (zero padding between them, as lowering planned).
  const int64_t cols = d.cols(), pitch = L_.pitch[static_cast<size_t>(t)], rows = n / cols;
  std::vector<uint8_t> buf(static_cast<size_t>(rows * pitch) * dtype_size(d.dtype), 0);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = k / cols * pitch + k % cols;
    const float v = host[static_cast<size_t>(k)];
    if (d.dtype == DType::F32) {
      std::memcpy(&buf[static_cast<size_t>(i) * 4], &v, 4);
    } else {
      const uint16_t h = d.dtype == DType::F16 ? float_to_half(v) : float_to_bf16(v);
      std::memcpy(&buf[static_cast<size_t>(i) * 2], &h, 2);
    }
  }
  VIT_CUDA_CHECK(cudaMemcpyAsync(ctx().t(t), buf.data(), buf.size(), cudaMemcpyHostToDevice, stream_.s));
  VIT_CUDA_CHECK(cudaStreamSynchronize(stream_.s));
}

void OpRunner::poison() {
  VIT_CUDA_CHECK(cudaMemsetAsync(arena_.p, 0xFF, static_cast<size_t>(arena_.bytes), stream_.s));
  VIT_CUDA_CHECK(cudaStreamSynchronize(stream_.s));
}

void OpRunner::run() {
  const CudaRunCtx c = ctx();
  for (size_t i = 0; i < rows_.size(); ++i) rows_[i]->run(c, L_.nodes()[i], i, stream_.s);
  VIT_CUDA_CHECK(cudaStreamSynchronize(stream_.s));
}

double OpRunner::time_ms(int reps) {
  run();
  EventPair ev;
  const CudaRunCtx c = ctx();
  VIT_CUDA_CHECK(cudaEventRecord(ev.a, stream_.s));
  for (int r = 0; r < reps; ++r)
    for (size_t i = 0; i < rows_.size(); ++i) rows_[i]->run(c, L_.nodes()[i], i, stream_.s);
  VIT_CUDA_CHECK(cudaEventRecord(ev.b, stream_.s));
  VIT_CUDA_CHECK(cudaEventSynchronize(ev.b));
  float ms = 0.0f;
  VIT_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.a, ev.b));
  return static_cast<double>(ms) / reps;
}

std::vector<float> OpRunner::output(int t) const {
  const graph::TensorDesc& d = L_.t(t);
  const int64_t n = d.numel() * bk_.batch, cols = d.cols(), pitch = L_.pitch[static_cast<size_t>(t)];
  const int64_t rows = n / cols;
  std::vector<uint8_t> buf(static_cast<size_t>(rows * pitch) * dtype_size(d.dtype));
  VIT_CUDA_CHECK(cudaMemcpy(buf.data(), ctx().t(t), buf.size(), cudaMemcpyDeviceToHost));
  std::vector<float> padded(static_cast<size_t>(rows * pitch)), out(static_cast<size_t>(n));
  widen_to_f32(d.dtype, buf.data(), rows * pitch, padded.data());
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(padded.begin() + r * pitch, cols, out.begin() + r * cols);
  return out;
}

}  // namespace vit::gpu
