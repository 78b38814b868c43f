// vit-infer GPU emulator (CPU-only tests): a stand-in for <cuda_runtime_api.h> so that the shipped
// kernels/*.cu (mechanically rewritten: `k<<<g, b, s, st>>>(p)` -> `::emu::Launcher(k, g, b, s, st)(p)`)
// and tests/test_gpu_kernels.cpp compile as plain C++ and run on the host. Device memory is host
// memory aligned like cudaMalloc (256 bytes); every call succeeds unless its arguments are bad.
// Only what the kernels, their launchers and the kernel tests use is provided.
#pragma once

#include <cstddef>
#include <cstdint>

#define VIT_GPU_EMU 1

enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorLaunchFailure = 719 };
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
struct CUstream_st;
typedef CUstream_st* cudaStream_t;

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

cudaError_t cudaGetLastError();
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int dev);
cudaError_t cudaMalloc(void** p, size_t n);
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind k);
cudaError_t cudaMemset(void* p, int v, size_t n);
cudaError_t cudaDeviceSynchronize();
