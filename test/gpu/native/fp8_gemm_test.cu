// FP8 linear layers against float64 references of the dequantized operands (fp8_ref.h): the FP8 GEMV
// (kernels/gemv_fp8.cu) and GemmRunner::runFp8 (engines/cuda/gemm_fp8.cc). Weights are random e4m3 codes
// (every finite code, subnormals included; one case of subnormal codes only, which a flushing decode would
// zero) with random per-row scales.
// - GEMV, M = 1..16, shapes up to Llama-3-8B's and ragged ones (N not a multiple of 16, K % 64 = 16 or 48):
//   the operands are exact after dequantization, so only the float32 sum order differs from float64:
//   |y - ref| <= rtol |ref| + 2e-5 sum |x w| (rtol: bf16 2^-8, f16 2^-10, the output rounding). And every row
//   is the same bits at every M and at 16, 32 and 64 rows per CTA.
// - runFp8 at M = 1, 5, 8, 16 (GEMV or cuBLASLt, whichever the timed plan chose; fp8UsesGemv says which),
//   37 and 512 (cuBLASLt on x quantized per row): the GEMV as above; cuBLASLt against the float64 product of
//   the same quantized x (fp8_ref.h's per-row quantizer, bitwise what the kernel writes), with 2.5e-4 sum
//   |terms| (about 2^-12) for the FP8 tensor cores' accumulation, which keeps fewer bits than float32 on Hopper
//   (DeepSeek-V3's report measures about 14; 1e-4 failed 6 of 114 cases by up to 2x on the H200), and against
//   unquantized x within the e4m3 rounding bound.
// - The GEMV's version 2 (kernels/gemv_fp8_v2.cu), selected explicitly (params.version = 2; the runner with
//   KVSERVE_GEMV_FP8=v2): the same checks against float64 of the operands it multiplies (x rounded to f16), on
//   more shapes (CTAs streaming across tiles), the same bits at every M and rows per CTA, x beyond f16's range
//   saturated (finite output); runFp8 through it; KVSERVE_GEMV_FP8=v3 refused.
// - An FP8 plan exported and imported gives the same output bits; foreign choices are refused; the
//   batch-invariant runner refuses FP8.
#include <cstdlib>
#include <cstring>

#include "fp8_ref.h"
#include "quant_gemm_cases.h"

