// The GEMM wrapper (engines/cuda/gemm.cc) against a float64 CPU reference of the same dtype-rounded inputs,
// in both modes:
// - batch-invariant: every row computed in a call of M = maxM equals, bit for bit, the same row computed alone
//   (M = 1) and inside a call of M = 37, for algorithms picked at probe M 512 and 16;
// - fast: M = 1, 2, 3, 5, 8, 16, 37, 100, 512 (one timed kernel per M bucket: cuBLASLt or, up to M = 8 for
//   bf16/f16, the GEMV kernel); the GEMV kernel alone at M 2..8 against float64, and its rows checked to be
//   the same bits whatever M they are computed in.
// Tolerance (relative to the row's |x||w| scale): f32 2e-5 (true fp32, no TF32: float32 sums of K = 14336
// terms reach ~1.8e-5 of the scale on an H200), bf16/f16 output rounding
// 2^-8 / 2^-11 plus accumulation: atol = 8e-3 / 2e-3 of sqrt(K)-scaled magnitude.
#include <algorithm>
#include <cstring>

#include "gemm.h"
#include "harness.h"

namespace kt {

namespace {

struct Shape { int N, K; };
const Shape kShapes[] = {{192, 64}, {512, 64}, {1024, 512}, {6144, 4096}, {4096, 14336}, {1000, 72}};

// Rows `rows` of Y [M, N] against float64 X W^T.
ErrStat checkRows(const Buf& X, const Buf& W, const Buf& Y, int N, int K, kvsk_dtype dt, const std::vector<int>& rows) {
  const double scale = std::sqrt((double)K) / 3.0;  // std of a dot of U(-1,1) x U(-1,1)
  const double atol = (dt == KVSK_F32 ? 2e-5 : dt == KVSK_BF16 ? 8e-3 : 2e-3) * scale;
  const double rtol = dt == KVSK_F32 ? 1e-5 : dt == KVSK_BF16 ? 8e-3 : 2e-3;
  std::vector<ErrStat> per(rows.size());
  parallelFor((int)rows.size(), [&](int ri) {
    const int m = rows[ri];
    for (int n = 0; n < N; ++n) {
      double acc = 0;
      for (int k = 0; k < K; ++k) acc += (double)X.get((size_t)m * K + k) * W.get((size_t)n * K + k);
      per[ri].add(Y.get((size_t)m * N + n), acc, atol, rtol);
    }
  });
  ErrStat st;
  for (auto& e : per) { st.worst = std::max(st.worst, e.worst); st.maxAbs = std::max(st.maxAbs, e.maxAbs); st.bad += e.bad; st.n += e.n; }
  return st;
}

std::string shapeName(kvsk_dtype dt, Shape sh) {
  return std::string(dtName(dt)) + " N" + std::to_string(sh.N) + " K" + std::to_string(sh.K);
}

void invariantTests(cudaStream_t stream) {
  const int maxM = 512;
  for (int probe : {maxM, 16}) {
    kvs::cuda::GemmRunner gemm(stream, maxM, kvs::cuda::GemmMode::BatchInvariant, probe);
    for (kvsk_dtype dt : {KVSK_F32, KVSK_BF16, KVSK_F16})
      for (Shape sh : kShapes) try {
        const int N = sh.N, K = sh.K;
        const kvs::DType kd = static_cast<kvs::DType>(dt);
        Buf X(dt, (size_t)maxM * K), W(dt, (size_t)N * K), Y(dt, (size_t)maxM * N), Y1(dt, (size_t)maxM * N);
        for (size_t i = 0; i < X.n; ++i) X.set(i, uni(-1, 1));
        for (size_t i = 0; i < W.n; ++i) W.set(i, uni(-1, 1));
        X.up(); W.up(); Y.poison(); Y1.poison();
        gemm.run(X.dev, W.dev, Y.dev, maxM, N, K, kd, kd);
        // Row i alone (M = 1) for a sample of rows, and rows [0, 37) as one M = 37 call.
        const size_t rowBytes = (size_t)N * dtSize(dt);
        std::vector<int> sample = {0, 1, 36, 200, maxM - 1};
        for (int i : sample)
          gemm.run(static_cast<const char*>(X.dev) + (size_t)i * K * dtSize(dt), W.dev,
                   static_cast<char*>(Y1.dev) + (size_t)i * rowBytes, 1, N, K, kd, kd);
        Buf Y37(dt, (size_t)37 * N);
        gemm.run(X.dev, W.dev, Y37.dev, 37, N, K, kd, kd);
        CK(cudaStreamSynchronize(stream));
        Y.down(); Y1.down(); Y37.down();
        bool inv = true;
        for (int i : sample) inv = inv && std::memcmp(&Y.host[(size_t)i * rowBytes], &Y1.host[(size_t)i * rowBytes], rowBytes) == 0;
        inv = inv && std::memcmp(Y.host.data(), Y37.host.data(), (size_t)37 * rowBytes) == 0;
        const std::string name = shapeName(dt, sh) + " invariant probeM" + std::to_string(probe);
        reportBool("gemm", name + " batch invariant (M=1, 37 vs 512)", 7, inv, gemm.describe(N, K, kd, kd));
        report("gemm", name + " vs float64", 5, checkRows(X, W, Y, N, K, dt, {0, 3, 77, 255, 511}));
      } catch (const std::exception& e) {
        reportBool("gemm", shapeName(dt, sh) + " invariant", 0, false, e.what());
      }
  }
}

void fastTests(cudaStream_t stream) {
  const int maxM = 512;
  kvs::cuda::GemmRunner gemm(stream, maxM, kvs::cuda::GemmMode::Fast);
  for (kvsk_dtype dt : {KVSK_F32, KVSK_BF16, KVSK_F16})
    for (Shape sh : kShapes) try {
      const int N = sh.N, K = sh.K;
      const kvs::DType kd = static_cast<kvs::DType>(dt);
      Buf X(dt, (size_t)maxM * K), W(dt, (size_t)N * K);
      for (size_t i = 0; i < X.n; ++i) X.set(i, uni(-1, 1));
      for (size_t i = 0; i < W.n; ++i) W.set(i, uni(-1, 1));
      X.up(); W.up();
      gemm.plan(N, K, kd, kd, W.dev);  // timed on this weight
      for (int M : {1, 2, 3, 5, 8, 16, 37, 100, 512}) {
        Buf Y(dt, (size_t)M * N);
        Y.poison();
        gemm.run(X.dev, W.dev, Y.dev, M, N, K, kd, kd);
        CK(cudaStreamSynchronize(stream));
        Y.down();
        std::vector<int> rows = {0, M / 2, M - 1};
        rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
        report("gemm", shapeName(dt, sh) + " fast M" + std::to_string(M) + " vs float64", (int)rows.size(),
               checkRows(X, W, Y, N, K, dt, rows));
        if (M > 1 && kvsk_gemv_supported(M, N, K, dt)) {  // the GEMV kernel itself: rows independent of M
          Buf G(dt, (size_t)M * N), G1(dt, (size_t)N);
          G.poison(); G1.poison();
          kvsk_gemv_params gm{X.dev, W.dev, G.dev, M, N, K, dt}, g1{X.dev, W.dev, G1.dev, 1, N, K, dt};
          CK(kvsk_gemv(&gm, stream));
          CK(kvsk_gemv(&g1, stream));
          CK(cudaStreamSynchronize(stream));
          G.down(); G1.down();
          const size_t rowBytes = (size_t)N * dtSize(dt);
          reportBool("gemm", shapeName(dt, sh) + " gemv row 0 at M" + std::to_string(M) + " == at M1", 1,
                     std::memcmp(G.host.data(), G1.host.data(), rowBytes) == 0, "");
          report("gemm", shapeName(dt, sh) + " gemv M" + std::to_string(M) + " vs float64", 2, checkRows(X, W, G, N, K, dt, {0, M - 1}));
          for (int rpc : {1, 2}) {  // fewer rows of W per CTA: the same sums in the same order (and the late
                                    // trigger at 1 row, PDL off at 2: kvsk_pdl_trigger changes no bit)
            Buf Gr(dt, (size_t)M * N);
            Gr.poison();
            kvsk_gemv_params gr{X.dev, W.dev, Gr.dev, M, N, K, dt, rpc, rpc == 1 ? KVSK_PDL_TRIGGER_LATE : KVSK_PDL_TRIGGER_OFF};
            CK(kvsk_gemv(&gr, stream));
            CK(cudaStreamSynchronize(stream));
            Gr.down();
            reportBool("gemm", shapeName(dt, sh) + " gemv M" + std::to_string(M) + " " + std::to_string(rpc) +
                                   " rows/CTA == 4 rows/CTA", 1,
                       std::memcmp(G.host.data(), Gr.host.data(), (size_t)M * rowBytes) == 0, "");
          }
        }
      }
      std::printf("  fast %s: %s\n", shapeName(dt, sh).c_str(), gemm.describe(N, K, kd, kd).c_str());
    } catch (const std::exception& e) {
      reportBool("gemm", shapeName(dt, sh) + " fast", 0, false, e.what());
    }
}

}  // namespace

void gemmImportTests();  // gemm_import_test.cu

void gemmTests() {
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  invariantTests(stream);
  fastTests(stream);
  CK(cudaStreamDestroy(stream));
  gemmImportTests();
}

}  // namespace kt
