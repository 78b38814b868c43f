// vit-infer benchmarks: implementation of bench_util.h. The random fill is a stateless hash
// of (seed, index) so that any buffer size fills in one launch and reruns see the same data.
#include "bench_util.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>

#include "core/error.h"
#include "cuda_check.h"

#ifndef VIT_GIT_HASH
#define VIT_GIT_HASH "unknown"
#endif

namespace vit::bench {

std::string git_hash() {
  const char* env = std::getenv("VIT_GIT_HASH");
  if (env && *env) return env;
  return VIT_GIT_HASH;
}

bool gpu_present(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    if (why) *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e);
    return false;
  }
  if (n <= 0) {
    if (why) *why = "cudaGetDeviceCount reports 0 devices";
    return false;
  }
  return true;
}

GpuInfo gpu_info(int device) {
  GpuInfo g;
  g.device = device;
  cudaDeviceProp prop{};
  VIT_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  g.name = prop.name;
  g.cc_major = prop.major;
  g.cc_minor = prop.minor;
  g.sm_count = prop.multiProcessorCount;
  g.l2_bytes = prop.l2CacheSize;
  g.total_mem = static_cast<int64_t>(prop.totalGlobalMem);
  VIT_CUDA_CHECK(cudaDriverGetVersion(&g.driver_version));
  VIT_CUDA_CHECK(cudaRuntimeGetVersion(&g.runtime_version));
  return g;
}

nlohmann::json to_json(const GpuInfo& g) {
  return {{"device", g.device},
          {"name", g.name},
          {"compute_capability", std::to_string(g.cc_major) + "." + std::to_string(g.cc_minor)},
          {"sm_count", g.sm_count},
          {"l2_bytes", g.l2_bytes},
          {"total_mem_bytes", g.total_mem},
          {"driver_version", g.driver_version},
          {"runtime_version", g.runtime_version}};
}

namespace {

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

template <typename T> __device__ __forceinline__ T cvt(float v);
template <> __device__ __forceinline__ float cvt<float>(float v) { return v; }
template <> __device__ __forceinline__ __half cvt<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 cvt<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename T>
__global__ void fill_uniform_kernel(T* p, int64_t n, float lo, float hi, uint64_t seed) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const uint64_t h = splitmix64(seed * 0x2545F4914F6CDD1Dull + static_cast<uint64_t>(i));
    const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);  // [0, 1), 24 bits
    p[i] = cvt<T>(lo + (hi - lo) * u);
  }
}

}  // namespace

void fill_uniform(void* p, DType dt, int64_t n, float lo, float hi, uint64_t seed, cudaStream_t s) {
  cuda::require(p != nullptr || n == 0, "fill_uniform", "null pointer");
  if (n <= 0) return;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 65536));
  // Explicit template arguments: one kernel per storage type (and the emulator's launch rewrite,
  // tests/gpu_emu/transform.cmake, needs a kernel it can name without deduction).
  switch (dt) {
    case DType::F32: fill_uniform_kernel<float><<<blocks, threads, 0, s>>>(static_cast<float*>(p), n, lo, hi, seed); break;
    case DType::F16: fill_uniform_kernel<__half><<<blocks, threads, 0, s>>>(static_cast<__half*>(p), n, lo, hi, seed); break;
    case DType::BF16:
      fill_uniform_kernel<__nv_bfloat16><<<blocks, threads, 0, s>>>(static_cast<__nv_bfloat16*>(p), n, lo, hi, seed);
      break;
    default: fail(ErrorCode::kInvalidArgument, std::string("fill_uniform: unsupported dtype ") + dtype_name(dt));
  }
  VIT_CHECK_LAUNCH("fill_uniform_kernel");
}

EventPair::EventPair() {
  VIT_CUDA_CHECK(cudaEventCreate(&a));
  const cudaError_t e = cudaEventCreate(&b);
  if (e != cudaSuccess) {
    cudaEventDestroy(a);
    cuda::throw_cuda_error(e, "cudaEventCreate", __FILE__, __LINE__);
  }
}
EventPair::~EventPair() {
  if (a) cudaEventDestroy(a);
  if (b) cudaEventDestroy(b);
}
void EventPair::start(cudaStream_t s) { VIT_CUDA_CHECK(cudaEventRecord(a, s)); }
void EventPair::stop(cudaStream_t s) { VIT_CUDA_CHECK(cudaEventRecord(b, s)); }
float EventPair::elapsed_ms() const {
  VIT_CUDA_CHECK(cudaEventSynchronize(b));
  float ms = 0.0f;
  VIT_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  return ms;
}

DeviceMem::DeviceMem(size_t n) : bytes(n) {
  if (n == 0) return;
  const cudaError_t e = cudaMalloc(&p, n);
  if (e != cudaSuccess) {
    p = nullptr;
    cuda::throw_cuda_error(e, ("cudaMalloc(" + std::to_string(n) + " bytes)").c_str(), __FILE__, __LINE__);
  }
}
DeviceMem::~DeviceMem() {
  if (p) cudaFree(p);
}
DeviceMem& DeviceMem::operator=(DeviceMem&& o) noexcept {
  if (this != &o) {
    if (p) cudaFree(p);
    p = o.p;
    bytes = o.bytes;
    o.p = nullptr;
    o.bytes = 0;
  }
  return *this;
}

Stats stats_of(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  // Nearest rank: the smallest value with at least q of the samples at or below it.
  auto pct = [&](double q) {
    size_t r = static_cast<size_t>(std::ceil(q * static_cast<double>(n)));
    r = std::min(std::max<size_t>(r, 1), n);
    return v[r - 1];
  };
  s.n = static_cast<int>(n);
  s.min = v.front();
  s.max = v.back();
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(n);
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.p90 = pct(0.90);
  s.p95 = pct(0.95);
  s.p99 = pct(0.99);
  return s;
}

nlohmann::json to_json(const Stats& s) {
  return {{"n", s.n},       {"min", s.min}, {"mean", s.mean}, {"median", s.median},
          {"p90", s.p90},   {"p95", s.p95}, {"p99", s.p99},   {"max", s.max}};
}

}  // namespace vit::bench
