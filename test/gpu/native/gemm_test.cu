// The cuBLASLt GEMM wrapper (engines/cuda/gemm.cc): Y = X W^T against a float64 CPU reference of the same
// dtype-rounded inputs, and batch invariance: every row computed in a call of M = maxM equals, bit for bit,
// the same row computed alone (M = 1) and inside calls of other sizes, for algorithms picked at probe M 512 and 16.
// Tolerance (relative to the row's |x||w| scale): f32 1e-5 (true fp32, no TF32), bf16/f16 output rounding
// 2^-8 / 2^-11 plus accumulation: atol = 4e-3 / 1e-3 of sqrt(K)-scaled magnitude.
#include <algorithm>
#include <cstring>

#include "gemm.h"
#include "harness.h"

namespace kt {

void gemmTests() {
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  const int maxM = 512;
  for (int probe : {maxM, 16}) {
  kvs::cuda::GemmRunner gemm(stream, maxM, probe);
  struct Shape { int N, K; };
  for (kvsk_dtype dt : {KVSK_F32, KVSK_BF16, KVSK_F16})
    for (Shape sh : {Shape{192, 64}, Shape{512, 64}, Shape{1024, 512}, Shape{6144, 4096}, Shape{4096, 14336}}) try {
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
      const std::string name = std::string(dtName(dt)) + " N" + std::to_string(N) + " K" + std::to_string(K) +
                               " probeM" + std::to_string(probe);
      reportBool("gemm", name + " batch invariant (M=1, 37 vs 512)", 7, inv, gemm.describe(N, K, kd, kd));
      // Reference on a subset of rows (the full product is too slow on the CPU for the big shapes).
      ErrStat st;
      const double scale = std::sqrt((double)K) / std::sqrt(3.0) / std::sqrt(3.0);  // std of a dot of U(-1,1)
      const double atol = (dt == KVSK_F32 ? 1e-5 : dt == KVSK_BF16 ? 8e-3 : 2e-3) * scale;
      const double rtol = dt == KVSK_F32 ? 1e-5 : dt == KVSK_BF16 ? 8e-3 : 2e-3;
      std::vector<int> rows = {0, 3, 77, 255, 511};
      std::vector<ErrStat> per(rows.size());
      parallelFor((int)rows.size(), [&](int ri) {
        const int m = rows[ri];
        for (int n = 0; n < N; ++n) {
          double acc = 0;
          for (int k = 0; k < K; ++k) acc += (double)X.get((size_t)m * K + k) * W.get((size_t)n * K + k);
          per[ri].add(Y.get((size_t)m * N + n), acc, atol, rtol);
        }
      });
      for (auto& e : per) { st.worst = std::max(st.worst, e.worst); st.maxAbs = std::max(st.maxAbs, e.maxAbs); st.bad += e.bad; st.n += e.n; }
      report("gemm", name + " vs float64", 5, st);
    } catch (const std::exception& e) {
      reportBool("gemm", std::string(dtName(dt)) + " N" + std::to_string(sh.N) + " K" + std::to_string(sh.K), 0, false, e.what());
    }
  }
  CK(cudaStreamDestroy(stream));
}

}  // namespace kt
