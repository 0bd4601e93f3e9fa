// Per-row e4m3 quantization of activations (kvserve_kernels.h: kvsk_quantize_rows_fp8), as device helpers:
// quant_fp8.cu's standalone pass and the producer that writes the FP8 GEMM input itself (rmsnorm.cu, with
// outQ set) call these same functions, so that the fused and the separate path give the
// same bytes and scales bit for bit:
//   scale = max(absmax / 448, KVSK_FP8_MIN_ACT_SCALE)   (IEEE division; absmax by fmaxf, so NaN is skipped and
//                                                        the order of the max does not matter)
//   code  = e4m3(x / scale)                              (IEEE division, cvt.rn.satfinite, two at a time)
#pragma once
#include <cuda_fp8.h>

#include "common.cuh"

namespace kvsk {

__device__ __forceinline__ uint32_t e4m3x2(float a, float b) {  // a in the low byte
  return __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
}

// The activation scale of a row of this absmax.
__device__ __forceinline__ float fp8ActScale(float amax) {
  return fmaxf(__fdiv_rn(amax, KVSK_FP8_E4M3_MAX), KVSK_FP8_MIN_ACT_SCALE);
}

// 8 values divided by scale, as 8 e4m3 bytes in element order.
__device__ __forceinline__ uint2 encodeE4m3x8(const float (&v)[8], float scale) {
  uint32_t w[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int i = 4 * h;
    w[h] = e4m3x2(__fdiv_rn(v[i], scale), __fdiv_rn(v[i + 1], scale)) |
           e4m3x2(__fdiv_rn(v[i + 2], scale), __fdiv_rn(v[i + 3], scale)) << 16;
  }
  return make_uint2(w[0], w[1]);
}

// The same on one 16-byte chunk of 8 bf16/f16 elements.
template <typename T>
__device__ __forceinline__ uint2 encodeE4m3Chunk(const uint4& c, float scale) {
  static_assert(sizeof(T) == 2, "e4m3 chunks are 8 elements of bf16 or f16");
  const T* e = reinterpret_cast<const T*>(&c);
  float v[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = toF<T>(e[i]);
  return encodeE4m3x8(v, scale);
}

// max(m, |element|) over the 8 elements of a chunk.
template <typename T>
__device__ __forceinline__ float absMaxChunk(const uint4& c, float m) {
  static_assert(sizeof(T) == 2, "e4m3 chunks are 8 elements of bf16 or f16");
  const T* e = reinterpret_cast<const T*>(&c);
#pragma unroll
  for (int i = 0; i < 8; ++i) m = fmaxf(m, fabsf(toF<T>(e[i])));
  return m;
}

}  // namespace kvsk
