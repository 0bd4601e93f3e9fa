// The int8 GEMM (engines/cpu/int8_linear.cc) against a naive reference over a grid of shapes, compiled once
// per ISA by int8-linear.test.ts (VNNI, AVX2, scalar). The reference quantizes with plain loops and sums
// int32 products one by one; the kernel must match it bitwise, since integer sums are exact. It prints the
// ISA, the number of cases and a hash of every output bit, which must be the same for every ISA.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "engines/cpu/int8_dot.h"
#include "engines/cpu/int8_linear.h"
#include "test/native/xorshift.h"

using namespace kvs;

namespace {

using kvs_cases::uniform;

int8_t naiveQ(float v, float amax) {
  if (!std::isfinite(127.0f / amax)) return 0;  // a zero row, or one so tiny that 127 / amax overflows
  float r = std::nearbyint(v * (127.0f / amax));
  if (r > 127) r = 127;
  if (r < -127) r = -127;
  return int8_t(r);
}

int failures = 0;
void fail(const char* what, int T, int N, int K, long i, double a, double b) {
  if (++failures <= 10) std::printf("FAIL %s T=%d N=%d K=%d at %ld: %.9g vs %.9g\n", what, T, N, K, i, a, b);
}

uint64_t hash = 1469598103934665603ull;
void mix(const void* p, size_t n) {
  for (size_t i = 0; i < n; ++i) hash = (hash ^ static_cast<const uint8_t*>(p)[i]) * 1099511628211ull;
}

void runCase(ThreadPool& pool, int T, int N, int K, bool smooth, bool withBias, bool outlier) {
  std::vector<float> x(size_t(T) * K), w(size_t(N) * K), mul(K), bias(N);
  for (float& v : x) v = uniform() * 3.0f;
  for (float& v : w) v = uniform() * 0.2f;
  for (float& v : mul) v = 0.25f + std::fabs(uniform()) * 2.0f;
  for (float& v : bias) v = uniform();
  if (outlier && K > 2) x[size_t(K / 2)] = 80.0f;  // one channel far outside the rest, as in real activations
  if (T > 1) for (int k = 0; k < K; ++k) x[size_t(K) + k] = 0;  // an all-zero row: scale 0
  // A row of zeros and subnormals: 127 / absmax overflows, and the row quantizes to zeros (not 0 · inf = NaN).
  if (T > 2) for (int k = 0; k < K; ++k) x[size_t(2 * K) + k] = k % 3 == 0 ? 1e-38f : 0.0f;

  // Engine: weights, activations, GEMM.
  std::vector<int8_t> wq(size_t(N) * K);
  std::vector<float> ws(N);
  std::vector<int32_t> wsum(N);
  quantizeWeightRows(pool, w.data(), N, K, wq.data(), ws.data(), wsum.data());
  std::vector<int8_t> packed(packedInt8Bytes(N, K));
  packInt8Rows(wq.data(), N, K, packed.data());
  Mat m;
  m.dtype = DType::I8;
  m.data = packed.data();
  m.rows = N;
  m.cols = K;
  m.scale = ws.data();
  m.rowSum = wsum.data();
  m.actSmooth = smooth ? mul.data() : nullptr;
  QuantizedActs xq;
  quantizeActs(pool, x.data(), K, T, K, m.actSmooth, xq);
  // Two calls split at a block boundary, as linearMulti's chunks are, and a guard column after each row.
  const int ldy = N + 1;
  std::vector<float> y(size_t(T) * ldy, -1.0f);
  const int split = N > 16 ? 16 : N;
  int8LinearRange(xq, m, withBias ? bias.data() : nullptr, y.data(), ldy, 0, split);
  int8LinearRange(xq, m, withBias ? bias.data() : nullptr, y.data(), ldy, split, N);
  for (int t = 0; t < T; ++t)
    if (y[size_t(t) * ldy + N] != -1.0f) fail("guard column written", T, N, K, t, y[size_t(t) * ldy + N], -1);

  // Reference.
  for (int n = 0; n < N; ++n) {
    float amax = 0;
    for (int k = 0; k < K; ++k) amax = std::fmax(amax, std::fabs(w[size_t(n) * K + k]));
    if (ws[n] != amax / 127.0f) fail("weight scale", T, N, K, n, ws[n], amax / 127.0f);
    int32_t sum = 0;
    for (int k = 0; k < K; ++k) {
      const int8_t q = naiveQ(w[size_t(n) * K + k], amax);
      sum += q;
      if (wq[size_t(n) * K + k] != q) fail("weight q", T, N, K, long(n) * K + k, wq[size_t(n) * K + k], q);
    }
    if (wsum[n] != sum) fail("weight sum", T, N, K, n, wsum[n], sum);
  }
  for (int t = 0; t < T; ++t) {
    std::vector<float> v(K);
    float amax = 0;
    for (int k = 0; k < K; ++k) {
      v[k] = smooth ? x[size_t(t) * K + k] * mul[k] : x[size_t(t) * K + k];
      amax = std::fmax(amax, std::fabs(v[k]));
    }
    const float sx = amax / 127.0f;
    if (xq.scale[t] != sx) fail("activation scale", T, N, K, t, xq.scale[t], sx);
    for (int k = 0; k < K; ++k) {
      const int stored = int(xq.q[size_t(t) * xq.ld + k]) - int8::kActOffset;
      const int q = (stored + 128) % 256 - 128;  // the byte as a signed value, whichever offset was used
      if (q != naiveQ(v[k], amax)) fail("activation q", T, N, K, long(t) * K + k, q, naiveQ(v[k], amax));
    }
    for (int n = 0; n < N; ++n) {
      int32_t dot = 0;
      double exact = 0;
      for (int k = 0; k < K; ++k) {
        dot += int32_t(naiveQ(v[k], amax)) * int32_t(wq[size_t(n) * K + k]);
        exact += double(x[size_t(t) * K + k]) * w[size_t(n) * K + k];
      }
      float ref = float(dot) * (sx * ws[n]);
      if (withBias) ref += bias[n];
      const float got = y[size_t(t) * ldy + n];
      if (std::memcmp(&got, &ref, 4) != 0) fail("output", T, N, K, long(t) * N + n, got, ref);
      // Without smoothing, the quantized product is within the rounding bound of the exact one: each value
      // moves by at most half a quantization step (sx/2, sw/2).
      if (!smooth) {
        double bound = 0;
        for (int k = 0; k < K; ++k)
          bound += 0.5 * sx * std::fabs(w[size_t(n) * K + k]) + 0.5 * ws[n] * std::fabs(x[size_t(t) * K + k]) +
                   0.25 * sx * ws[n];
        const double err = std::fabs(double(got) - (withBias ? exact + bias[n] : exact));
        if (err > bound * 1.001 + 1e-5) fail("accuracy", T, N, K, long(t) * N + n, err, bound);
      }
    }
  }
  mix(y.data(), y.size() * sizeof(float));
  mix(packed.data(), packed.size());
}

}  // namespace

int main() {
  ThreadPool pool(2);
  int cases = 0;
  for (int T : {1, 2, 3, 4, 5, 9, 17})
    for (int N : {1, 5, 13, 16, 17, 33, 100, 112})
      for (int K : {1, 3, 31, 32, 33, 63, 64, 65, 100, 172, 257})
        for (int variant = 0; variant < 4; ++variant) {
          runCase(pool, T, N, K, variant & 1, variant & 2, variant == 3);
          ++cases;
        }
  if (failures) {
    std::printf("%d failures\n", failures);
    return 1;
  }
  std::printf("ok %s %d %016llx\n", int8::isaName(), cases, static_cast<unsigned long long>(hash));
  return 0;
}
