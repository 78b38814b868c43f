// vit-infer fuzzing: one entry point per parser of user-supplied files. Each feeds one input
// to the parser the way the engine would meet it (bytes in memory, or a file in a scratch
// directory) and swallows vit::Error, the documented outcome for bad input. Anything else
// escaping (another exception type, a sanitizer report, a crash, a failed self-check) is a bug.
// Shared by the libFuzzer executables (fuzz/fuzz_*.cpp) and the corpus/regression replay test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vit::fuzz {

using RunFn = void (*)(const uint8_t* data, size_t size);

// Bytes = safetensors header JSON; wrapped in a valid u64 length prefix and followed by a
// data buffer as long as the largest data_offsets end the JSON names (capped), then every
// tensor is read.
void safetensors_header(const uint8_t* data, size_t size);
// Bytes = a whole .safetensors file; opened with SafetensorsFile, every tensor read.
void safetensors_file(const uint8_t* data, size_t size);
// Bytes = a .npy image for parse_npy; a successful parse must survive encode -> parse.
void npy(const uint8_t* data, size_t size);
// Bytes = a .npz file for read_npz.
void npz(const uint8_t* data, size_t size);
// Bytes = config.json: the HF/timm/preprocessor parsers on it, then load_model of a tiny
// valid timm checkpoint with this config.json (and preprocessor_config.json) beside it.
void config_json(const uint8_t* data, size_t size);
// Bytes = a weights file (.safetensors, or .npz when it starts with "PK") for load_model.
void load_model(const uint8_t* data, size_t size);
// Bytes = an image for decode_image_memory (PNG / JPEG / anything).
void image(const uint8_t* data, size_t size);

struct Target {
  const char* name;  // also the corpus directory name: fuzz/corpus/<name>
  RunFn run;
};
// Every target above, named as its fuzzer executable.
const std::vector<Target>& targets();

}  // namespace vit::fuzz
