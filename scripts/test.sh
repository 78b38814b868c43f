#!/usr/bin/env bash
# vit-infer set-up, step 2 of 2 (see README.md): runs the whole test suite of ./build with ctest.
# GPU tests skip (and are reported as skipped) on a machine without a CUDA device.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${VIT_BUILD_DIR:-build}
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" "$@"
