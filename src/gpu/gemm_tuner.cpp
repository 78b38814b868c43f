// vit-infer: GEMM launches and the GEMM choice of the CUDA engine (see gemm_tuner.h).
#include "gpu/gemm_tuner.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>

#include "core/error.h"
#include "gemm_sm90.cuh"

namespace vit::gpu {
namespace {

// Agreement check of the GEMM candidates: max |candidate - reference| must stay within
// tol x max |reference|, all values finite. The reference is cuBLASLt where it supports the
// shape, else the mma.sync kernel. Why these numbers: outputs are rounded to the storage type
// (bf16 2^-8, fp16 2^-11 relative), cuBLASLt's GELU nodes round once more before the GELU
// (launch_activation), and fp32 accumulation order differs (K <= 3072: ~1e-6). TF32 (allow_tf32) has a
// 10-bit mantissa against the custom kernels' true fp32. A wrong fragment layout, tail or race
// is off by O(1) x max |reference|.
float agreement_tol(DType t, bool tf32) {
  switch (t) {
    case DType::BF16: return 4e-2f;
    case DType::F16: return 1e-2f;
    default: return tf32 ? 2e-2f : 1e-3f;
  }
}

// Comma-separated implementation names (test hooks) -> membership.
bool named_in(const std::string& list, GemmImpl g) {
  const std::string name = impl_name(g);
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t end = list.find(',', pos);
    const std::string item = list.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (item == name) return true;
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return false;
}

// The epilogue as the GEMM choice and its check see it: the kind, a table residual apart
// (cuBLASLt cannot take that one), and the activation.
int epilogue_key(const GemmNode& n) {
  return (static_cast<int>(n.epi) * 2 + (n.res_w >= 0 ? 1 : 0)) * 4 + static_cast<int>(n.act);
}

}  // namespace

GemmParams GemmLauncher::params(const GemmNode& n, const GemmOperands& o, GemmImpl impl) const {
  GemmParams p;
  p.dtype = dt_;
  p.a = o.a;
  p.lda = n.lda;
  p.w = wptr(n.w);
  p.ldw = n.ldw;
  p.c = o.c;
  p.ldc = n.ldc;
  p.bias = wptr(n.b);
  p.epilogue = n.epi;
  p.act = n.act;
  if (n.res >= 0) {
    p.residual = o.residual;
    p.ldr = n.ldc;
  }
  if (n.res_w >= 0) {  // a per-image weight table (the position embeddings)
    p.residual = wptr(n.res_w);
    p.ldr = n.N;
    p.residual_period = n.rows_per_image;
  }
  p.M = o.M;
  p.N = n.N;
  p.K = n.K;
  if (n.qkv) {
    if (impl == GemmImpl::kCublasLt) {
      p.epilogue = GemmEpilogue::kNone;  // plain [M, 3D]: attention reads it through strides
    } else {
      p.tokens = n.rows_per_image;  // the QKV GEMM's rows per image are the tokens
      p.heads = n.heads;
      p.head_dim = n.N / 3 / n.heads;
    }
  }
  return p;
}

void GemmLauncher::launch(const GemmParams& p, GemmImpl impl, cudaStream_t s) const {
  switch (impl) {
    case GemmImpl::kCublasLt: lt_->run(p, s); break;
    case GemmImpl::kWgmma: launch_gemm_sm90(p, s); break;
    default: launch_gemm(p, s); break;
  }
}

void GemmTuner::choose(const LoweredGraph& L, Bucket& bk, const Operands& operands) {
  std::map<std::tuple<int, int, int, int>, GemmImpl> decided;  // (M, N, K, epilogue) -> impl
  for (size_t i = 0; i < L.nodes().size(); ++i) {
    if (L.nodes()[i].op != graph::Op::kLinear) continue;
    const GemmNode& n = L.gemm[i];
    const auto key = std::make_tuple(bk.batch * n.rows_per_image, n.N, n.K, epilogue_key(n));
    auto it = decided.find(key);
    if (it == decided.end()) it = decided.emplace(key, choose_one(n, bk.batch, operands)).first;
    bk.gemm_impl[i] = it->second;
  }
}

GemmImpl GemmTuner::choose_one(const GemmNode& n, int batch, const Operands& operands) {
  const GemmOperands o = operands(n);
  const bool lt_ok = gl_.lt().supports(gl_.params(n, o, GemmImpl::kCublasLt));
  const bool wg_ok = opt_.wgmma_ok && gemm_sm90_supports(gl_.params(n, o, GemmImpl::kWgmma));
  const GemmImpl ref = lt_ok ? GemmImpl::kCublasLt : GemmImpl::kMmaSync;
  if (opt_.choice == GemmChoice::kCublasLt) {
    if (!lt_ok && !lt_warned_) {
      log_line("cuBLASLt has no algorithm for GEMM '" + n.name + "'; using the custom kernel there");
      lt_warned_ = true;
    }
    return ref;
  }
  std::vector<GemmImpl> custom;
  if (wg_ok) custom.push_back(GemmImpl::kWgmma);
  custom.push_back(GemmImpl::kMmaSync);
  if (opt_.choice == GemmChoice::kCustom) {
    for (GemmImpl c : custom)
      if (c == ref || check(n, batch, c, ref, false)) return c;
    log_line("warning: GEMM '" + n.name + "' " + shape_text(n, batch) +
             ": no custom kernel agrees with the reference; using " + impl_name(custom.front()) +
             " anyway because --gemm custom is forced");
    return custom.front();
  }
  // kAuto
  std::vector<GemmImpl> ok;
  if (lt_ok) ok.push_back(GemmImpl::kCublasLt);
  for (GemmImpl c : custom)
    if (c == ref || check(n, batch, c, ref, true)) ok.push_back(c);
  if (ok.size() == 1) return ok.front();
  for (GemmImpl c : ok)
    if (named_in(opt_.prefer, c)) return c;  // test hook: this one wins when it is acceptable
  const std::vector<float> ms = time(n, o, ok);
  return ok[static_cast<size_t>(std::min_element(ms.begin(), ms.end()) - ms.begin())];
}

std::string GemmTuner::shape_text(const GemmNode& n, int batch) const {
  static const char* const kEpi[] = {"none", "act", "residual", "qkv"};
  const std::string epi = n.epi == GemmEpilogue::kAct ? activation_name(n.act) : kEpi[static_cast<int>(n.epi)];
  return "(M=" + std::to_string(batch * n.rows_per_image) + " N=" + std::to_string(n.N) + " K=" + std::to_string(n.K) +
         ", epilogue " + epi + ", " + dtype_name(gl_.dtype()) + ")";
}

// Runs `cand` and `ref` on the node's weights, bias and epilogue with the same fresh random
// input x (and residual) of M' = whole images up to ~8k rows (M' = M for small buckets; the
// tile tails of M' differ from M's only in which rows they cut), into NaN-poisoned outputs, and
// compares (agreement_tol). cuBLASLt's plain [M, 3D] QKV output is compared with the custom
// kernels' [3, B, H, T, hd] scatter through the index map. Returns whether they agree; logs
// once per (shape, candidate) when not. `reject`: the log says the candidate is not used.
// The verdict is cached by what the check actually runs: (N, K, epilogue, M', candidate,
// reference). Buckets from ~8k rows up share M', so the larger buckets (and the nodes of the same
// shape, which choose() already merges per bucket) reuse the first verdict instead of
// repeating a multi-million-value host comparison.
bool GemmTuner::check(const GemmNode& n, int batch, GemmImpl cand, GemmImpl ref, bool reject) {
  const int per = n.rows_per_image;
  const int rows = opt_.check_rows > 0 ? opt_.check_rows : 8192;
  const int nb = std::min(batch, std::max(1, rows / per + 1));
  const auto key =
      std::make_tuple(n.N, n.K, epilogue_key(n), nb * per, static_cast<int>(cand), static_cast<int>(ref));
  auto it = checked_.find(key);
  if (it == checked_.end()) {
    it = checked_.emplace(key, run_check(n, batch, nb, cand, ref, reject)).first;
    ++agreement_checks_;
  }
  return it->second;
}

bool GemmTuner::run_check(const GemmNode& n, int batch, int nb, GemmImpl cand, GemmImpl ref, bool reject) {
  const DType dt = gl_.dtype();
  const int per = n.rows_per_image;
  const int M = nb * per, N = n.N, K = n.K;
  const int64_t es = static_cast<int64_t>(dtype_size(dt));
  const int64_t x_elems = int64_t{M} * n.lda, y_elems = int64_t{M} * N;
  auto up = [](int64_t b) { return (b + 255) / 256 * 256; };
  DeviceBuffer buf;
  try {
    buf.alloc(up(x_elems * es) + 3 * up(y_elems * es), "GEMM agreement check");
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kOutOfMemory) throw;
    // Unchecked is treated as disagreeing: kAuto then keeps the reference.
    if (rejected_logged_.insert(shape_text(n, batch) + impl_name(cand) + "oom").second)
      log_line("GEMM '" + n.name + "' " + shape_text(n, batch) + ": no device memory to check " + impl_name(cand) +
               " against " + impl_name(ref) + (reject ? "; not selecting it" : ""));
    return false;
  }
  char* d_x = buf.c();
  char* d_res = d_x + up(x_elems * es);
  char* d_ref = d_res + up(y_elems * es);
  char* d_cand = d_ref + up(y_elems * es);
  {
    // Fresh inputs per check: U(-1, 1) for x and the residual.
    std::mt19937 rng(static_cast<uint32_t>(0x9e3779b9u ^ (M * 131u) ^ (N * 7919u) ^ (K * 104729u) ^ check_seq_++));
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<uint8_t> h(static_cast<size_t>(std::max(x_elems, y_elems) * es));
    // On the engine's (non-blocking) stream, then synchronised: a pageable cudaMemcpy runs on
    // the legacy stream, may still be in flight when it returns, and nothing would order the
    // check GEMMs after it. The sync also frees `h` for the next fill.
    auto fill = [&](char* dst, int64_t count) {
      for (int64_t i = 0; i < count; ++i) {
        const float v = u(rng);
        if (dt == DType::F32) {
          std::memcpy(&h[static_cast<size_t>(i * 4)], &v, 4);
        } else {
          const uint16_t b = dt == DType::F16 ? float_to_half(v) : float_to_bf16(v);
          std::memcpy(&h[static_cast<size_t>(i * 2)], &b, 2);
        }
      }
      VIT_CUDA_CHECK(cudaMemcpyAsync(dst, h.data(), static_cast<size_t>(count * es), cudaMemcpyHostToDevice, s_));
      VIT_CUDA_CHECK(cudaStreamSynchronize(s_));
    };
    fill(d_x, x_elems);
    fill(d_res, y_elems);
  }
  VIT_CUDA_CHECK(cudaMemsetAsync(d_ref, 0xFF, static_cast<size_t>(y_elems * es), s_));
  VIT_CUDA_CHECK(cudaMemsetAsync(d_cand, 0xFF, static_cast<size_t>(y_elems * es), s_));
  gl_.run(n, GemmOperands{d_x, d_ref, d_res, M}, ref, s_);
  gl_.run(n, GemmOperands{d_x, d_cand, d_res, M}, cand, s_);
  VIT_CUDA_CHECK(cudaStreamSynchronize(s_));
  const std::vector<float> r = download(d_ref, y_elems), g = download(d_cand, y_elems);
  std::vector<float> got = g;
  if (n.qkv && (ref == GemmImpl::kCublasLt) != (cand == GemmImpl::kCublasLt)) {
    // Bring the scattered [3, B, H, T, hd] result into the plain [M, 3D] order of the other.
    const int T = n.rows_per_image, H = n.heads, hd = n.N / 3 / n.heads, D = H * hd;
    const bool cand_scattered = cand != GemmImpl::kCublasLt;
    const std::vector<float>& sc = cand_scattered ? g : r;
    std::vector<float> plain(sc.size());
    for (int m = 0; m < M; ++m)
      for (int col = 0; col < N; ++col) {
        const int which = col / D, h = (col % D) / hd, d = col % hd, b = m / T, t = m % T;
        plain[static_cast<size_t>(m) * N + col] =
            sc[static_cast<size_t>((((int64_t{which} * nb + b) * H + h) * T + t) * hd + d)];
      }
    if (cand_scattered) got = std::move(plain);
    else return compare(n, batch, cand, ref, plain, got, reject);
  }
  return compare(n, batch, cand, ref, r, got, reject);
}