namespace kt {

namespace {

using kvs::cuda::GemmChoice;
using kvs::cuda::GemmMode;
using kvs::cuda::GemmRunner;

struct Fp8Weight {
  int N, K;
  std::vector<uint8_t> w8;  // [N, K]
  std::vector<float> ws;    // [N]
  DevVec<uint8_t> dW;
  DevVec<float> dS;
  Fp8Weight(int n, int k, bool subnormalOnly)
      : N(n), K(k), w8(randomE4m3((size_t)n * k, subnormalOnly)), ws(scales(n, subnormalOnly ? 4.f : 1.f / 64)), dW(w8), dS(ws) {}
  static std::vector<float> scales(int n, float base) {
    std::vector<float> v(n);
    for (auto& s : v) s = uni(0.5f, 2.f) * base;
    return v;
  }
};

// ref[r][n] = wScale[n] sum_k x[r][k] W8[n][k] in float64, and abs[r][n] the same sum of absolute terms;
// x given as float64 rows.
struct Ref {
  std::vector<std::vector<double>> ref, abs;
};
Ref reference(const Fp8Weight& w, const std::vector<std::vector<double>>& x) {
  double lut[256];
  for (int c = 0; c < 256; ++c) lut[c] = e4m3Decode(c);
  Ref r;
  r.ref.assign(x.size(), std::vector<double>(w.N));
  r.abs.assign(x.size(), std::vector<double>(w.N));
  parallelFor(w.N, [&](int n) {
    const uint8_t* row = &w.w8[(size_t)n * w.K];
    for (size_t i = 0; i < x.size(); ++i) {
      double acc = 0, a = 0;
      for (int k = 0; k < w.K; ++k) {
        const double t = x[i][k] * lut[row[k]];
        acc += t;
        a += std::fabs(t);
      }
      r.ref[i][n] = acc * w.ws[n];
      r.abs[i][n] = a * w.ws[n];
    }
  });
  return r;
}

std::vector<double> rowOf(const Buf& X, int r, int K) {
  std::vector<double> v(K);
  for (int k = 0; k < K; ++k) v[k] = X.get((size_t)r * K + k);
  return v;
}

// Row r of Y [M, N] into st against ref, with |err| <= rtol |ref| + absTol * abs.
void addRow(ErrStat& st, const Buf& Y, int r, int N, const std::vector<double>& ref, const std::vector<double>& abs,
            double rtol, double absTol) {
  for (int n = 0; n < N; ++n) {
    const double tol = rtol * std::fabs(ref[n]) + absTol * abs[n] + 1e-30;
    st.add(Y.get((size_t)r * N + n), ref[n], tol, 0);
  }
}

// One GEMV launch of `version` at M rows of X and `rows` rows per CTA; returns Y's bytes. Version 2 takes the three
// kvsk_pdl_trigger values by turns over M and rows (timing only: the bits compared across them must not move).
std::vector<uint8_t> runGemv(const Fp8Weight& w, const Buf& X, kvsk_dtype dt, int M, int rows, int version) {
  Buf Y(dt, (size_t)M * w.N);
  Y.poison();
  const int trigger = version == 2 ? (M + rows / 16) % 3 : KVSK_PDL_TRIGGER_EARLY;
  kvsk_gemv_fp8_params p{X.dev, w.dW.dev, w.dS.dev, Y.dev, M, w.N, w.K, dt, rows, version, trigger};
  CK(kvsk_gemv_fp8(&p, 0));
  CK(cudaDeviceSynchronize());
  Y.down();
  return Y.host;
}

void gemvCase(kvsk_dtype dt, int N, int K, bool subnormalOnly) {
  const int maxM = KVSK_GEMV_FP8_MAX_M;
  const Fp8Weight w(N, K, subnormalOnly);
  Buf X(dt, (size_t)maxM * K);
  for (size_t i = 0; i < X.n; ++i) X.set(i, uni(-1, 1));
  X.up();
  std::vector<std::vector<double>> xs;
  for (int r = 0; r < maxM; ++r) xs.push_back(rowOf(X, r, K));
  const Ref ref = reference(w, xs);
  auto run = [&](int M, int rows) { return runGemv(w, X, dt, M, rows, 1); };
  const std::vector<uint8_t> full = run(maxM, 16);
  const size_t rowBytes = (size_t)N * dtSize(dt);
  ErrStat st;
  bool sameBits = true;
  for (int M = 1; M <= maxM; ++M) {
    Buf Y(dt, (size_t)M * N);
    Y.host = run(M, 16);
    for (int r = 0; r < M; ++r) addRow(st, Y, r, N, ref.ref[r], ref.abs[r], outRtol(dt), 2e-5);
    sameBits = sameBits && std::memcmp(Y.host.data(), full.data(), (size_t)M * rowBytes) == 0;
  }
  for (int rows : {32, 64}) sameBits = sameBits && run(maxM, rows) == full;
  const std::string n = "gemv_fp8 " + gemmName(dt, N, K) + (subnormalOnly ? " subnormal codes" : "");
  report("fp8", n + " M1..16 vs float64", maxM, st);
  reportBool("fp8", n + " rows bitwise equal at every M and 16/32/64 rows per CTA", maxM + 2, sameBits, "");
}

// x as version 2 multiplies it: rounded to f16, saturated to +-65504.
double asHalfOperand(double x) { return __half2float(__float2half_rn((float)std::max(-65504.0, std::min(65504.0, x)))); }

// Version 2 (kernels/gemv_fp8_v2.cu), selected explicitly: M = 1..16 against float64 of the operands it multiplies
// (e4m3 weights exact, x rounded to f16: exact here but for the rare |x| < 2^-17), with v1's tolerance; every row
// the same bits at every M and at 16, 32 and 64 rows per CTA (which also covers x read from shared memory against
// x read from global memory: K = 14336 switches at M = 6). saturate: some bf16 x beyond f16's range (up to
// 3e38, and one row all of them): the output must be finite and equal the reference of x saturated to +-65504.
void gemvV2Case(kvsk_dtype dt, int N, int K, bool subnormalOnly, bool saturate = false) {
  const int maxM = KVSK_GEMV_FP8_MAX_M;
  const Fp8Weight w(N, K, subnormalOnly);
  Buf X(dt, (size_t)maxM * K);
  for (size_t i = 0; i < X.n; ++i) {
    const bool huge = saturate && (i % 97 == 0 || i / K == 3);
    X.set(i, huge ? (i % 2 ? -1.f : 1.f) * (i % 3 ? uni(7e4f, 1e6f) : 3e38f) : uni(-1, 1));
  }
  X.up();
  std::vector<std::vector<double>> xs;
  for (int r = 0; r < maxM; ++r) {
    xs.push_back(rowOf(X, r, K));
    for (double& v : xs.back()) v = asHalfOperand(v);
  }
  const Ref ref = reference(w, xs);
  const std::vector<uint8_t> full = runGemv(w, X, dt, maxM, 16, 2);
  const size_t rowBytes = (size_t)N * dtSize(dt);
  ErrStat st;
  bool sameBits = true;
  std::string firstDiff;
  for (int M = 1; M <= maxM; ++M)
    for (int rows : {16, 32, 64}) {
      Buf Y(dt, (size_t)M * N);
      Y.host = runGemv(w, X, dt, M, rows, 2);
      if (rows == 16)
        for (int r = 0; r < M; ++r) addRow(st, Y, r, N, ref.ref[r], ref.abs[r], outRtol(dt), 2e-5);
      if (std::memcmp(Y.host.data(), full.data(), (size_t)M * rowBytes) != 0 && firstDiff.empty())
        firstDiff = "first difference at M " + std::to_string(M) + ", " + std::to_string(rows) + " rows per CTA";
      sameBits = sameBits && firstDiff.empty();
    }
  const std::string n = "gemv_fp8 v2 " + gemmName(dt, N, K) + (subnormalOnly ? " subnormal codes" : "") +
                        (saturate ? " x beyond +-65504" : "");
  report("fp8", n + " M1..16 vs float64" + (saturate ? " of x saturated (finite)" : ""), maxM, st);
  reportBool("fp8", n + " rows bitwise equal at every M and 16/32/64 rows per CTA", maxM * 3, sameBits, firstDiff);
}

// Sets an environment variable for a scope (the runner reads KVSERVE_GEMV_FP8 when it is made).
struct EnvGuard {
  std::string name, old;
  bool had;
  EnvGuard(const char* n, const char* v) : name(n), had(std::getenv(n) != nullptr) {
    if (had) old = std::getenv(n);
    if (v) setenv(n, v, 1);
    else unsetenv(n);
  }
  ~EnvGuard() {
    if (had) setenv(name.c_str(), old.c_str(), 1);
    else unsetenv(name.c_str());
  }
};

// version 2: made with KVSERVE_GEMV_FP8=v2 (its GEMV candidates are version 2's).
void runnerCase(cudaStream_t stream, kvsk_dtype dt, int N, int K, int version = 1) {
  const int maxM = 512;
  const kvs::DType io = static_cast<kvs::DType>(dt);
  const Fp8Weight w(N, K, false);
  Buf X(dt, (size_t)maxM * K);
  for (size_t i = 0; i < X.n; ++i) X.set(i, uni(-1, 1));
  X.up();
  const std::vector<int> rows = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 18, 36, 256, 511};
  std::vector<std::vector<double>> xs, xq;  // x, and x quantized per row as kvsk_quantize_rows_fp8 does
  std::vector<double> xScale;
  for (int r : rows) {
    xs.push_back(rowOf(X, r, K));
    std::vector<float> f(xs.back().begin(), xs.back().end());
    std::vector<uint8_t> q(K);
    xScale.push_back(quantizeRowRef(f.data(), K, q.data()));
    std::vector<double> d(K);
    for (int k = 0; k < K; ++k) d[k] = e4m3Decode(q[k]) * xScale.back();
    xq.push_back(d);
  }
  const Ref exact = reference(w, xs), quant = reference(w, xq);
  double sumW = 0;  // max over n of wScale sum_k |W8|: the bound of an e4m3-subnormal rounding of x
  for (int n = 0; n < N; ++n) {
    double s = 0;
    for (int k = 0; k < K; ++k) s += std::fabs(e4m3Decode(w.w8[(size_t)n * K + k]));
    sumW = std::max(sumW, s * w.ws[n]);
  }
  const EnvGuard env("KVSERVE_GEMV_FP8", version == 2 ? "v2" : "v1");
  GemmRunner gemm(stream, maxM, GemmMode::Fast);
  if (gemm.fp8GemvVersion() != version)
    throw std::runtime_error("the runner runs gemv_fp8 version " + std::to_string(gemm.fp8GemvVersion()));
  gemm.planFp8(N, K, io, w.dW.dev, w.dS.dev);
  for (int M : {1, 5, 8, 16, 37, 512}) {
    Buf Y(dt, (size_t)M * N);
    Y.poison();
    gemm.runFp8(X.dev, w.dW.dev, w.dS.dev, Y.dev, M, N, K, io);
    CK(cudaStreamSynchronize(stream));
    Y.down();
    const bool gemv = gemm.fp8UsesGemv(N, K, io, M);
    ErrStat st, bound;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i] >= M || (M > 16 && rows[i] != 0 && rows[i] != M / 2 && rows[i] != M - 1 && rows[i] != 1)) continue;
      if (gemv) {
        addRow(st, Y, rows[i], N, exact.ref[i], exact.abs[i], outRtol(dt), 2e-5);
      } else {
        addRow(st, Y, rows[i], N, quant.ref[i], quant.abs[i], outRtol(dt), 2.5e-4);
        for (int n = 0; n < N; ++n)  // |x - e4m3(x)| <= 2^-4 |x| (normal) or 2^-10 xScale (subnormal)
          bound.add(Y.get((size_t)rows[i] * N + n), exact.ref[i][n],
                    outRtol(dt) * std::fabs(exact.ref[i][n]) + 2.5e-4 * quant.abs[i][n] + exact.abs[i][n] / 16 +
                        xScale[i] / 1024 * sumW, 0);
      }
    }
    const std::string n = "runFp8 " + gemmName(dt, N, K) + " M" + std::to_string(M) +
                          (gemv ? (version == 2 ? " (gemv v2)" : " (gemv)") : " (cuBLASLt)");
    report("fp8", n + (gemv ? " vs float64" : " vs float64 of the quantized x"), (int)st.n / N, st);
    if (!gemv) report("fp8", n + " vs unquantized x within the e4m3 bound", (int)bound.n / N, bound);
  }
  std::printf("  fp8 %s: %s\n", gemmName(dt, N, K).c_str(), gemm.describeFp8(N, K, io).c_str());
}

