// The int8 GEMM's register tile, for one ISA chosen at compile time like simd.h. Weights are packed in
// blocks of 16 output rows (int8_tensors.h): for each group of 4 input channels a block holds 16 × 4 bytes,
// row-major by output, so one 64-byte vector is "4 inputs of 16 outputs" and a 32-bit lane accumulates one
// output. An activation group of 4 bytes is broadcast to every lane; no horizontal sums are needed.
//   AVX-512 VNNI  vpdpbusd multiplies unsigned by signed bytes and sums each 4 into a 32-bit lane, so
//                 activations are stored offset by +128 (u8 = q + 128) and 128 · Σ_k w[n, k] (the row's
//                 stored sum) is taken back out;
//   AVX2          maddubs also takes u8 × s8 but saturates at 16 bits (255 · 127 · 2 > 32767), so
//                 activations stay signed and the sign moves onto the weight, |x| · sign(w, x), as llama.cpp
//                 does (127 · 127 · 2 fits); madd by ones then sums the pairs into 32-bit lanes;
//   scalar        plain signed products.
// Integer sums are exact and the dequantization is the same float expression, y = float(dot) · (sx · sw)
// (+ bias), in every path: the results are bitwise the same whatever the ISA, tile or batch.
#pragma once
#include <cstdint>

#include "simd.h"

#if defined(KVS_SIMD_AVX512) && defined(__AVX512VNNI__)
#define KVS_INT8_VNNI 1
#elif defined(KVS_SIMD_AVX512) || defined(KVS_SIMD_AVX2)
#define KVS_INT8_AVX2 1
#endif

