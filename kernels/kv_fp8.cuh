// The fp8 (e4m3) KV cache on the device: encoding, exact decoding to f16, and the order in which the attention
// kernels feed Q·K^T's head_dim to the tensor cores when the cache is fp8.
//
// Operands. Attention over an fp8 cache multiplies in f16 whatever the query dtype: every e4m3 value is an f16
// (3 mantissa bits, exponents 2^-9 .. 2^8), so one cvt.rn.f16x2.e4m3x2 per two elements dequantizes exactly,
// where bf16 operands would need three more instructions per pair (through float32) in the loop that decode
// speed hangs on. bf16 queries are converted to f16 once per CTA (exact in f16's normal range; beyond +-65504
// saturated, never inf), P is rounded to f16 instead of bf16 (finer), and the accumulators stay float32. The
// layer's scales never touch an element: K's multiplies the scores (with the softmax scale), V's the output.
//
// Fragment order of Q·K^T (fp8 only). ldmatrix on a tile of e4m3 rows treats 16 bytes as eight 16-bit
// elements, so lane (g, t) receives bytes 4t .. 4t+3 of key g's 16-element chunk: head_dim elements
// 4t, 4t+1 go to the mma's k slots 2t, 2t+1 and 4t+2, 4t+3 to slots 2t+8, 2t+9. Q is fed in the same order.
// The decode kernel reads K this way straight from the fp8 tile; the prefill-shaped kernel converts its tile
// into shared memory in that same order (kFragCol) and stores Q so, which keeps every product in the same mma
// slot in both kernels: a decode row gives the same bits in either (batch invariance, flash_decode.cuh).
#pragma once
#include <cuda_fp8.h>

#include <type_traits>

#include "common.cuh"
#include "mma.cuh"

namespace kvsk {

using Fp8Mma = __half;  // the tensor-core operand type over an fp8 cache

// A layer scale the kernels accept: finite and > 0 (NaN fails both).
inline bool validKvScale(float s) { return s > 0.f && s < INFINITY; }

// What the cache stores of x (already divided by the layer's scale): round to nearest even, saturated to
// +-448 (cvt.rn.satfinite.e4m3x2.f32 on sm_89+).
__device__ __forceinline__ uint8_t toE4m3(float x) {
  return (uint8_t)__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
}

// Two e4m3 values (element 0 in the low byte) -> f16x2 (element 0 in the low half), exact.
__device__ __forceinline__ uint32_t e4m3x2ToHalf2(uint32_t lo16) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(lo16 & 0xFFFFu), __NV_E4M3);
  return (uint32_t)h.x | ((uint32_t)h.y << 16);
}

// Column of the shared-memory tile (f16, fragment order) that holds element e of a 16-element chunk.
__host__ __device__ constexpr int kFragCol(int e) { return (e & 2) ? 8 + 2 * (e >> 2) + (e & 1) : 2 * (e >> 2) + (e & 1); }

// log2(e) * softmax scale * K's scale: what the fp8 kernels multiply the raw scores by (one expression, so the
// decode and prefill-shaped kernels round it alike).
__device__ __forceinline__ float fp8ScoreScaleLog2(const kvsk_attention_params& p) {
  return p.scale * p.kScale * 1.4426950408889634f;
}

__device__ __forceinline__ float satHalf(float x) { return fabsf(x) > 65504.f ? copysignf(65504.f, x) : x; }

// Four consecutive query elements (dtype T) as two f16x2: (x0, x1) and (x2, x3), saturated to f16's range.
template <typename T>
__device__ __forceinline__ uint2 queryQuad(const T* p) {
  const uint2 raw = *reinterpret_cast<const uint2*>(p);
  if constexpr (std::is_same_v<T, __half>) {
    return raw;
  } else {
    const T* v = reinterpret_cast<const T*>(&raw);
    return make_uint2(pack2<__half>(satHalf(toF<T>(v[0])), satHalf(toF<T>(v[1]))),
                      pack2<__half>(satHalf(toF<T>(v[2])), satHalf(toF<T>(v[3]))));
  }
}

// A row's 16 bytes of K (one chunk) as f16 in fragment order: lo = columns 0..7, hi = columns 8..15.
__device__ __forceinline__ void kChunkToFrag(const uint4& w, uint4& lo, uint4& hi) {
  lo = make_uint4(e4m3x2ToHalf2(w.x), e4m3x2ToHalf2(w.y), e4m3x2ToHalf2(w.z), e4m3x2ToHalf2(w.w));
  hi = make_uint4(e4m3x2ToHalf2(w.x >> 16), e4m3x2ToHalf2(w.y >> 16), e4m3x2ToHalf2(w.z >> 16), e4m3x2ToHalf2(w.w >> 16));
}
// A row's 16 bytes of V as f16 in their own order: lo = elements 0..7, hi = 8..15.
__device__ __forceinline__ void vChunkToHalf(const uint4& w, uint4& lo, uint4& hi) {
  lo = make_uint4(e4m3x2ToHalf2(w.x), e4m3x2ToHalf2(w.x >> 16), e4m3x2ToHalf2(w.y), e4m3x2ToHalf2(w.y >> 16));
  hi = make_uint4(e4m3x2ToHalf2(w.z), e4m3x2ToHalf2(w.z >> 16), e4m3x2ToHalf2(w.w), e4m3x2ToHalf2(w.w >> 16));
}

// Decode's V operand: J (2 or 4) adjacent columns of two keys' rows a and b, the bytes paired per column
// (key a in the low byte): columns 0, 1 in lo's halves, 2, 3 in hi's.
template <int J>
__device__ __forceinline__ void vKeyPairs(const uint8_t* a, const uint8_t* b, uint32_t& lo, uint32_t& hi) {
  static_assert(J == 2 || J == 4, "head_dim 64 or 128");
  if constexpr (J == 4) {
    const uint32_t x = *reinterpret_cast<const uint32_t*>(a), y = *reinterpret_cast<const uint32_t*>(b);
    lo = __byte_perm(x, y, 0x5140);
    hi = __byte_perm(x, y, 0x7362);
  } else {
    const uint32_t x = *reinterpret_cast<const uint16_t*>(a), y = *reinterpret_cast<const uint16_t*>(b);
    lo = __byte_perm(x, y, 0x5140);
    hi = 0;
  }
}

// Decode's output over an fp8 cache: row half i (rows g, g + 8) of the warp's J n-tiles as the 2J adjacent
// columns the lane holds, times V's scale: v[n] = column 2t J + n, v[J + n] = column 2t J + J + n.
template <int J>
__device__ __forceinline__ void fp8DecodeColumns(const float (&o)[J][4], int i, float vScale, float (&v)[2 * J]) {
#pragma unroll
  for (int n = 0; n < J; ++n) {
    v[n] = o[n][2 * i] * vScale;
    v[J + n] = o[n][2 * i + 1] * vScale;
  }
}

}  // namespace kvsk
