// vit-infer: the CPU backends: the fp32 reference (cpu_engine.cpp, kernels from ref_ops.h) and
// the fast engine (fast_engine.cpp), both the shared graph through a CPU op table
// (cpu/cpu_backend.h). Host fp32 in and out, like every Engine.
#pragma once

#include <memory>

#include "engine/engine.h"

namespace vit {

// The fp32 CPU reference. threads <= 0: all hardware threads. fusion: run the fused graph
// (graph::fuse) unless false or VIT_DISABLE_FUSION=1; both compute the same function.
std::unique_ptr<Engine> make_cpu_engine(std::shared_ptr<const Model> model, int threads = 0, bool fusion = true);

// The fast CPU engine (src/cpu/fast_engine.cpp): oneDNN GEMMs with packed weights, flash-style
// attention; precision F32 or BF16 (bf16 runs as fp32 on a CPU without AMX / AVX512-BF16; name()
// says which, e.g. "cpu-fast bf16 (amx)"). VIT_CPU_ISA lowers the ISA it uses (cpu/cpu_isa.h).
// fusion as make_cpu_engine's.
std::unique_ptr<Engine> make_fast_cpu_engine(std::shared_ptr<const Model> model, DType precision, int threads = 0,
                                             bool fusion = true);

}  // namespace vit
