// vit-infer: Hopper GEMM (see gemm_sm90.cuh). Block = 3 warpgroups (384 threads): warpgroup 0
// is the producer (one thread issues the TMA loads; the register budget is given to the
// consumers with setmaxnreg), warpgroups 1 and 2 are consumers, each computing 64 rows x BN
// columns of the 128 x BN block tile with wgmma m64nBNk16 (fp32 accumulators in registers).
// Shared memory per stage: A tile [128 rows][64 k] and B tile [BN rows][64 k], 16-bit, each row
// 128 bytes, written by TMA with the 128-byte swizzle and read by wgmma through K-major
// SWIZZLE_128B matrix descriptors (SBO = 1024 B). Stages are handed over by two mbarriers each:
// full[s] (1 producer arrival + the TMA byte count) and empty[s] (256 consumer arrivals).
// Grid: x = N tiles (fastest, so the blocks resident together share one A row panel and the
// whole of W stays in L2), y = M tiles. Tails: TMA zero-fills rows / k past the tensor, the
// epilogue stores only rows < M and columns < N.
#include "gemm_sm90.cuh"

#include <cuda.h>  // CUtensorMap and the cuTensorMapEncodeTiled signature (types only)

#include <cstdint>
#include <mutex>
#include <string>

#include "cuda_check.h"
#include "device_common.cuh"
#include "gemm_epilogue.cuh"

// The kernel body needs sm_90a (wgmma, setmaxnreg). Where sm_90 is built, CMakeLists.txt
// compiles this file for sm_90a alone (its own object library: no sm_90 image or PTX that a 9.0
// device could load instead; tools/check_sass.sh checks it). In builds without sm_90 the device
// passes (no __CUDA_ARCH_FEAT_SM90_ALL) compile an empty kernel that gemm_sm90_available()
// never launches (its probe reports what ran). The host pass and the CPU emulator see the body.
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define VIT_SM90A_BODY 0
#else
#define VIT_SM90A_BODY 1
#include "gemm_sm90_ptx.cuh"
#endif

