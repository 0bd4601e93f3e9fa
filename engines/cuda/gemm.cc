#include "gemm.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "../env_flag.h"
#include "cuda_check.h"
#include "device_buffer.h"
#include "gemm_timer.h"
#include "kvserve_kernels.h"

namespace kvs::cuda {

namespace {

cudaDataType_t cudaType(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
  }
  return CUDA_R_32F;
}

}  // namespace

void GemmRunner::setCols(cublasLtMatrixLayout_t l, int cols) {
  const uint64_t c = static_cast<uint64_t>(cols);
  KVS_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_COLS, &c, sizeof(c)));
}

int32_t GemmRunner::algoAttr(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attr) {
  int32_t v = 0;
  size_t w = 0;
  cublasLtMatmulAlgoConfigGetAttribute(&algo, attr, &v, sizeof(v), &w);
  return v;
}

const char* invariantGemmName(InvariantGemm g) {
  return g == InvariantGemm::Own ? "own" : g == InvariantGemm::Wgmma ? "wgmma" : g == InvariantGemm::Hybrid ? "hybrid" : "cublaslt";
}

const char* invariantGemmKernels(InvariantGemm g) {
  return g == InvariantGemm::Own ? "gemm_inv" : g == InvariantGemm::Wgmma ? "gemm_wgmma" : g == InvariantGemm::Hybrid ? "gemm_inv + gemm_wgmma" : "cublaslt";
}

// KVSERVE_FAST_GEMV_INV (on unless 0): where a fast-mode plan runs the rows-per-CTA GEMV on a weight that
// kvsk_gemm_inv_splits cuts into several k-partitions, and the caller allows it (run's gemvInv: o_proj and
// down_proj, which no epilogue fusion shares a plan with), gemv_inv runs instead: its PDL chains at
// M = 1 run down_proj in 32.1 us against the GEMV's 37.4 and o_proj in 10.7 against 10.6 (GPU run 16,
// kvserve_kernel_bench gemv-inv), and the Llama-3-8B batch-1 step took 4.75 against 4.93 ms and 4.85 against 4.91
// in two leases (batch 8: 5.11 against 5.14, 5.15 against 5.22).
bool fastGemvInvFromEnv() { return envFlag("KVSERVE_FAST_GEMV_INV", true); }

// KVSERVE_GEMV_INV (on unless 0): in the batch-invariant mode, where gemm_inv would serve M <= 8 (KVSERVE_GEMV_INV_MAX_M
// sets the limit, 1 to 16), gemv_inv runs on the weights the per-weight timing at load prefers (smallKernel): the
// same bits. The invariant batch-1 step took 5.21 against 5.33 ms and 5.28 against 5.55 (GPU run 16, two leases);
// M up to 8 since run 17 (its late trigger: batch 4 5.29 against 5.72, batch 8 5.48 against 6.10); M 9-16 gained
// nothing (batch 16 6.80 against 6.84).
bool gemvInvFromEnv() { return envFlag("KVSERVE_GEMV_INV", true); }

// KVSERVE_GEMV_INV_TRIGGER (late, the default; early; off): when the kernel after a gemv_inv launch may start
// (kvsk_pdl_trigger). With the trigger right after the wait (early, before run 17), gemv_inv at M = 4-8 made the
// invariant graphed step slower than gemm_inv (run 16) though each GEMM alone was faster, and PDL off altogether
// made it faster; with the trigger after each CTA's k-loop (late) the invariant step at batch 4 / 8 took 5.29 / 5.48
// ms against 5.72 / 6.10 on gemm_inv, and the default mode's batch 1 / 4 4.85 / 5.02 against 4.93 / 5.14 early
// (GPU run 17, one lease). The same bits (gemm-wgmma suite).
int triggerFromEnv(const char* name, int dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  const std::string s(v);
  if (s == "late") return KVSK_PDL_TRIGGER_LATE;
  if (s == "early") return KVSK_PDL_TRIGGER_EARLY;
  if (s == "off") return KVSK_PDL_TRIGGER_OFF;
  throw std::runtime_error(std::string(name) + " must be early, late or off, not \"" + s + "\"");
}

