// vit-infer: arena planning for every backend (CPU host arena, CUDA device arena). Every intermediate tensor of the
// forward graph is a request {bytes, first node, last node}; the planner packs them into one
// arena by greedy interval packing: largest first, each placed at the lowest offset that does
// not overlap any already-placed tensor whose lifetime intersects its own. Host-only code.
#pragma once

#include <cstdint>
#include <vector>

namespace vit {

struct ArenaRequest {
  int64_t bytes = 0;
  int first = 0;  // index of the first node that writes or reads it (inclusive)
  int last = 0;   // index of the last node that reads it (inclusive)
};

struct ArenaPlan {
  std::vector<int64_t> offsets;  // per request, multiples of `alignment`
  int64_t total = 0;             // arena bytes
  int64_t naive = 0;             // sum of the aligned sizes (what no reuse would cost)
};

// Throws vit::Error(kInvalidArgument) on a negative size, first > last or alignment <= 0.
ArenaPlan plan_arena(const std::vector<ArenaRequest>& req, int64_t alignment = 256);

}  // namespace vit
