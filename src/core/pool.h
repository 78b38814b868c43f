// vit-infer: the one table of token poolings, like core/precision.h: the model's global pooling
// (timm global_pool: {GlobalPool, name, the pool op's mode}) and the pool op's modes (PoolMode,
// what the reference, the fast CPU rows, the CUDA kernel and the emulator take). Config parsing,
// the CLI / C API / Python overrides, build_vit, the op tests and `vit-infer info` read it. A leaf
// header: kernels include it.
#pragma once

#include <cstdint>
#include <cstring>

namespace vit {

// The pool op x [T, D] -> [D]: row `first` alone (kRow: the cls / dist token, the attention-pool
// head's latent row 0), or over rows first..T-1 the mean, the max, or (mean + max) / 2.
enum class PoolMode : uint8_t { kRow, kMean, kMax, kAvgMax };
inline constexpr const char* kPoolModeNames[] = {"row", "mean", "max", "avgmax"};  // PoolMode order
static_assert(sizeof kPoolModeNames / sizeof kPoolModeNames[0] == static_cast<size_t>(PoolMode::kAvgMax) + 1,
              "a name per PoolMode");
inline const char* pool_mode_name(PoolMode m) { return kPoolModeNames[static_cast<int>(m)]; }

// timm global_pool: the cls (first prefix) row, or over the patch rows (prefix tokens skipped):
// mean, max, or avgmax = (mean + max) / 2; or map, the attention-pool head (timm
// AttentionPoolLatent, HF SiglipMultiheadAttentionPoolingHead): a learned latent query attends
// over the patch rows, then proj, x + mlp(norm(x)), latent row 0.
enum class GlobalPool : uint8_t { kToken, kAvg, kAvgMax, kMax, kMap };

struct GlobalPoolInfo {
  GlobalPool pool;
  const char* name;   // timm's global_pool value; the CLI's --pool, the C API's and Python's names
  PoolMode mode;      // the pool op that ends it (map: after the head, over the latent rows)
  bool patch_rows;    // pools over the patch rows (the prefix tokens skipped)
};

inline constexpr GlobalPoolInfo kGlobalPools[] = {
    {GlobalPool::kToken, "token", PoolMode::kRow, false},
    {GlobalPool::kAvg, "avg", PoolMode::kMean, true},
    {GlobalPool::kAvgMax, "avgmax", PoolMode::kAvgMax, true},
    {GlobalPool::kMax, "max", PoolMode::kMax, true},
    {GlobalPool::kMap, "map", PoolMode::kRow, false},
};
inline constexpr int kGlobalPoolCount = static_cast<int>(sizeof kGlobalPools / sizeof kGlobalPools[0]);
static_assert(static_cast<int>(GlobalPool::kMap) + 1 == kGlobalPoolCount, "a row per GlobalPool, in enum order");

inline const GlobalPoolInfo& global_pool_info(GlobalPool p) { return kGlobalPools[static_cast<int>(p)]; }
inline const char* global_pool_name(GlobalPool p) { return global_pool_info(p).name; }
// The row named `name`, or null.
inline const GlobalPoolInfo* find_global_pool(const char* name) {
  for (const GlobalPoolInfo& i : kGlobalPools)
    if (std::strcmp(i.name, name) == 0) return &i;
  return nullptr;
}

}  // namespace vit