const QuantGemm kFp8{"fp8", "an FP8 GEMM", &GemmRunner::planFp8, &GemmRunner::exportPlanFp8, &GemmRunner::importPlanFp8,
                     &GemmRunner::describeFp8,
                     [](GemmRunner& r, const void* X, const void* W8, const float* wScale, void* Y, int M, int N, int K,
                        kvs::DType io) { r.runFp8(X, W8, wScale, Y, M, N, K, io); }};

// quant_gemm_cases.h's import case, and the batch-invariant runner refuses FP8.
void importCase(cudaStream_t stream, int N, int K) {
  const kvs::DType bf = kvs::DType::BF16;
  const Fp8Weight w(N, K, false);
  quantImportCase(kFp8, stream, N, K, w.dW.dev, w.dS.dev);
  const std::string n = "fp8 import N" + std::to_string(N) + " K" + std::to_string(K);
  GemmRunner invariant(stream, 64, GemmMode::BatchInvariant);
  std::string msg;
  try {
    invariant.planFp8(N, K, bf, w.dW.dev, w.dS.dev);
  } catch (const std::exception& e) {
    msg = e.what();
  }
  reportBool("fp8", n + " refused in batch-invariant mode", 1, msg.find("--batch-invariant") != std::string::npos, msg);
}

}  // namespace

