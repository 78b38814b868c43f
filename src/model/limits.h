// vit-infer (internal): upper bounds on every model size a checkpoint, a config file or a
// caller can ask for. They exist so that a hostile or corrupt file (or a typo such as
// --image-size 40000) fails with a clear vit::Error instead of an allocation of many GB or
// an int overflow further down; each bound is far above any published ViT.
#pragma once

#include <cstdint>

namespace vit::limits {

// Run resolution (each side, pixels). One fp32 input image is 3*H*W*4 bytes: 805 MB at
// 8192; published ViTs run at <= 1024 (ViT-L/16 at 512, EVA at 448).
constexpr int kMaxImageSide = 8192;
// Patches at the run size (grid_h * grid_w; tokens = patches + 1). Attention holds
// [heads, T, T] fp32 scores per image: 16 GiB per head at 65536 patches, so anything larger
// could never run; published ViTs use <= 4096 (e.g. 518/14 = 37x37 = 1369).
constexpr int64_t kMaxPatches = 65536;
// Encoder sizes. The largest published ViT (ViT-22B) has width 6144, depth 48, 48 heads,
// mlp 24576; ImageNet-21k has 21843 classes.
constexpr int kMaxHidden = 16384;
constexpr int kMaxMlp = 131072;
constexpr int kMaxDepth = 1000;
constexpr int kMaxHeads = 1024;
constexpr int kMaxPatch = 1024;  // patch side, pixels
constexpr int kMaxInChans = 256;
constexpr int kMaxClasses = 1 << 20;
// Tensor names: real checkpoint names are < 100 characters; a bound keeps error messages
// (which quote names) short and every name-parsing step linear.
constexpr size_t kMaxTensorName = 1024;
// JSON config files: nesting deeper than this is no config (the real ones are 3 deep), and
// nlohmann's dump() / destruction recurse once per level.
constexpr int kMaxJsonDepth = 128;

}  // namespace vit::limits