namespace vit {
namespace {

constexpr int kBM = 128;   // block rows: 2 consumer warpgroups x 64
constexpr int kBK = 64;    // k per stage: 64 x 2 bytes = one 128-byte swizzle row
constexpr int kBN = 256;   // block columns (wgmma n = 256)
constexpr int kStages = 4;
constexpr int kThreads = 384;

constexpr uint32_t tile_bytes(int rows) { return static_cast<uint32_t>(rows) * kBK * 2; }
constexpr size_t smem_bytes(int bn, int stages) {
  // Stages of A and B, the 2 x stages mbarriers, and 1024 bytes to align the base to the
  // swizzle pattern's repeat (the 128-byte swizzle repeats every 1024 bytes).
  return static_cast<size_t>(stages) * (tile_bytes(kBM) + tile_bytes(bn)) + 2 * stages * 8 + 1024;
}

#if VIT_SM90A_BODY
// Matrix descriptor of a K-major operand tile with the 128-byte swizzle (PTX ISA 9.7.15.5.1.2.2
// "Matrix Descriptor Format"): bits 0-13 start address >> 4, 16-29 leading-dimension byte
// offset >> 4, 32-45 stride-dimension byte offset >> 4, 49-51 base offset, 62-63 swizzle mode
// (1 = 128B). For K-major swizzled layouts the leading offset is unused ("assumed 1",
// 9.7.15.5.1.2.1.1); the stride offset is the distance between 8-row groups (9.7.15.5.1.2.1.2):
// 8 rows x 128 bytes = 1024. The canonical layout is ((8,m),(T,2k)):((8T,SBO),(1,T)) with
// Swizzle<3,4,3> (9.7.15.5.1.2.1.3), i.e. rows 128 bytes apart inside a group: exactly what TMA
// writes for a box with 128-byte rows and CU_TENSOR_MAP_SWIZZLE_128B. Base offset 0: every
// tile starts on a 1024-byte boundary (the pattern start), and stepping k by 16 elements moves
// the start address by 32 bytes inside the same pattern (as CUTLASS / DeepGEMM advance it).
__device__ __forceinline__ uint64_t desc_k_sw128(const void* tile, int k16) {
  const uint32_t a = kern::sm90::smem_u32(tile) + static_cast<uint32_t>(k16) * 32u;
  uint64_t d = static_cast<uint64_t>((a & 0x3FFFFu) >> 4);
  d |= static_cast<uint64_t>(1) << 16;            // LBO (unused for swizzled K-major)
  d |= static_cast<uint64_t>(1024 >> 4) << 32;    // SBO
  d |= static_cast<uint64_t>(1) << 62;            // 128-byte swizzle
  return d;
}
#endif

template <typename T, int BN, int STAGES, GemmEpilogue EPI, bool BIAS>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_sm90_kernel(const GemmParams p, const __grid_constant__ CUtensorMap tma_a,
                     const __grid_constant__ CUtensorMap tma_w) {
#if VIT_SM90A_BODY
  using namespace kern::sm90;
  constexpr uint32_t A_BYTES = tile_bytes(kBM), B_BYTES = tile_bytes(BN);
  extern __shared__ float smem[];
  // Round the dynamic shared base up to 1024 (the launcher asked for 1024 extra bytes).
  const uint32_t base = smem_u32(smem);
  unsigned char* buf = reinterpret_cast<unsigned char*>(smem) + ((1024u - (base & 1023u)) & 1023u);
  T* sA = reinterpret_cast<T*>(buf);                              // [STAGES][128][64] swizzled
  T* sB = reinterpret_cast<T*>(buf + STAGES * A_BYTES);           // [STAGES][BN][64] swizzled
  uint64_t* full = reinterpret_cast<uint64_t*>(buf + STAGES * (A_BYTES + B_BYTES));
  uint64_t* empty = full + STAGES;

  const int tid = threadIdx.x, wg = tid / 128;
  const int n0 = blockIdx.x * BN, m0 = blockIdx.y * kBM;
  const int KT = (p.K + kBK - 1) / kBK;

  if (tid == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(&full[s], 1);     // the producer's arrive.expect_tx (+ the TMA bytes)
      mbar_init(&empty[s], 256);  // every consumer thread, after its wgmma reads of the stage
    }
    fence_barrier_init();
  }
  __syncthreads();

  if (wg == 0) {
    // Producer warpgroup: 40 registers are plenty for address arithmetic.
    setmaxnreg_dec<40>();
    if (tid == 0) {
      for (int kt = 0; kt < KT; ++kt) {
        const int s = kt % STAGES;
        const uint32_t round = static_cast<uint32_t>(kt / STAGES);
        // Slot free: the consumers released its previous use (round - 1). In round 0 this waits
        // on parity 1, the phase "before" the barrier's first, which counts as complete.
        while (!mbar_try_wait(&empty[s], (round & 1u) ^ 1u)) {
        }
        mbar_arrive_expect_tx(&full[s], A_BYTES + B_BYTES);
        tma_load_2d(sA + s * (kBM * kBK), &tma_a, kt * kBK, m0, &full[s]);
        tma_load_2d(sB + s * (BN * kBK), &tma_w, kt * kBK, n0, &full[s]);
      }
    }
    return;
  }

  // Consumer warpgroups 1, 2: rows (wg - 1) * 64 .. + 63 of the block tile.
  setmaxnreg_inc<232>();
  const int c = wg - 1;
  float acc[BN / 2];
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;

  for (int kt = 0; kt < KT; ++kt) {
    const int s = kt % STAGES;
    const uint32_t round = static_cast<uint32_t>(kt / STAGES);
    while (!mbar_try_wait(&full[s], round & 1u)) {
    }
    const T* a_tile = sA + s * (kBM * kBK) + c * (64 * kBK);  // 64 rows x 128 B: 8 KB, 1024-aligned
    const T* b_tile = sB + s * (BN * kBK);
    wgmma_fence();  // the accumulators were last touched by ordinary code or an earlier wgmma
#pragma unroll
    for (int k16 = 0; k16 < kBK / 16; ++k16) {
      wgmma_m64k16<T, BN>(acc, desc_k_sw128(a_tile, k16), desc_k_sw128(b_tile, k16));
    }
    wgmma_commit();
    // Keep this k-tile's group in flight; once the previous one is done its stage is free.
    wgmma_wait<1>();
    if (kt > 0) mbar_arrive(&empty[(kt - 1) % STAGES]);
  }
  wgmma_wait<0>();

