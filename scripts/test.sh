#!/usr/bin/env bash
# vit-infer set-up, step 2 of 2 (see README.md): the whole test suite.
#   1. scripts/sanitize.sh  an AddressSanitizer + UBSan build of the CPU side, and its ctest
#   2. scripts/fuzz.sh      the libFuzzer targets: corpus replay + a short bounded fuzz of each
#   3. ctest on ./build     (the build scripts/setup.sh made), the CUDA tests included; on a
#                           machine without a CUDA device they report "skipped", not "passed"
#   4. pytest python/tests  the vit_infer module and the Ray Serve app (a local two-node Ray
#                           cluster on 127.0.0.1), in the venv scripts/setup.sh made
# VIT_TEST_QUICK=1 runs steps 3 and 4 only. Extra arguments go to the step-3 ctest (e.g. -R Golden).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/times.sh
build=${VIT_BUILD_DIR:-build}
[ -d "$build" ] || { echo "test.sh: no $build/: run scripts/setup.sh first" >&2; exit 2; }

if [ "${VIT_TEST_QUICK:-0}" != 1 ]; then
  bash scripts/sanitize.sh
  bash scripts/fuzz.sh
  _VIT_LAP_T=$(date +%s) _VIT_LAP_C=$(_vit_cpu_ticks)  # both scripts recorded their own laps
fi
# OpenMP threads that spin at their barriers waste the cores the other ctest job needs (two jobs
# of two threads each on two cores): they sleep instead.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} ctest --test-dir "$build" --output-on-failure -j"$(nproc)" "$@"
vit_lap "ctest (plain build)"

venv=${VIT_VENV:-.venv}
[ -x "$venv/bin/python" ] || { echo "test.sh: no $venv/: run scripts/setup.sh first" >&2; exit 2; }
rc=0
VIT_BUILD_DIR="$build" "$venv/bin/python" -m pytest -q -rs python/tests || rc=$?
vit_lap "pytest"
# pytest's 5 is "no tests collected": a failure here, like any other non-zero status.
[ "$rc" -eq 0 ] || { echo "test.sh: pytest failed (exit $rc)" >&2; exit 1; }
