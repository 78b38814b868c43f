#!/usr/bin/env bash
# vit-infer set-up, step 1 of 2 (see README.md): installs the Debian packages the build needs,
# configures and builds everything into ./build, then runs the main job: the bundled demo model
# classifying the bundled sample images. Safe to re-run.
#   VIT_BUILD_DIR       build directory (default: build)
#   VIT_CUDA_ARCHS      CUDA architectures (default: native when a GPU is visible, else 90)
#   VIT_SKIP_APT=1      do not touch apt (packages already present)
set -euo pipefail
cd "$(dirname "$0")/.."

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
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_flags[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"

echo "setup: built $build/vit-infer; running the demo:" >&2
"$build/vit-infer" classify --top-k 5 models/demo/samples
