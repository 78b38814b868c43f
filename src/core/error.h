// vit-infer: the one error type the library throws internally.
// Every failure becomes a vit::Error carrying a code and a message that names the
// file/tensor/argument at fault. The C API edge (src/api) turns it into a vit_status;
// nothing in the library calls exit() or abort().
#pragma once

#include <stdexcept>
#include <string>

namespace vit {

// Mirrors vit_status_code in include/vit/vit.h (same numeric values).
enum class ErrorCode : int {
  kOk = 0,
  kInvalidArgument = 1,  // bad parameter, wrong shape, bad flag
  kIo = 2,               // file cannot be opened / read / mapped
  kFormat = 3,           // file is readable but malformed (truncated, bad header, ...)
  kUnsupported = 4,      // valid input we do not handle (a model variant, a dtype)
  kOutOfMemory = 5,      // host or device allocation failed
  kDevice = 6,           // CUDA / cuBLAS / cuDNN failure, or no GPU present
  kCancelled = 7,        // a run was cancelled from another thread
  kInternal = 8,         // a bug: an invariant did not hold
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string& msg) { throw Error(code, msg); }

const char* error_code_name(ErrorCode code) noexcept;

}  // namespace vit
