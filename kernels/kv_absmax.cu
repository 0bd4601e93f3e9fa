// The KV-cache observer of `kvserve build --kv-cache-dtype fp8`: per plane (layer x K/V) the largest |x| over
// the cache rows of a list of slots. grid (ceil(numSlots / kSlotsPerCta), numPlanes): each CTA walks its slots'
// rows, threads striding over a row's Hkv * D elements. |x| is compared as its float32 bits: for values >= 0
// the bit order is the numeric order, a NaN's bits lie above +inf's (so a NaN anywhere is the result, never
// swallowed as fmaxf would), and the maximum of a set does not depend on the order it is taken in: the result
// is exact and the same for any grid.
#include <cuda_fp8.h>

#include "common.cuh"

namespace kvsk {

constexpr int kAbsMaxSlotsPerCta = 16;
constexpr int kAbsMaxThreads = 256;

// |x| as float32 bits.
template <typename T>
__device__ __forceinline__ uint32_t absBits(T x) {
  return __float_as_uint(toF<T>(x)) & 0x7FFFFFFFu;
}
// An e4m3 code's |value| (exact in f16, so in float32); 0x7F / 0xFF (NaN) become a float32 NaN.
__device__ __forceinline__ uint32_t absBits(uint8_t code) {
  const __half_raw h = __nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)code, __NV_E4M3);
  return __float_as_uint(__half2float(__half(h))) & 0x7FFFFFFFu;
}

template <typename E>
__global__ void kvAbsMaxKernel(kvsk_kv_absmax_params p) {
  __shared__ uint32_t warpMaxBits[kAbsMaxThreads / 32];
  const E* plane = static_cast<const E*>(p.cache) + (int64_t)blockIdx.y * p.planeElems;
  const int s0 = blockIdx.x * kAbsMaxSlotsPerCta, s1 = min(s0 + kAbsMaxSlotsPerCta, p.numSlots);
  uint32_t m = 0;
  for (int s = s0; s < s1; ++s) {
    const int32_t slot = p.slots[s];
    if (slot < 0) continue;
    const E* row = plane + (int64_t)slot * p.rowElems;
    for (int i = threadIdx.x; i < p.rowElems; i += blockDim.x) m = max(m, absBits(row[i]));
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) warpMaxBits[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x != 0) return;
  for (int w = 1; w < (int)(blockDim.x >> 5); ++w) m = max(m, warpMaxBits[w]);
  atomicMax(reinterpret_cast<unsigned int*>(p.absMax) + blockIdx.y, m);
}

}  // namespace kvsk

extern "C" cudaError_t kvsk_kv_absmax(const kvsk_kv_absmax_params* p, cudaStream_t stream) {
  if (p->numSlots <= 0) return cudaSuccess;
  if (p->numPlanes <= 0 || p->numPlanes > 65535 || p->rowElems <= 0) return cudaErrorInvalidValue;
  const dim3 grid((p->numSlots + kvsk::kAbsMaxSlotsPerCta - 1) / kvsk::kAbsMaxSlotsPerCta, p->numPlanes);
  if (p->cacheDtype == KVSK_KV_FP8_E4M3) {
    kvsk::kvAbsMaxKernel<uint8_t><<<grid, kvsk::kAbsMaxThreads, 0, stream>>>(*p);
    return cudaGetLastError();
  }
  if (p->cacheDtype != KVSK_KV_SAME) return cudaErrorInvalidValue;
  KVSK_DTYPE_SWITCH(p->dtype, T, kvsk::kvAbsMaxKernel<T><<<grid, kvsk::kAbsMaxThreads, 0, stream>>>(*p));
  return cudaGetLastError();
}
