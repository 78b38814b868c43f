#!/usr/bin/env bash
# vit-infer: checks, without a GPU, that shipped binaries carry a Hopper GEMM that can run:
#   - an sm_90a cubin of kernels/gemm_sm90.cu, and no sm_90 cubin or PTX of it beside it (the
#     driver could load that one on a 9.0 device, and there the kernel body is empty);
#   - every wgmma kernel instantiation in it executes HGMMA instructions (the SASS of wgmma),
#     and the probe kernel that gemm_sm90_available() launches is not empty.
# Prints one row per instantiation: instructions (SASS lines), HGMMA count, name (demangled).
#   tools/check_sass.sh BINARY...      exit 0 PASS, 1 FAIL, 77 SKIP (see --no-cuda)
#   tools/check_sass.sh --no-cuda      the build has no CUDA: prints why and exits 77 (ctest SKIP)
# cuobjdump + nvdisasm: $VIT_CUOBJDUMP, else PATH, /usr/local/cuda/bin, else the PyPI packages
# nvidia-cuda-cuobjdump / nvidia-cuda-nvdisasm that scripts/setup.sh installs into .venv-tools.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ "${1:-}" == "--no-cuda" ]]; then
  echo "check_sass: SKIP: this build has no CUDA (VIT_ENABLE_CUDA=OFF or no nvcc): no device code to check"
  exit 77
fi
(( $# > 0 )) || { echo "usage: tools/check_sass.sh BINARY... | --no-cuda" >&2; exit 2; }

find_tool() {  # name -> path or empty
  local t=$1 d
  command -v "$t" 2>/dev/null && return
  for d in /usr/local/cuda/bin "$ROOT"/.venv-tools/lib/python3*/site-packages/nvidia/cu*/bin; do
    [[ -x "$d/$t" ]] && { echo "$d/$t"; return; }
  done
}
CUOBJDUMP=${VIT_CUOBJDUMP:-$(find_tool cuobjdump)}
NVDISASM=$(find_tool nvdisasm)
if [[ -z "$CUOBJDUMP" || -z "$NVDISASM" ]]; then
  echo "check_sass: FAIL: cuobjdump / nvdisasm not found (PATH, /usr/local/cuda/bin, .venv-tools):" \
       "run scripts/setup.sh, which installs nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm from PyPI"
  exit 1
fi
export NVDISASM_PATH=$(dirname "$NVDISASM")  # cuobjdump -sass runs nvdisasm
echo "check_sass: $CUOBJDUMP ($("$CUOBJDUMP" --version | tail -1))"

status=0
fail() { echo "check_sass: FAIL: $*"; status=1; }
for bin in "$@"; do
  [[ -f "$bin" ]] || { fail "$bin: no such file"; continue; }
  bin=$(readlink -f "$bin")
  echo "== $bin"
  elfs=$("$CUOBJDUMP" --list-elf "$bin" 2>&1)
  ptxs=$("$CUOBJDUMP" --list-ptx "$bin" 2>&1)
  grep -q 'gemm_sm90\.sm_90a\.cubin' <<< "$elfs" || fail "$bin: no sm_90a cubin of gemm_sm90 (cubins: $(grep -o '[a-z_0-9]*\.sm_[0-9a-z]*\.cubin' <<< "$elfs" | tr '\n' ' '))"
  grep -q 'gemm_sm90\.sm_90\.cubin' <<< "$elfs" && fail "$bin: an sm_90 cubin of gemm_sm90 beside the sm_90a one (empty kernel body)"
  grep -q 'gemm_sm90\.' <<< "$ptxs" && fail "$bin: PTX of gemm_sm90 (JIT-compiled for sm_90 it has an empty body)"
  # SASS of the gemm_sm90 sm_90a cubin alone (extracted), split per function; SASS lines carry
  # an /*offset*/ column.
  tmp=$(mktemp -d)
  (cd "$tmp" && "$CUOBJDUMP" -xelf gemm_sm90.sm_90a.cubin "$bin" > /dev/null 2>&1)
  cubin=$(ls "$tmp"/*gemm_sm90.sm_90a.cubin 2>/dev/null | head -1)
  [[ -n "$cubin" ]] || { rm -rf "$tmp"; fail "$bin: could not extract gemm_sm90.sm_90a.cubin"; continue; }
  sass=$("$CUOBJDUMP" -sass "$cubin" 2>&1) || { rm -rf "$tmp"; fail "$bin: cuobjdump -sass failed: $(tail -2 <<< "$sass")"; continue; }
  rm -rf "$tmp"
  table=$(awk '
    /Function : / { if (name != "") print n, h, name; name = $NF; n = 0; h = 0; next }
    name != "" && /\/\*[0-9a-f]+\*\// { n++; if ($0 ~ /HGMMA/) h++ }
    END { if (name != "") print n, h, name }' <<< "$sass")
  kernels=0 probe=0
  printf '  %8s %6s  %s\n' instrs HGMMA function
  while read -r n h name; do
    [[ -z "$name" ]] && continue
    pretty=$(c++filt "$name" 2>/dev/null || echo "$name")
    printf '  %8d %6d  %s\n' "$n" "$h" "$pretty"
    case "$name" in
      *gemm_sm90_kernel*) kernels=$((kernels + 1)); (( h > 0 )) || fail "$bin: $pretty has no HGMMA" ;;
      *gemm_sm90_probe*) probe=1; (( n > 2 )) || fail "$bin: the probe kernel is empty ($n instructions)" ;;
    esac
  done <<< "$table"
  (( kernels > 0 )) || fail "$bin: no gemm_sm90_kernel instantiation in its sm_90a SASS"
  (( probe == 1 )) || fail "$bin: no gemm_sm90_probe in its sm_90a SASS"
done
(( status == 0 )) && echo "check_sass: PASS" || echo "check_sass: FAIL"
exit $status
