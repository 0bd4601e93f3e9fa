// GEMM plans carried from one GemmRunner to another, as an engine build carries them to a later load
// (engines/cuda/gemm_import.cc): a timed plan, exported and imported into a fresh runner, gives the same
// choices and the same output bits at every M; a smaller runner takes it cut to its maxM; and an imported
// plan is refused, with nothing installed, when an M range is missing or out of order, or when cuBLASLt
// rejects an algorithm (here: one timed for float32, offered to a bf16 plan of the same shape, which
// cublasLtMatmulAlgoCheck documents as CUBLAS_STATUS_INVALID_VALUE: descriptors that do not match the algo).
#include <cstring>

#include "gemm.h"
#include "harness.h"

namespace kt {

namespace {

using kvs::cuda::GemmChoice;
using kvs::cuda::GemmMode;
using kvs::cuda::GemmRunner;

bool sameChoices(const std::vector<GemmChoice>& a, const std::vector<GemmChoice>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].mMin != b[i].mMin || a[i].mMax != b[i].mMax || a[i].gemv != b[i].gemv || a[i].gemvRows != b[i].gemvRows ||
        (!a[i].gemv && a[i].algo != b[i].algo))
      return false;
  return true;
}

// Y of both runners at M, bit for bit.
bool sameOutput(GemmRunner& a, GemmRunner& b, const Buf& X, const Buf& W, int M, int N, int K, kvsk_dtype dt) {
  const kvs::DType kd = static_cast<kvs::DType>(dt);
  Buf Ya(dt, (size_t)M * N), Yb(dt, (size_t)M * N);
  Ya.poison();
  Yb.poison();
  a.run(X.dev, W.dev, Ya.dev, M, N, K, kd, kd);
  b.run(X.dev, W.dev, Yb.dev, M, N, K, kd, kd);
  CK(cudaDeviceSynchronize());
  Ya.down();
  Yb.down();
  return std::memcmp(Ya.host.data(), Yb.host.data(), Ya.host.size()) == 0;
}

void importShape(cudaStream_t stream, int N, int K) {
  const int maxM = 512;
  const std::string name = "N" + std::to_string(N) + " K" + std::to_string(K);
  Buf X(KVSK_BF16, (size_t)maxM * K), W(KVSK_BF16, (size_t)N * K);
  for (size_t i = 0; i < X.n; ++i) X.set(i, uni(-1, 1));
  for (size_t i = 0; i < W.n; ++i) W.set(i, uni(-1, 1));
  X.up();
  W.up();
  const kvs::DType bf = kvs::DType::BF16, f32 = kvs::DType::F32;

  GemmRunner timed(stream, maxM, GemmMode::Fast);
  timed.plan(N, K, bf, bf, W.dev);
  const std::vector<GemmChoice> plan = timed.exportPlan(N, K, bf, bf);
  GemmRunner restored(stream, maxM, GemmMode::Fast);
  const std::string why = restored.importPlan(N, K, bf, bf, plan);
  reportBool("gemm", "import " + name + " accepted", 1, why.empty(), why);
  reportBool("gemm", "import " + name + " exports the same choices", 1, sameChoices(plan, restored.exportPlan(N, K, bf, bf)),
             timed.describe(N, K, bf, bf));
  bool same = true;
  for (int M : {1, 2, 3, 8, 9, 64, 100, 129, 512}) same = same && sameOutput(timed, restored, X, W, M, N, K, KVSK_BF16);
  reportBool("gemm", "import " + name + " same output bits at M 1..512", 9, same, "");

  GemmRunner small(stream, 100, GemmMode::Fast);
  const std::string whySmall = small.importPlan(N, K, bf, bf, plan);
  reportBool("gemm", "import " + name + " into a runner of maxM 100", 1,
             whySmall.empty() && small.exportPlan(N, K, bf, bf).back().mMax == 100 && sameOutput(timed, small, X, W, 100, N, K, KVSK_BF16),
             whySmall);

  auto refused = [&](const std::string& what, const std::vector<GemmChoice>& bad, const char* expect) {
    GemmRunner r(stream, maxM, GemmMode::Fast);
    const std::string w = r.importPlan(N, K, bf, bf, bad);
    const std::string again = r.importPlan(N, K, bf, bf, plan);  // nothing was installed: the good plan still goes in
    reportBool("gemm", "import " + name + " refused: " + what, 1, w.find(expect) != std::string::npos && again.empty(),
               w + (again.empty() ? "" : "; then: " + again));
  };
  std::vector<GemmChoice> gap = plan;
  gap.erase(gap.begin() + 1);
  refused("a missing M range", gap, "does not follow");
  std::vector<GemmChoice> shortPlan = plan;
  shortPlan.pop_back();
  refused("ranges ending below maxM", shortPlan, "below the 512");

  // float32 algorithms of the same shape, each offered for its M range of the bf16 plan.
  Buf Wf(KVSK_F32, (size_t)N * K);
  for (size_t i = 0; i < Wf.n; ++i) Wf.set(i, uni(-1, 1));
  Wf.up();
  GemmRunner f32Runner(stream, maxM, GemmMode::Fast);
  f32Runner.plan(N, K, f32, f32, Wf.dev);
  std::vector<GemmChoice> foreign = f32Runner.exportPlan(N, K, f32, f32);
  refused("float32 algorithms for a bf16 GEMM", foreign, "cuBLASLt rejects the algorithm");

  GemmRunner invariant(stream, maxM, GemmMode::BatchInvariant);
  reportBool("gemm", "import " + name + " refused in batch-invariant mode", 1,
             !invariant.importPlan(N, K, bf, bf, plan).empty(), "");
}

}  // namespace

void gemmImportTests() {
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  for (auto [N, K] : {std::pair{6144, 4096}, std::pair{1000, 72}}) try {
      importShape(stream, N, K);
    } catch (const std::exception& e) {
      reportBool("gemm", "import N" + std::to_string(N) + " K" + std::to_string(K), 0, false, e.what());
    }
  CK(cudaStreamDestroy(stream));
}

}  // namespace kt
