// q/k/v post-processing of the fused qkv projection, one warp per (token, head):
//   bias (qwen2) -> per-head RMSNorm of q and k (qwen3) -> RoPE on q and k -> q to qOut, k and v to the cache.
// Lane l owns the rotation pairs (i, i + D/2) for i = l, l + 32, ... (at most 4 pairs: D <= 256). Rounding
// mirrors transformers in bf16/f16: every torch op's result is rounded to the dtype. An fp8 cache (FP8) gets
// those same rounded k and v as e4m3(x / scale) (kv_fp8.cuh).
#include "common.cuh"
#include "kv_fp8.cuh"
#include "rope.cuh"

namespace kvsk {

constexpr int kMaxPairsPerLane = 4;  // D <= 256

template <typename T>
struct HeadVec {
  float lo[kMaxPairsPerLane], hi[kMaxPairsPerLane];  // x[i], x[i + D/2] for this lane's pairs
};

template <typename T>
__device__ __forceinline__ void loadHead(HeadVec<T>& v, const T* src, const T* bias, int half, int lane) {
#pragma unroll
  for (int j = 0; j < kMaxPairsPerLane; ++j) {
    const int i = lane + 32 * j;
    if (i < half) {
      float a = toF<T>(src[i]), b = toF<T>(src[i + half]);
      if (bias) { a = roundTo<T>(a + toF<T>(bias[i])); b = roundTo<T>(b + toF<T>(bias[i + half])); }
      v.lo[j] = a; v.hi[j] = b;
    }
  }
}

template <typename T>
__device__ __forceinline__ void headNorm(HeadVec<T>& v, const T* w, int half, int lane, float eps) {
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < kMaxPairsPerLane; ++j)
    if (lane + 32 * j < half) ss += v.lo[j] * v.lo[j] + v.hi[j] * v.hi[j];
  ss = warpSum(ss);
  const float inv = rsqrtf(ss / (float)(2 * half) + eps);
#pragma unroll
  for (int j = 0; j < kMaxPairsPerLane; ++j) {
    const int i = lane + 32 * j;
    if (i < half) {
      v.lo[j] = roundTo<T>(toF<T>(w[i]) * roundTo<T>(v.lo[j] * inv));
      v.hi[j] = roundTo<T>(toF<T>(w[i + half]) * roundTo<T>(v.hi[j] * inv));
    }
  }
}

template <typename T>
__device__ __forceinline__ void rope(HeadVec<T>& v, const float* invFreq, float pos, int half, int lane) {
#pragma unroll
  for (int j = 0; j < kMaxPairsPerLane; ++j) {
    const int i = lane + 32 * j;
    if (i < half) ropePair<T>(v.lo[j], v.hi[j], pos, invFreq[i]);
  }
}

template <typename T>
__device__ __forceinline__ void storeHead(const HeadVec<T>& v, T* dst, int half, int lane) {
#pragma unroll
  for (int j = 0; j < kMaxPairsPerLane; ++j) {
    const int i = lane + 32 * j;
    if (i < half) { dst[i] = fromF<T>(v.lo[j]); dst[i + half] = fromF<T>(v.hi[j]); }
  }
}

// The head into an fp8 cache: IEEE division by the layer's scale (as the host reference), then e4m3.
__device__ __forceinline__ void storeHeadE4m3(const float (&lo)[kMaxPairsPerLane], const float (&hi)[kMaxPairsPerLane],
                                              uint8_t* dst, float scale, int half, int lane) {
#pragma unroll
  for (int j = 0; j < kMaxPairsPerLane; ++j) {
    const int i = lane + 32 * j;
    if (i < half) { dst[i] = toE4m3(__fdiv_rn(lo[j], scale)); dst[i + half] = toE4m3(__fdiv_rn(hi[j], scale)); }
  }
}

template <typename T, bool FP8>
__global__ void ropeCacheKernel(kvsk_rope_cache_params p) {
  pdlWait();
  pdlTrigger();
  const int warpsPerBlock = blockDim.x >> 5, lane = threadIdx.x & 31;
  const int heads = p.numHeads + p.numKvHeads;
  const int64_t item = (int64_t)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
  if (item >= (int64_t)p.numTokens * heads) return;
  const int t = (int)(item / heads), h = (int)(item % heads);
  const int D = p.headDim, half = D / 2;
  const int qkvWidth = (p.numHeads + 2 * p.numKvHeads) * D;
  const T* row = static_cast<const T*>(p.qkv) + (int64_t)t * qkvWidth;
  const T* bias = static_cast<const T*>(p.bias);
  const float pos = (float)p.positions[t];

  HeadVec<T> v;
  if (h < p.numHeads) {
    const int off = h * D;
    loadHead(v, row + off, bias ? bias + off : nullptr, half, lane);
    if (p.qNorm) headNorm(v, static_cast<const T*>(p.qNorm), half, lane, p.normEps);
    rope(v, p.invFreq, pos, half, lane);
    storeHead(v, static_cast<T*>(p.qOut) + ((int64_t)t * p.numHeads + h) * D, half, lane);
    return;
  }
  const int kvh = h - p.numHeads;
  const int slot = p.slotMapping[t];
  if (slot < 0) return;
  const int64_t dst = ((int64_t)slot * p.numKvHeads + kvh) * D;
  const int kOff = (p.numHeads + kvh) * D, vOff = (p.numHeads + p.numKvHeads + kvh) * D;
  loadHead(v, row + kOff, bias ? bias + kOff : nullptr, half, lane);
  if (p.kNorm) headNorm(v, static_cast<const T*>(p.kNorm), half, lane, p.normEps);
  rope(v, p.invFreq, pos, half, lane);
  if constexpr (FP8) storeHeadE4m3(v.lo, v.hi, static_cast<uint8_t*>(p.kCache) + dst, p.kScale, half, lane);
  else storeHead(v, static_cast<T*>(p.kCache) + dst, half, lane);
  loadHead(v, row + vOff, bias ? bias + vOff : nullptr, half, lane);
  if constexpr (FP8) storeHeadE4m3(v.lo, v.hi, static_cast<uint8_t*>(p.vCache) + dst, p.vScale, half, lane);
  else storeHead(v, static_cast<T*>(p.vCache) + dst, half, lane);
}

}  // namespace kvsk

extern "C" cudaError_t kvsk_rope_cache(const kvsk_rope_cache_params* p, cudaStream_t stream) {
  if (p->numTokens <= 0) return cudaSuccess;
  if (p->headDim % 2 != 0 || p->headDim > 2 * 32 * kvsk::kMaxPairsPerLane) return cudaErrorNotSupported;
  const int64_t items = (int64_t)p->numTokens * (p->numHeads + p->numKvHeads);
  const int warps = 4;
  const int blocks = (int)((items + warps - 1) / warps);
  if (p->cacheDtype == KVSK_KV_FP8_E4M3) {
    if (!kvsk::validKvScale(p->kScale) || !kvsk::validKvScale(p->vScale)) return cudaErrorInvalidValue;
    KVSK_DTYPE_SWITCH(p->dtype, T, return kvsk::launch(kvsk::ropeCacheKernel<T, true>, blocks, warps * 32, 0, stream, *p));
  }
  if (p->cacheDtype != KVSK_KV_SAME) return cudaErrorInvalidValue;
  KVSK_DTYPE_SWITCH(p->dtype, T, return kvsk::launch(kvsk::ropeCacheKernel<T, false>, blocks, warps * 32, 0, stream, *p));
  return cudaSuccess;
}
