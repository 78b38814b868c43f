#!/usr/bin/env bash
# vit-infer: an AddressSanitizer + UndefinedBehaviorSanitizer build of the CPU engine, the
# library, the CLI and the whole test suite (-DVIT_SANITIZE=ON, no CUDA), then ctest on it.
# Any sanitizer report aborts the test that triggered it, so the run fails.
#   VIT_ASAN_BUILD_DIR   build directory (default: build-asan)
#   extra arguments go to ctest (e.g. -R Fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${VIT_ASAN_BUILD_DIR:-build-asan}
t0=$(date +%s)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIT_ENABLE_CUDA=OFF -DVIT_SANITIZE=ON \
  -DVIT_BUILD_TESTS=ON -DVIT_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)"
echo "sanitize.sh: built in $(( $(date +%s) - t0 )) s" >&2
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# OpenBLAS and OpenMP threads on top of the ctest jobs would oversubscribe a small machine. The
# job count is read first: GNU nproc answers OMP_NUM_THREADS once it is set.
jobs=$(nproc)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
rc=0
ctest --test-dir "$build" --output-on-failure -j"$jobs" "$@" || rc=$?
echo "sanitize.sh: done in $(( $(date +%s) - t0 )) s (ctest rc=$rc)" >&2
exit $rc