void fp8QuantTests();  // fp8_quant_test.cu

void fp8Tests() {
  fp8QuantTests();
  struct Shape { int N, K; bool subnormalOnly; };
  const Shape gemvShapes[] = {{16, 64, false}, {37, 80, false},    {100, 112, false},   {130, 1008, false},
                              {1000, 208, false}, {6144, 4096, false}, {4096, 14336, false}, {256, 4096, true}};
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (const Shape& s : gemvShapes) try {
        gemvCase(dt, s.N, s.K, s.subnormalOnly);
      } catch (const std::exception& e) {
        reportBool("fp8", "gemv_fp8 " + gemmName(dt, s.N, s.K), 0, false, e.what());
      }
  // Version 2 also on Llama-3-8B's o (4096 x 4096) and gate/up (28672 x 4096) and a ragged 9000 x 1008: more
  // tiles than resident CTAs, so that CTAs stream across tiles at every M.
  const Shape v2Shapes[] = {{16, 64, false},      {37, 80, false},       {100, 112, false},   {130, 1008, false},
                            {1000, 208, false},   {9000, 1008, false},   {4096, 4096, false}, {6144, 4096, false},
                            {4096, 14336, false}, {28672, 4096, false},  {256, 4096, true}};
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (const Shape& s : v2Shapes) try {
        if (dt == KVSK_F16 && s.N == 28672) continue;  // the largest shape once
        gemvV2Case(dt, s.N, s.K, s.subnormalOnly);
      } catch (const std::exception& e) {
        reportBool("fp8", "gemv_fp8 v2 " + gemmName(dt, s.N, s.K), 0, false, e.what());
      }
  for (auto [N, K] : {std::pair{200, 1008}, std::pair{4096, 14336}}) try {
      gemvV2Case(KVSK_BF16, N, K, false, true);
    } catch (const std::exception& e) {
      reportBool("fp8", "gemv_fp8 v2 " + gemmName(KVSK_BF16, N, K) + " x beyond +-65504", 0, false, e.what());
    }
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  struct RunnerShape { kvsk_dtype dt; int N, K; };
  const RunnerShape runnerShapes[] = {{KVSK_BF16, 6144, 4096}, {KVSK_BF16, 4096, 14336}, {KVSK_BF16, 1024, 512},
                                      {KVSK_BF16, 1000, 80},   {KVSK_F16, 1024, 512},    {KVSK_F16, 1000, 80}};
  for (const RunnerShape& s : runnerShapes) try {
      runnerCase(stream, s.dt, s.N, s.K);
    } catch (const std::exception& e) {
      reportBool("fp8", "runFp8 " + gemmName(s.dt, s.N, s.K), 0, false, e.what());
    }
  for (const RunnerShape& s : {RunnerShape{KVSK_BF16, 6144, 4096}, RunnerShape{KVSK_F16, 1000, 80}}) try {
      runnerCase(stream, s.dt, s.N, s.K, 2);
    } catch (const std::exception& e) {
      reportBool("fp8", "runFp8 v2 " + gemmName(s.dt, s.N, s.K), 0, false, e.what());
    }
  {
    const EnvGuard env("KVSERVE_GEMV_FP8", "v3");
    std::string msg;
    try {
      GemmRunner bad(stream, 16, GemmMode::Fast);
    } catch (const std::exception& e) {
      msg = e.what();
    }
    reportBool("fp8", "KVSERVE_GEMV_FP8=v3 refused", 1, msg.find("KVSERVE_GEMV_FP8 must be v1 or v2") != std::string::npos, msg);
  }
  for (auto [N, K] : {std::pair{1024, 512}, std::pair{6144, 4096}}) try {
      importCase(stream, N, K);
    } catch (const std::exception& e) {
      reportBool("fp8", "fp8 import N" + std::to_string(N) + " K" + std::to_string(K), 0, false, e.what());
    }
  CK(cudaStreamDestroy(stream));
}

}  // namespace kt