// KVSERVE_GEMV_TRIGGER and KVSERVE_GEMV_FP8_TRIGGER (early, the default; late; off): the same for the rows-per-CTA
// bf16/f16 GEMV and its fused epilogues (late: after each CTA's k-loop; a grid of many waves) and for the persistent
// FP8 GEMV version 2 and its fused epilogues (late: when a CTA starts its last tile; one wave, as gemv_inv's), for
// A/B runs (not yet measured, session 12).

// KVSERVE_GEMM_SPLITK=1: the fast mode's buckets of 17-512 rows also time split-K variants (2, 3, 4, 6 k-partitions,
// reduced out of place in the compute type where the algorithm allows) of the heuristic's first four bf16/f16
// candidates: at such M a weight has few output tiles (o_proj at M = 129: 32 of 128 columns for 132 SMs), and the
// 128-token prompt's q/k/v and o GEMMs read their weights at 40-54% of copy bandwidth (GPU run 17). Off: measured in
// run 17 without a clear gain (device time of a decode step at batch 32 / 64 / 128 5.72 / 6.49 / 8.13 ms against
// 5.70 / 6.60 / 8.15; one 129-token prompt 6.19 against 6.10).
bool splitKFromEnv() { return envFlag("KVSERVE_GEMM_SPLITK", false); }

GemmRunner::GemmRunner(cudaStream_t stream, int maxM, GemmMode mode, int probeM, size_t workspaceBytes,
                       InvariantGemm invariantGemm)
    : stream_(stream), maxM_(maxM < 1 ? 1 : maxM), probeM_(probeM >= 1 && probeM <= maxM_ ? probeM : maxM_),
      mode_(mode), invariant_(invariantGemm), workspaceBytes_(workspaceBytes), fp8GemvVersion_(fp8GemvVersionFromEnv()),
      gemvEven_(gemvEvenFromEnv()), gemvInv_(gemvInvFromEnv()), fastGemvInv_(mode == GemmMode::Fast && fastGemvInvFromEnv()),
      gemvInvTrigger_(triggerFromEnv("KVSERVE_GEMV_INV_TRIGGER", KVSK_PDL_TRIGGER_LATE)),
      gemvTrigger_(triggerFromEnv("KVSERVE_GEMV_TRIGGER", KVSK_PDL_TRIGGER_EARLY)),
      fp8GemvTrigger_(triggerFromEnv("KVSERVE_GEMV_FP8_TRIGGER", KVSK_PDL_TRIGGER_EARLY)), splitK_(splitKFromEnv()) {
  if (const char* v = std::getenv("KVSERVE_GEMV_INV_MAX_M"); v && *v)
    gemvInvMaxM_ = std::min(KVSK_GEMV_INV_MAX_M, std::max(1, std::atoi(v)));
  if (mode_ == GemmMode::BatchInvariant && (invariant_ == InvariantGemm::Wgmma || invariant_ == InvariantGemm::Hybrid))
    if (const char* why = kvsk_gemm_wgmma_unavailable())
      throw std::runtime_error(std::string("invariantGemm ") + invariantGemmName(invariant_) +
                               " (kernels/gemm_wgmma.cu) cannot run here: " + why + "; use invariantGemm own or cublaslt");
  int device = 0;
  KVS_CUDA_CHECK(cudaGetDevice(&device));
  KVS_CUDA_CHECK(cudaDeviceGetAttribute(&numSms_, cudaDevAttrMultiProcessorCount, device));
  KVS_CUBLAS_CHECK(cublasLtCreate(&handle_));
  KVS_CUDA_CHECK(cudaMalloc(&workspace_, workspaceBytes_));
}

