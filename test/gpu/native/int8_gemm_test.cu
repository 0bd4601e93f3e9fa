// INT8 linear layers against int8_ref.h: the int8 GEMV (kernels/gemv_int8.cu) and GemmRunner::runInt8
// (engines/cuda/gemm_int8.cc). The int32 sums are exact, so the reference is exact too: the int64 sum of
// the int8 products, then kvserve_kernels.h's epilogue dtype(float(sum) * (xScale * wScale)).
// - GEMV, M = 1..16, odd and Llama shapes (N not a multiple of 16; K % 64 = 16, 48; Llama-3-8B's q/k/v and
//   down_proj) on random codes and on all +-127 codes (the largest sums): every output bit equal to the
//   reference, and within the output rounding of the float64 product; every row the same bits at every M
//   and at 16, 32 and 64 rows per CTA.
// - runInt8 at M = 1, 5, 8, 16 (GEMV or cuBLASLt, whichever the timed plan chose) and 17, 37, 100, 512
//   (cuBLASLt's IMMA matmul into int32, then kvsk_dequant_int8), on bf16/f16 x quantized inside (with and
//   without a SmoothQuant multiplier): every output bit equal to the reference of x quantized by
//   int8_ref.h; a row's bits the same at every M, across the GEMV / cuBLASLt boundary, and in a
//   batch-invariant runner.
// - An int8 plan exported and imported gives the same output bits; a GEMV range of 4 rows per CTA and
//   bf16 algorithms are refused.
#include <cstring>

#include "int8_ref.h"
#include "quant_gemm_cases.h"

