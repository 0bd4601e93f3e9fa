// The int8 × int8 → int32 dot products of the int8 GEMM, for one ISA chosen at compile time like simd.h:
//   AVX-512 VNNI  vpdpbusd multiplies unsigned by signed bytes, so activations are stored offset by +128
//                 (u8 = q + 128) and the caller subtracts 128 · Σ_k w[n, k] (the weight row's stored sum);
//   AVX2          maddubs also takes u8 × s8 but saturates at 16 bits (255 · 127 · 2 > 32767), so
//                 activations stay signed and the sign moves onto the weight: |x| · sign(w, x), as llama.cpp
//                 does (127 · 127 · 2 fits); then madd by ones widens the pairs to int32;
//   scalar        plain signed products.
// Integer sums are exact, so every path gives the same int32 dot whatever the lane order or tiling: the int8
// GEMM is batch invariant and identical across ISAs by construction.
#pragma once
#include <cstdint>
#include <cstring>

#include "simd.h"

#if defined(KVS_SIMD_AVX512) && defined(__AVX512VNNI__)
#define KVS_INT8_VNNI 1
#elif defined(KVS_SIMD_AVX512) || defined(KVS_SIMD_AVX2)
#define KVS_INT8_AVX2 1
#endif

namespace kvs::int8 {

#if defined(KVS_INT8_VNNI)
constexpr int kActOffset = 128;  // stored activation byte = q + kActOffset
inline const char* isaName() { return "avx512-vnni"; }
#elif defined(KVS_INT8_AVX2)
constexpr int kActOffset = 0;
inline const char* isaName() { return "avx2"; }
#else
constexpr int kActOffset = 0;
inline const char* isaName() { return "scalar"; }
#endif

// Quantized activation rows are padded with the byte of q = 0 to a multiple of kRowAlign, so the kernels
// read whole vectors of x; weight rows are not padded (the tail is masked or copied).
constexpr int64_t kRowAlign = 64;

#if defined(KVS_INT8_VNNI)
// Σ of the 16 lanes. The all-ones-mask forms of the shuffles: the plain ones pass GCC 12 an undefined
// vector that -Wuninitialized reports.
inline int32_t hsum(__m512i v) {
  v = _mm512_add_epi32(v, _mm512_mask_shuffle_i64x2(v, 0xff, v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_epi32(v, _mm512_mask_shuffle_i64x2(v, 0xff, v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  v = _mm512_add_epi32(v, _mm512_mask_shuffle_epi32(v, 0xffff, v, _MM_PERM_BADC));
  v = _mm512_add_epi32(v, _mm512_mask_shuffle_epi32(v, 0xffff, v, _MM_PERM_CDAB));
  return _mm512_cvtsi512_si32(v);
}
#endif

// acc[r][c] = Σ_k x[r·ldx + k] · w[c·K + k] over k < K, as stored bytes (x offset by kActOffset, w signed).
template <int R, int C>
inline void dotTile(const uint8_t* x, int64_t ldx, const int8_t* w, int64_t K, int32_t acc[R][C]) {
#if defined(KVS_INT8_VNNI)
  __m512i a[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) a[r][c] = _mm512_setzero_si512();
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) {
    __m512i wv[C];
    for (int c = 0; c < C; ++c) {
      wv[c] = _mm512_loadu_si512(w + c * K + k);
      asm("" : "+v"(wv[c]));  // keep in a register (see linear.cc's tile)
    }
    for (int r = 0; r < R; ++r) {
      const __m512i xv = _mm512_loadu_si512(x + r * ldx + k);
      for (int c = 0; c < C; ++c) a[r][c] = _mm512_dpbusd_epi32(a[r][c], xv, wv[c]);
    }
  }
  if (k < K) {  // masked weight bytes are 0, so whatever x holds there adds nothing
    const __mmask64 m = (~0ull) >> (64 - (K - k));
    __m512i wv[C];
    for (int c = 0; c < C; ++c) wv[c] = _mm512_maskz_loadu_epi8(m, w + c * K + k);
    for (int r = 0; r < R; ++r) {
      const __m512i xv = _mm512_loadu_si512(x + r * ldx + k);
      for (int c = 0; c < C; ++c) a[r][c] = _mm512_dpbusd_epi32(a[r][c], xv, wv[c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = hsum(a[r][c]);
#elif defined(KVS_INT8_AVX2)
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i a[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) a[r][c] = _mm256_setzero_si256();
  auto step = [&](const int8_t* const* wp, int64_t kk) {
    __m256i wv[C];
    for (int c = 0; c < C; ++c) wv[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp[c]));
    for (int r = 0; r < R; ++r) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + r * ldx + kk));
      const __m256i ax = _mm256_sign_epi8(xv, xv);  // |x|, as u8 (x >= -127)
      for (int c = 0; c < C; ++c) {
        const __m256i sw = _mm256_sign_epi8(wv[c], xv);  // w · sign(x)
        a[r][c] = _mm256_add_epi32(a[r][c], _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sw), ones));
      }
    }
  };
  int64_t k = 0;
  const int8_t* wp[C];
  for (; k + 32 <= K; k += 32) {
    for (int c = 0; c < C; ++c) wp[c] = w + c * K + k;
    step(wp, k);
  }
  if (k < K) {
    alignas(32) int8_t tail[C][32] = {};
    for (int c = 0; c < C; ++c) {
      std::memcpy(tail[c], w + c * K + k, size_t(K - k));
      wp[c] = tail[c];
    }
    step(wp, k);
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a[r][c]), _mm256_extracti128_si256(a[r][c], 1));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
      acc[r][c] = _mm_cvtsi128_si32(s);
    }
#else
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      const int8_t* xr = reinterpret_cast<const int8_t*>(x + r * ldx);
      const int8_t* wc = w + c * K;
      int32_t s = 0;
      for (int64_t k = 0; k < K; ++k) s += int32_t(xr[k]) * int32_t(wc[k]);
      acc[r][c] = s;
    }
#endif
}

}  // namespace kvs::int8