GemmRunner::~GemmRunner() {
  for (auto& [k, p] : plans_) destroyPlan(p);
  for (auto& [k, p] : fp8Plans_) destroyPlan(p);
  for (auto& [k, p] : int8Plans_) destroyPlan(p);
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

void GemmRunner::plan(int N, int K, DType in, DType out, const void* W, int maxM) { get(N, K, in, out, W, maxM); }

bool GemmRunner::gemvApplies(int M, int N, int K, DType in, DType out) const {
  return mode_ == GemmMode::Fast && in == out && kvsk_gemv_supported(M, N, K, static_cast<kvsk_dtype>(in));
}

GemmRunner::Plan GemmRunner::makePlan(int N, int K, DType in, DType out) {
  return makePlan(N, K, CUBLAS_COMPUTE_32F, CUDA_R_32F, cudaType(in), cudaType(out));
}

GemmRunner::Plan GemmRunner::makePlan(int N, int K, cublasComputeType_t compute, cudaDataType_t scale, cudaDataType_t ab,
                                      cudaDataType_t d) {
  Plan p;
  try {
    // Column-major view: Y^T [N, M] = W [K, N]^T * X^T [K, M]; W row-major [N, K] is column-major [K, N].
    KVS_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, compute, scale));
    const cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    KVS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)));
    KVS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)));
    KVS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, ab, K, N, K));
    KVS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, ab, K, maxM_, K));
    KVS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, d, N, maxM_, N));
  } catch (...) {
    destroyPlan(p);
    throw;
  }
  return p;
}

void GemmRunner::destroyPlan(Plan& p) {
  if (p.a) cublasLtMatrixLayoutDestroy(p.a);
  if (p.b) cublasLtMatrixLayoutDestroy(p.b);
  if (p.d) cublasLtMatrixLayoutDestroy(p.d);
  if (p.desc) cublasLtMatmulDescDestroy(p.desc);
  p = Plan{};
}

GemmRunner::Plan& GemmRunner::get(int N, int K, DType in, DType out, const void* W, int maxM) {
  const Key key{N, K, static_cast<int>(in), static_cast<int>(out)};
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan p = makePlan(N, K, in, out);
  try {
    if (mode_ == GemmMode::BatchInvariant) planInvariant(p, N, K, in, out, W);
    else planFast(p, N, K, in, out, W, maxM > 0 ? std::min(maxM, maxM_) : maxM_);
  } catch (...) {
    destroyPlan(p);
    throw std::runtime_error("cuBLASLt has no " + std::string(mode_ == GemmMode::BatchInvariant ? "batch-invariant " : "") +
                             "algorithm for a " + std::to_string(N) + "x" + std::to_string(K) + " " + dtypeName(in) + " GEMM");
  }
  return plans_.emplace(key, p).first->second;
}

void GemmRunner::planInvariant(Plan& p, int N, int K, DType in, DType out, const void* W) {
  const kvsk_dtype kd = static_cast<kvsk_dtype>(in);
  const bool hybrid = invariant_ == InvariantGemm::Hybrid, wgmma = invariant_ == InvariantGemm::Wgmma || hybrid;
  const bool served = wgmma ? kvsk_gemm_wgmma_supported(N, K, kd) && (!hybrid || kvsk_gemm_inv_supported(N, K, kd))
                            : kvsk_gemm_inv_supported(N, K, kd);
  if (invariant_ != InvariantGemm::CublasLt && in == out && served) {
    Bucket b;
    b.maxM = maxM_;
    b.ownSplits = wgmma ? kvsk_gemm_wgmma_splits(N, K, numSms_) : kvsk_gemm_inv_splits(N, K, numSms_);
    // The workspace the automatic choices use up to maxM; counters start at zero and every call leaves them so
    // (hybrid: gemm_inv's up to kHybridInvMaxM, wgmma's beyond, one workspace for both).
    size_t need = wgmma ? kvsk_gemm_wgmma_workspace_bytes(maxM_, N, K, b.ownSplits, numSms_)
                        : kvsk_gemm_inv_workspace_bytes(maxM_, N, K, b.ownSplits, numSms_);
    if (hybrid)
      need = std::max(need, kvsk_gemm_inv_workspace_bytes(std::min(maxM_, kHybridInvMaxM), N, K, b.ownSplits, numSms_));
    if (need > ownWorkspace_.bytes()) {
      KVS_CUDA_CHECK(cudaStreamSynchronize(stream_));  // no call in flight uses the old one
      ownWorkspace_.resize(need);
      KVS_CUDA_CHECK(cudaMemsetAsync(ownWorkspace_.get(), 0, need, stream_));
    }
    b.gemvInvTiles = smallKernel(N, K, in, b.ownSplits, W);
    p.buckets.push_back(b);
    return;
  }
  cublasLtMatmulPreference_t pref;
  KVS_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  KVS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                        &workspaceBytes_, sizeof(workspaceBytes_)));
  // Candidates: the heuristic's list at probeM first, then at other M. The first one that, with split-K
  // forced off, is valid both at maxM and at M = 1 is kept.
  bool found = false;
  for (int probeM : {probeM_, maxM_, 256, 64, 16, 1}) {
    if (found || probeM > maxM_) continue;
    setCols(p.b, probeM);
    setCols(p.d, probeM);
    cublasLtMatmulHeuristicResult_t results[16];
    int count = 0;
    if (cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.d, p.d, pref, 16, results, &count) !=
        CUBLAS_STATUS_SUCCESS)
      continue;
    for (int i = 0; i < count && !found; ++i) {
      cublasLtMatmulAlgo_t algo = results[i].algo;
      const int32_t one = 1;
      const uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
      cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one, sizeof(one));
      cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &none, sizeof(none));
      bool ok = algoAttr(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM) <= 1;
      size_t ws = 0;
      for (int m : {maxM_, 1}) {
        setCols(p.b, m);
        setCols(p.d, m);
        cublasLtMatmulHeuristicResult_t check;
        ok = ok && cublasLtMatmulAlgoCheck(handle_, p.desc, p.a, p.b, p.d, p.d, &algo, &check) == CUBLAS_STATUS_SUCCESS &&
             check.workspaceSize <= workspaceBytes_;
        ws = std::max(ws, check.workspaceSize);
      }
      if (ok) {
        p.buckets.push_back(Bucket{maxM_, false, algo, ws, 0});
        found = true;
      }
    }
  }
  cublasLtMatmulPreferenceDestroy(pref);
  if (!found) throw std::runtime_error("no algorithm");
}

