// vit-infer fuzzing: the libFuzzer entry point, compiled once per target with
// VIT_FUZZ_ENTRY set to one of the vit::fuzz functions in harness.h (see CMakeLists.txt).
#include <cstddef>
#include <cstdint>

#include "harness.h"

#ifndef VIT_FUZZ_ENTRY
#error "define VIT_FUZZ_ENTRY to a vit::fuzz entry point"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vit::fuzz::VIT_FUZZ_ENTRY(data, size);
  return 0;
}
