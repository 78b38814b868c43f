#!/usr/bin/env bash
# vit-infer: the whole benchmark run on one GPU, outputs collected into one directory.
#   benchmarks/run_all.sh [OUTDIR]        OUTDIR defaults to $OUT, else benchmarks/results/run-<date>
# Runs vit-bench (ViT-B/16 random weights, bf16 and fp16, batches 1..256, plus the custom and
# cuBLASLt GEMM paths at batch 1 and 256), vit-kernels-bench and peers.py, and records the
# commit hash and nvidia-smi. Target: under 8 minutes on an H200 (build time not counted).
# Binaries: $VIT_BENCH_BIN (a directory holding vit-bench, vit-kernels-bench and lib/, as made
# by benchmarks/bundle.sh) when set; otherwise configured and built into $VIT_BENCH_BUILD
# (default build-run-all). Environment knobs: PYTHON, PEERS_COMPILE_BUDGET (s), VIT_GIT_HASH,
# VIT_SOAK_MINUTES (vit-soak minutes, default 0 = skipped).
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTDIR=${1:-${OUT:-$ROOT/benchmarks/results/run-$(date +%Y%m%d-%H%M%S)}}
PY=${PYTHON:-python3}
mkdir -p "$OUTDIR"
T0=$(date +%s)
status=0
log() { echo "[run_all +$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUTDIR/run_all.log" >&2; }

# The device machine's copy of the tree has no .git: pass VIT_GIT_HASH, or leave the hash in
# .git_hash at the repository root before carrying the tree there.
hash=${VIT_GIT_HASH:-$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || true)}
hash=${hash:-$(cat "$ROOT/.git_hash" 2>/dev/null || echo unknown)}
export VIT_GIT_HASH=$hash
echo "$hash" > "$OUTDIR/commit.txt"
log "commit $hash, output in $OUTDIR"
{ nvidia-smi; echo; nvidia-smi -q -d CLOCK,POWER,PERFORMANCE,MEMORY,TEMPERATURE; } > "$OUTDIR/nvidia-smi.txt" 2>&1 \
  || log "nvidia-smi failed (see nvidia-smi.txt)"

# --- binaries ---------------------------------------------------------------------------------
if [ -n "${VIT_BENCH_BIN:-}" ]; then
  BIN=$VIT_BENCH_BIN
  export LD_LIBRARY_PATH="$BIN/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  BUILD=${VIT_BENCH_BUILD:-$ROOT/build-run-all}
  log "building vit-bench and vit-kernels-bench in $BUILD"
  if ! { cmake -S "$ROOT" -B "$BUILD" -G Ninja -DVIT_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
           -DVIT_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release &&
         cmake --build "$BUILD" --target vit-bench vit-kernels-bench vit-soak -j"$(nproc)"; } > "$OUTDIR/build.log" 2>&1; then
    log "build failed: tail of build.log:"; tail -30 "$OUTDIR/build.log" >&2
    status=1
  fi
  BIN=$BUILD/benchmarks
fi
T_BUILT=$(date +%s)

run_step() {  # name timeout_s command...
  local name=$1 limit=$2; shift 2
  log "$name: $*"
  timeout "$limit" "$@" > "$OUTDIR/$name.txt" 2> "$OUTDIR/$name.err"
  local rc=$?
  [ $rc -ne 0 ] && { log "$name exited $rc (see $name.err)"; status=1; }
  tail -25 "$OUTDIR/$name.txt" >&2
  return 0
}

if [ -x "$BIN/vit-bench" ]; then
  for p in bf16 fp16; do
    run_step "vit-bench-$p" 150 "$BIN/vit-bench" --arch vit_base_patch16_224 --precision "$p" \
      --batch 1,2,4,8,16,32,64,128,256 --warmup 20 --duration 1 --json "$OUTDIR/vit-bench-$p.json"
  done
  for g in custom cublaslt; do
    run_step "vit-bench-bf16-gemm-$g" 90 "$BIN/vit-bench" --arch vit_base_patch16_224 --precision bf16 \
      --batch 1,256 --warmup 20 --duration 1 --gemm "$g" --no-nodes --json "$OUTDIR/vit-bench-bf16-gemm-$g.json"
  done
else
  log "no vit-bench binary in $BIN"; status=1
fi

if [ -x "$BIN/vit-kernels-bench" ]; then
  run_step vit-kernels-bench 180 "$BIN/vit-kernels-bench" --benchmark_min_time=0.2 \
    --benchmark_counters_tabular=true --benchmark_out="$OUTDIR/vit-kernels-bench.json" --benchmark_out_format=json
else
  log "no vit-kernels-bench binary in $BIN"; status=1
fi

# Optional: vit-soak (mixed batch sizes through one CUDA session, determinism and flat host and
# device memory) for VIT_SOAK_MINUTES minutes (default 0 = skipped); results in soak.json.
SOAK_MIN=${VIT_SOAK_MINUTES:-0}
if [ "$SOAK_MIN" != "0" ]; then
  if [ -x "$BIN/vit-soak" ]; then
    run_step vit-soak $(( ${SOAK_MIN%.*} * 60 + 120 )) "$BIN/vit-soak" --device cuda --minutes "$SOAK_MIN" --json "$OUTDIR/soak.json"
  else
    log "no vit-soak binary in $BIN"; status=1
  fi
fi

VB_ARG=()
[ -x "$BIN/vit-bench" ] && VB_ARG=(--vit-bench "$BIN/vit-bench")
run_step peers 420 "$PY" "$ROOT/benchmarks/peers.py" "${VB_ARG[@]}" --out-dir "$OUTDIR" \
  --compile-budget-s "${PEERS_COMPILE_BUDGET:-150}"

log "done: $(( $(date +%s) - T_BUILT ))s of benchmarks after $(( T_BUILT - T0 ))s of set-up; status $status"
ls -la "$OUTDIR" >&2
exit $status
