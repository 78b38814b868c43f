#!/usr/bin/env bash
# vit-infer: builds the libFuzzer targets (clang, ASan + UBSan, fuzz/) and
#   (a) replays every seed/corpus input and every recorded crash (fuzz/corpus, fuzz/regressions);
#   (b) fuzzes each target for a bounded time, starting from a scratch copy of its corpus
#       (the tree is never modified).
# Exits non-zero on any crash, sanitizer report or non-vit::Error exception; crash inputs are
# left in $build/fuzz-artifacts/<target>/.
#   VIT_FUZZ_SECONDS     fuzzing time per target (default 30; 0: replay only)
#   VIT_FUZZ_BUILD_DIR   build directory (default: build-fuzz)
#   VIT_FUZZ_TARGETS     space-separated subset, e.g. "npy npz" (default: all)
#   VIT_FUZZ_JOBS        targets fuzzed at once (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/times.sh
build=${VIT_FUZZ_BUILD_DIR:-build-fuzz}
seconds=${VIT_FUZZ_SECONDS:-30}
jobs=${VIT_FUZZ_JOBS:-$(nproc)}
targets=${VIT_FUZZ_TARGETS:-"safetensors_header safetensors_file npy npz config_json load_model image"}

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang libclang-rt-dev libomp-dev)" >&2; exit 2; }
t0=$(date +%s)
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIT_ENABLE_CUDA=OFF \
  -DVIT_SANITIZE=ON -DVIT_BUILD_FUZZERS=ON -DVIT_BUILD_TESTS=OFF -DVIT_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" --target fuzzers -j"$(nproc)"
vit_lap "fuzz: build"

# Leaks in a parser that throws are real bugs too; keep ASan's defaults otherwise.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fail=0

# (a) replay: each input once (-runs=0 stops after loading the corpus directories).
for t in $targets; do
  dirs=(fuzz/corpus/fuzz_$t)
  [ -d fuzz/regressions/fuzz_$t ] && dirs+=(fuzz/regressions/fuzz_$t)
  if ! "$build/fuzz/fuzz_$t" -runs=0 "${dirs[@]}" >"$build/replay_$t.log" 2>&1; then
    echo "fuzz.sh: REPLAY FAILED for fuzz_$t (log: $build/replay_$t.log)" >&2
    tail -n 40 "$build/replay_$t.log" >&2
    fail=1
  fi
done
vit_lap "fuzz: corpus replay"

# (b) bounded fuzzing, $jobs targets at a time.
if [ "$seconds" -gt 0 ]; then
  run_one() {
    local t=$1 work="$build/fuzz-work/$t" art="$build/fuzz-artifacts/$t"
    rm -rf "$work"; mkdir -p "$work" "$art"
    cp fuzz/corpus/fuzz_$t/* "$work/"
    [ -d fuzz/regressions/fuzz_$t ] && cp fuzz/regressions/fuzz_$t/* "$work/" 2>/dev/null
    local dict=()
    case $t in
      safetensors_*|config_json|load_model) dict=(-dict=fuzz/dict/json.dict) ;;
      npy|npz) dict=(-dict=fuzz/dict/npy.dict) ;;
    esac
    "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "${dict[@]}" -artifact_prefix="$art/" "$work" >"$build/fuzz_$t.log" 2>&1
  }
  pids=() names=()
  for t in $targets; do
    run_one "$t" & pids+=($!); names+=("$t")
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
  done
  for i in "${!pids[@]}"; do
    t=${names[$i]}
    if wait "${pids[$i]}"; then
      echo "fuzz.sh: fuzz_$t ok: $(grep -E '^stat::number_of_executed_units' "$build/fuzz_$t.log" | awk '{print $2}') runs" >&2
    else
      echo "fuzz.sh: FUZZ_$t FOUND A CRASH (log: $build/fuzz_$t.log, input in $build/fuzz-artifacts/$t/)" >&2
      grep -E -A30 '==ERROR|runtime error|deadly signal|uncaught exception|self-check' "$build/fuzz_$t.log" | head -n 60 >&2 || true
      fail=1
    fi
  done
fi
[ "$seconds" -gt 0 ] && vit_lap "fuzz: ${seconds} s per target, ${jobs} at a time"
echo "fuzz.sh: done in $(( $(date +%s) - t0 )) s, $([ $fail = 0 ] && echo 'no crashes' || echo 'CRASHES FOUND')" >&2
exit $fail
