// vit-infer: NumPy .npz archives (a zip of .npy members, stored or deflated), read with
// libzip. Member names are exposed without the ".npy" suffix, as numpy.load does.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace vit {

// Reads every member; throws vit::Error(kIo/kFormat) naming the archive and member.
std::map<std::string, Tensor> read_npz(const std::string& path);

// Writes an uncompressed .npz (as np.savez). Used by tests.
void write_npz(const std::string& path, const std::map<std::string, Tensor>& arrays);

}  // namespace vit
