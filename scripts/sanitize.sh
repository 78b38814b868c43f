#!/usr/bin/env bash
# vit-infer: an AddressSanitizer + UndefinedBehaviorSanitizer build of the CPU engine, the
# library, the CLI and the test suite (-DVIT_SANITIZE=ON, no CUDA; the CUDA engine and kernels on
# the CPU emulator), then ctest on it. Any sanitizer report aborts the test that triggered it, so
# the run fails.
#   VIT_ASAN_BUILD_DIR   build directory (default: build-asan)
#   VIT_ASAN_EXCLUDE     a ctest -E regex of tests to leave out (default: none)
#   VIT_ASAN_FLAGS       the optimisation / debug flags (default: -O1 -g1)
#   extra arguments go to ctest (e.g. -R Fuzz)
#
# What the plain build's ctest (scripts/test.sh step 3) runs and this one does not, and why:
# - -O1 -g1 (line tables: ASan's reports keep file:line) instead of RelWithDebInfo's -O2 -g: one
#   test file took 224 s of CPU to compile at -O2 -g under ASan, 70 s at -O1 -g1 (issue 24).
# - VIT_TEST_EMU_PROGRAMS=OFF: the shipped programs on the emulator (vit-infer-emu, vit-bench-emu,
#   vit-soak-emu) and their tests are not built: emu.Golden/CliCuda*, emu.EmuBench*, emu.EmuSoak*
#   and the bench_util / random_model unit tests emu.EmuBenchUtil* run in the plain ctest only.
#   The CLI's host code runs under ASan in the CPU CLI tests (test_cli*), the engine's in
#   emu.Golden / emu.Families / emu.GpuEngineSmall.
# - The emulator's whole-model runs: the families marked `asan` in tests/emulated_runs.cpp (the
#   plain ViT in three layouts, DINOv2, DeiT: one run per precision each), not every family; the
#   op table (emu.Ops/*) and the kernel tests run every kernel here on awkward shapes.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/times.sh
build=${VIT_ASAN_BUILD_DIR:-build-asan}
flags=${VIT_ASAN_FLAGS:--O1 -g1}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIT_ENABLE_CUDA=OFF -DVIT_SANITIZE=ON \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$flags -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=$flags -DNDEBUG" \
  -DVIT_BUILD_TESTS=ON -DVIT_BUILD_BENCHMARKS=OFF -DVIT_TEST_EMU_PROGRAMS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)"
vit_lap "asan: build"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# OpenBLAS and OpenMP threads on top of the ctest jobs would oversubscribe a small machine. The
# job count is read first: GNU nproc answers OMP_NUM_THREADS once it is set.
jobs=$(nproc)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # engines asking for 2 threads sleep at barriers
exclude=${VIT_ASAN_EXCLUDE-}
rc=0
ctest --test-dir "$build" --output-on-failure -j"$jobs" ${exclude:+-E "$exclude"} "$@" || rc=$?
vit_lap "asan: ctest"
echo "sanitize.sh: ctest rc=$rc" >&2
exit $rc