namespace kt {

namespace {

using kvs::cuda::GemmChoice;
using kvs::cuda::GemmMode;
using kvs::cuda::GemmRunner;

struct Int8Weight {
  int N, K;
  std::vector<int8_t> w8;  // [N, K]
  std::vector<float> ws;   // [N]
  DevVec<int8_t> dW;
  DevVec<float> dS;
  Int8Weight(int n, int k, bool extremes) : N(n), K(k), w8(randomInt8((size_t)n * k, extremes)), ws(scales(n)), dW(w8), dS(ws) {}
  static std::vector<float> scales(int n) {
    std::vector<float> v(n);
    for (auto& s : v) s = uni(0.5f, 2.f) / 256;
    return v;
  }
};


// Row r of Y (its index in `rows` is i) against the exact reference: bits into `bad`, float64 into st.
void checkRow(const Buf& Y, int r, size_t i, const Int8Weight& w, const std::vector<std::vector<int64_t>>& sums,
              const std::vector<float>& xScale, kvsk_dtype dt, size_t* bad, std::string* first, ErrStat* st) {
  for (int n = 0; n < w.N; ++n) {
    const uint32_t want = outBits(dt, dequantInt8Ref(sums[i][n], xScale[i], w.ws[n]));
    uint32_t got = 0;
    std::memcpy(&got, Y.host.data() + ((size_t)r * w.N + n) * 2, 2);
    if (got != want && (*bad)++ == 0) *first = "row " + std::to_string(r) + " n " + std::to_string(n) + ": " + bitsNote(got, want);
    if (st) {
      const double exact = (double)sums[i][n] * xScale[i] * w.ws[n];
      st->add(Y.get((size_t)r * w.N + n), exact, 1e-30, outRtol(dt) + 1e-6);
    }
  }
}

void gemvCase(kvsk_dtype dt, int N, int K, bool extremes) {
  const int maxM = KVSK_GEMV_INT8_MAX_M;
  const Int8Weight w(N, K, extremes);
  const std::vector<int8_t> xq = randomInt8((size_t)maxM * K, extremes);
  std::vector<float> xs(maxM);
  for (auto& v : xs) v = uni(0.5f, 2.f) / 64;
  const DevVec<int8_t> dX(xq);
  const DevVec<float> dXs(xs);
  std::vector<int> all(maxM);
  for (int r = 0; r < maxM; ++r) all[r] = r;
  const auto sums = int8Sums(xq, all, w.w8, N, K);
  auto run = [&](int M, int rows) {
    Buf Y(dt, (size_t)M * N);
    Y.poison();
    kvsk_gemv_int8_params p{dX.dev, dXs.dev, w.dW.dev, w.dS.dev, Y.dev, M, N, K, dt, rows};
    CK(kvsk_gemv_int8(&p, 0));
    CK(cudaDeviceSynchronize());
    Y.down();
    return Y.host;
  };
  const std::vector<uint8_t> full = run(maxM, 16);
  const size_t rowBytes = (size_t)N * dtSize(dt);
  size_t bad = 0;
  std::string first;
  ErrStat st;
  bool sameBits = true;
  for (int M = 1; M <= maxM; ++M) {
    Buf Y(dt, (size_t)M * N);
    Y.host = run(M, 16);
    for (int r = 0; r < M; ++r) checkRow(Y, r, r, w, sums, xs, dt, &bad, &first, &st);
    sameBits = sameBits && std::memcmp(Y.host.data(), full.data(), (size_t)M * rowBytes) == 0;
  }
  for (int rows : {32, 64}) sameBits = sameBits && run(maxM, rows) == full;
  const std::string n = "gemv_int8 " + gemmName(dt, N, K) + (extremes ? " all +-127" : "");
  reportBool("int8", n + " M1..16 bitwise vs the exact reference", maxM, bad == 0, bad ? std::to_string(bad) + " differ, first " + first : "");
  report("int8", n + " M1..16 vs float64", maxM, st);
  reportBool("int8", n + " rows bitwise equal at every M and 16/32/64 rows per CTA", maxM + 2, sameBits, "");
}

void runnerCase(cudaStream_t stream, kvsk_dtype dt, int N, int K, bool smooth) {
  const int maxM = 512;
  const kvs::DType io = static_cast<kvs::DType>(dt);
  const Int8Weight w(N, K, false);
  Buf X(dt, (size_t)maxM * K);
  for (size_t i = 0; i < X.n; ++i) X.set(i, uni(-1, 1) * (i % 97 == 0 ? 20.f : 1.f));  // a few outliers
  X.up();
  std::vector<float> mul(K);
  for (auto& v : mul) v = uni(0.25f, 4.f);
  const DevVec<float> dMul(mul);
  // Every row quantized as kvsk_quantize_rows_int8 does it, and the exact sums of a sample of rows.
  std::vector<int8_t> xq((size_t)maxM * K);
  std::vector<float> xScaleAll(maxM), row(K);
  for (int r = 0; r < maxM; ++r) {
    for (int k = 0; k < K; ++k) row[k] = X.get((size_t)r * K + k);
    xScaleAll[r] = quantizeRowInt8Ref(row.data(), smooth ? mul.data() : nullptr, K, &xq[(size_t)r * K]);
  }
  const std::vector<int> rows = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 36, 99, 256, 511};
  std::vector<float> xScale;
  for (int r : rows) xScale.push_back(xScaleAll[r]);
  const auto sums = int8Sums(xq, rows, w.w8, N, K);
  GemmRunner gemm(stream, maxM, GemmMode::Fast), invariant(stream, maxM, GemmMode::BatchInvariant);
  gemm.planInt8(N, K, io, w.dW.dev, w.dS.dev);
  invariant.planInt8(N, K, io, w.dW.dev, w.dS.dev);
  const float* m = smooth ? dMul.dev : nullptr;
  std::vector<std::vector<uint8_t>> rowBits(rows.size());  // each sampled row's bits, from the first M that has it
  bool sameAcrossM = true;
  const size_t rowBytes = (size_t)N * 2;
  for (int M : {1, 5, 8, 16, 17, 37, 100, 512}) {
    Buf Y(dt, (size_t)M * N), Yi(dt, (size_t)M * N);
    Y.poison();
    Yi.poison();
    gemm.runInt8(X.dev, m, w.dW.dev, w.dS.dev, Y.dev, M, N, K, io);
    invariant.runInt8(X.dev, m, w.dW.dev, w.dS.dev, Yi.dev, M, N, K, io);
    CK(cudaStreamSynchronize(stream));
    Y.down();
    Yi.down();
    const bool gemv = gemm.int8UsesGemv(N, K, io, M);
    size_t bad = 0;
    std::string first;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i] >= M) continue;
      checkRow(Y, rows[i], i, w, sums, xScale, dt, &bad, &first, nullptr);
      const uint8_t* bits = Y.host.data() + (size_t)rows[i] * rowBytes;
      if (rowBits[i].empty()) rowBits[i].assign(bits, bits + rowBytes);
      sameAcrossM = sameAcrossM && std::memcmp(rowBits[i].data(), bits, rowBytes) == 0;
    }
    const std::string n = "runInt8 " + gemmName(dt, N, K) + (smooth ? " act_smooth" : "") + " M" + std::to_string(M) +
                          (gemv ? " (gemv)" : " (cuBLASLt + dequant)");
    reportBool("int8", n + " bitwise vs the exact reference", M, bad == 0, bad ? std::to_string(bad) + " differ, first " + first : "");
    reportBool("int8", n + ": the batch-invariant runner gives the same bits", M, Y.host == Yi.host, "");
  }
  reportBool("int8", "runInt8 " + gemmName(dt, N, K) + (smooth ? " act_smooth" : "") + ": each row the same bits at every M", 8,
             sameAcrossM, "");
  std::printf("  int8 %s: %s\n", gemmName(dt, N, K).c_str(), gemm.describeInt8(N, K, io).c_str());
}