// The upper ends of the fast mode's M buckets: 1, 2, 4, 8, 16, 32, 64, then every 64 up to 1024, then
// quarter steps between powers of two (1280, 1536, 1792, 2048, 2560, ...), and maxM. A step of M = 2^k + 1
// tokens (a 128-token prompt plus BOS) thus runs an algorithm timed at 192, not at 256: cuBLASLt's tile
// count along M (and so how often W is read) follows the M it was picked for.
std::vector<int> GemmRunner::fastBuckets(int maxM) {
  std::vector<int> his;
  auto add = [&](int hi) {
    if (hi < maxM && (his.empty() || hi > his.back())) his.push_back(hi);
  };
  for (int hi = 1; hi <= 64; hi *= 2) add(hi);
  // Every 16 up to 256: a prompt of 128 tokens plus BOS (129 rows) ran the algorithm timed at 192, 1.4 ms more
  // per step than 128 rows on Llama-3-8B (GPU run 15: 7.64 against 6.25 ms).
  for (int hi = 80; hi <= 256; hi += 16) add(hi);
  for (int hi = 320; hi <= 1024; hi += 64) add(hi);
  for (int p = 1024; p < maxM; p *= 2)
    for (int q = 5; q <= 8; ++q) add(p / 4 * q);
  his.push_back(maxM);
  return his;
}

// Buckets M in (lo, hi] for the his of fastBuckets. Per bucket: the heuristic's top candidates at M = hi,
// valid at lo + 1 too, and the GEMV kernel where it applies (hi <= KVSK_GEMV_MAX_M); with W given, each is
// timed (one warm-up, then the best of three) on the real weight and random X, and the fastest kept.
// Without W the GEMV kernel wins where it applies, else the heuristic's first pick.
void GemmRunner::planFast(Plan& p, int N, int K, DType in, DType out, const void* W, int maxM) {
  FastCandidates c;
  c.in = in;
  c.out = out;
  c.gemvRows = {4, 2, 1};  // rows of W per CTA: 4 untimed (preferred); timed, whichever fills the last wave best
  c.gemvServes = [&](int M) { return gemvApplies(M, N, K, in, out); };
  c.gemv = [&](int M, int rows, const void* x, void* y) {
    kvsk_gemv_params g{x, W, y, M, N, K, static_cast<kvsk_dtype>(in), rows, gemvTrigger_};
    KVS_CUDA_CHECK(kvsk_gemv(&g, stream_));
  };
  if (gemvEven_ && W && gemvApplies(1, N, K, in, out)) {  // the even GEMV: one more candidate, timed only
    reserveEven(N, K);
    c.gemvEven = [&](int M, const void* x, void* y) { runEven(x, W, y, M, N, K, in); };
  }
  c.matmul = [&](int, const cublasLtMatmulAlgo_t& algo, const void* x, void* y) {  // p.b, p.d at M columns already
    const float alpha = 1.f, beta = 0.f;
    return cublasLtMatmul(handle_, p.desc, &alpha, W, p.a, x, p.b, &beta, y, p.d, y, p.d, &algo, workspace_,
                          workspaceBytes_, stream_) == CUBLAS_STATUS_SUCCESS;
  };
  planBuckets(p, N, K, maxM, W != nullptr, c);
}