std::vector<float> GemmTuner::download(const char* d, int64_t count) const {
  const DType dt = gl_.dtype();
  std::vector<uint8_t> h(static_cast<size_t>(count * static_cast<int64_t>(dtype_size(dt))));
  VIT_CUDA_CHECK(cudaMemcpy(h.data(), d, h.size(), cudaMemcpyDeviceToHost));
  std::vector<float> out(static_cast<size_t>(count));
  widen_to_f32(dt, h.data(), count, out.data());
  return out;
}

bool GemmTuner::compare(const GemmNode& n, int batch, GemmImpl cand, GemmImpl ref, const std::vector<float>& want,
                        std::vector<float>& got, bool reject) {
  double mx = 0.0, err = 0.0;
  bool finite = true;
  for (float v : want) {
    if (!std::isfinite(v)) finite = false;
    else mx = std::max(mx, static_cast<double>(std::fabs(v)));
  }
  if (named_in(opt_.corrupt, cand) && !got.empty()) got[got.size() / 2] += static_cast<float>(10.0 * mx + 1.0);
  for (size_t i = 0; i < got.size() && finite; ++i) {
    if (!std::isfinite(got[i])) finite = false;
    else err = std::max(err, std::fabs(static_cast<double>(got[i]) - want[i]));
  }
  const double tol = agreement_tol(gl_.dtype(), opt_.allow_tf32);
  const bool ok = finite && mx > 0.0 && err <= tol * mx;
  if (!ok) {
    const std::string key = shape_text(n, batch) + impl_name(cand);
    if (rejected_logged_.insert(key).second) {
      std::ostringstream os;
      os << (reject ? "" : "warning: ") << "GEMM '" << n.name << "' " << shape_text(n, batch) << ": "
         << impl_name(cand) << " disagrees with " << impl_name(ref) << " (";
      if (!finite) os << "non-finite values";
      else os << "max |diff| " << err << " > " << tol << " x max |ref| " << mx;
      os << ")" << (reject ? "; not selecting it" : "");
      log_line(os.str());
    }
  }
  return ok;
}

