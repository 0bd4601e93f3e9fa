// Per-token activation quantization and the register-tiled int8 GEMM (the dot products are in int8_dot.h).
// The quantization is written once per ISA but rounds identically on each: the same two float multiplies,
// round half to even, the same clamp; max is exact in any order.
#include "int8_linear.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "int8_dot.h"

namespace kvs {

namespace {

inline uint8_t quantizeOne(float v, float inv) {
  const float r = std::fmax(-127.0f, std::fmin(127.0f, std::nearbyint(v * inv)));
  return uint8_t(int32_t(r) + int8::kActOffset);
}

// Row t of x into q (ld bytes) and *scale.
void quantizeRow(const float* x, int64_t K, const float* mul, uint8_t* q, int64_t ld, float* scale) {
  float amax = 0;
  int64_t k = 0;
#if defined(KVS_SIMD_AVX512)
  __m512 m = _mm512_setzero_ps();
  for (; k + 16 <= K; k += 16) {
    __m512 v = _mm512_loadu_ps(x + k);
    if (mul) v = _mm512_mul_ps(v, _mm512_loadu_ps(mul + k));
    m = _mm512_max_ps(m, _mm512_abs_ps(v));
  }
  amax = _mm512_reduce_max_ps(m);
#elif defined(KVS_SIMD_AVX2)
  const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 m = _mm256_setzero_ps();
  for (; k + 8 <= K; k += 8) {
    __m256 v = _mm256_loadu_ps(x + k);
    if (mul) v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + k));
    m = _mm256_max_ps(m, _mm256_and_ps(v, absMask));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  for (float l : lanes) amax = std::max(amax, l);
#endif
  for (; k < K; ++k) amax = std::max(amax, std::fabs(mul ? x[k] * mul[k] : x[k]));

  *scale = amax / 127.0f;
  // 127 / amax is infinite for a zero row and for amax below ~4e-37 (where 0 · inf = NaN would clamp to 127):
  // such a row quantizes to zeros.
  const float inv = std::isfinite(127.0f / amax) ? 127.0f / amax : 0.0f;
  k = 0;
#if defined(KVS_SIMD_AVX512)
  const __m512 vinv = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  const __m512i off = _mm512_set1_epi32(int8::kActOffset);
  for (; k + 16 <= K; k += 16) {
    __m512 v = _mm512_loadu_ps(x + k);
    if (mul) v = _mm512_mul_ps(v, _mm512_loadu_ps(mul + k));
    v = _mm512_roundscale_ps(_mm512_mul_ps(v, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_max_ps(lo, _mm512_min_ps(hi, v));
    const __m512i i = _mm512_add_epi32(_mm512_cvtps_epi32(v), off);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + k), _mm512_cvtepi32_epi8(i));
  }
#elif defined(KVS_SIMD_AVX2)
  const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (; k + 32 <= K; k += 32) {
    __m256i i[4];
    for (int j = 0; j < 4; ++j) {
      __m256 v = _mm256_loadu_ps(x + k + 8 * j);
      if (mul) v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + k + 8 * j));
      v = _mm256_round_ps(_mm256_mul_ps(v, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      i[j] = _mm256_cvtps_epi32(_mm256_max_ps(lo, _mm256_min_ps(hi, v)));
    }
    // packs interleave the 128-bit lanes; the permutation puts the 32 bytes back in k order
    const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k), _mm256_permutevar8x32_epi32(b, order));
  }
#endif
  for (; k < K; ++k) q[k] = quantizeOne(mul ? x[k] * mul[k] : x[k], inv);
  for (; k < ld; ++k) q[k] = uint8_t(int8::kActOffset);
}

// Token rows [t, t + R) × blocks [nb, nb + C) of w.
template <int R, int C>
void tileAt(const QuantizedActs& xq, int64_t t, const Mat& w, int64_t nb, int64_t rows, const float* bias, float* y,
            int64_t ldy) {
  const int64_t G = packedInt8Groups(w.cols);
  const int64_t n = nb * int8::kBlockRows;
  int8::TileParams p{xq.q.data() + t * xq.ld, xq.ld, xq.scale.data() + t,
                     static_cast<const int8_t*>(w.data) + nb * G * 64, G,
                     w.scale + n, w.rowSum + n, bias ? bias + n : nullptr, rows, y + t * ldy + n, ldy};
  int8::tile<R, C>(p);
}

