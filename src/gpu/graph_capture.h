// vit-infer: recording a bucket's launches into a CUDA graph, apart from the executor. The
// executor replays the graph per run and falls back to plain launches (for good, with one log
// line) when a capture fails: a library call that is illegal while capturing, an instantiation
// the driver refuses.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <string>

namespace vit::gpu {

// Records what `enqueue` launches on s (thread-local capture mode) and instantiates it. Returns the
// executable graph, or null with *why saying what failed (the CUDA error cleared). force_fail
// (the test hook VIT_TEST_FAIL_GRAPH_CAPTURE) makes an illegal call inside the capture, as a
// library doing a hidden synchronisation would. The caller runs `enqueue` once outside the
// capture first, so that lazy module loading and one-time library setup are not captured.
cudaGraphExec_t capture_graph(cudaStream_t s, const std::function<void()>& enqueue, bool force_fail, std::string* why);

}  // namespace vit::gpu
