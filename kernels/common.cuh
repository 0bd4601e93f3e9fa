// Shared device helpers of the kernels: dtype load/store, rounding to a dtype, reductions, dtype dispatch.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kvserve_kernels.h"

namespace kvsk {

template <typename T> __device__ __forceinline__ float toF(T x);
template <> __device__ __forceinline__ float toF<float>(float x) { return x; }
template <> __device__ __forceinline__ float toF<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }
template <> __device__ __forceinline__ float toF<__half>(__half x) { return __half2float(x); }

template <typename T> __device__ __forceinline__ T fromF(float x);
template <> __device__ __forceinline__ float fromF<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 fromF<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half fromF<__half>(float x) { return __float2half_rn(x); }

// x rounded to T and back: what a torch op in dtype T produces from an exact float32 result.
template <typename T> __device__ __forceinline__ float roundTo(float x) { return toF<T>(fromF<T>(x)); }

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum / max (blockDim.x a multiple of 32, <= 1024); every thread gets the result. The order of
// the additions is fixed by the thread layout, so a row's result never depends on anything but the row.
__device__ __forceinline__ float blockSum(float v, float* scratch /* [32] */) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warpSum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nw ? scratch[lane] : 0.f;
  return warpSum(v);
}
__device__ __forceinline__ float blockMax(float v, float* scratch /* [32] */) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warpMax(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nw ? scratch[lane] : -INFINITY;
  return warpMax(v);
}

}  // namespace kvsk

// Runs the statement with `T` bound to the element type of a kvsk_dtype; unknown dtypes return an error.
#define KVSK_DTYPE_SWITCH(dt, T, ...)                                     \
  switch (dt) {                                                           \
    case KVSK_F32: { using T = float; __VA_ARGS__; break; }               \
    case KVSK_BF16: { using T = __nv_bfloat16; __VA_ARGS__; break; }      \
    case KVSK_F16: { using T = __half; __VA_ARGS__; break; }              \
    default: return cudaErrorInvalidValue;                                \
  }