// Best-of-rounds time (ms for kReps launches) of each candidate, on the node's own arena
// buffers. The GPU idles at a low clock (an H200 at ~345 MHz): the first timing of an engine
// is preceded by warm_up(). The candidates are interleaved round by round, so a clock or
// neighbour change during the timing hits all of them alike, and the minimum over the rounds
// discards the rounds it hit. kMaxRounds, fewer (not under kMinRounds) once the rounds took
// kBudgetMs: a ViT-L GEMM at batch 256 is ~0.6 ms on an H200, so only the emulator stops early.
// The CPU emulator's times are host wall time and mean nothing: there one round of one launch per
// candidate runs the same code (the 2 x 3 + 1 launches per candidate made auto-picked 16-bit runs
// ~3x the cost of the model itself in CI).
std::vector<float> GemmTuner::time(const GemmNode& n, const GemmOperands& o, const std::vector<GemmImpl>& cands) {
#ifdef VIT_GPU_EMU_BUILD
  constexpr int kMinRounds = 1, kMaxRounds = 1, kReps = 1;
#else
  constexpr int kMinRounds = 2, kMaxRounds = 5, kReps = 3;
#endif
  constexpr float kBudgetMs = 100.0f;
  for (GemmImpl c : cands) gl_.run(n, o, c, s_);  // first-use costs (module load, workspace)
  warm_up(n, o, cands.front());
  std::vector<float> best(cands.size(), std::numeric_limits<float>::infinity());
  std::vector<EventPair> ev(cands.size());
  float spent = 0.0f;
  for (int r = 0; r < kMaxRounds && (r < kMinRounds || spent < kBudgetMs); ++r) {
    for (size_t j = 0; j < cands.size(); ++j) {
      VIT_CUDA_CHECK(cudaEventRecord(ev[j].a, s_));
      for (int i = 0; i < kReps; ++i) gl_.run(n, o, cands[j], s_);
      VIT_CUDA_CHECK(cudaEventRecord(ev[j].b, s_));
    }
    VIT_CUDA_CHECK(cudaEventSynchronize(ev.back().b));
    for (size_t j = 0; j < cands.size(); ++j) {
      float ms = 0.0f;
      VIT_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[j].a, ev[j].b));
      best[j] = std::min(best[j], ms);
      spent += ms;
    }
  }
  ++timings_;
  return best;
}

// Once per engine, before its first GEMM timing: runs the GEMM back to back for at least
// kWarmMs of device time (in batches whose length doubles, so that a slow emulated or tiny
// GEMM costs few host round trips), which brings the clocks up from idle.
void GemmTuner::warm_up(const GemmNode& n, const GemmOperands& o, GemmImpl impl) {
  if (warmed_) return;
  warmed_ = true;
  constexpr float kWarmMs = 150.0f;
  EventPair ev;
  float total = 0.0f;
  for (int reps = 1; total < kWarmMs && reps <= 4096; reps *= 2) {
    VIT_CUDA_CHECK(cudaEventRecord(ev.a, s_));
    for (int i = 0; i < reps; ++i) gl_.run(n, o, impl, s_);
    VIT_CUDA_CHECK(cudaEventRecord(ev.b, s_));
    VIT_CUDA_CHECK(cudaEventSynchronize(ev.b));
    float ms = 0.0f;
    VIT_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.a, ev.b));
    total += ms;
  }
}

}  // namespace vit::gpu
