// Shared device helpers of the kernels: dtype load/store, rounding to a dtype, reductions, dtype dispatch.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <utility>

#include "kvserve_kernels.h"

namespace kvsk {

// Programmatic dependent launch (Hopper and newer). The forward pass's own kernels are launched with
// programmatic stream serialization, so a kernel's CTAs may start while the previous kernel drains: each
// such kernel calls pdlWait() before its first access to memory an earlier kernel writes or reads (only
// immutable data such as weights may be touched before), and pdlTrigger() once it no longer needs to hold
// its successor back. griddepcontrol.wait returns once the previous grid has completed and its writes are
// visible, and that grid waited for its own predecessor, so ordering is transitive. Both are no-ops below
// sm_90 or when the kernel was launched normally.
__device__ __forceinline__ void pdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdlTrigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// 16 bytes of immutable data (weights) streamed past L1 (read once: keeps L1 for what is reused, such as x).
__device__ __forceinline__ uint4 loadStreaming(const void* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

__device__ __forceinline__ void prefetchL2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

bool pdlEnabled();  // kvsk_set_programmatic_launch (launch.cu)

// Launches `kernel` on `stream`, with programmatic stream serialization when `pdl`.
template <typename... Params, typename... Args>
cudaError_t launchWith(bool pdl, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                       Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

// launchWith, with programmatic stream serialization when enabled (kvsk_set_programmatic_launch).
template <typename... Params, typename... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  return launchWith(pdlEnabled(), kernel, grid, block, smem, stream, std::forward<Args>(args)...);
}

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
