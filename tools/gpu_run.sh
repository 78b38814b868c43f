#!/usr/bin/env bash
# vit-infer: the ONE script for a GPU run (the H200 device machine, or any local CUDA box), and
# its dry run on the CPU emulator (--emulator). One device command of <= 560 s, ordered steps,
# each under its own cap, each step's files packed into $OUT/<step>.tar.gz the moment it ends
# (the device returns at most 8 files, <= 2 folders down: gpu_run.log, summary.txt and one
# archive per step), summary.txt rewritten after every step.
#   (0) identity  nvidia-smi, bundle manifest, SASS check (tools/check_sass.sh: HGMMA in the sm_90a
#                 wgmma kernels, no sm_90 image of them)
#   (1) kernels   test_gpu_plan + test_gpu_kernels + test_ops_cuda (the op table on the device, every
#                 GEMM implementation); FAIL if a GpuGemmSm90 test is skipped on a 9.0 GPU
#   (2) golden    test_gpu_golden (every fixture, every precision) + test_gpu_engine_small
#   (3) bench     vit-bench bf16, batches 1,64,256, --gemm auto / cublaslt / custom (rows and JSON
#                 written as each batch ends) + vit-kernels-bench bf16 rows
#   (4) peers     peers.py bf16 at 1,64,256: timm eager + torch.compile (compile budget), no HF,
#                 vit-infer's numbers from step 3's JSON (no vit-bench re-run)
#   (5) rest      whatever time is left: test_gpu_engine, test_cli_cuda (classify --device cuda),
#                 test_gpu_preprocess, compute-sanitizer memcheck on the GEMM and attention tests
# Second call (only if the first left device time): VIT_GPU_STEPS=fp16,racecheck,soak,run_all.
#
# Here, before a device run:  tools/gpu_bundle.sh   (build for sm_90 + pack into .carry/gpu)
# Device run (the tool `run`): command "tools/gpu_run.sh", carry [".carry/gpu", ".carry/git_hash"],
#   timeout_s 600 (the script ends itself by VIT_GPU_BUDGET = 560 s).
# Dry run here: tools/gpu_run.sh --emulator  (the emulator builds in $VIT_EMU_BUILD, default
#   build-emu; a CUDA build's libvit / test_gpu_kernels for the SASS check in $VIT_SASS_BUILD,
#   default build-cuda; a python with torch + timm in $VIT_PEERS_PYTHON for step 4). The emulator
#   is ~10^4 x slower than the GPU: there each step runs the same programs on subsets (named in
#   the log) under caps x VIT_GPU_CAP_SCALE (default 8).
# Env: VIT_GPU_STEPS (default identity,kernels,golden,bench,peers,rest), VIT_GPU_BUDGET (560),
#      VIT_GPU_BUILD (source-fallback build dir), VIT_JOBS.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARRY="$ROOT/.carry"
T0=$(date +%s)
EMU=0
[[ "${1:-}" == "--emulator" ]] && EMU=1
SCALE=1
(( EMU )) && SCALE=${VIT_GPU_CAP_SCALE:-8}
BUDGET=${VIT_GPU_BUDGET:-$(( 560 * SCALE ))}
STEPS=",${VIT_GPU_STEPS:-identity,kernels,golden,bench,peers,rest},"

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
  DEST="$ROOT/benchmarks/results/gpu-run-$(date +%Y%m%d-%H%M%S)$( (( EMU )) && echo -emulator)"
fi
mkdir -p "$DEST"
WORK=$(mktemp -d /tmp/vit-gpu-run.XXXXXX)   # per-step folders, packed into $DEST as each step ends
LOG="$DEST/gpu_run.log"
SUMMARY="$DEST/summary.txt"
: > "$SUMMARY"
exec > >(tee -a "$LOG") 2>&1

STATUS=0
ROWS=()          # "step|result|seconds|note" for summary.txt
elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET - $(elapsed) )); }
want() { [[ "$STEPS" == *",$1,"* ]]; }
write_summary() {
  {
    echo "commit: $COMMIT"
    echo "gpu: $GPU"
    echo "mode: $( (( EMU )) && echo "emulator (CPU)" || echo device)  budget: ${BUDGET}s  elapsed: $(elapsed)s"
    printf '%-10s %-5s %6s  %s\n' step result secs note
    for r in "${ROWS[@]}"; do IFS='|' read -r a b c d <<< "$r"; printf '%-10s %-5s %6s  %s\n' "$a" "$b" "$c" "$d"; done
  } > "$SUMMARY.partial" && mv "$SUMMARY.partial" "$SUMMARY"
}

