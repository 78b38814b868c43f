# vit-infer GPU emulator: rewrites a kernels/*.cu file into plain C++ for the CPU emulator:
# `kernel<targs><<<grid, block, smem, stream>>>(args)` -> `::emu::Launcher(kernel<targs>, grid,
# block, smem, stream)(args)`, and `extern __shared__ float smem[];` -> the emulator's dynamic
# shared buffer. Nothing else changes: the emulated kernels are the shipped ones.
# Usage: cmake -DIN=<file.cu> -DOUT=<file.cpp> -P transform.cmake
file(READ "${IN}" src)
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_]*(<[^<>]*>)?)<<<([^>]*)>>>" "::emu::Launcher(\\1, \\3)" src "${src}")
string(REPLACE "extern __shared__ float smem[];" "float* smem = ::emu::dyn_smem<float>();" src "${src}")
file(WRITE "${OUT}" "// Generated from ${IN} by tests/gpu_emu/transform.cmake: do not edit.\n${src}")
