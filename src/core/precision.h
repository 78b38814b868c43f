// vit-infer: the one table of run precisions {enum, name, storage dtype, C API value, tolerance}.
// The C API, the CLI, vit-bench, vit-soak and the tests read names, types and bounds from here;
// adding a precision is a row (and its kernels).
#pragma once

#include <string>

#include "core/tensor.h"

namespace vit {

// kINT8: W8A8 GEMMs (int8 weights per output channel, u8 activations), everything else in float:
// the graph's activations are fp32 (storage F32), the GEMM inputs quantised by the fast CPU engine.
enum class Precision { kFP32, kFP16, kBF16, kINT8 };

struct PrecisionInfo {
  Precision precision;
  const char* name;    // as the CLI, vit-bench, vit-soak and the JSON reports spell it
  DType storage;       // activations and weights (accumulation is always fp32)
  // The C API's vit_precision value (include/vit/vit.h; src/api/c_api.cpp checks each at compile
  // time). A number here, so that this leaf header does not reach up to the public API.
  int c_value;
  // A whole model's logits against the frameworks' float64 numbers, max |diff| over max |ref|
  // (tests/tolerances.h states why each bound is what it is; the golden tests hold us to it).
  float logits_rel_tol;
};

inline constexpr PrecisionInfo kPrecisions[] = {
    {Precision::kFP32, "fp32", DType::F32, 0, 1e-4f},
    {Precision::kFP16, "fp16", DType::F16, 1, 2e-2f},
    {Precision::kBF16, "bf16", DType::BF16, 2, 6e-2f},
    // int8: the golden fixtures are random-initialised 1-2 block towers on 7-bit weights (AVX2); the
    // worst measured 0.152 (fam_nonorm: no final norm, the head reads the raw residual stream), most
    // under 0.08. Trained models: docs/ACCURACY.md.
    {Precision::kINT8, "int8", DType::F32, 3, 2e-1f},
};

inline const PrecisionInfo& precision_info(Precision p) {
  for (const PrecisionInfo& i : kPrecisions)
    if (i.precision == p) return i;
  return kPrecisions[0];  // unreachable: every enum value has a row
}
// The row named `name` ("fp32" ...), of C API value `c`, or of storage type `t`; null if none.
inline const PrecisionInfo* find_precision(const std::string& name) {
  for (const PrecisionInfo& i : kPrecisions)
    if (name == i.name) return &i;
  return nullptr;
}
inline const PrecisionInfo* find_precision(int c) {  // a vit_precision value
  for (const PrecisionInfo& i : kPrecisions)
    if (i.c_value == c) return &i;
  return nullptr;
}
inline const PrecisionInfo* find_precision(DType t) {  // the first row of that storage (fp32 for F32)
  for (const PrecisionInfo& i : kPrecisions)
    if (i.storage == t) return &i;
  return nullptr;
}
// "fp32 | fp16 | bf16" (`sep` between the names), for help texts and error messages.
inline std::string precision_names(const char* sep = " | ") {
  std::string s;
  for (const PrecisionInfo& i : kPrecisions) s += (s.empty() ? "" : sep) + std::string(i.name);
  return s;
}

// The storage type of activations and weights in a precision (accumulation is always fp32).
inline DType storage_type(Precision p) { return precision_info(p).storage; }
inline const char* precision_name(Precision p) { return precision_info(p).name; }

}  // namespace vit
