#!/usr/bin/env bash
# vit-infer: copies the built benchmark programs and the shared libraries they need that a
# CUDA image may lack (libzip, Google Benchmark, ...) into one directory, so that they can be
# carried to the GPU machine and run there with benchmarks/run_all.sh (VIT_BENCH_BIN=DIR).
# glibc, libstdc++ and the CUDA libraries (cudart, cuBLAS, cuBLASLt) are left to the target.
#   benchmarks/bundle.sh [BUILD_DIR] [DEST]    defaults: build-bench, .carry/bench
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build-bench}
DEST=${2:-$ROOT/.carry/bench}
mkdir -p "$DEST/lib"
for exe in vit-bench vit-kernels-bench; do
  src=$BUILD/benchmarks/$exe
  [ -x "$src" ] || { echo "bundle.sh: $src not built" >&2; exit 1; }
  cp -f "$src" "$DEST/"
  ldd "$src" | awk '/=> \// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libgcc_s.so*|libstdc++.so*|ld-linux*) ;;
      libcudart.so*|libcublas.so*|libcublasLt.so*|libcuda.so*) ;;
      *) cp -fL "$lib" "$DEST/lib/" ;;
    esac
  done
done
du -sh "$DEST" >&2
ls "$DEST" "$DEST/lib" >&2
