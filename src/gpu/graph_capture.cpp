// vit-infer: CUDA graph capture (see graph_capture.h).
#include "gpu/graph_capture.h"

#include <exception>

namespace vit::gpu {

cudaGraphExec_t capture_graph(cudaStream_t s, const std::function<void()>& enqueue, bool force_fail, std::string* why) {
  auto give_up = [&](const std::string& w) -> cudaGraphExec_t {
    (void)cudaGetLastError();
    *why = w;
    return nullptr;
  };
  cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) return give_up(std::string("cudaStreamBeginCapture: ") + cudaGetErrorString(e));
  try {
    enqueue();
  } catch (const std::exception& ex) {
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(s, &g);
    if (g) cudaGraphDestroy(g);
    return give_up(ex.what());
  }
  // A call that is illegal during capture invalidates it.
  if (force_fail) (void)cudaStreamSynchronize(s);
  cudaGraph_t g = nullptr;
  e = cudaStreamEndCapture(s, &g);
  if (e != cudaSuccess || !g || force_fail) {
    if (g) cudaGraphDestroy(g);
    return give_up(std::string("cudaStreamEndCapture: ") + cudaGetErrorString(e) +
                   (force_fail ? " (forced by VIT_TEST_FAIL_GRAPH_CAPTURE)" : ""));
  }
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiate(&exec, g, 0);
  cudaGraphDestroy(g);
  if (e != cudaSuccess) return give_up(std::string("cudaGraphInstantiate: ") + cudaGetErrorString(e));
  return exec;
}

}  // namespace vit::gpu
