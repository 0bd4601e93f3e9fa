// RoPE of one rotation pair, shared by the RoPE + cache kernel (rope_cache.cu) and the qkv GEMV's fused
// epilogue (gemv_fused.cu), so that both round alike bit for bit.
#pragma once
#include "common.cuh"

namespace kvsk {

// HF's rotate_half on the pair (a, b) = (x[i], x[i + D/2]) at position pos, rounding like transformers in
// bf16/f16: cos/sin are float32 cos/sin of pos * invFreq[i] rounded to T before the multiply, and every
// product and sum is rounded to T.
template <typename T>
__device__ __forceinline__ void ropeCosSin(float pos, float invFreq, float& c, float& s) {
  sincosf(pos * invFreq, &s, &c);
  c = roundTo<T>(c); s = roundTo<T>(s);
}

// The rotation of the pair by cos/sin already rounded to T (ropeCosSin).
template <typename T>
__device__ __forceinline__ void ropeRotate(float& a, float& b, float c, float s) {
  const float x = a, y = b;
  a = roundTo<T>(roundTo<T>(x * c) + roundTo<T>(-y * s));
  b = roundTo<T>(roundTo<T>(y * c) + roundTo<T>(x * s));
}

template <typename T>
__device__ __forceinline__ void ropePair(float& a, float& b, float pos, float invFreq) {
  float c, s;
  ropeCosSin<T>(pos, invFreq, c, s);
  ropeRotate<T>(a, b, c, s);
}

}  // namespace kvsk
