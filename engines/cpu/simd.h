// The few vector operations the CPU kernels need, for one ISA chosen at compile time:
// AVX-512 (16 lanes), AVX2+FMA+F16C (8 lanes), or a portable scalar fallback (8 lanes).
// Every function is a fixed sequence of operations, so a kernel built on them is deterministic.
#pragma once
#include <cstdint>

#include "../half.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define KVS_SIMD_AVX512 1
#include <immintrin.h>
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define KVS_SIMD_AVX2 1
#include <immintrin.h>
#endif

namespace kvs::simd {

#if defined(KVS_SIMD_AVX512)
constexpr int kLanes = 16;
using V = __m512;
inline const char* isaName() { return "avx512"; }
inline V zero() { return _mm512_setzero_ps(); }
inline V set1(float x) { return _mm512_set1_ps(x); }
inline V load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, V v) { _mm512_storeu_ps(p, v); }
inline V loadBf16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
inline V loadF16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V add(V a, V b) { return _mm512_add_ps(a, b); }
inline V mul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V max(V a, V b) { return _mm512_max_ps(a, b); }
inline V sub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V div(V a, V b) { return _mm512_div_ps(a, b); }
// 2^n for integral float n in [-126, 127]
inline V exp2i(V n) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23)); }
inline V roundNearest(V x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline V zeroBelow(V x, V v, float lo) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(lo), _CMP_GE_OQ), v); }
inline float sum(V v) {  // fixed tree: 512 → 256 → 128 → 64 → 32
  __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}
#elif defined(KVS_SIMD_AVX2)
constexpr int kLanes = 8;
using V = __m256;
inline const char* isaName() { return "avx2"; }
inline V zero() { return _mm256_setzero_ps(); }
inline V set1(float x) { return _mm256_set1_ps(x); }
inline V load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, V v) { _mm256_storeu_ps(p, v); }
inline V loadBf16(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}
inline V loadF16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V add(V a, V b) { return _mm256_add_ps(a, b); }
inline V mul(V a, V b) { return _mm256_mul_ps(a, b); }
inline V max(V a, V b) { return _mm256_max_ps(a, b); }
inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
inline V div(V a, V b) { return _mm256_div_ps(a, b); }
inline V exp2i(V n) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23)); }
inline V roundNearest(V x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline V zeroBelow(V x, V v, float lo) { return _mm256_and_ps(_mm256_cmp_ps(x, _mm256_set1_ps(lo), _CMP_GE_OQ), v); }
inline float sum(V v) {
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}
#else
constexpr int kLanes = 8;
struct V { float v[8]; };
inline const char* isaName() { return "scalar"; }
inline V zero() { return V{}; }
inline V set1(float x) { V r; for (float& e : r.v) e = x; return r; }
inline V load(const float* p) { V r; for (int i = 0; i < 8; ++i) r.v[i] = p[i]; return r; }
inline void store(float* p, V v) { for (int i = 0; i < 8; ++i) p[i] = v.v[i]; }
inline V loadBf16(const uint16_t* p) { V r; for (int i = 0; i < 8; ++i) r.v[i] = bf16ToFloat(p[i]); return r; }
inline V loadF16(const uint16_t* p) { V r; for (int i = 0; i < 8; ++i) r.v[i] = f16ToFloat(p[i]); return r; }
inline V fma(V a, V b, V c) { V r; for (int i = 0; i < 8; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i]; return r; }
inline V add(V a, V b) { V r; for (int i = 0; i < 8; ++i) r.v[i] = a.v[i] + b.v[i]; return r; }
inline V mul(V a, V b) { V r; for (int i = 0; i < 8; ++i) r.v[i] = a.v[i] * b.v[i]; return r; }
inline V max(V a, V b) { V r; for (int i = 0; i < 8; ++i) r.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i]; return r; }
inline V sub(V a, V b) { V r; for (int i = 0; i < 8; ++i) r.v[i] = a.v[i] - b.v[i]; return r; }
inline V div(V a, V b) { V r; for (int i = 0; i < 8; ++i) r.v[i] = a.v[i] / b.v[i]; return r; }
inline V exp2i(V n) { V r; for (int i = 0; i < 8; ++i) r.v[i] = bitsToFloat(uint32_t(int32_t(n.v[i]) + 127) << 23); return r; }
inline V roundNearest(V x) { V r; for (int i = 0; i < 8; ++i) r.v[i] = __builtin_nearbyintf(x.v[i]); return r; }
inline V zeroBelow(V x, V v, float lo) { V r; for (int i = 0; i < 8; ++i) r.v[i] = x.v[i] >= lo ? v.v[i] : 0.0f; return r; }
inline float sum(V v) {
  float a = (v.v[0] + v.v[4]) + (v.v[2] + v.v[6]), b = (v.v[1] + v.v[5]) + (v.v[3] + v.v[7]);
  return a + b;
}
#endif

// e^x for x <= 0 (softmax after subtracting the max), within ~2 ulp of expf; exactly 0 below -87.3 and
// for -inf. Cephes' expf: x = n·ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, times 2^n.
inline V expNonPositive(V x) {
  const V xc = max(x, set1(-87.3f));
  const V n = roundNearest(mul(xc, set1(1.44269504088896341f)));
  V r = sub(xc, mul(n, set1(0.693359375f)));
  r = sub(r, mul(n, set1(-2.12194440e-4f)));
  V p = set1(1.9875691500e-4f);
  p = fma(p, r, set1(1.3981999507e-3f));
  p = fma(p, r, set1(8.3334519073e-3f));
  p = fma(p, r, set1(4.1665795894e-2f));
  p = fma(p, r, set1(1.6666665459e-1f));
  p = fma(p, r, set1(5.0000001201e-1f));
  const V y = add(fma(mul(p, r), r, r), set1(1.0f));
  return zeroBelow(x, mul(y, exp2i(n)), -87.3f);
}

}  // namespace kvs::simd
