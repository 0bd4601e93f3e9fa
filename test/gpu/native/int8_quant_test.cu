// The INT8 element-wise kernels (kernels/quant_int8.cu) against int8_ref.h, bit for bit:
// - kvsk_quantize_rows_int8: every byte and every float32 scale, with and without a SmoothQuant multiplier.
//   Rows mix magnitudes (1e-6 .. 3e4), all-zero rows, rows of exact ties (absmax 127, so 127 / a is 1 and
//   x.5 rounds to the even neighbour), rows with one outlier channel, and (bf16) rows below the 2^-100 absmax
//   floor; K covers one chunk, ragged row lengths, rows held in registers and rows longer than 16384 elements
//   (read twice).
// - kvsk_dequant_int8: every output bit of dtype(float(acc) * (xScale * wScale)), int32 accumulators up to
//   +-2^31 - 1.
#include <cstring>

#include "int8_ref.h"

namespace kt {

namespace {

enum class RowKind { Zero, Ties, Tiny, Outlier, Random };
RowKind kindOf(int r) {
  return r == 0 ? RowKind::Zero : r == 1 ? RowKind::Ties : r == 2 ? RowKind::Tiny : r == 3 ? RowKind::Outlier : RowKind::Random;
}

void fillRow(Buf& b, size_t base, int k, RowKind kind, int r) {
  const float amps[] = {1e-6f, 1e-3f, 1.f, 100.f, 3e4f};
  const float amp = amps[r % 5];
  for (int i = 0; i < k; ++i) {
    float v = 0.f;
    // absmax 127 (the scale is exactly 1 and 127 / a is 1): halves between neighbouring codes, both signs,
    // each going to the even one (2.5 -> 2, 3.5 -> 4, -0.5 -> 0, 126.5 -> 126, -125.5 -> -126).
    const float ties[] = {127.f, 2.5f, 3.5f, -0.5f, 126.5f, -125.5f, 0.25f, -64.5f};
    if (kind == RowKind::Ties) v = ties[i % 8];
    else if (kind == RowKind::Tiny) v = uni(-1, 1) * (b.t == KVSK_BF16 ? 1e-35f : 1e-7f);  // bf16: under the floor
    else if (kind == RowKind::Outlier) v = i == k / 2 ? 80.f : uni(-1, 1);
    else if (kind == RowKind::Random) v = uni(-1, 1) * amp;
    b.set(base + i, v);
  }
}

void rowsCase(kvsk_dtype dt, int M, int K, bool smooth) {
  Buf X(dt, (size_t)M * K);
  for (int r = 0; r < M; ++r) fillRow(X, (size_t)r * K, K, kindOf(r), r);
  X.up();
  std::vector<float> mul(K);
  for (int i = 0; i < K; ++i) mul[i] = i % 7 == 0 ? 1.f : uni(0.25f, 4.f);  // some exact 1s: ties stay ties
  const DevVec<float> dMul(mul);
  DevVec<int8_t> q((size_t)M * K);
  DevVec<float> s(M);
  kvsk_quantize_rows_int8_params p{X.dev, smooth ? dMul.dev : nullptr, q.dev, s.dev, M, K, dt};
  CK(kvsk_quantize_rows_int8(&p, 0));
  CK(cudaDeviceSynchronize());
  std::vector<int8_t> refQ((size_t)M * K);
  std::vector<float> refS(M), row(K);
  for (int r = 0; r < M; ++r) {
    for (int i = 0; i < K; ++i) row[i] = X.get((size_t)r * K + i);
    refS[r] = quantizeRowInt8Ref(row.data(), smooth ? mul.data() : nullptr, K, &refQ[(size_t)r * K]);
  }
  std::string first;
  const std::vector<int8_t> gotQ = q.down();
  const size_t bad = countDiff(gotQ, refQ, &first, "byte") + countDiff(s.down(), refS, &first, "scale");
  bool zeroRow = true;  // row 0 is all zeros: all-zero bytes, never NaN
  for (int i = 0; i < K; ++i) zeroRow = zeroRow && gotQ[i] == 0;
  reportBool("int8", std::string("quantize rows ") + dtName(dt) + " M" + std::to_string(M) + " K" + std::to_string(K) +
                         (smooth ? " act_smooth" : "") + " bitwise", M, bad == 0 && zeroRow,
             bad ? std::to_string(bad) + " differ, first " + first : "");
}

void dequantCase(kvsk_dtype dt, int M, int N) {
  std::vector<int32_t> acc((size_t)M * N);
  for (size_t i = 0; i < acc.size(); ++i) {
    const int kind = irand(0, 9);
    acc[i] = kind == 0 ? 2147483647 : kind == 1 ? -2147483647 - 1 : kind == 2 ? 0 : irand(-200000000, 200000000);
  }
  std::vector<float> xs(M), ws(N);
  for (auto& v : xs) v = uni(1e-4f, 1.f) * 0.01f;
  for (auto& v : ws) v = uni(1e-4f, 1.f) * 0.001f;
  const DevVec<int32_t> dAcc(acc);
  const DevVec<float> dXs(xs), dWs(ws);
  Buf Y(dt, (size_t)M * N);
  Y.poison();
  kvsk_dequant_int8_params p{dAcc.dev, dXs.dev, dWs.dev, Y.dev, M, N, dt};
  CK(kvsk_dequant_int8(&p, 0));
  CK(cudaDeviceSynchronize());
  Y.down();
  size_t bad = 0;
  std::string first;
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      const uint32_t want = outBits(dt, dequantInt8Ref(acc[(size_t)m * N + n], xs[m], ws[n]));
      uint32_t got = 0;
      std::memcpy(&got, Y.host.data() + ((size_t)m * N + n) * 2, 2);
      if (got != want && bad++ == 0) first = "m " + std::to_string(m) + " n " + std::to_string(n) + ": " + bitsNote(got, want);
    }
  reportBool("int8", std::string("dequant ") + dtName(dt) + " M" + std::to_string(M) + " N" + std::to_string(N) + " bitwise", M,
             bad == 0, bad ? std::to_string(bad) + " differ, first " + first : "");
}

}  // namespace

void int8QuantTests() {
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (auto [M, K] : {std::pair{5, 8}, std::pair{7, 1000}, std::pair{16, 4096}, std::pair{33, 14336}, std::pair{6, 20480}})
      for (bool smooth : {false, true}) try {
          rowsCase(dt, M, K, smooth);
        } catch (const std::exception& e) {
          reportBool("int8", std::string("quantize rows ") + dtName(dt), 0, false, e.what());
        }
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (auto [M, N] : {std::pair{1, 4}, std::pair{17, 1000}, std::pair{512, 6144}}) try {
        dequantCase(dt, M, N);
      } catch (const std::exception& e) {
        reportBool("int8", std::string("dequant ") + dtName(dt), 0, false, e.what());
      }
}

}  // namespace kt