// Calls consider(variant, 0) for each split-K variant of algo that the algorithm supports (none when it does not).
template <typename F>
void GemmRunner::trySplitK(const cublasLtMatmulAlgo_t& base, const F& consider) {
  int32_t support = 0;
  uint32_t schemes = 0;
  size_t written = 0;
  if (cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &support, sizeof(support), &written) !=
          CUBLAS_STATUS_SUCCESS ||
      !support ||
      cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK, &schemes, sizeof(schemes),
                                        &written) != CUBLAS_STATUS_SUCCESS)
    return;
  const uint32_t scheme = schemes & CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE  ? CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE
                          : schemes & CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE ? CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE
                                                                            : CUBLASLT_REDUCTION_SCHEME_NONE;
  if (scheme == CUBLASLT_REDUCTION_SCHEME_NONE) return;
  for (const int32_t splits : {2, 3, 4, 6}) {
    if (algoAttr(base, CUBLASLT_ALGO_CONFIG_SPLITK_NUM) == splits) continue;  // the heuristic's own candidate
    cublasLtMatmulAlgo_t algo = base;
    if (cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof(splits)) !=
            CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme, sizeof(scheme)) !=
            CUBLAS_STATUS_SUCCESS)
      continue;
    consider(algo, 0);
  }
}

// The bucket loop of every fast-mode plan (bf16/f16/f32 here, FP8 and int8 in their files).
void GemmRunner::planBuckets(Plan& p, int N, int K, int maxM, bool timed, const FastCandidates& c) {
  cublasLtMatmulPreference_t pref;
  KVS_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  struct PrefGuard {
    cublasLtMatmulPreference_t p;
    ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
  } prefGuard{pref};
  KVS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                        &workspaceBytes_, sizeof(workspaceBytes_)));
  DeviceBuffer x, y;
  std::optional<BestOfThree> timer;
  if (timed) {
    x.resize(static_cast<size_t>(maxM) * K * dtypeSize(c.in));
    y.resize(static_cast<size_t>(maxM) * N * dtypeSize(c.out));
    kvsk_fill_params f{x.get(), static_cast<kvsk_dtype>(c.in), static_cast<int64_t>(maxM) * K, 0x9e3779b9ull, 1.f, 0.f};
    KVS_CUDA_CHECK(kvsk_fill(&f, stream_));
    if (c.prepare) c.prepare(x.get());
    timer.emplace(stream_);
  }
  int lo = 0;
  for (int hi : fastBuckets(maxM)) {
    if (hi <= lo) continue;
    float bestMs = 1e30f;
    Bucket best{};
    bool found = false;
    if (c.gemvServes(hi) && c.gemvServes(lo + 1)) {
      best = Bucket{hi, true, {}, 0, c.gemvRows.front()};
      found = true;
      bestMs = -1.f;  // untimed: the GEMV wins where it serves
      for (int rows : c.gemvRows) {
        if (!timed) break;
        auto once = [&] { c.gemv(hi, rows, x.get(), y.get()); };
        once();
        const float ms = (*timer)(once);
        if (bestMs < 0.f || ms < bestMs) {
          bestMs = ms;
          best.gemvRows = rows;
        }
      }
      if (timed && c.gemvEven) {
        auto once = [&] { c.gemvEven(hi, x.get(), y.get()); };
        once();
        const float ms = (*timer)(once);
        if (ms < bestMs) {
          bestMs = ms;
          best.gemvEven = true;
        }
      }
    }
    setCols(p.b, hi);
    setCols(p.d, hi);
    cublasLtMatmulHeuristicResult_t results[8];
    int count = 0;
    const int want = hi > 1024 ? 4 : 8;  // compute-bound buckets: fewer, slower candidates (load time)
    if (cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.d, p.d, pref, want, results, &count) != CUBLAS_STATUS_SUCCESS)
      count = 0;
    // One candidate: valid at lo + 1 and hi within the workspace, then timed (untimed: the heuristic's order).
    auto consider = [&](const cublasLtMatmulAlgo_t& algo, int order) {
      size_t ws = 0;
      for (const int m : {lo + 1, hi}) {
        setCols(p.b, m);
        setCols(p.d, m);
        cublasLtMatmulHeuristicResult_t check;
        if (cublasLtMatmulAlgoCheck(handle_, p.desc, p.a, p.b, p.d, p.d, &algo, &check) != CUBLAS_STATUS_SUCCESS ||
            check.workspaceSize > workspaceBytes_)
          return false;
        ws = std::max(ws, check.workspaceSize);
      }
      float ms = static_cast<float>(order);
      if (timed) {
        auto once = [&] { return c.matmul(hi, algo, x.get(), y.get()); };
        if (!once()) return false;
        ms = (*timer)(once);
      }
      if (ms < bestMs) {
        bestMs = ms;
        best = Bucket{hi, false, algo, ws, 0};
        found = true;
      }
      return true;
    };
    for (int i = 0; i < count; ++i) consider(results[i].algo, i);
    if (timed && splitK_ && hi > 16 && hi <= 512 && (c.in == DType::BF16 || c.in == DType::F16))
      for (int i = 0; i < std::min(count, 4); ++i) trySplitK(results[i].algo, consider);
    if (!found) throw std::runtime_error("none at M " + std::to_string(lo + 1) + ".." + std::to_string(hi));
    p.buckets.push_back(best);
    lo = hi;
  }
  KVS_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the timing buffers are freed on return
}