template <int C>
void tokensAt(const QuantizedActs& xq, int64_t t0, int64_t t1, const Mat& w, int64_t nb, int64_t rows,
              const float* bias, float* y, int64_t ldy) {
  constexpr int R = int8::kTileR;
  int64_t t = t0;
  for (; t + R <= t1; t += R) tileAt<R, C>(xq, t, w, nb, rows, bias, y, ldy);
  for (; t < t1; ++t) tileAt<1, C>(xq, t, w, nb, rows, bias, y, ldy);
}

// A token block's quantized rows stay in L2 while the blocks of weights sweep past them.
constexpr int64_t kBlockBytesX = 512 * 1024;

}  // namespace

void quantizeActs(ThreadPool& pool, const float* x, int64_t ldx, int64_t T, int64_t K, const float* mul,
                  QuantizedActs& out) {
  out.T = T;
  out.K = K;
  out.ld = (K + int8::kRowAlign - 1) / int8::kRowAlign * int8::kRowAlign;
  if (out.q.size() < size_t(T * out.ld)) out.q.resize(size_t(T * out.ld));
  if (out.scale.size() < size_t(T)) out.scale.resize(size_t(T));
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, K));
  pool.parallelFor(T, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) quantizeRow(x + t * ldx, K, mul, out.q.data() + t * out.ld, out.ld, &out.scale[t]);
  });
}

void int8LinearRange(const QuantizedActs& xq, const Mat& w, const float* bias, float* y, int64_t ldy, int64_t n0,
                     int64_t n1) {
  constexpr int C = int8::kTileC, B = int8::kBlockRows;
  const int64_t T = xq.T;
  const int64_t blockT = std::max<int64_t>(int8::kTileR, kBlockBytesX / xq.ld / int8::kTileR * int8::kTileR);
  for (int64_t t0 = 0; t0 < T; t0 += blockT) {
    const int64_t t1 = std::min(T, t0 + blockT);
    int64_t nb = n0 / B;
    for (; (nb + C) * B <= n1; nb += C) tokensAt<C>(xq, t0, t1, w, nb, C * B, bias, y, ldy);
    for (; nb * B < n1; ++nb) tokensAt<1>(xq, t0, t1, w, nb, std::min<int64_t>(B, n1 - nb * B), bias, y, ldy);
  }
}

void quantizeWeightRows(ThreadPool& pool, const float* w, int64_t rows, int64_t cols, int8_t* q, float* scale,
                        int32_t* rowSum) {
  pool.parallelFor(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t n = r0; n < r1; ++n) {
      const float* row = w + n * cols;
      float amax = 0;
      for (int64_t k = 0; k < cols; ++k) amax = std::max(amax, std::fabs(row[k]));
      scale[n] = amax / 127.0f;
      const float inv = std::isfinite(127.0f / amax) ? 127.0f / amax : 0.0f;  // as quantizeRow: zeros when infinite
      int32_t sum = 0;
      for (int64_t k = 0; k < cols; ++k) {
        const float r = std::fmax(-127.0f, std::fmin(127.0f, std::nearbyint(row[k] * inv)));
        q[n * cols + k] = int8_t(r);
        sum += int32_t(r);
      }
      rowSum[n] = sum;
    }
  });
}

}  // namespace kvs

namespace kvs {

void packInt8Rows(const int8_t* q, int64_t rows, int64_t cols, int8_t* packed) {
  const int64_t G = packedInt8Groups(cols);
  std::memset(packed, 0, packedInt8Bytes(rows, cols));
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t k = 0; k < cols; ++k) packed[packedInt8Index(n, k, G)] = q[n * cols + k];
}

}  // namespace kvs