  // Epilogue straight from the accumulator fragment (PTX ISA 9.7.15.5.1.1.1, Figure 149; CUTLASS
  // CLayout_64xN): register i of thread (warp w of the warpgroup, lane) holds row
  // 16w + lane/4 + 8 * ((i / 2) % 2), column 8 * (i / 4) + 2 * (lane % 4) + i % 2. The epilogue
  // kind and the bias are template parameters; row and column index parts are computed once.
  const int lt = tid % 128, w = lt / 32, lane = lt % 32;
  const int r0 = m0 + c * 64 + w * 16 + lane / 4, col0 = n0 + 2 * (lane % 4);
  kern::GemmTileEpilogue<T, EPI, BIAS> epi(p, col0);
  const auto ra = epi.row_part(r0), rb = epi.row_part(r0 + 8);
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
    const int col = col0 + 8 * j;
    if (col >= p.N) break;
    const auto cj = epi.cols(col);
    epi.store(ra, cj, acc[4 * j], acc[4 * j + 1]);
    epi.store(rb, cj, acc[4 * j + 2], acc[4 * j + 3]);
  }
#endif
}

// Writes 1 when this translation unit's sm_90a body is what the device runs.
__global__ void gemm_sm90_probe(int* out) { *out = VIT_SM90A_BODY; }

// --- host side ---------------------------------------------------------------------------------
using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                 const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// cuTensorMapEncodeTiled through the runtime's driver entry point, so that libcuda is not a
// link dependency (null when the driver does not offer it).
EncodeTiled encode_tiled() {
  static const EncodeTiled fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q);
    if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || !f) {
      (void)cudaGetLastError();
      return static_cast<EncodeTiled>(nullptr);
    }
    return reinterpret_cast<EncodeTiled>(f);
  }();
  return fn;
}

// 2-D map of a row-major [rows, cols] 16-bit matrix (rows ld elements apart), box = box_rows
// rows x 64 columns (128 bytes: the 128-byte swizzle span), out-of-bounds elements read as 0.
CUtensorMap make_map(DType dt, const void* base, int64_t rows, int64_t cols, int64_t ld, int box_rows) {
  CUtensorMap m;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld) * 2};  // bytes, dimension 1
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(kBK), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t estr[2] = {1, 1};
  const CUresult r = encode_tiled()(&m, dt == DType::BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                                    2, const_cast<void*>(base), dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                    CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    throw Error(ErrorCode::kDevice, "launch_gemm_sm90: cuTensorMapEncodeTiled failed (CUresult " + std::to_string(r) +
                                        ") for a " + std::to_string(rows) + " x " + std::to_string(cols) +
                                        " matrix, ld " + std::to_string(ld));
  }
  return m;
}

constexpr int kMaxDevices = 64;

int current_device() {
  int dev = 0;
  VIT_CUDA_CHECK(cudaGetDevice(&dev));
  return dev;
}

template <typename T, GemmEpilogue EPI, bool BIAS>
void launch_k(const GemmParams& p, cudaStream_t stream) {
  constexpr int BN = kBN, S = kStages;
  constexpr size_t smem = smem_bytes(BN, S);
  auto kernel = gemm_sm90_kernel<T, BN, S, EPI, BIAS>;
  {
    // Above 48 KB of dynamic shared memory needs the per-kernel opt-in, once per device (not
    // a stream operation, so also fine after a stream capture has begun).
    static std::mutex mu;
    static bool done[kMaxDevices] = {};
    const int dev = current_device();
    std::lock_guard<std::mutex> lock(mu);
    if (dev < 0 || dev >= kMaxDevices || !done[dev]) {
      VIT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
      if (dev >= 0 && dev < kMaxDevices) done[dev] = true;
    }
  }
  const CUtensorMap ma = make_map(p.dtype, p.a, p.M, p.K, p.lda, kBM);
  const CUtensorMap mw = make_map(p.dtype, p.w, p.N, p.K, p.ldw, BN);
  const dim3 grid((p.N + BN - 1) / BN, (p.M + kBM - 1) / kBM);
  kernel<<<grid, kThreads, smem, stream>>>(p, ma, mw);
  VIT_CHECK_LAUNCH("gemm_sm90_kernel");
}