void GemmRunner::run(const void* X, const void* W, void* Y, int M, int N, int K, DType in, DType out, bool gemvInv) {
  if (M <= 0) return;
  if (M > maxM_) throw std::runtime_error("GEMM with M=" + std::to_string(M) + " > planned maximum " + std::to_string(maxM_));
  Plan& p = get(N, K, in, out, nullptr, 0);
  const Bucket* b = &bucketFor(p, M);
  if (b->ownSplits > 0) return runOwn(*b, X, W, Y, M, N, K, in);
  if (b->gemv && b->gemvEven) return runEven(X, W, Y, M, N, K, in);
  if (b->gemv && gemvInv && fastGemvInv_) {  // o_proj, down_proj (fastGemvInvFromEnv)
    const int splits = kvsk_gemm_inv_splits(N, K, numSms_);
    const kvsk_gemv_inv_params g{X, W, Y, M, N, K, static_cast<kvsk_dtype>(in), splits, 0, gemvInvTrigger_};
    if (splits > 1 && kvsk_gemv_inv_supported(M, N, K, static_cast<kvsk_dtype>(in), splits)) {
      KVS_CUDA_CHECK(kvsk_gemv_inv(&g, stream_));
      return;
    }
  }
  if (b->gemv) {
    kvsk_gemv_params g{X, W, Y, M, N, K, static_cast<kvsk_dtype>(in), b->gemvRows, gemvTrigger_};
    KVS_CUDA_CHECK(kvsk_gemv(&g, stream_));
    return;
  }
  setCols(p.b, M);
  setCols(p.d, M);
  const float alpha = 1.f, beta = 0.f;
  KVS_CUBLAS_CHECK(cublasLtMatmul(handle_, p.desc, &alpha, W, p.a, X, p.b, &beta, Y, p.d, Y, p.d, &b->algo,
                                  workspace_, workspaceBytes_, stream_));
}

bool GemmRunner::ownOnGemvInv(const Bucket& b, int M) const {
  return b.gemvInvTiles > 0 && !ownOnWgmma(M) && M <= gemvInvMaxM_;
}

