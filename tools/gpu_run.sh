#!/usr/bin/env bash
# vit-infer: the ONE script for a GPU run (the H200 device machine, or any local CUDA box).
# Gets the binaries (the prebuilt bundle from tools/gpu_bundle.sh when carried, else a source
# build), runs the GPU tests, compute-sanitizer memcheck / racecheck / initcheck / synccheck on
# the GPU test binaries, then benchmarks/run_all.sh (and vit-soak when VIT_SOAK_MINUTES > 0),
# each step under a time budget so that the whole run ends inside the device's 10-minute limit.
# Everything lands in $OUT (device) or benchmarks/results/gpu-run-<date> (local): gpu_run.log,
# summary.txt (commit, GPU, one PASS / FAIL / SKIP line per step) and results.tar.gz (test XML,
# sanitizer logs, benchmark JSON): at most a handful of files, as the device returns 8.
#
# Here, before a device run:
#   tools/gpu_bundle.sh                 # build for sm_90 + pack binaries and libs into .carry/gpu
#   tools/gpu_run.sh --prepare          # optional: .carry/googletest + .carry/debs for a source build
# Device run (the tool `run`): command "tools/gpu_run.sh", carry [".carry/gpu", ".carry/git_hash"]
#   (add ".carry/googletest", ".carry/debs" only for the source-build fallback), timeout_s 600.
# Env: VIT_GPU_STEPS   comma list of tests,sanitize,bench,soak (default tests,sanitize,bench)
#      VIT_GPU_BUDGET  seconds for the whole script (default 540)
#      VIT_SOAK_MINUTES  vit-soak minutes (default 0 = skipped; the soak step runs it too)
#      VIT_GPU_BUILD   build dir of the source fallback (default build-gpu-run); VIT_JOBS
# A full benchmark run (run_all.sh, ~8 min) does not fit next to the tests: give it its own call,
#   VIT_GPU_STEPS=bench tools/gpu_run.sh;  a soak: VIT_GPU_STEPS=soak VIT_SOAK_MINUTES=8 tools/gpu_run.sh
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARRY="$ROOT/.carry"
T0=$(date +%s)
BUDGET=${VIT_GPU_BUDGET:-540}
STEPS=",${VIT_GPU_STEPS:-tests,sanitize,bench},"

if [[ "${1:-}" == "--prepare" ]]; then
  mkdir -p "$CARRY/debs"
  rm -rf "$CARRY/googletest" && cp -r /usr/src/googletest "$CARRY/googletest"
  (cd "$CARRY/debs" && apt-get download nlohmann-json3-dev libzip-dev libzip4 libopenblas-dev \
     libopenblas-pthread-dev libopenblas0 libopenblas0-pthread libgfortran5 libpng-dev libpng16-16 \
     libjpeg62-turbo-dev libjpeg62-turbo libjpeg-dev libcli11-dev zlib1g-dev)
  du -sh "$CARRY"
  exit 0
fi

if [[ -n "${OUT:-}" ]]; then
  DEST="$OUT"
else
  DEST="$ROOT/benchmarks/results/gpu-run-$(date +%Y%m%d-%H%M%S)"
fi
mkdir -p "$DEST"
RES=$(mktemp -d /tmp/vit-gpu-run.XXXXXX)   # everything; packed into $DEST/results.tar.gz at the end
LOG="$DEST/gpu_run.log"
SUMMARY="$DEST/summary.txt"
: > "$SUMMARY"
exec > >(tee -a "$LOG") 2>&1

STATUS=0
elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET - $(elapsed) )); }
step() { echo; echo "=== $* (+$(elapsed)s, $(left)s left)"; }
record() { echo "$1 $2${3:+ ($3)}" | tee -a "$SUMMARY"; }  # name, PASS/FAIL/SKIP, note
want() { [[ "$STEPS" == *",$1,"* ]]; }
finish() {
  step "pack results"
  tar -C "$RES" -czf "$DEST/results.tar.gz" . 2>/dev/null || echo "could not pack $RES"
  echo "commit: $COMMIT  gpu: $GPU  status: $([[ $STATUS == 0 ]] && echo PASS || echo FAIL)  ($(elapsed)s)" | tee -a "$SUMMARY"
  rm -rf "$RES"
  exit $STATUS
}

# run_timed NAME CAP_S CMD...: runs CMD under min(CAP_S, time left - 25 s); output to $RES/NAME.log.
run_timed() {
  local name=$1 cap=$2; shift 2
  local lim=$(( $(left) - 25 ))
  (( lim > cap )) && lim=$cap
  if (( lim < 15 )); then record "$name" SKIP "out of time"; return 0; fi
  echo "--- $name (limit ${lim}s): $*"
  timeout --kill-after=10 "$lim" "$@" > "$RES/$name.log" 2>&1
  local rc=$?
  tail -n 15 "$RES/$name.log"
  if (( rc == 0 )); then record "$name" PASS
  elif (( rc == 124 || rc == 137 )); then record "$name" FAIL "timed out after ${lim}s"; STATUS=1
  else record "$name" FAIL "rc=$rc, see $name.log"; STATUS=1; fi
  return $rc
}