// One instantiation per (type, epilogue kind, bias or not).
template <typename T, GemmEpilogue EPI>
void launch_e(const GemmParams& p, cudaStream_t stream) {
  if (p.bias) launch_k<T, EPI, true>(p, stream);
  else launch_k<T, EPI, false>(p, stream);
}

template <typename T>
void launch_t(const GemmParams& p, cudaStream_t stream) {
  switch (p.epilogue) {
    case GemmEpilogue::kNone: return launch_e<T, GemmEpilogue::kNone>(p, stream);
    case GemmEpilogue::kAct: return launch_e<T, GemmEpilogue::kAct>(p, stream);
    case GemmEpilogue::kResidual: return launch_e<T, GemmEpilogue::kResidual>(p, stream);
    case GemmEpilogue::kQkv: return launch_e<T, GemmEpilogue::kQkv>(p, stream);
  }
  throw Error(ErrorCode::kInvalidArgument, "launch_gemm_sm90: unknown epilogue");
}

}  // namespace

bool gemm_sm90_available() {
  static std::mutex mu;
  static int state[kMaxDevices] = {};  // 0 unknown, 1 yes, 2 no
  const int dev = current_device();
  if (dev < 0 || dev >= kMaxDevices) return false;
  std::lock_guard<std::mutex> lock(mu);
  if (state[dev] == 0) {
    int major = 0, minor = 0;
    VIT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    VIT_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    bool ok = major == 9 && minor == 0 && encode_tiled() != nullptr;
    if (ok) {
      void* raw = nullptr;
      int h = 0;
      VIT_CUDA_CHECK(cudaMalloc(&raw, sizeof(int)));
      int* d = static_cast<int*>(raw);
      const cudaError_t e1 = cudaMemset(d, 0, sizeof(int));
      gemm_sm90_probe<<<1, 1>>>(d);
      const cudaError_t e2 = cudaGetLastError();
      const cudaError_t e3 = cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost);
      cudaFree(d);
      (void)cudaGetLastError();
      ok = e1 == cudaSuccess && e2 == cudaSuccess && e3 == cudaSuccess && h == 1;
    }
    state[dev] = ok ? 1 : 2;
  }
  return state[dev] == 1;
}

bool gemm_sm90_supports(const GemmParams& p) {
  return (p.dtype == DType::F16 || p.dtype == DType::BF16) && p.M > 0 && p.N > 0 && p.K > 0 && p.lda % 8 == 0 &&
         p.ldw % 8 == 0 && cuda::aligned16(p.a) && cuda::aligned16(p.w) && (p.M + kBM - 1) / kBM <= 65535;
}

void launch_gemm_sm90(const GemmParams& p, cudaStream_t stream) {
  const char* L = "launch_gemm_sm90";
  validate_gemm_params(p, L);
  if (!gemm_sm90_supports(p)) {
    throw Error(ErrorCode::kUnsupported, std::string(L) +
                                             ": needs F16 / BF16, lda and ldw multiples of 8, 16-byte aligned x and W,"
                                             " and M <= 65535 * 128");
  }
  if (!gemm_sm90_available()) {
    throw Error(ErrorCode::kUnsupported, std::string(L) + ": the device is not sm_90 or this build has no sm_90a code");
  }
  if (p.dtype == DType::F16) launch_t<__half>(p, stream);
  else launch_t<__nv_bfloat16>(p, stream);
}

}  // namespace vit
