// What the FP8 and the int8 GEMM tests (fp8_gemm_test.cu, int8_gemm_test.cu) check the same way: case names, the
// output dtype's rounding, and a quantized plan carried between runners (export, import, the same bits; foreign
// choices refused with nothing installed). QuantGemm names a kind's GemmRunner entry points.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "gemm.h"
#include "harness.h"

namespace kt {

inline std::string gemmName(kvsk_dtype dt, int N, int K) {
  return std::string(dtName(dt)) + " N" + std::to_string(N) + " K" + std::to_string(K);
}
// The relative rounding of a bf16 / f16 output.
inline double outRtol(kvsk_dtype dt) { return dt == KVSK_BF16 ? 1.0 / 256 : 1.0 / 1024; }

struct QuantGemm {
  std::string suite;  // "fp8" or "int8": the report's suite and the start of the case names
  std::string what;   // "an FP8 GEMM": what a bf16 plan's algorithms are refused for
  void (kvs::cuda::GemmRunner::*plan)(int, int, kvs::DType, const void*, const float*, int);
  std::vector<kvs::cuda::GemmChoice> (kvs::cuda::GemmRunner::*exportPlan)(int, int, kvs::DType);
  std::string (kvs::cuda::GemmRunner::*importPlan)(int, int, kvs::DType, const std::vector<kvs::cuda::GemmChoice>&, int);
  std::string (kvs::cuda::GemmRunner::*describe)(int, int, kvs::DType);
  // The kind's run on bf16/f16 X [M, K] into Y [M, N].
  std::function<void(kvs::cuda::GemmRunner&, const void* X, const void* W8, const float* wScale, void* Y, int M, int N,
                     int K, kvs::DType io)>
      run;
};

// A bf16 plan of W8 [N, K] (wScale [N]) timed, exported and imported into a new runner gives the same output bits
// at M 1..512; a GEMV range of 4 rows per CTA (the bf16 GEMV's) and the bf16 plan's cuBLASLt algorithms are
// refused, and the good plan then still goes in (nothing was installed).
inline void quantImportCase(const QuantGemm& q, cudaStream_t stream, int N, int K, const void* W8, const float* wScale) {
  using kvs::cuda::GemmChoice;
  using kvs::cuda::GemmMode;
  using kvs::cuda::GemmRunner;
  const int maxM = 512;
  const kvs::DType bf = kvs::DType::BF16;
  Buf X(KVSK_BF16, (size_t)maxM * K);
  for (size_t i = 0; i < X.n; ++i) X.set(i, uni(-1, 1));
  X.up();
  GemmRunner timed(stream, maxM, GemmMode::Fast);
  (timed.*q.plan)(N, K, bf, W8, wScale, 0);
  const std::vector<GemmChoice> plan = (timed.*q.exportPlan)(N, K, bf);
  GemmRunner restored(stream, maxM, GemmMode::Fast);
  const std::string why = (restored.*q.importPlan)(N, K, bf, plan, 0);
  bool same = why.empty();
  for (int M : {1, 8, 16, 17, 100, 512}) {
    if (!same) break;
    Buf Ya(KVSK_BF16, (size_t)M * N), Yb(KVSK_BF16, (size_t)M * N);
    q.run(timed, X.dev, W8, wScale, Ya.dev, M, N, K, bf);
    q.run(restored, X.dev, W8, wScale, Yb.dev, M, N, K, bf);
    CK(cudaStreamSynchronize(stream));
    Ya.down();
    Yb.down();
    same = Ya.host == Yb.host;
  }
  const std::string n = q.suite + " import N" + std::to_string(N) + " K" + std::to_string(K);
  reportBool(q.suite, n + ": same output bits at M 1..512", 6, same, why.empty() ? (timed.*q.describe)(N, K, bf) : why);

  auto refused = [&](const std::string& what, const std::vector<GemmChoice>& bad, const char* expect) {
    GemmRunner r(stream, maxM, GemmMode::Fast);
    const std::string got = (r.*q.importPlan)(N, K, bf, bad, 0);
    const std::string again = (r.*q.importPlan)(N, K, bf, plan, 0);  // nothing was installed
    reportBool(q.suite, n + " refused: " + what, 1, got.find(expect) != std::string::npos && again.empty(),
               got + (again.empty() ? "" : "; then: " + again));
  };
  std::vector<GemmChoice> bf16Rows = plan;  // the bf16 GEMV's 4 rows per CTA
  bf16Rows[0].gemv = true;
  bf16Rows[0].gemvRows = 4;
  refused("a GEMV range of 4 rows per CTA", bf16Rows, "does not serve");
  Buf Wb(KVSK_BF16, (size_t)N * K);
  for (size_t i = 0; i < Wb.n; ++i) Wb.set(i, uni(-1, 1));
  Wb.up();
  GemmRunner bf16Runner(stream, maxM, GemmMode::Fast);
  bf16Runner.plan(N, K, bf, bf, Wb.dev);
  const std::vector<GemmChoice> bf16Plan = bf16Runner.exportPlan(N, K, bf, bf);
  std::vector<GemmChoice> foreign = plan;  // the same M ranges: fastBuckets(512) for both
  bool replaced = false;
  for (size_t i = 0; i < foreign.size() && i < bf16Plan.size(); ++i)
    if (!foreign[i].gemv && !bf16Plan[i].gemv) {
      foreign[i].algo = bf16Plan[i].algo;
      replaced = true;
    }
  if (replaced) refused("bf16 algorithms for " + q.what, foreign, "cuBLASLt rejects the algorithm");
  else reportBool(q.suite, n + " refused: bf16 algorithms for " + q.what, 1, false, "no M range where both plans run cuBLASLt");
}

}  // namespace kt
