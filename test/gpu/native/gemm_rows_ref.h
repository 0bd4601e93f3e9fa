// Row checks shared by the batch-invariant GEMM suites (gemm_inv_test.cu, gemm_wgmma_test.cu): one output row
// read back, and a row of X W^T against float64 with the suites' tolerance.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "harness.h"

namespace kt {

inline std::vector<uint8_t> rowOf(const void* Y, int r, int N, kvsk_dtype dt) {
  std::vector<uint8_t> h((size_t)N * dtSize(dt));
  CK(cudaMemcpy(h.data(), static_cast<const char*>(Y) + (size_t)r * h.size(), h.size(), cudaMemcpyDeviceToHost));
  return h;
}

// Row m of X W^T against float64, over N in parallel.
inline ErrStat checkRow(const Buf& X, const Buf& W, const std::vector<uint8_t>& yRow, int m, int N, int K, kvsk_dtype dt) {
  const double scale = std::sqrt((double)K) / 3.0;
  const double atol = (dt == KVSK_BF16 ? 8e-3 : 2e-3) * scale, rtol = dt == KVSK_BF16 ? 8e-3 : 2e-3;
  const int parts = 64;
  std::vector<ErrStat> per(parts);
  parallelFor(parts, [&](int p) {
    for (int n = p; n < N; n += parts) {
      double acc = 0;
      for (int k = 0; k < K; ++k) acc += (double)X.get((size_t)m * K + k) * W.get((size_t)n * K + k);
      per[p].add(load(dt, yRow.data(), n), acc, atol, rtol);
    }
  });
  ErrStat st;
  for (auto& e : per) { st.worst = std::max(st.worst, e.worst); st.maxAbs = std::max(st.maxAbs, e.maxAbs); st.bad += e.bad; st.n += e.n; }
  return st;
}

}  // namespace kt
