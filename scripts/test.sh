#!/usr/bin/env bash
# vit-infer set-up, step 2 of 2 (see README.md): the whole test suite.
#   1. scripts/sanitize.sh  an AddressSanitizer + UBSan build of the CPU side, and its ctest
#   2. scripts/fuzz.sh      the libFuzzer targets: corpus replay + a short bounded fuzz of each
#   3. ctest on ./build     (the build scripts/setup.sh made), the CUDA tests included; on a
#                           machine without a CUDA device they report "skipped", not "passed"
# VIT_TEST_QUICK=1 runs step 3 only. Extra arguments go to the step-3 ctest (e.g. -R Golden).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${VIT_BUILD_DIR:-build}
[ -d "$build" ] || { echo "test.sh: no $build/: run scripts/setup.sh first" >&2; exit 2; }

if [ "${VIT_TEST_QUICK:-0}" != 1 ]; then
  t=$(date +%s)
  bash scripts/sanitize.sh
  echo "test.sh: sanitizer suite took $(( $(date +%s) - t )) s" >&2
  t=$(date +%s)
  bash scripts/fuzz.sh
  echo "test.sh: fuzzing took $(( $(date +%s) - t )) s" >&2
fi
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" "$@"
