// vit-infer: the CPU backends: the fp32 reference (cpu_engine.cpp, kernels from ref_ops.h) and
// the fast engine (fast_engine.cpp), both the shared graph through a CPU op table
// (cpu/cpu_backend.h). Host fp32 in and out, like every Engine.
#pragma once

#include <memory>
#include <string>

#include "engine/engine.h"

namespace vit {

// The fp32 CPU reference. threads <= 0: all hardware threads. fusion: run the fused graph
// (graph::fuse) unless false or VIT_DISABLE_FUSION=1; both compute the same function.
// tome > 0: token merging (ToMe), that many tokens per block (graph::build_vit, graph::check_tome);
// attention maps and features are then refused (they have no unmerged tokens).
std::unique_ptr<Engine> make_cpu_engine(std::shared_ptr<const Model> model, int threads = 0, bool fusion = true,
                                        int tome = 0);

// The fast CPU engine (src/cpu/fast_engine.cpp): oneDNN GEMMs with packed weights, flash-style
// attention; precision F32 or BF16 (bf16 runs as fp32 on a CPU without AMX / AVX512-BF16; name()
// says which, e.g. "cpu-fast bf16 (amx)"). VIT_CPU_ISA lowers the ISA it uses (cpu/cpu_isa.h).
// fusion as make_cpu_engine's. max_batch > 0: the most images a run will take (a session's
// max_batch), which the GEMMs' packing is chosen for (cpu/dnnl_linear.h LinearTiles); 0: not said.
std::unique_ptr<Engine> make_fast_cpu_engine(std::shared_ptr<const Model> model, DType precision, int threads = 0,
                                             bool fusion = true, int tome = 0, int max_batch = 0);

namespace int8 {
struct Calibration;
}

// The int8 run (cpu/int8.h): its calibration, in this order of precedence: `calibration` (made
// in-process), `calibration_path`, or (find_calibration) int8_calibration.json next to the model's
// weights file when it exists; none: dynamic per-token activation quantisation. A calibration file
// that is unreadable, corrupt or for another model is an error (int8::load_calibration).
struct Int8Options {
  std::shared_ptr<const int8::Calibration> calibration;
  std::string calibration_path;
  bool find_calibration = true;
};

// The fast CPU engine with int8 (W8A8) GEMMs in the transformer blocks; name() says static /
// dynamic and the ISA, e.g. "cpu-fast int8 static (avx2)".
std::unique_ptr<Engine> make_int8_cpu_engine(std::shared_ptr<const Model> model, const Int8Options& opt,
                                             int threads = 0, bool fusion = true, int tome = 0, int max_batch = 0);

}  // namespace vit
