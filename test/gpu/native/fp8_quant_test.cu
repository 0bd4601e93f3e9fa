// The FP8 quantization kernels (kernels/quant_fp8.cu) against fp8_ref.h, bit for bit: every e4m3 byte and
// every float32 scale. First the reference encoder itself against cuda_fp8.h's host conversion (NVIDIA's
// software path; the device uses the hardware cvt) on a sweep of float32 bit patterns and on every tie and
// its neighbours. Rows mix magnitudes (1e-6 .. 3e4), all-zero rows, rows of exact ties (absmax 448, so the
// scale is 1), and, for weights, rows so small that the scale floor applies; K covers one chunk, ragged
// weights, rows held in registers and rows longer than 16384 elements (read twice).
#include <cuda_fp8.h>

#include <cstring>

#include "fp8_ref.h"

namespace kt {

namespace {

void encoderAgreesWithCudaFp8() {
  std::vector<float> xs;
  for (uint64_t b = 0; b < (1ull << 32); b += 4093) {
    uint32_t u = static_cast<uint32_t>(b);
    float f;
    std::memcpy(&f, &u, 4);
    if (!std::isnan(f)) xs.push_back(f);
  }
  for (int c = 0; c < 0x7e; ++c) {  // every tie between neighbouring codes, a float ulp either side, both signs
    const float mid = static_cast<float>((e4m3Decode(c) + e4m3Decode(c + 1)) / 2);
    for (float v : {mid, std::nextafter(mid, 0.f), std::nextafter(mid, 1e9f)}) {
      xs.push_back(v);
      xs.push_back(-v);
    }
  }
  for (float v : {448.f, 449.f, 464.f, 465.f, 1e10f, INFINITY, -INFINITY, 0.f, -0.f}) xs.push_back(v);
  size_t bad = 0;
  std::string first;
  for (float x : xs) {
    const uint8_t mine = e4m3Encode(x);
    const uint8_t theirs = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
    if (mine != theirs && bad++ == 0) first = std::to_string(x) + ": " + std::to_string(mine) + " vs " + std::to_string(theirs);
  }
  bool decodeOk = true;  // decode(encode(decode(c))) == c for every finite code
  for (int c = 0; c < 256; ++c)
    if ((c & 0x7f) != 0x7f) decodeOk = decodeOk && e4m3Encode(static_cast<float>(e4m3Decode(c))) == c;
  reportBool("fp8", "reference e4m3 encoder == cuda_fp8.h host conversion", (int)xs.size(), bad == 0 && decodeOk,
             bad ? std::to_string(bad) + " differ, first " + first : "");
}

// Row r's content: a kind chosen by r, so every shape gets zeros, ties and a spread of magnitudes.
enum class RowKind { Zero, Ties, Tiny, Random };
RowKind kindOf(int r) { return r == 0 ? RowKind::Zero : r == 1 ? RowKind::Ties : r == 2 ? RowKind::Tiny : RowKind::Random; }

void fillRow(Buf& b, size_t base, int k, RowKind kind, int r, bool weight) {
  const float amps[] = {1e-6f, 1e-3f, 1.f, 100.f, 3e4f};
  const float amp = amps[r % 5];
  for (int i = 0; i < k; ++i) {
    float v = 0.f;
    if (kind == RowKind::Ties) {
      // absmax 448 (scale exactly 1 for activations; weights: 448 / 448 = 1 too) and values halfway
      // between neighbouring codes, both signs, each going to the even mantissa: 1.0625 -> 1, 1.1875 -> 1.25,
      // 9.5 -> 10, 13.5 -> 14, 200 -> 192, and between subnormals 6.5 * 2^-9 -> 6 * 2^-9, 1.5 * 2^-9 -> 2 * 2^-9.
      const float ties[] = {448.f, 1.0625f, -1.1875f, 9.5f, -13.5f, 200.f, -0.0126953125f, 0.0029296875f};
      v = ties[i % 8];
    } else if (kind == RowKind::Tiny) {
      v = uni(-1, 1) * (weight && b.t == KVSK_F32 ? 1e-40f : 1e-7f);  // f32 weights: subnormal, the scale floor
    } else if (kind == RowKind::Random) {
      v = uni(-1, 1) * amp;
    }
    b.set(base + i, v);
  }
}

void rowsCase(kvsk_dtype dt, int M, int K) {
  Buf X(dt, (size_t)M * K);
  for (int r = 0; r < M; ++r) fillRow(X, (size_t)r * K, K, kindOf(r), r, false);
  X.up();
  DevVec<uint8_t> q((size_t)M * K);
  DevVec<float> s(M);
  kvsk_quantize_rows_fp8_params p{X.dev, q.dev, s.dev, M, K, dt};
  CK(kvsk_quantize_rows_fp8(&p, 0));
  CK(cudaDeviceSynchronize());
  std::vector<uint8_t> refQ((size_t)M * K);
  std::vector<float> refS(M), row(K);
  for (int r = 0; r < M; ++r) {
    for (int i = 0; i < K; ++i) row[i] = X.get((size_t)r * K + i);
    refS[r] = quantizeRowRef(row.data(), K, &refQ[(size_t)r * K]);
  }
  std::string first;
  const size_t bad = countDiff(q.down(), refQ, &first, "byte") + countDiff(s.down(), refS, &first, "scale");
  reportBool("fp8", std::string("quantize rows ") + dtName(dt) + " M" + std::to_string(M) + " K" + std::to_string(K) +
                        " bitwise", M, bad == 0, bad ? std::to_string(bad) + " differ, first " + first : "");
}

void weightCase(kvsk_dtype dt, int N, int K) {
  Buf W(dt, (size_t)N * K);
  for (int r = 0; r < N; ++r) fillRow(W, (size_t)r * K, K, kindOf(r), r, true);
  W.up();
  DevVec<uint8_t> q((size_t)N * K);
  DevVec<float> s(N);
  kvsk_quantize_weight_fp8_params p{W.dev, q.dev, s.dev, N, K, dt};
  CK(kvsk_quantize_weight_fp8(&p, 0));
  CK(cudaDeviceSynchronize());
  std::vector<uint8_t> refQ((size_t)N * K);
  std::vector<float> refS(N), row(K);
  for (int r = 0; r < N; ++r) {
    for (int i = 0; i < K; ++i) row[i] = W.get((size_t)r * K + i);
    refS[r] = quantizeWeightRowRef(row.data(), K, &refQ[(size_t)r * K]);
  }
  std::string first;
  const std::vector<float> got = s.down();
  const size_t bad = countDiff(q.down(), refQ, &first, "byte") + countDiff(got, refS, &first, "scale");
  const bool zeroRowScaleOne = got[0] == 1.f;
  reportBool("fp8", std::string("quantize weight ") + dtName(dt) + " N" + std::to_string(N) + " K" + std::to_string(K) +
                        " bitwise (zero row: scale 1)", N, bad == 0 && zeroRowScaleOne,
             bad ? std::to_string(bad) + " differ, first " + first : "");
}

}  // namespace

void fp8QuantTests() {
  encoderAgreesWithCudaFp8();
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (auto [M, K] : {std::pair{5, 8}, std::pair{7, 1000}, std::pair{16, 4096}, std::pair{33, 14336}, std::pair{6, 20480}}) try {
        rowsCase(dt, M, K);
      } catch (const std::exception& e) {
        reportBool("fp8", std::string("quantize rows ") + dtName(dt), 0, false, e.what());
      }
  for (kvsk_dtype dt : {KVSK_F32, KVSK_BF16, KVSK_F16})
    for (auto [N, K] : {std::pair{3, 1}, std::pair{17, 7}, std::pair{64, 100}, std::pair{300, 4096}, std::pair{8, 14336}}) try {
        weightCase(dt, N, K);
      } catch (const std::exception& e) {
        reportBool("fp8", std::string("quantize weight ") + dtName(dt), 0, false, e.what());
      }
}

}  // namespace kt