step "identity"
COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || cat "$CARRY/git_hash" 2>/dev/null || cat "$CARRY/gpu/git_hash" 2>/dev/null || echo unknown)
GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
GPU=${GPU:-no GPU visible}
echo "commit: $COMMIT" | tee -a "$SUMMARY"
echo "gpu: $GPU" | tee -a "$SUMMARY"
echo "host: $(uname -srm), $(nproc) cores; nvcc: $(nvcc --version 2>/dev/null | tail -1)"
nvidia-smi > "$RES/nvidia-smi.txt" 2>&1 || true
export VIT_GIT_HASH="$COMMIT"
# Tests read fixtures through the absolute source path compiled in (VIT_TEST_DATA); on the
# device the tree lives elsewhere, so make the build-time path point at this copy.
if [[ -f "$CARRY/gpu/bundle.tar.xz" && ! -e /work/main ]]; then
  mkdir -p /work 2>/dev/null && ln -s "$ROOT" /work/main 2>/dev/null && echo "linked /work/main -> $ROOT"
fi

step "binaries"
BIN=""
if [[ -f "$CARRY/gpu/bundle.tar.xz" ]]; then
  B=/tmp/vit-bundle
  rm -rf "$B" && mkdir -p "$B" && tar -C "$B" -xJf "$CARRY/gpu/bundle.tar.xz"
  cat "$B/manifest.txt"
  export LD_LIBRARY_PATH="$B/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  missing=$(for f in "$B"/bin/*; do ldd "$f" | grep "not found"; done | sort -u)
  if [[ -n "$missing" ]]; then
    echo "bundle: unresolved libraries:"; echo "$missing"
    # CUDA libraries may live in the pip wheels of the image's Python instead of the toolkit.
    for d in $(python3 -c 'import nvidia, os; p = nvidia.__path__[0]; print(" ".join(os.path.join(p, s, "lib") for s in os.listdir(p)))' 2>/dev/null); do
      [[ -d "$d" ]] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
    done
    missing=$(for f in "$B"/bin/*; do ldd "$f" | grep "not found"; done | sort -u)
  fi
  if [[ -z "$missing" ]] && "$B/bin/test_gpu_plan" --gtest_brief=1 > "$RES/bundle_probe.log" 2>&1; then
    BIN="$B/bin"; record bundle PASS "prebuilt, $(grep -o 'commit: .*' "$B/manifest.txt")"
  else
    echo "bundle unusable here:"; echo "$missing"; tail -5 "$RES/bundle_probe.log"
    record bundle FAIL "falling back to a source build"
  fi
fi
if [[ -z "$BIN" ]]; then
  BUILD="${VIT_GPU_BUILD:-$ROOT/build-gpu-run}"
  CMAKE_ARGS=(-S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVIT_ENABLE_CUDA=ON
              -DCMAKE_CUDA_ARCHITECTURES=90 -DVIT_BUILD_TESTS=ON -DVIT_BUILD_BENCHMARKS=ON)
  [[ -d "$CARRY/googletest" ]] && CMAKE_ARGS+=(-DVIT_GTEST_SOURCE_DIR="$CARRY/googletest")
  if ! cmake "${CMAKE_ARGS[@]}" > "$RES/configure.log" 2>&1; then
    if [[ -d "$CARRY/debs" ]]; then
      # Unpack the carried Debian packages into a private sysroot (never into /).
      SYSROOT=/tmp/vit-sysroot
      rm -rf "$SYSROOT" && mkdir -p "$SYSROOT"
      for f in "$CARRY"/debs/*.deb; do dpkg-deb -x "$f" "$SYSROOT"; done
      LIBDIR="$SYSROOT/usr/lib/x86_64-linux-gnu"
      export PKG_CONFIG_SYSROOT_DIR="$SYSROOT"
      export PKG_CONFIG_LIBDIR="$LIBDIR/pkgconfig:$LIBDIR/openblas-pthread/pkgconfig:$SYSROOT/usr/share/pkgconfig"
      export LD_LIBRARY_PATH="$LIBDIR:$LIBDIR/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      rm -rf "$BUILD"
      cmake "${CMAKE_ARGS[@]}" -DCMAKE_PREFIX_PATH="$SYSROOT/usr" >> "$RES/configure.log" 2>&1 \
        || { tail -30 "$RES/configure.log"; record configure FAIL "see configure.log"; STATUS=1; finish; }
    else
      tail -30 "$RES/configure.log"
      record configure FAIL "no bundle (tools/gpu_bundle.sh) and no .carry/debs"; STATUS=1; finish
    fi
  fi
  run_timed build 300 cmake --build "$BUILD" -j "${VIT_JOBS:-$(nproc)}" --target test_gpu_plan test_gpu_kernels \
    test_gpu_engine test_gpu_engine_small test_gpu_preprocess test_gpu_golden test_cli_cuda vit-infer vit-bench \
    vit-soak || { STATUS=1; finish; }
  cmake --build "$BUILD" -j "${VIT_JOBS:-$(nproc)}" --target vit-kernels-bench > "$RES/build_kbench.log" 2>&1 || true
  BIN="$RES/bin"
  mkdir -p "$BIN"
  for f in "$BUILD"/tests/test_gpu_* "$BUILD"/tests/test_cli_cuda "$BUILD"/vit-infer "$BUILD"/benchmarks/vit-*; do [[ -x "$f" && -f "$f" ]] && ln -sf "$f" "$BIN/"; done
fi

if want tests; then
  step "GPU tests"
  # test_cli_cuda runs the carried vit-infer (`classify --device cuda` on every golden fixture).
  [[ -x "$BIN/vit-infer" ]] && export VIT_INFER_BIN="$BIN/vit-infer"
  for t in test_gpu_plan:30 test_gpu_kernels:90 test_gpu_engine_small:90 test_gpu_preprocess:60 test_gpu_engine:180 \
           test_gpu_golden:60 test_cli_cuda:90; do
    name=${t%%:*} cap=${t##*:}
    [[ -x "$BIN/$name" ]] || { record "$name" SKIP "not built"; continue; }
    run_timed "$name" "$cap" "$BIN/$name" --gtest_output="xml:$RES/$name.xml"
  done
fi

if want sanitize; then
  step "compute-sanitizer"
  if ! command -v compute-sanitizer >/dev/null; then
    record sanitizers SKIP "compute-sanitizer not installed"
  elif ! timeout 60 compute-sanitizer --tool memcheck "$BIN/test_gpu_kernels" --gtest_filter='GpuHead.*' \
         > "$RES/sanitizer_probe.log" 2>&1; then
    # gVisor machines answer "Device not supported": a property of the machine, not of the code.
    tail -5 "$RES/sanitizer_probe.log"
    record sanitizers SKIP "probe failed on this machine: $(grep -m1 -o 'Device not supported\|error.*' "$RES/sanitizer_probe.log")"
  else
    CS=(compute-sanitizer --error-exitcode 86 --print-limit 50)
    K="$BIN/test_gpu_kernels" E="$BIN/test_gpu_engine_small"
    run_timed memcheck_kernels 120 "${CS[@]}" --tool memcheck "$K"
    run_timed memcheck_engine 120 "${CS[@]}" --tool memcheck "$E"
    run_timed racecheck_kernels 120 "${CS[@]}" --tool racecheck --racecheck-report all "$K" \
      --gtest_filter='GpuAttention.*:GpuGemm.*:GpuHead.*:GpuLayerNorm.*'
    run_timed initcheck_engine 90 "${CS[@]}" --tool initcheck "$E" \
      --gtest_filter='GpuEngineSmall.MatchesCpu*:GpuEngineSmall.RunImages*:GpuEngineSmall.Attention*'
    run_timed synccheck_kernels 90 "${CS[@]}" --tool synccheck "$K" --gtest_filter='GpuAttention.*:GpuGemm.*'
  fi
fi

if want bench; then
  step "benchmarks/run_all.sh"
  # run_all.sh wants vit-bench / vit-kernels-bench in one directory (VIT_BENCH_BIN) with lib/.
  mkdir -p "$RES/bench"
  run_timed run_all 480 env VIT_BENCH_BIN="$BIN" VIT_SOAK_MINUTES=0 "$ROOT/benchmarks/run_all.sh" "$RES/bench"
fi

if want soak; then
  step "vit-soak"
  m=${VIT_SOAK_MINUTES:-0}
  if [[ "$m" == 0 ]]; then
    record soak SKIP "VIT_SOAK_MINUTES=0"
  else
    secs=$(( m * 60 )) avail=$(( $(left) - 120 ))
    (( secs > avail )) && { echo "soak shortened to ${avail}s to fit the budget"; secs=$avail; }
    run_timed soak $(( secs + 90 )) "$BIN/vit-soak" --device cuda --arch vit_base_patch16_224 --precision bf16 --max-batch 64 --minutes "$(awk "BEGIN{print $secs / 60}")" --json "$RES/soak.json"
  fi
fi

finish
