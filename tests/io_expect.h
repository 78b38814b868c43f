// vit-infer tests: helpers for the model-file reader tests (test_safetensors, test_npy).
// expect_error runs a callable and checks the vit::Error it must throw: its code, a message
// fragment specific to the one check that should fire, and the file named in the message.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace vit::test {

template <class F>
void expect_error(F&& f, ErrorCode code, const std::string& fragment, const std::string& file) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected " << error_code_name(code) << " containing '"
                  << fragment << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), code) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << "expected '" << fragment << "' in: " << msg;
    EXPECT_NE(msg.find(file), std::string::npos) << "expected file '" << file << "' in: " << msg;
  }
}

inline void put_u64le(std::vector<uint8_t>& v, uint64_t x) {
  for (int i = 0; i < 8; ++i) v.push_back(static_cast<uint8_t>(x >> (8 * i)));
}

}  // namespace vit::test
