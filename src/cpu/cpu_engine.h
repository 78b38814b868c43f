// vit-infer: the fp32 CPU reference backend (cpu_engine.cpp): the shared graph through the CPU
// op table, kernels from ref_ops.h. Host fp32 in and out, like every Engine.
#pragma once

#include <memory>

#include "engine/engine.h"

namespace vit {

// The fp32 CPU reference. threads <= 0: all hardware threads. fusion: run the fused graph
// (graph::fuse) unless false or VIT_DISABLE_FUSION=1; both compute the same function.
std::unique_ptr<Engine> make_cpu_engine(std::shared_ptr<const Model> model, int threads = 0, bool fusion = true);

}  // namespace vit
