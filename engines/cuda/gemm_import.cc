// GemmRunner's plans in and out of an engine: exportPlan turns a fast-mode plan into GemmChoices (the manifest's
// tunedGemms, model_gemms.cc), importPlan installs them in a later process instead of timing again. An
// imported cuBLASLt algorithm is the very cublasLtMatmulAlgo_t the build timed, byte for byte, so the engine
// runs the same kernels as the build did; cublasLtMatmulAlgoCheck vets it first, since the bytes come from a
// file and are only meaningful to the cuBLASLt version, GPU and shape that made them. An even-GEMV record
// (GemmChoice::gemvEven) is refused by a runner made with KVSERVE_GEMV_EVEN=0, in one line, and the caller
// times the shape again (its grid is not recorded: it is one wave of this device, the target the engine was
// built for).
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cuda_check.h"
#include "gemm.h"
#include "kvserve_kernels.h"

namespace kvs::cuda {

static_assert(sizeof(cublasLtMatmulAlgo_t) == sizeof(GemmChoice::algo), "cublasLtMatmulAlgo_t is 8 uint64 of opaque data");

namespace {

std::string range(int lo, int hi) { return lo == hi ? std::to_string(lo) : std::to_string(lo) + ".." + std::to_string(hi); }

}  // namespace

std::vector<GemmChoice> GemmRunner::exportPlan(int N, int K, DType in, DType out) {
  return exportBuckets(get(N, K, in, out, nullptr, 0));
}

std::vector<GemmChoice> GemmRunner::exportPlanFp8(int N, int K, DType io) {
  return exportBuckets(getFp8(N, K, io, nullptr, nullptr, 0));
}

std::vector<GemmChoice> GemmRunner::exportPlanInt8(int N, int K, DType io) {
  return exportBuckets(getInt8(N, K, io, nullptr, nullptr, 0));
}

std::vector<GemmChoice> GemmRunner::exportBuckets(const Plan& p) const {
  std::vector<GemmChoice> choices;
  int lo = 0;
  for (const Bucket& b : p.buckets) {
    if (b.ownSplits > 0) throw std::runtime_error("the batch-invariant mode's own GEMM has no plan to export");
    GemmChoice c;
    c.mMin = lo + 1;
    c.mMax = b.maxM;
    c.gemv = b.gemv;
    if (b.gemv) {
      c.gemvEven = b.gemvEven;
      c.gemvRows = b.gemvEven ? 0 : b.gemvRows;
    } else {
      std::memcpy(c.algo.data(), &b.algo, sizeof(b.algo));
      c.workspace = b.workspace;
      c.algoId = algoAttr(b.algo, CUBLASLT_ALGO_CONFIG_ID);
      c.tile = algoAttr(b.algo, CUBLASLT_ALGO_CONFIG_TILE_ID);
      c.stages = algoAttr(b.algo, CUBLASLT_ALGO_CONFIG_STAGES_ID);
      c.splitK = algoAttr(b.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM);
    }
    choices.push_back(c);
    lo = b.maxM;
  }
  return choices;
}

std::string GemmRunner::importPlan(int N, int K, DType in, DType out, const std::vector<GemmChoice>& choices, int maxM) {
  if (mode_ != GemmMode::Fast) return "the GEMMs run in --batch-invariant mode (one algorithm per shape, not per M)";
  const Key key{N, K, static_cast<int>(in), static_cast<int>(out)};
  if (plans_.count(key)) return "the shape is planned already";
  const int limit = maxM > 0 ? std::min(maxM, maxM_) : maxM_;
  bool even = false;
  for (const GemmChoice& c : choices) {
    if (!c.gemv || !c.gemvEven || c.mMin > limit) continue;
    if (!gemvEven_)
      return "M " + range(c.mMin, c.mMax) + ": the even GEMV (gemv_even) is off in this process (KVSERVE_GEMV_EVEN=0)";
    even = true;
  }
  Plan p = makePlan(N, K, in, out);
  const std::string why = importBuckets(p, choices, limit, [&](int m, const GemmChoice& c) {
    return (c.gemvEven || c.gemvRows == 1 || c.gemvRows == 2 || c.gemvRows == 4) && gemvApplies(m, N, K, in, out);
  });
  if (!why.empty()) {
    destroyPlan(p);
    return why;
  }
  if (even) reserveEven(N, K);
  plans_.emplace(key, p);
  return "";
}

std::string GemmRunner::importPlanFp8(int N, int K, DType io, const std::vector<GemmChoice>& choices, int maxM) {
  if (mode_ != GemmMode::Fast) return "FP8 linear layers are not offered with --batch-invariant";
  const Fp8Key key{N, K, static_cast<int>(io)};
  if (fp8Plans_.count(key)) return "the shape is planned already";
  const int limit = maxM > 0 ? std::min(maxM, maxM_) : maxM_;
  Plan p = makePlanFp8(N, K, io);
  reserveFp8Scratch(limit, K);
  setFp8Scales(p, nullptr);
  const std::string why = importBuckets(p, choices, limit, [&](int m, const GemmChoice& c) {
    return !c.gemvEven && (c.gemvRows == 16 || c.gemvRows == 32 || c.gemvRows == 64) && fp8GemvApplies(m, N, K, io);
  });
  if (!why.empty()) {
    destroyPlan(p);
    return why;
  }
  fp8Plans_.emplace(key, p);
  return "";
}

std::string GemmRunner::importPlanInt8(int N, int K, DType io, const std::vector<GemmChoice>& choices, int maxM) {
  const Fp8Key key{N, K, static_cast<int>(io)};
  if (int8Plans_.count(key)) return "the shape is planned already";
  const int limit = maxM > 0 ? std::min(maxM, maxM_) : maxM_;
  Plan p = makePlanInt8(N, K);
  reserveInt8Scratch(limit, N, K);
  const std::string why = importBuckets(p, choices, limit, [&](int m, const GemmChoice& c) {
    return !c.gemvEven && (c.gemvRows == 16 || c.gemvRows == 32 || c.gemvRows == 64) && int8GemvApplies(m, N, K, io);
  });
  if (!why.empty()) {
    destroyPlan(p);
    return why;
  }
  int8Plans_.emplace(key, p);
  return "";
}

template <typename GemvServes>
std::string GemmRunner::importBuckets(Plan& p, const std::vector<GemmChoice>& choices, int limit, const GemvServes& gemvServes) {
  std::string why;
  int lo = 0;
  for (const GemmChoice& c : choices) {
    if (lo >= limit) break;  // ranges beyond the largest M this runner is called with
    const std::string at = "M " + range(c.mMin, c.mMax);
    if (c.mMin != lo + 1 || c.mMax < c.mMin) {
      why = at + " does not follow M " + std::to_string(lo);
      break;
    }
    const int hi = std::min(c.mMax, limit);
    Bucket b;
    b.maxM = hi;
    if (c.gemv) {
      if (!gemvServes(lo + 1, c) || !gemvServes(hi, c)) {
        why = at + (c.gemvEven ? std::string(": the even GEMV does not serve this shape at these M")
                               : ": the GEMV kernel does not serve this shape at these M with " + std::to_string(c.gemvRows) +
                                     " rows per CTA");
        break;
      }
      b.gemv = true;
      b.gemvRows = c.gemvRows;
      b.gemvEven = c.gemvEven;
    } else {
      std::memcpy(&b.algo, c.algo.data(), sizeof(b.algo));
      for (int m : {lo + 1, hi}) {
        setCols(p.b, m);
        setCols(p.d, m);
        cublasLtMatmulHeuristicResult_t check{};
        const cublasStatus_t st = cublasLtMatmulAlgoCheck(handle_, p.desc, p.a, p.b, p.d, p.d, &b.algo, &check);
        if (st != CUBLAS_STATUS_SUCCESS) {
          why = at + ": cuBLASLt rejects the algorithm at M " + std::to_string(m) + " (" + cublasLtGetStatusName(st) + ")";
          break;
        }
        if (check.workspaceSize > workspaceBytes_) {
          why = at + ": the algorithm needs " + std::to_string(check.workspaceSize) + " bytes of workspace, more than the " +
                std::to_string(workspaceBytes_) + " here";
          break;
        }
        b.workspace = std::max(b.workspace, check.workspaceSize);
      }
      if (!why.empty()) break;
    }
    p.buckets.push_back(b);
    lo = hi;
  }
  if (why.empty() && lo < limit)
    why = "the M ranges end at " + std::to_string(lo) + ", below the " + std::to_string(limit) + " this engine runs";
  return why;
}

}  // namespace kvs::cuda