# A step: a folder $SD for its files; sub-runs with run_in; at the end one row and its archive.
SD="" STEP="" STEP_T0=0 STEP_FAIL=0 STEP_NOTES="" STEP_CAP=0
begin_step() {  # name cap_s
  STEP=$1 STEP_CAP=$(( $2 * SCALE )) STEP_T0=$(date +%s) STEP_FAIL=0 STEP_NOTES=""
  SD="$WORK/$STEP" && mkdir -p "$SD"
  echo; echo "=== step $STEP (cap ${STEP_CAP}s; +$(elapsed)s, $(left)s left)"
}
step_left() {  # seconds this step may still use: its cap, and the budget minus a 15 s reserve
  local a=$(( STEP_CAP - ($(date +%s) - STEP_T0) )) b=$(( $(left) - 15 ))
  (( a < b )) && echo $a || echo $b
}
note() { STEP_NOTES="${STEP_NOTES:+$STEP_NOTES; }$*"; }
# run_in NAME CMD...: CMD under the step's remaining time, output in $SD/NAME.log.
run_in() {
  local name=$1; shift
  local lim; lim=$(step_left)
  if (( lim < 10 )); then note "$name: not run (out of time)"; STEP_FAIL=1; return 1; fi
  echo "--- $name (limit ${lim}s): $*"
  local t=$(date +%s)
  timeout --kill-after=10 "$lim" "$@" > "$SD/$name.log" 2>&1
  local rc=$?
  tail -n 8 "$SD/$name.log"
  echo "--- $name: rc=$rc in $(( $(date +%s) - t ))s"
  if (( rc == 124 || rc == 137 )); then note "$name: timed out after ${lim}s"; STEP_FAIL=1
  elif (( rc != 0 )); then note "$name: rc=$rc"; STEP_FAIL=1; fi
  return $rc
}
end_step() {
  local secs=$(( $(date +%s) - STEP_T0 )) res=PASS
  (( STEP_FAIL )) && { res=FAIL; STATUS=1; }
  ROWS+=("$STEP|$res|$secs|${STEP_NOTES:-ok}")
  tar -C "$WORK" -czf "$DEST/$STEP.tar.gz.partial" "$STEP" 2>/dev/null && mv "$DEST/$STEP.tar.gz.partial" "$DEST/$STEP.tar.gz"
  write_summary
  echo "=== step $STEP: $res in ${secs}s${STEP_NOTES:+ ($STEP_NOTES)}"
}
skip_step() { ROWS+=("$1|SKIP|0|$2"); write_summary; echo "=== step $1: SKIP ($2)"; }
# gtest binaries: XML next to the log; --gtest_filter only in emulator subsets.
gtest() {  # name binary [filter]
  local name=$1 bin=$2 filt=${3:-}
  [[ -x "$bin" ]] || { note "$name: not built"; STEP_FAIL=1; return 1; }
  run_in "$name" "$bin" --gtest_output="xml:$SD/$name.xml" ${filt:+--gtest_filter=$filt}
}

COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || cat "$CARRY/git_hash" 2>/dev/null || cat "$CARRY/gpu/git_hash" 2>/dev/null || echo unknown)
GPU=$(nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1)
(( EMU )) && { GPU="vit-infer GPU emulator (CPU), compute capability 9.0"; CC=9.0; }
GPU=${GPU:-no GPU visible}
echo "commit: $COMMIT  gpu: $GPU"
echo "host: $(uname -srm), $(nproc) cores; nvcc: $(nvcc --version 2>/dev/null | tail -1)"
export VIT_GIT_HASH="$COMMIT"
write_summary