const QuantGemm kInt8{"int8", "an int8 GEMM", &GemmRunner::planInt8, &GemmRunner::exportPlanInt8, &GemmRunner::importPlanInt8,
                      &GemmRunner::describeInt8,
                      [](GemmRunner& r, const void* X, const void* W8, const float* wScale, void* Y, int M, int N, int K,
                         kvs::DType io) { r.runInt8(X, nullptr, W8, wScale, Y, M, N, K, io); }};

void importCase(cudaStream_t stream, int N, int K) {
  const Int8Weight w(N, K, false);
  quantImportCase(kInt8, stream, N, K, w.dW.dev, w.dS.dev);
}

}  // namespace

void int8QuantTests();  // int8_quant_test.cu

void int8Tests() {
  int8QuantTests();
  struct Shape { int N, K; bool extremes; };
  const Shape gemvShapes[] = {{16, 64, false},     {37, 80, false},      {100, 112, false}, {130, 1008, false},
                              {1000, 208, false},  {6144, 4096, false},  {4096, 14336, false}, {256, 14336, true}};
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (const Shape& s : gemvShapes) try {
        gemvCase(dt, s.N, s.K, s.extremes);
      } catch (const std::exception& e) {
        reportBool("int8", "gemv_int8 " + gemmName(dt, s.N, s.K), 0, false, e.what());
      }
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  struct RunnerShape { kvsk_dtype dt; int N, K; bool smooth; };
  const RunnerShape runnerShapes[] = {{KVSK_BF16, 6144, 4096, false}, {KVSK_BF16, 4096, 14336, true}, {KVSK_BF16, 1024, 512, false},
                                      {KVSK_BF16, 1000, 80, true},    {KVSK_F16, 1024, 512, true},     {KVSK_F16, 1000, 80, false}};
  for (const RunnerShape& s : runnerShapes) try {
      runnerCase(stream, s.dt, s.N, s.K, s.smooth);
    } catch (const std::exception& e) {
      reportBool("int8", "runInt8 " + gemmName(s.dt, s.N, s.K), 0, false, e.what());
    }
  for (auto [N, K] : {std::pair{1024, 512}, std::pair{6144, 4096}}) try {
      importCase(stream, N, K);
    } catch (const std::exception& e) {
      reportBool("int8", "int8 import N" + std::to_string(N) + " K" + std::to_string(K), 0, false, e.what());
    }
  CK(cudaStreamDestroy(stream));
}

}  // namespace kt
