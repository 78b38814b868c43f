// vit-infer: greedy interval packing of tensor lifetimes into one arena (see arena.h).
#include "graph/arena.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "core/error.h"

namespace vit {

ArenaPlan plan_arena(const std::vector<ArenaRequest>& req, int64_t alignment) {
  if (alignment <= 0) fail(ErrorCode::kInvalidArgument, "plan_arena: alignment must be positive");
  const size_t n = req.size();
  std::vector<int64_t> size(n);
  for (size_t i = 0; i < n; ++i) {
    if (req[i].bytes < 0 || req[i].first > req[i].last) {
      fail(ErrorCode::kInvalidArgument, "plan_arena: request " + std::to_string(i) +
                                            " has a negative size or first > last");
    }
    size[i] = (req[i].bytes + alignment - 1) / alignment * alignment;
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (size[a] != size[b]) return size[a] > size[b];
    return req[a].first < req[b].first;
  });

  ArenaPlan plan;
  plan.offsets.assign(n, 0);
  std::vector<size_t> placed;
  for (size_t i : order) {
    plan.naive += size[i];
    if (size[i] == 0) continue;
    // Memory ranges of already-placed tensors that are alive at the same time, by offset.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t j : placed) {
      if (req[j].first <= req[i].last && req[i].first <= req[j].last) {
        busy.emplace_back(plan.offsets[j], plan.offsets[j] + size[j]);
      }
    }
    std::sort(busy.begin(), busy.end());
    int64_t off = 0;
    for (const auto& r : busy) {
      if (off + size[i] <= r.first) break;  // fits in the gap before r
      off = std::max(off, r.second);
    }
    plan.offsets[i] = off;
    plan.total = std::max(plan.total, off + size[i]);
    placed.push_back(i);
  }
  return plan;
}

}  // namespace vit
