#!/usr/bin/env bash
# vit-infer: builds the GPU programs HERE (sm_90, Release) and packs them, with the shared
# libraries they need that a bare CUDA image lacks (OpenBLAS, libzip, libpng, libjpeg, Google
# Benchmark, ...; found with ldd), into .carry/gpu/bundle.tar.xz for tools/gpu_run.sh on the
# device machine, which has nvcc / CMake / ninja but none of the Debian -dev packages.
# glibc, libstdc++/libgcc and the CUDA libraries (cudart, cuBLAS, cuBLASLt, the driver) are left
# to the target. Also writes .carry/git_hash (the device copy has no .git) and a manifest.
#   tools/gpu_bundle.sh [BUILD_DIR]        default build-gpu-bundle; VIT_JOBS (default 2)
# Then: device run with carry [".carry/gpu", ".carry/git_hash"] and command `tools/gpu_run.sh`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build-gpu-bundle}
DEST=$ROOT/.carry/gpu
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
LIMIT_MIB=${VIT_BUNDLE_LIMIT_MIB:-40}  # the whole carried tree is limited to 64 MiB

TESTS=(test_gpu_plan test_gpu_kernels test_ops_cuda test_gpu_engine test_gpu_engine_small test_gpu_preprocess
       test_gpu_golden test_cli_cuda vit-infer)
BENCH=(vit-bench vit-kernels-bench vit-soak)

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVIT_ENABLE_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DVIT_BUILD_TESTS=ON -DVIT_BUILD_BENCHMARKS=ON >/dev/null
# Targets that a configuration lacks (no Google Benchmark: no vit-kernels-bench) are skipped.
want=()
ALL_TARGETS=$(ninja -C "$BUILD" -t targets all 2>/dev/null)  # listed once: `| grep -q` + pipefail misfires
for t in "${TESTS[@]}" "${BENCH[@]}"; do
  if grep -qx "$t: phony" <<< "$ALL_TARGETS"; then want+=("$t"); else echo "gpu_bundle: no target $t" >&2; fi
done
cmake --build "$BUILD" --target "${want[@]}" -j "${VIT_JOBS:-2}"

mkdir -p "$STAGE/bin" "$STAGE/lib"
for t in "${want[@]}"; do
  src=$(find "$BUILD" "$BUILD/tests" "$BUILD/benchmarks" -maxdepth 1 -type f -name "$t" 2>/dev/null | head -1)
  [ -n "$src" ] || { echo "gpu_bundle: $t was not built" >&2; exit 1; }
  # Host symbols only: the device code (and its -lineinfo for compute-sanitizer) is in .nv_fatbin.
  strip --strip-unneeded -o "$STAGE/bin/$t" "$src"
  ldd "$src" | awk '/=> \// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libgcc_s.so*|libstdc++.so*|ld-linux*) ;;
      libcudart.so*|libcublas.so*|libcublasLt.so*|libcuda.so*|libnvidia*) ;;
      *) [ -e "$STAGE/lib/$(basename "$lib")" ] || cp -L "$lib" "$STAGE/lib/" ;;
    esac
  done
done
# OpenBLAS ships as libopenblas.so.0 -> the pthread variant; ldd already resolved the real file.
strip --strip-unneeded "$STAGE"/lib/*.so* 2>/dev/null || true

HASH=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
[ "$DIRTY" -gt 0 ] && HASH="$HASH-dirty($DIRTY)"
{
  echo "commit: $HASH"
  echo "built: $(date -u +%FT%TZ) on $(uname -srm)"
  echo "nvcc: $(nvcc --version 2>/dev/null | tail -1)"
  echo "cmake: -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release"
  echo "binaries: ${want[*]}"
  echo "libraries: $(cd "$STAGE/lib" && ls | tr '\n' ' ')"
  echo "needs on the target: $(for f in "$STAGE"/bin/*; do ldd "$f" | awk '/=> \// {print $1}'; done | grep -E 'cudart|cublas' | sort -u | tr '\n' ' ')"
} > "$STAGE/manifest.txt"

rm -rf "$DEST"
mkdir -p "$DEST"
tar -C "$STAGE" -cJf "$DEST/bundle.tar.xz" bin lib manifest.txt
cp "$STAGE/manifest.txt" "$DEST/manifest.txt"
echo "$HASH" > "$ROOT/.carry/git_hash"
cp "$ROOT/.carry/git_hash" "$DEST/git_hash"
SIZE_MIB=$(( $(stat -c %s "$DEST/bundle.tar.xz") / 1048576 ))
cat "$DEST/manifest.txt"
echo "bundle: $DEST/bundle.tar.xz, ${SIZE_MIB} MiB (unpacked: $(du -sh "$STAGE" | cut -f1))"
if [ "$SIZE_MIB" -gt "$LIMIT_MIB" ]; then
  echo "gpu_bundle: the bundle is over ${LIMIT_MIB} MiB; the device run carries at most 64 MiB with the tree" >&2
  exit 1
fi