// Where gemm_inv would serve M <= 16, which kernel does (the same bits either way): given the weight, the fastest
// of gemm_inv and gemv_inv at 1 and 2 n8 tiles a warp, by the sum of their times at M = 1 and 8 (random X; best of
// three after a warm-up); without it, gemv_inv at 2 tiles for a weight of several k-partitions and gemm_inv for one
// (GPU run 15 on Llama-3-8B, PDL chains at M = 1: gemv_inv 0.81x gemm_inv's time on o, 0.94x on down, 1.2x on
// gate/up). 0 = gemm_inv.
int GemmRunner::smallKernel(int N, int K, DType in, int splits, const void* W) {
  const kvsk_dtype kd = static_cast<kvsk_dtype>(in);
  if (!gemvInv_ || invariant_ == InvariantGemm::Wgmma || !kvsk_gemv_inv_supported(1, N, K, kd, splits)) return 0;
  if (!W) return splits > 1 && K > 64 ? 2 : 0;  // several k-partitions (each non-empty: K has more than one chunk)
  const int maxM = std::min(8, maxM_);
  DeviceBuffer x(static_cast<size_t>(maxM) * K * dtypeSize(in)), y(static_cast<size_t>(maxM) * N * dtypeSize(in));
  kvsk_fill_params f{x.get(), kd, static_cast<int64_t>(maxM) * K, 0x51ed27ull, 1.f, 0.f};
  KVS_CUDA_CHECK(kvsk_fill(&f, stream_));
  BestOfThree timer(stream_);
  auto time = [&](int tiles) {
    float ms = 0;
    for (const int m : {1, maxM}) {
      auto once = [&] {
        if (tiles == 0) {
          const kvsk_gemm_inv_params g{x.get(), W, y.get(), m, N, K, kd, splits, KVSK_GEMM_INV_TILE_AUTO, -1,
                                       ownWorkspace_.get(), ownWorkspace_.bytes(), numSms_};
          KVS_CUDA_CHECK(kvsk_gemm_inv(&g, stream_));
        } else {
          const kvsk_gemv_inv_params g{x.get(), W, y.get(), m, N, K, kd, splits, tiles, gemvInvTrigger_};
          KVS_CUDA_CHECK(kvsk_gemv_inv(&g, stream_));
        }
      };
      once();
      ms += timer(once);
    }
    return ms;
  };
  int best = 0;
  float bestMs = time(0);
  for (const int tiles : {1, 2}) {
    const float ms = time(tiles);
    if (ms < bestMs) {
      bestMs = ms;
      best = tiles;
    }
  }
  KVS_CUDA_CHECK(cudaStreamSynchronize(stream_));  // x and y are freed on return
  return best;
}

void GemmRunner::runOwn(const Bucket& b, const void* X, const void* W, void* Y, int M, int N, int K, DType in) {
  if (ownOnWgmma(M)) {
    const kvsk_gemm_wgmma_params g{X, W, Y, M, N, K, static_cast<kvsk_dtype>(in), b.ownSplits, KVSK_GEMM_WGMMA_TILE_AUTO,
                                   -1, ownWorkspace_.get(), ownWorkspace_.bytes(), numSms_};
    KVS_CUDA_CHECK(kvsk_gemm_wgmma(&g, stream_));
    return;
  }
  if (ownOnGemvInv(b, M)) {
    const kvsk_gemv_inv_params g{X, W, Y, M, N, K, static_cast<kvsk_dtype>(in), b.ownSplits, b.gemvInvTiles,
                                   gemvInvTrigger_};
    KVS_CUDA_CHECK(kvsk_gemv_inv(&g, stream_));
    return;
  }
  kvsk_gemm_inv_params g{X, W, Y, M, N, K, static_cast<kvsk_dtype>(in), b.ownSplits, KVSK_GEMM_INV_TILE_AUTO, -1,
                         ownWorkspace_.get(), ownWorkspace_.bytes(), numSms_};
  KVS_CUDA_CHECK(kvsk_gemm_inv(&g, stream_));
}

int GemmRunner::ownSplits(int N, int K, DType in, DType out) {
  const Plan& p = get(N, K, in, out, nullptr, 0);
  return p.buckets.size() == 1 ? p.buckets[0].ownSplits : 0;
}

int GemmRunner::gemvRows(int M, int N, int K, DType in, DType out) {
  if (M <= 0 || M > maxM_) return 0;
  const Bucket& b = bucketFor(get(N, K, in, out, nullptr, 0), M);
  return b.gemv && !b.gemvEven ? b.gemvRows : 0;
}