namespace kvs::int8 {

constexpr int kBlockRows = 16;  // output rows per packed block
constexpr int kGroup = 4;       // input channels per 32-bit lane

#if defined(KVS_INT8_VNNI)
constexpr int kActOffset = 128;  // stored activation byte = q + kActOffset
// tokens × blocks: 18 accumulators and a broadcast. At 4 × 6 GCC 12 no longer keeps the accumulators in
// registers (measured: 1.5× slower at 16 tokens).
constexpr int kTileR = 3, kTileC = 6;
inline const char* isaName() { return "avx512-vnni"; }
#elif defined(KVS_INT8_AVX2)
constexpr int kActOffset = 0;
constexpr int kTileR = 2, kTileC = 2;  // 8 accumulators of 8 lanes in 16 registers
inline const char* isaName() { return "avx2"; }
#else
constexpr int kActOffset = 0;
constexpr int kTileR = 1, kTileC = 1;
inline const char* isaName() { return "scalar"; }
#endif

// Quantized activation rows are padded with the byte of q = 0 to a multiple of kRowAlign.
constexpr int64_t kRowAlign = 64;

struct TileParams {
  const uint8_t* x;        // [R, ldx] activation bytes of R tokens
  int64_t ldx;
  const float* xScale;     // [R]
  const int8_t* w;         // C packed blocks, each [kGroups][16][4]
  int64_t kGroups;         // padded K / 4
  const float* wScale;     // [rows] from the first block's first row
  const int32_t* wSum;     // [rows]
  const float* bias;       // [rows] or nullptr
  int64_t rows;            // valid output rows in these blocks, 1 .. 16·C (the last block may be partial)
  float* y;                // [R, ldy], the first block's first column
  int64_t ldy;
};

#if defined(KVS_INT8_VNNI)
// The accumulation alone, apart from the dequantization and with plain arguments: GCC 12 keeps all R·C
// accumulators in registers here, but spills most of them around every vpdpbusd when the same loop shares
// a function with the epilogue or reads its pointers through a struct.
template <int R, int C>
__attribute__((noinline)) void dotsVnni(const uint8_t* x, int64_t ldx, const int8_t* w, int64_t G, int32_t* out) {
  __m512i acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_si512();
  for (int64_t g = 0; g < G; ++g) {
    __m512i wv[C];
    for (int c = 0; c < C; ++c) wv[c] = _mm512_loadu_si512(w + (c * G + g) * 64);
    for (int r = 0; r < R; ++r) {
      const __m512i xb = _mm512_set1_epi32(*reinterpret_cast<const int32_t*>(x + r * ldx + g * kGroup));
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], xb, wv[c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) _mm512_storeu_si512(out + (r * C + c) * 16, acc[r][c]);
}
#endif

template <int R, int C>
inline void tile(const TileParams& p) {
  const int64_t G = p.kGroups;
#if defined(KVS_INT8_VNNI)
  alignas(64) int32_t sums[R][C][16];
  dotsVnni<R, C>(p.x, p.ldx, p.w, G, &sums[0][0][0]);
  for (int c = 0; c < C; ++c) {
    const int64_t n = c * kBlockRows, valid = p.rows - n < kBlockRows ? p.rows - n : kBlockRows;
    const __mmask16 m = __mmask16((1u << valid) - 1u);
    const __m512 ws = _mm512_maskz_loadu_ps(m, p.wScale + n);
    // The masked forms throughout: GCC 12 warns about the undefined vector the unmasked ones pass.
    const __m512i off = _mm512_maskz_slli_epi32(m, _mm512_maskz_loadu_epi32(m, p.wSum + n), 7);  // 128 · Σ w
    const __m512 b = p.bias ? _mm512_maskz_loadu_ps(m, p.bias + n) : _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
      __m512 v = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(m, _mm512_sub_epi32(_mm512_load_si512(sums[r][c]), off)),
                               _mm512_mul_ps(_mm512_set1_ps(p.xScale[r]), ws));
      if (p.bias) v = _mm512_add_ps(v, b);
      _mm512_mask_storeu_ps(p.y + r * p.ldy + n, m, v);
    }
  }
#elif defined(KVS_INT8_AVX2)
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[R][2 * C];
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < 2 * C; ++h) acc[r][h] = _mm256_setzero_si256();
  for (int64_t g = 0; g < G; ++g) {
    __m256i wv[2 * C];
    for (int h = 0; h < 2 * C; ++h)
      wv[h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.w + ((h / 2) * G + g) * 64 + (h % 2) * 32));
    for (int r = 0; r < R; ++r) {
      const __m256i xb = _mm256_set1_epi32(*reinterpret_cast<const int32_t*>(p.x + r * p.ldx + g * kGroup));
      const __m256i ax = _mm256_sign_epi8(xb, xb);  // |x| as u8 (x >= -127)
      for (int h = 0; h < 2 * C; ++h) {
        const __m256i sw = _mm256_sign_epi8(wv[h], xb);  // w · sign(x)
        acc[r][h] = _mm256_add_epi32(acc[r][h], _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sw), ones));
      }
    }
  }
  for (int h = 0; h < 2 * C; ++h) {
    const int64_t n = h * 8;
    if (n >= p.rows) break;
    const int valid = p.rows - n < 8 ? int(p.rows - n) : 8;
    alignas(32) float ws[8] = {}, b[8] = {};
    for (int i = 0; i < valid; ++i) {
      ws[i] = p.wScale[n + i];
      if (p.bias) b[i] = p.bias[n + i];
    }
    for (int r = 0; r < R; ++r) {
      __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][h]), _mm256_mul_ps(_mm256_set1_ps(p.xScale[r]), _mm256_load_ps(ws)));
      if (p.bias) v = _mm256_add_ps(v, _mm256_load_ps(b));
      alignas(32) float out[8];
      _mm256_store_ps(out, v);
      for (int i = 0; i < valid; ++i) p.y[r * p.ldy + n + i] = out[i];
    }
  }
#else
  for (int r = 0; r < R; ++r) {
    const auto* x = reinterpret_cast<const int8_t*>(p.x + r * p.ldx);
    for (int64_t n = 0; n < p.rows; ++n) {
      const int8_t* wb = p.w + (n / kBlockRows) * G * 64 + (n % kBlockRows) * kGroup;
      int32_t dot = 0;
      for (int64_t g = 0; g < G; ++g)
        for (int j = 0; j < kGroup; ++j) dot += int32_t(x[g * kGroup + j]) * int32_t(wb[g * 64 + j]);
      const float v = float(dot) * (p.xScale[r] * p.wScale[n]);
      p.y[r * p.ldy + n] = p.bias ? v + p.bias[n] : v;
    }
  }
#endif
}

}  // namespace kvs::int8
