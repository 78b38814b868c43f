#!/usr/bin/env bash
# vit-infer: the ONE script for a GPU run (an H200 device machine or any local CUDA box).
# Configures + builds for sm_90 (GoogleTest from .carry/googletest when the system has none;
# the host dev libraries from .carry/debs when the system lacks them), runs the GPU tests with
# ctest, runs compute-sanitizer memcheck + racecheck on the kernel tests, and writes a log that
# names the git commit and the GPU to $OUT (device machine) or benchmarks/results/ (locally).
#
#   tools/gpu_run.sh            # everything
#   tools/gpu_run.sh --prepare  # here, once: fill .carry/ (googletest source + .deb fallbacks)
# Env: VIT_GPU_BUILD (build dir, default build-gpu-run), VIT_SKIP_SANITIZERS=1,
#      VIT_JOBS (parallel build jobs, default nproc), VIT_SANITIZER_TIMEOUT (s, default 240).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARRY="$ROOT/.carry"

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
  RESULTS="$OUT"
else
  RESULTS="$ROOT/benchmarks/results/gpu-run-$(date +%Y%m%d-%H%M%S)"
fi
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_run.log"
exec > >(tee -a "$LOG") 2>&1

BUILD="${VIT_GPU_BUILD:-$ROOT/build-gpu-run}"
JOBS="${VIT_JOBS:-$(nproc)}"
SAN_TIMEOUT="${VIT_SANITIZER_TIMEOUT:-240}"
STATUS=0
step() { echo; echo "=== $* ($(date +%T))"; }

step "identity"
COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l)
echo "commit: $COMMIT (uncommitted paths: $DIRTY)"
GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU visible")
echo "gpu: $GPU"
echo "host: $(uname -srm), $(nproc) cores"
nvidia-smi || true
nvcc --version 2>/dev/null | tail -2 || echo "nvcc not found"

step "configure"
CMAKE_ARGS=(-S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVIT_ENABLE_CUDA=ON
            -DCMAKE_CUDA_ARCHITECTURES=90 -DVIT_BUILD_TESTS=ON -DVIT_BUILD_BENCHMARKS=OFF)
[[ -d "$CARRY/googletest" ]] && CMAKE_ARGS+=(-DVIT_GTEST_SOURCE_DIR="$CARRY/googletest")
command -v ninja >/dev/null || CMAKE_ARGS=("${CMAKE_ARGS[@]/Ninja/Unix Makefiles}")
if ! cmake "${CMAKE_ARGS[@]}"; then
  if [[ -d "$CARRY/debs" ]]; then
    # The device image lacks some host dev libraries: unpack the carried Debian packages into a
    # private sysroot and point CMake / pkg-config / the loader at it (never into /).
    echo "configure failed: retrying with the libraries carried in .carry/debs"
    SYSROOT=/tmp/vit-sysroot
    rm -rf "$SYSROOT" && mkdir -p "$SYSROOT"
    for f in "$CARRY"/debs/*.deb; do dpkg-deb -x "$f" "$SYSROOT"; done
    LIBDIR="$SYSROOT/usr/lib/x86_64-linux-gnu"
    export PKG_CONFIG_SYSROOT_DIR="$SYSROOT"
    export PKG_CONFIG_LIBDIR="$LIBDIR/pkgconfig:$LIBDIR/openblas-pthread/pkgconfig:$SYSROOT/usr/share/pkgconfig"
    export LD_LIBRARY_PATH="$LIBDIR:$LIBDIR/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    rm -rf "$BUILD"
    cmake "${CMAKE_ARGS[@]}" -DCMAKE_PREFIX_PATH="$SYSROOT/usr" || { echo "FAILED: configure"; exit 2; }
  else
    echo "FAILED: configure"; exit 2
  fi
fi

step "build"
GPU_TESTS=(test_gpu_plan test_gpu_kernels test_gpu_engine)
cmake --build "$BUILD" --target "${GPU_TESTS[@]}" -j "$JOBS" || { echo "FAILED: build of the GPU tests"; exit 3; }
cmake --build "$BUILD" -j "$JOBS" || { echo "WARNING: the full build failed (GPU tests built)"; STATUS=1; }

step "ctest (GPU tests)"
(cd "$BUILD" && ctest -R '^Gpu' --output-on-failure --timeout 900 --output-junit "$RESULTS/ctest_gpu.xml") || STATUS=1
step "ctest (everything else)"
(cd "$BUILD" && ctest -E '^Gpu' --output-on-failure --timeout 900) || STATUS=1

if [[ "${VIT_SKIP_SANITIZERS:-0}" != "1" ]] && command -v compute-sanitizer >/dev/null; then
  KT="$BUILD/tests/test_gpu_kernels"
  ET="$BUILD/tests/test_gpu_engine"
  step "compute-sanitizer memcheck (kernels)"
  timeout "$SAN_TIMEOUT" compute-sanitizer --tool memcheck --error-exitcode 86 "$KT" || { echo "memcheck rc=$?"; STATUS=1; }
  step "compute-sanitizer memcheck (engine, small models)"
  timeout "$SAN_TIMEOUT" compute-sanitizer --tool memcheck --error-exitcode 86 "$ET" \
    --gtest_filter='GpuEngine.EveryBatchSizeThroughBuckets:GpuEngine.CancelAndBadArguments:GpuEngine.PoolingVariantsAndHeadDims' \
    || { echo "memcheck rc=$?"; STATUS=1; }
  step "compute-sanitizer racecheck (kernels using shared memory)"
  timeout "$SAN_TIMEOUT" compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 86 "$KT" \
    --gtest_filter='GpuAttention.*:GpuGemm.QkvScatterEpilogue:GpuGemm.InPlaceResidual:GpuHead.SoftmaxTopk' \
    || { echo "racecheck rc=$?"; STATUS=1; }
  step "compute-sanitizer initcheck (engine, small models)"
  timeout "$SAN_TIMEOUT" compute-sanitizer --tool initcheck --error-exitcode 86 "$ET" \
    --gtest_filter='GpuEngine.EveryBatchSizeThroughBuckets' || { echo "initcheck rc=$?"; STATUS=1; }
else
  step "sanitizers skipped"
fi

step "engine report"
VIT_GPU_VERBOSE=1 "$BUILD/tests/test_gpu_engine" --gtest_filter='GpuEngine.VitB16MatchesCpuAllPrecisions' 2>&1 | grep -E "vit-gpu|arena|bucket|OK|FAILED" || true

step "done"
echo "commit: $COMMIT  gpu: $GPU  status: $([[ $STATUS == 0 ]] && echo PASS || echo FAIL)"
exit $STATUS
