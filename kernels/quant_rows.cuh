// The row walk of the per-row activation quantizers (quant_fp8.cu, quant_int8.cu): one CTA of kThreads per row of
// `chunks` 16-byte chunks (8 bf16/f16 elements). The first pass folds every chunk into the row's absmax and keeps
// each thread's first kCached chunks (thread t: chunks t, t + kThreads, ...) in registers; the second encodes them
// from there and reads the rest of the row again, so rows up to kThreads * kCached chunks are read once.
#pragma once
#include "common.cuh"

namespace kvsk {

// The row's absmax over the CTA; absMax(chunk, c, m) folds chunk c into m (a cached slot past the row holds
// zeros and is folded too, as chunk c >= chunks). Fills v for encodeCachedRow.
template <int kThreads, int kCached, typename AbsMax>
__device__ __forceinline__ float cachedRowAbsMax(const uint4* x, int chunks, uint4 (&v)[kCached], float* scratch /* [32] */,
                                                 const AbsMax& absMax) {
  const int tid = threadIdx.x;
  float amax = 0.f;
#pragma unroll
  for (int i = 0; i < kCached; ++i) {
    const int c = tid + i * kThreads;
    v[i] = c < chunks ? x[c] : make_uint4(0, 0, 0, 0);
    amax = absMax(v[i], c, amax);
  }
  for (int c = tid + kCached * kThreads; c < chunks; c += kThreads) amax = absMax(x[c], c, amax);
  return blockMax(amax, scratch);
}

// q[c] = encode(chunk c, c) for every chunk of the row: the cached ones from v, the rest read from x again.
template <int kThreads, int kCached, typename Encode>
__device__ __forceinline__ void encodeCachedRow(const uint4* x, uint2* q, int chunks, const uint4 (&v)[kCached],
                                                const Encode& encode) {
  const int tid = threadIdx.x;
#pragma unroll
  for (int i = 0; i < kCached; ++i) {
    const int c = tid + i * kThreads;
    if (c < chunks) q[c] = encode(v[i], c);
  }
  for (int c = tid + kCached * kThreads; c < chunks; c += kThreads) q[c] = encode(x[c], c);
}

}  // namespace kvsk
