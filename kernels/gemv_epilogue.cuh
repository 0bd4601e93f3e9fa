// What the fused GEMV epilogues do with one pair of rows for one token, shared by the bf16/f16 GEMV's
// (gemv_fused.cu) and the FP8 GEMV's (gemv_fp8_fused.cu): given the two values the GEMV would have stored,
// exactly what kvsk_rope_cache / kvsk_silu_mul then do with them (the RoPE rotation and SiLU-and-mul are those
// kernels' own device functions, rope.cuh and silu.cuh).
#pragma once
#include "kv_fp8.cuh"
#include "rope.cuh"
#include "silu.cuh"

namespace kvsk {

// The qkv projection's rows [(Hq + 2 Hkv) D] as RoPE pairs: pair p is rows (ropePairRow(D, p), that + D/2) of head
// h = p / (D/2), i = p % (D/2); q heads, then k heads, then v heads (v's pairs are written as they are, never rotated).
__device__ __forceinline__ int ropePairRow(int D, int p) { return p / (D / 2) * D + p % (D / 2); }

// a, b: token m's rows of pair p as the GEMV stores them (rounded to T). What rope_cache.cu's loadHead makes of
// them (+ bias, rounded), then its rope() and storeHead / storeHeadE4m3.
template <typename T, bool FP8>
__device__ __forceinline__ void ropeCachePair(const kvsk_rope_cache_params& r, int m, int p, float a, float b) {
  const int D = r.headDim, half = D / 2, h = p / half, i = p % half, lo = h * D + i;
  if (r.bias) {
    const T* bias = static_cast<const T*>(r.bias);
    a = roundTo<T>(a + toF<T>(bias[lo]));
    b = roundTo<T>(b + toF<T>(bias[lo + half]));
  }
  if (h < r.numHeads) {
    ropePair<T>(a, b, (float)r.positions[m], r.invFreq[i]);
    T* q = static_cast<T*>(r.qOut) + ((int64_t)m * r.numHeads + h) * D;
    q[i] = fromF<T>(a);
    q[i + half] = fromF<T>(b);
    return;
  }
  const int slot = r.slotMapping[m];
  if (slot < 0) return;
  const bool isK = h < r.numHeads + r.numKvHeads;
  const int kvh = h - r.numHeads - (isK ? 0 : r.numKvHeads);
  if (isK) ropePair<T>(a, b, (float)r.positions[m], r.invFreq[i]);
  const int64_t dst = ((int64_t)slot * r.numKvHeads + kvh) * D + i;
  if constexpr (FP8) {
    const float scale = isK ? r.kScale : r.vScale;
    uint8_t* c = static_cast<uint8_t*>(isK ? r.kCache : r.vCache) + dst;
    c[0] = toE4m3(__fdiv_rn(a, scale));
    c[half] = toE4m3(__fdiv_rn(b, scale));
  } else {
    T* c = static_cast<T*>(isK ? r.kCache : r.vCache) + dst;
    c[0] = fromF<T>(a);
    c[half] = fromF<T>(b);
  }
}

// gate/up rows [2 I] as pairs: pair i is rows (i, I + i). gate, up: token m's as the GEMV stores them.
template <typename T>
__device__ __forceinline__ void siluMulPair(const kvsk_silu_mul_params& s, int m, int i, T gate, T up) {
  static_cast<T*>(s.out)[(int64_t)m * s.intermediate + i] = siluMul<T>(gate, up);
}

}  // namespace kvsk
