// The producer that quantizes its own output for the FP8 GEMMs (kvsk_rmsnorm with outQ) against the path it
// replaces (the same kernel writing bf16/f16, then kvsk_quantize_rows_fp8), bit for bit:
// every e4m3 byte, every scale, the new residual and, where both are asked for, the bf16/f16 output. The
// separate path is itself checked against fp8_ref.h's CPU quantizer on the cases of up to 2^20 elements.
// - RMSNorm: widths of the scalar kernel (H < 256) and of the vector kernel at 1, 2 and 4 chunks per thread
//   (odd chunk counts: 33, 125, 641, 1537, 2561), with and without the residual add, M from 1 to 4096.
// Rows of zeros (the scale floor), rows of large values, rows so small that the floor applies, and random rows.
// - The forward pass's chain through GemmRunner: fused norm -> runFp8(Xq, xScale) against norm -> runFp8(X),
//   the same Y bits at M where the plan runs cuBLASLt; runFp8 on quantized X refused where the plan runs the
//   FP8 GEMV; bad outQ arguments refused.
#include <cstring>

#include "fp8_ref.h"
#include "gemm.h"

namespace kt {

namespace {

// Row r's content: zeros, large, tiny (the scale floor), else random of a spread of amplitudes.
enum class Kind { Zero, Large, Tiny, Random };
Kind kindOf(int r) { return r % 7 == 0 ? Kind::Zero : r % 7 == 1 ? Kind::Large : r % 7 == 2 ? Kind::Tiny : Kind::Random; }

float value(Kind k, int r, float large) {
  const float amps[] = {0.01f, 1.f, 8.f};
  switch (k) {
    case Kind::Zero: return 0.f;
    case Kind::Large: return uni(-1, 1) * large;
    case Kind::Tiny: return uni(-1, 1) * 1e-6f;
    default: return uni(-1, 1) * amps[r % 3];
  }
}

// fp8_ref.h's quantizer on the rows of X [M, K]; the number of bytes and scales that differ from q, s.
size_t againstCpu(const Buf& X, int M, int K, const std::vector<uint8_t>& q, const std::vector<float>& s, std::string* first) {
  std::vector<uint8_t> refQ((size_t)M * K);
  std::vector<float> refS(M);
  parallelFor(M, [&](int r) {
    std::vector<float> row(K);
    for (int i = 0; i < K; ++i) row[i] = X.get((size_t)r * K + i);
    refS[r] = quantizeRowRef(row.data(), K, &refQ[(size_t)r * K]);
  });
  return countDiff(q, refQ, first, "cpu byte") + countDiff(s, refS, first, "cpu scale");
}

std::string shape(kvsk_dtype dt, const char* k, int M, int n) {
  return std::string(dtName(dt)) + " M" + std::to_string(M) + " " + k + std::to_string(n);
}

void normCase(kvsk_dtype dt, int M, int H, bool withAdd, bool withOut) {
  Buf res0(dt, (size_t)M * H), add(dt, (size_t)M * H), w(dt, H), res(dt, (size_t)M * H);
  for (int r = 0; r < M; ++r)
    for (int i = 0; i < H; ++i) {
      const Kind k = kindOf(r);
      res0.set((size_t)r * H + i, value(k, r, 3e4f));
      add.set((size_t)r * H + i, withAdd ? value(k, r, 3e4f) : 0.f);
    }
  for (int i = 0; i < H; ++i) w.set(i, i % 97 == 5 ? 300.f : uni(-4, 4));  // a few large columns
  add.up();
  w.up();
  const float eps = 1e-5f;

  // The separate path: norm into out, then the quantize pass.
  res.host = res0.host;
  res.up();
  Buf out(dt, (size_t)M * H);
  DevVec<uint8_t> q0((size_t)M * H);
  DevVec<float> s0(M);
  kvsk_rmsnorm_params n0{withAdd ? add.dev : nullptr, res.dev, nullptr, w.dev, out.dev, M, H, eps, dt};
  CK(kvsk_rmsnorm(&n0, 0));
  kvsk_quantize_rows_fp8_params qp{out.dev, q0.dev, s0.dev, M, H, dt};
  CK(kvsk_quantize_rows_fp8(&qp, 0));
  CK(cudaDeviceSynchronize());
  res.down();
  out.down();
  const std::vector<uint8_t> resSeparate = res.host;

  // The fused kernel on the same residual, its outputs poisoned first.
  res.host = res0.host;
  res.up();
  Buf out1(dt, (size_t)M * H);
  out1.poison();
  DevVec<uint8_t> q1((size_t)M * H);
  DevVec<float> s1(M);
  CK(cudaMemset(q1.dev, 0xFF, (size_t)M * H));
  CK(cudaMemset(s1.dev, 0xFF, (size_t)M * sizeof(float)));
  kvsk_rmsnorm_params n1{withAdd ? add.dev : nullptr, res.dev, nullptr, w.dev, withOut ? out1.dev : nullptr, M, H, eps, dt,
                         q1.dev, s1.dev};
  CK(kvsk_rmsnorm(&n1, 0));
  CK(cudaDeviceSynchronize());
  res.down();
  out1.down();

  std::string first;
  const std::vector<uint8_t> qa = q0.down(), qb = q1.down();
  const std::vector<float> sa = s0.down(), sb = s1.down();
  size_t bad = countDiff(qb, qa, &first, "byte") + countDiff(sb, sa, &first, "scale") +
               countDiff(res.host, resSeparate, &first, "residual");
  if (withOut) bad += countDiff(out1.host, out.host, &first, "out");
  if ((size_t)M * H <= (1u << 20)) bad += againstCpu(out, M, H, qa, sa, &first);
  reportBool("fp8fuse",
             "rmsnorm+quant " + shape(dt, "H", M, H) + (withAdd ? " +residual" : "") + (withOut ? " +out" : " (no out)") +
                 " bitwise = rmsnorm, quantize_rows",
             M, bad == 0, bad ? std::to_string(bad) + " differ, first " + first : "");
}

// W8 [N, K] and its scales, quantized on the device from random bf16.
struct Weight8 {
  DevVec<uint8_t> w8;
  DevVec<float> scale;
  Weight8(int N, int K) : w8((size_t)N * K), scale(N) {
    Buf w(KVSK_BF16, (size_t)N * K);
    for (size_t i = 0; i < w.n; ++i) w.set(i, uni(-1, 1) * 0.05f);
    w.up();
    kvsk_quantize_weight_fp8_params p{w.dev, w8.dev, scale.dev, N, K, KVSK_BF16};
    CK(kvsk_quantize_weight_fp8(&p, 0));
    CK(cudaDeviceSynchronize());
  }
};

// norm -> runFp8(X) against fused norm -> runFp8(Xq) on one stream (PDL on sm_90 as the engine runs them), at
// M where the plan runs cuBLASLt; then runFp8(Xq) refused at the GEMV's M.
void chainCase(cudaStream_t stream, kvsk_dtype dt, int N, int H) {
  const int maxM = 1024;
  const kvs::DType io = static_cast<kvs::DType>(dt);
  const Weight8 wq(N, H);
  kvs::cuda::GemmRunner gemm(stream, maxM, kvs::cuda::GemmMode::Fast);
  gemm.planFp8(N, H, io);  // untimed: the GEMV where it serves (M <= 16), the heuristic's pick elsewhere
  Buf res0(dt, (size_t)maxM * H), w(dt, H), res(dt, (size_t)maxM * H), x(dt, (size_t)maxM * H);
  for (size_t i = 0; i < res0.n; ++i) res0.set(i, uni(-2, 2));
  for (int i = 0; i < H; ++i) w.set(i, uni(0.5f, 1.5f));
  w.up();
  DevVec<uint8_t> xq((size_t)maxM * H);
  DevVec<float> xs(maxM);
  bool same = true;
  std::string note;
  int cases = 0;
  for (int M : {17, 100, 1024}) {
    if (gemm.fp8UsesGemv(N, H, io, M)) continue;
    ++cases;
    Buf y0(dt, (size_t)M * N), y1(dt, (size_t)M * N);
    res.host = res0.host;
    res.up();
    kvsk_rmsnorm_params n0{nullptr, res.dev, nullptr, w.dev, x.dev, M, H, 1e-5f, dt};
    CK(kvsk_rmsnorm(&n0, stream));
    gemm.runFp8(x.dev, wq.w8.dev, wq.scale.dev, y0.dev, M, N, H, io);
    kvsk_rmsnorm_params n1{nullptr, res.dev, nullptr, w.dev, nullptr, M, H, 1e-5f, dt, xq.dev, xs.dev};
    CK(kvsk_rmsnorm(&n1, stream));
    gemm.runFp8(xq.dev, xs.dev, wq.w8.dev, wq.scale.dev, y1.dev, M, N, H, io);
    CK(cudaStreamSynchronize(stream));
    y0.down(); y1.down();
    if (y0.host != y1.host) {
      same = false;
      note += " M" + std::to_string(M);
    }
  }
  const std::string n = std::string(dtName(dt)) + " N" + std::to_string(N) + " H" + std::to_string(H);
  reportBool("fp8fuse", "chain " + n + ": fused norm -> runFp8(Xq) bitwise = norm -> runFp8(X)", cases,
             same && cases > 0, cases ? note : "no M ran cuBLASLt");
  std::string msg = "the plan runs cuBLASLt at M 1";
  if (gemm.fp8UsesGemv(N, H, io, 1)) {
    Buf y(dt, N);
    try {
      gemm.runFp8(xq.dev, xs.dev, wq.w8.dev, wq.scale.dev, y.dev, 1, N, H, io);
      msg = "not refused";
    } catch (const std::exception& e) {
      msg = e.what();
    }
  }
  reportBool("fp8fuse", "chain " + n + ": runFp8(Xq) refused where the plan runs the FP8 GEMV", 1,
             msg.find("reads X unquantized") != std::string::npos, msg);
}

// outQ where it cannot be served: float32, a width not a multiple of 8, misaligned outQ, no scales; and no
// output at all.
void refusals() {
  Buf x(KVSK_BF16, 2 * 64), x32(KVSK_F32, 2 * 64), w(KVSK_BF16, 64);
  DevVec<uint8_t> q(2 * 64 + 8);
  DevVec<float> s(2);
  std::vector<std::pair<std::string, cudaError_t>> got;
  auto norm = [&](const char* what, void* res, void* out, void* outQ, float* outScale, int H, kvsk_dtype dt) {
    kvsk_rmsnorm_params p{nullptr, res, nullptr, w.dev, out, 2, H, 1e-5f, dt, outQ, outScale};
    got.emplace_back(std::string("rmsnorm ") + what, kvsk_rmsnorm(&p, 0));
  };
  norm("f32", x32.dev, nullptr, q.dev, s.dev, 64, KVSK_F32);
  norm("H 60", x.dev, nullptr, q.dev, s.dev, 60, KVSK_BF16);
  norm("outQ + 4", x.dev, nullptr, q.dev + 4, s.dev, 64, KVSK_BF16);
  norm("no outScale", x.dev, nullptr, q.dev, nullptr, 64, KVSK_BF16);
  norm("neither out nor outQ", x.dev, nullptr, nullptr, nullptr, 64, KVSK_BF16);
  cudaGetLastError();
  bool ok = true;
  std::string note;
  for (auto& [what, e] : got)
    if (e != cudaErrorInvalidValue) {
      ok = false;
      note += what + ": " + cudaGetErrorString(e) + "; ";
    }
  reportBool("fp8fuse", "bad outQ arguments return cudaErrorInvalidValue", (int)got.size(), ok, note);
}

}  // namespace

void fp8FuseTests() {
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16}) {
    // RMSNorm: scalar kernel (8, 24, 72, 200), vector kernel at 1 chunk per thread (264: 33 chunks, 1000, 4096,
    // 5128: 641), 2 (12296: 1537) and 4 (20488: 2561, 3 used).
    for (int H : {8, 24, 72, 200, 264, 1000, 5128, 12296, 20488})
      for (int M : {1, 5, 33}) {
        normCase(dt, M, H, true, M == 5);
        if (M == 33) normCase(dt, M, H, false, false);
      }
    for (int M : {1, 2, 3, 16, 17, 64, 255, 1024, 4096}) normCase(dt, M, 4096, true, M == 17);
    normCase(dt, 4096, 4096, false, true);
  }
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16}) chainCase(stream, dt, 1024, 4096);
  chainCase(stream, KVSK_BF16, 1000, 512);
  CK(cudaStreamDestroy(stream));
  refusals();
}

}  // namespace kt