if (( EMU )); then
  EB=${VIT_EMU_BUILD:-$ROOT/build-emu}
  BIN="$WORK/bin" && mkdir -p "$BIN"
  # The emulator builds under the names the device steps use.
  for pair in test_gpu_emu:test_gpu_kernels test_gpu_emu_golden:test_gpu_golden test_gpu_emu_engine:test_gpu_engine_small \
              test_cli_cuda_emu:test_cli_cuda vit-bench-emu:vit-bench vit-infer-emu:vit-infer vit-soak-emu:vit-soak; do
    [[ -x "$EB/tests/${pair%%:*}" ]] && ln -sf "$EB/tests/${pair%%:*}" "$BIN/${pair##*:}"
  done
  SB=${VIT_SASS_BUILD:-$ROOT/build-cuda}
  SASS_BINS=()
  for f in "$SB/libvit.so" "$SB/tests/test_gpu_kernels"; do [[ -f "$f" ]] && SASS_BINS+=("$f"); done
  BENCH_MODEL=(--model "$ROOT/tests/data/golden/timm_token/model")
  BENCH_BATCHES=1,2
  export VIT_INFER_BIN="$BIN/vit-infer"
else
  # The bundle built here (tools/gpu_bundle.sh) is what runs; a source build only if it fails.
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
    if [[ -z "$missing" ]] && "$B/bin/test_gpu_plan" --gtest_brief=1 > "$WORK/bundle_probe.log" 2>&1; then
      BIN="$B/bin"; echo "bundle: prebuilt, $(grep -o 'commit: .*' "$B/manifest.txt")"
    else
      echo "bundle unusable here:"; echo "$missing"; tail -5 "$WORK/bundle_probe.log"
    fi
    # Tests read fixtures through the absolute source path compiled in (VIT_TEST_DATA).
    [[ ! -e /work/main ]] && mkdir -p /work 2>/dev/null && ln -s "$ROOT" /work/main 2>/dev/null && echo "linked /work/main -> $ROOT"
  fi
  if [[ -z "$BIN" ]]; then
    echo "no usable bundle: source build (VIT_GPU_BUILD)"
    BUILD="${VIT_GPU_BUILD:-$ROOT/build-gpu-run}"
    CMAKE_ARGS=(-S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVIT_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90)
    [[ -d "$CARRY/googletest" ]] && CMAKE_ARGS+=(-DVIT_GTEST_SOURCE_DIR="$CARRY/googletest")
    if ! cmake "${CMAKE_ARGS[@]}" > "$WORK/configure.log" 2>&1 && [[ -d "$CARRY/debs" ]]; then
      # Unpack the carried Debian packages into a private sysroot (never into /).
      SYSROOT=/tmp/vit-sysroot
      rm -rf "$SYSROOT" && mkdir -p "$SYSROOT"
      for f in "$CARRY"/debs/*.deb; do dpkg-deb -x "$f" "$SYSROOT"; done
      LIBDIR="$SYSROOT/usr/lib/x86_64-linux-gnu"
      export PKG_CONFIG_SYSROOT_DIR="$SYSROOT"
      export PKG_CONFIG_LIBDIR="$LIBDIR/pkgconfig:$LIBDIR/openblas-pthread/pkgconfig:$SYSROOT/usr/share/pkgconfig"
      export LD_LIBRARY_PATH="$LIBDIR:$LIBDIR/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      rm -rf "$BUILD"
      cmake "${CMAKE_ARGS[@]}" -DCMAKE_PREFIX_PATH="$SYSROOT/usr" >> "$WORK/configure.log" 2>&1
    fi
    timeout 300 cmake --build "$BUILD" -j "${VIT_JOBS:-$(nproc)}" --target test_gpu_plan test_gpu_kernels \
      test_gpu_engine test_gpu_engine_small test_gpu_preprocess test_gpu_golden test_cli_cuda vit-infer vit-bench \
      vit-soak vit > "$WORK/build.log" 2>&1 || { tail -30 "$WORK/configure.log" "$WORK/build.log"; }
    timeout 120 cmake --build "$BUILD" -j "${VIT_JOBS:-$(nproc)}" --target vit-kernels-bench >> "$WORK/build.log" 2>&1 || true
    BIN="$WORK/bin" && mkdir -p "$BIN"
    for f in "$BUILD"/tests/test_gpu_* "$BUILD"/tests/test_cli_cuda "$BUILD"/vit-infer "$BUILD"/benchmarks/vit-*; do
      [[ -x "$f" && -f "$f" ]] && ln -sf "$f" "$BIN/"
    done
    B="$BUILD"
  fi
  SASS_BINS=()
  for f in "$BIN/test_gpu_kernels" "${B:-/nonexistent}"/lib/libvit.so*; do [[ -f "$f" ]] && SASS_BINS+=("$f"); done
  BENCH_MODEL=(--arch vit_base_patch16_224)
  BENCH_BATCHES=1,64,256
  [[ -x "$BIN/vit-infer" ]] && export VIT_INFER_BIN="$BIN/vit-infer"
fi

# ---- (0) identity ------------------------------------------------------------------------------
if want identity; then
  begin_step identity 30
  nvidia-smi > "$SD/nvidia-smi.txt" 2>&1 || (( EMU )) || { note "nvidia-smi failed"; STEP_FAIL=1; }
  nvidia-smi -q -d CLOCK,POWER,PERFORMANCE > "$SD/nvidia-smi-clocks.txt" 2>&1 || true
  [[ -f "${B:-}/manifest.txt" ]] && cp "$B/manifest.txt" "$SD/"
  ls -l "$BIN/" > "$SD/binaries.txt" 2>&1
  if (( ${#SASS_BINS[@]} == 0 )); then note "sass: no CUDA binary to check"; STEP_FAIL=1
  else run_in sass bash "$ROOT/tools/check_sass.sh" "${SASS_BINS[@]}"; fi
  end_step
fi

# ---- (1) kernels -------------------------------------------------------------------------------
if want kernels; then
  begin_step kernels 100
  (( EMU )) || gtest plan "$BIN/test_gpu_plan"
  # Emulator subset: every GEMM path (mma.sync, wgmma, epilogues, QKV scatter), LayerNorm, head,
  # patch embedding and the runtime's race check; the flash-attention sweep (2 min there) is left out.
  gtest kernels "$BIN/test_gpu_kernels" "$( (( EMU )) && echo 'GpuGemm*:GpuLayerNorm*:GpuHead*:GpuPatchEmbed*:GpuEmuRuntime*:GpuAttention.Rejects*')"
  # A wgmma test that skips on a compute capability 9.0 device means the Hopper kernel never ran.
  # The declarative op table on the device (the emulator runs it in every CI build: emu.Ops/*).
  (( EMU )) || gtest ops "$BIN/test_ops_cuda"
  if [[ "$CC" == 9.0 ]] && grep -q 'SKIPPED \] GpuGemmSm90' "$SD/kernels.log" 2>/dev/null; then
    note "GpuGemmSm90 skipped on a 9.0 device"; STEP_FAIL=1
  fi
  grep -q '^\[  PASSED  \]' "$SD/kernels.log" 2>/dev/null || { note "kernels: no PASSED line"; STEP_FAIL=1; }
  end_step
fi

# ---- (2) golden --------------------------------------------------------------------------------
if want golden; then
  begin_step golden 70
  gtest golden "$BIN/test_gpu_golden" "$( (( EMU )) && echo '*timm_token*:*hf_cls*')"
  gtest engine_small "$BIN/test_gpu_engine_small" "$( (( EMU )) && echo '*Gemm*:*MatchesCpu*')"
  end_step
fi

# ---- (3) bench ---------------------------------------------------------------------------------
if want bench; then
  begin_step bench 140
  for g in auto cublaslt custom; do
    # The emulator's cuBLASLt is a host stand-in (VIT_EMU_CUBLASLT): timings meaningless there.
    run_in "vit-bench-bf16-$g" env VIT_EMU_CUBLASLT=1 "$BIN/vit-bench" "${BENCH_MODEL[@]}" --precision bf16 \
      --batch "$BENCH_BATCHES" --gemm "$g" --warmup $( (( EMU )) && echo 1 || echo 10) \
      --iterations $( (( EMU )) && echo 2 || echo 50) --node-reps $( (( EMU )) && echo 1 || echo 5) \
      --json "$SD/vit-bench-bf16-$g.json"
  done
  if [[ -x "$BIN/vit-kernels-bench" ]]; then
    run_in kernels-bench-bf16 "$BIN/vit-kernels-bench" --benchmark_filter=bf16 --benchmark_min_time=0.05 \
      --benchmark_out="$SD/kernels-bench-bf16.json" --benchmark_out_format=json
  else
    note "vit-kernels-bench: not built$( (( EMU )) && echo ' (no emulated build)')"
    (( EMU )) || STEP_FAIL=1
  fi
  end_step
fi

# ---- (4) peers ---------------------------------------------------------------------------------
if want peers; then
  begin_step peers 150
  PY=${VIT_PEERS_PYTHON:-python3}
  VB_JSON="$WORK/bench/vit-bench-bf16-auto.json"
  [[ -f "$VB_JSON" ]] || note "no step-3 JSON: peers runs vit-bench itself"
  PEERS_ARGS=(--precisions bf16 --no-hf --out-dir "$SD" --compile-budget-s $(( 85 * SCALE )))
  [[ -f "$VB_JSON" ]] && PEERS_ARGS+=(--vit-bench-json "bf16=$VB_JSON") || PEERS_ARGS+=(--vit-bench "$BIN/vit-bench")
  if (( EMU )); then PEERS_ARGS+=(--smoke --batches 1); else PEERS_ARGS+=(--batches 1,64,256 --target-s 0.4); fi
  run_in peers env PYTHONUNBUFFERED=1 "$PY" "$ROOT/benchmarks/peers.py" "${PEERS_ARGS[@]}"
  end_step
fi

# ---- (5) rest: whatever time is left -----------------------------------------------------------
if want rest; then
  begin_step rest $(( $(left) / SCALE - 10 > 0 ? $(left) / SCALE - 10 : 1 ))
  if (( EMU )); then
    gtest cli_cuda "$BIN/test_cli_cuda" '*timm_token*'
    note "no emulated test_gpu_engine / test_gpu_preprocess / compute-sanitizer: not run"
  else
    gtest engine "$BIN/test_gpu_engine"
    gtest cli_cuda "$BIN/test_cli_cuda"
    gtest preprocess "$BIN/test_gpu_preprocess"
    if command -v compute-sanitizer > /dev/null; then
      run_in memcheck compute-sanitizer --tool memcheck --error-exitcode 86 --print-limit 50 "$BIN/test_gpu_kernels" \
        --gtest_filter='GpuGemm*:GpuAttention*'
    else
      note "compute-sanitizer not installed"; STEP_FAIL=1
    fi
  fi
  end_step
fi

# ---- the second call (VIT_GPU_STEPS=fp16,racecheck,soak,run_all) --------------------------------
if want fp16; then
  begin_step fp16 200
  run_in vit-bench-fp16 "$BIN/vit-bench" "${BENCH_MODEL[@]}" --precision fp16 --batch "$BENCH_BATCHES" \
    --json "$SD/vit-bench-fp16.json"
  run_in peers-fp16 env PYTHONUNBUFFERED=1 "${VIT_PEERS_PYTHON:-python3}" "$ROOT/benchmarks/peers.py" --precisions fp16 \
    --no-hf --out-dir "$SD" --vit-bench-json "fp16=$SD/vit-bench-fp16.json" --batches 1,64,256 --compile-budget-s 100
  end_step
fi
if want racecheck; then
  begin_step racecheck 200
  CS=(compute-sanitizer --error-exitcode 86 --print-limit 50)
  run_in racecheck "${CS[@]}" --tool racecheck --racecheck-report all "$BIN/test_gpu_kernels" \
    --gtest_filter='GpuAttention.*:GpuGemm.*:GpuHead.*:GpuLayerNorm.*'
  run_in synccheck "${CS[@]}" --tool synccheck "$BIN/test_gpu_kernels" --gtest_filter='GpuAttention.*:GpuGemm*'
  run_in initcheck "${CS[@]}" --tool initcheck "$BIN/test_gpu_engine_small" --gtest_filter='GpuEngineSmall.MatchesCpu*'
  end_step
fi
if want soak; then
  begin_step soak 200
  run_in soak "$BIN/vit-soak" --device cuda --arch vit_base_patch16_224 --precision bf16 --max-batch 64 \
    --minutes "$(awk "BEGIN{print ($(step_left) - 40) / 60}")" --json "$SD/soak.json"
  end_step
fi
if want run_all; then
  begin_step run_all 480
  run_in run_all env VIT_BENCH_BIN="$BIN" VIT_SOAK_MINUTES=0 "$ROOT/benchmarks/run_all.sh" "$SD"
  end_step
fi

write_summary
echo "status: $([[ $STATUS == 0 ]] && echo PASS || echo FAIL)  ($(elapsed)s of ${BUDGET}s)" | tee -a "$SUMMARY"
rm -rf "$WORK"
exit $STATUS