const GemmRunner::Bucket& GemmRunner::bucketFor(const Plan& p, int M) const {
  for (const Bucket& c : p.buckets)
    if (M <= c.maxM) return c;
  throw std::runtime_error("GEMM with M=" + std::to_string(M) + " beyond the " + std::to_string(p.buckets.back().maxM) +
                           " it was planned for");
}

std::string GemmRunner::describe(int N, int K, DType in, DType out) {
  const Plan& p = get(N, K, in, out, nullptr, 0);
  if (p.buckets.size() != 1 || p.buckets[0].ownSplits == 0) return describeBuckets(p);
  // Our GEMM: its k-partitions, then the kernel, tile and split it takes per range of M.
  const bool hybrid = invariant_ == InvariantGemm::Hybrid;
  const int splits = p.buckets[0].ownSplits, chunks = (K + 63) / 64;
  std::string s = std::string("own ") + invariantGemmKernels(invariant_) + ", K in " +
                  std::to_string(splits) + " partitions of " + std::to_string((chunks + splits - 1) / splits * 64) + ":";
  const char* invNames[] = {"", "16x64", "64x128", "128x128"};
  const char* wgmmaNames[] = {"", "64x128", "128x128", "128x256"};
  const kvsk_dtype kd = static_cast<kvsk_dtype>(in);
  auto label = [&](int m) -> std::string {
    if (ownOnWgmma(m)) {
      const kvsk_gemm_wgmma_params g{nullptr, nullptr, nullptr, m, N, K, kd, splits, KVSK_GEMM_WGMMA_TILE_AUTO, -1,
                                     ownWorkspace_.get(), ownWorkspace_.bytes(), numSms_};
      const kvsk_gemm_wgmma_choice c = kvsk_gemm_wgmma_choose(&g);
      return std::string(hybrid ? "wgmma " : "") + wgmmaNames[c.tile] + (c.split ? " split" : "");
    }
    if (ownOnGemvInv(p.buckets[0], m))
      return std::string(hybrid ? "inv " : "") + "gemv_inv " + std::to_string(p.buckets[0].gemvInvTiles) + " tiles";
    const kvsk_gemm_inv_params g{nullptr, nullptr, nullptr, m, N, K, kd, splits, KVSK_GEMM_INV_TILE_AUTO, -1,
                                 ownWorkspace_.get(), ownWorkspace_.bytes(), numSms_};
    const kvsk_gemm_inv_choice c = kvsk_gemm_inv_choose(&g);
    return std::string(hybrid ? "inv " : "") + invNames[c.tile] + (c.split ? " split" : "");
  };
  std::string prev = label(1);
  for (int m = 2; m <= maxM_ + 1; ++m) {
    const std::string cur = m <= maxM_ ? label(m) : "";
    if (cur != prev) s += " M<=" + std::to_string(m - 1) + " " + prev + ";";
    prev = cur;
  }
  s.pop_back();
  return s;
}

std::string GemmRunner::describeBuckets(const Plan& p) const {
  std::string s;
  for (const Bucket& b : p.buckets) {
    if (b.ownSplits > 0) {
      s += "M<=" + std::to_string(b.maxM) + ": own " +
           invariantGemmKernels(invariant_) +
           ", K in " + std::to_string(b.ownSplits) + " partitions; ";
      continue;
    }
    if (b.gemv) {
      s += "M<=" + std::to_string(b.maxM) + ": gemv " + (b.gemvEven ? "even" : std::to_string(b.gemvRows) + " rows/CTA") + "; ";
      continue;
    }
    s += "M<=" + std::to_string(b.maxM) + ": algo " + std::to_string(algoAttr(b.algo, CUBLASLT_ALGO_CONFIG_ID)) +
         " tile " + std::to_string(algoAttr(b.algo, CUBLASLT_ALGO_CONFIG_TILE_ID)) + " stages " +
         std::to_string(algoAttr(b.algo, CUBLASLT_ALGO_CONFIG_STAGES_ID)) + " splitK " +
         std::to_string(algoAttr(b.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM)) + "; ";
  }
  if (!s.empty()) s.resize(s.size() - 2);
  return s;
}

}  // namespace kvs::cuda
