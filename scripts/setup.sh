#!/usr/bin/env bash
# vit-infer set-up, step 1 of 2 (see README.md): installs the Debian packages the build needs,
# configures and builds everything into ./build, then runs the main job: the bundled demo model
# classifying the bundled sample images; also makes the Python venv (.venv) with the vit_infer module
# (built from ./build's libvit) and the serving and test packages. Safe to re-run.
#   VIT_BUILD_DIR       build directory (default: build)
#   VIT_VENV            the Python venv (default: .venv); VIT_PYTHON the Python that makes it (python3)
#   VIT_CUDA_ARCHS      CUDA architectures (default: native when a GPU is visible, else 90)
#   VIT_SKIP_APT=1      do not touch apt (packages already present)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/times.sh

pkgs=(build-essential cmake ninja-build pkg-config nlohmann-json3-dev libopenblas-dev libzip-dev
      libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libpng-dev libjpeg62-turbo-dev zlib1g-dev
      libdnnl-dev  # oneDNN: the fast CPU engine's GEMMs (src/cpu/dnnl_linear.h)
      clang libclang-rt-14-dev libomp-14-dev python3-venv)  # clang: the libFuzzer targets of scripts/fuzz.sh
if [ "${VIT_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# The venv first: CMake builds the module against its Python and nanobind.
venv=${VIT_VENV:-.venv}
py=${VIT_PYTHON:-python3}
if ! "$py" -c 'import ensurepip, os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' 2>/dev/null; then
  if [ "${VIT_SKIP_APT:-0}" != 1 ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing python3-dev python3-venv" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-dev python3-venv >/dev/null
  fi
fi
vit_lap "setup: apt"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
# What the build needs first (nanobind; numpy for the stub generator), then the rest (Ray, the
# serving and test packages: network-bound) in the background while the compiler has the CPUs.
pip_q=(-m pip install -q --disable-pip-version-check)
"$venv/bin/python" "${pip_q[@]}" $(grep -E '^(nanobind|numpy)==' python/requirements.txt)
pip_log=$(mktemp)
"$venv/bin/python" "${pip_q[@]}" -r python/requirements.txt > "$pip_log" 2>&1 &
pip_pid=$!
vit_lap "setup: venv (build packages)"

build=${VIT_BUILD_DIR:-build}
if [ -z "${VIT_CUDA_ARCHS:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then VIT_CUDA_ARCHS=native; else VIT_CUDA_ARCHS=90; fi
fi
cuda_flags=()
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="$PATH:/usr/local/cuda/bin"
  cuda_flags=(-DVIT_ENABLE_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=${VIT_CUDA_ARCHS}")
else
  echo "setup: nvcc not found, building the CPU engine only" >&2
  cuda_flags=(-DVIT_ENABLE_CUDA=OFF)
fi
# cuobjdump + nvdisasm for the SASS check of CUDA builds (ctest sass.*, tools/check_sass.sh):
# a toolkit may come without them; NVIDIA ships both on PyPI, installed into .venv-tools.
if [ "${cuda_flags[0]}" = -DVIT_ENABLE_CUDA=ON ] && ! [ -x /usr/local/cuda/bin/cuobjdump ] &&
   ! ls .venv-tools/lib/python3*/site-packages/nvidia/cu*/bin/nvdisasm >/dev/null 2>&1; then
  echo "setup: installing cuobjdump + nvdisasm (PyPI) into .venv-tools" >&2
  python3 -m venv .venv-tools
  .venv-tools/bin/python -m pip install -q --disable-pip-version-check \
    nvidia-cuda-cuobjdump==13.2.51 nvidia-cuda-nvdisasm==13.2.51 ||
    echo "setup: warning: could not install cuobjdump / nvdisasm: ctest sass.* will fail" >&2
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_flags[@]}" \
  -DVIT_BUILD_PYTHON=ON "-DPython_EXECUTABLE=$PWD/$venv/bin/python" >/dev/null
cmake --build "$build" -j"$(nproc)"
vit_lap "setup: release build"
if ! wait "$pip_pid"; then
  cat "$pip_log" >&2
  echo "setup: pip install -r python/requirements.txt failed" >&2
  exit 1
fi
rm -f "$pip_log"
vit_lap "setup: venv (the rest, waited for)"
# The module into the venv: scikit-build-core reuses $build (libvit and the extension are built
# already), so this only installs. `pip install .` / `pip wheel .` without it build from scratch.
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps \
  -C "build-dir=$build" .

echo "setup: built $build/vit-infer; running the demo:" >&2
"$build/vit-infer" classify --top-k 5 models/demo/samples
vit_lap "setup: module install + demo"
