// q/k/v post-processing of the fused qkv projection:
//   bias (qwen2) -> per-head RMSNorm of q and k (qwen3) -> RoPE on q and k -> q to qOut, k and v to the cache.
// Rounding mirrors transformers in bf16/f16: every torch op's result is rounded to the dtype. An fp8 cache (FP8)
// gets those same rounded k and v as e4m3(x / scale) (kv_fp8.cuh).
//
// The vector kernel (asked for by kvsk_rope_cache_params.vector; bf16/f16, head_dim 16, 32, 64, 128 or 256, no q/k
// norm: every Llama/Mistral/Qwen2 shape) moves 16 bytes a lane: a head is D / 8 lanes, the first half's lanes holding x[8 l .. 8 l + 7] and the second's
// x[D/2 + 8 l ..], the two halves of each rotation pair swapped with one shuffle; each CTA works out the token's
// D / 2 cos/sin once in shared memory (ropeCosSin) instead of once per head. The scalar kernel (one warp per
// (token, head), lane l owning the pairs (i, i + D/2) for i = l, l + 32, ...: at most 4, D <= 256) serves the
// rest. Both do each element's arithmetic with the same functions (rope.cuh), so they, and the qkv GEMV's fused
// epilogue (gemv_fused.cu), give the same bits.
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

// The vector kernel: grid (tokens, ceil(jobs * D/8 / kVecThreads)), a job a q head, a k head or a v head.
constexpr int kVecThreads = 256;

template <typename T>
union Vec8 {
  uint4 raw;
  T v[8];
};

template <typename T, bool FP8>
__global__ void __launch_bounds__(kVecThreads) ropeCacheVecKernel(kvsk_rope_cache_params p) {
  __shared__ float sCos[128], sSin[128];
  pdlWait();
  pdlTrigger();
  const int t = blockIdx.x, D = p.headDim, half = D / 2, lanes = D / 8, hl = lanes / 2;
  const float pos = (float)p.positions[t];
  for (int i = threadIdx.x; i < half; i += kVecThreads) ropeCosSin<T>(pos, p.invFreq[i], sCos[i], sSin[i]);
  __syncthreads();
  const int Hq = p.numHeads, Hkv = p.numKvHeads;
  const int e = blockIdx.y * kVecThreads + threadIdx.x;  // (job, lane); a job's lanes share a warp (lanes | 32)
  const int job = e / lanes, l = e % lanes;
  const bool active = job < Hq + 2 * Hkv;
  const bool first = l < hl;
  const int col = first ? 8 * l : half + 8 * (l - hl);  // this lane's 8 elements of the head
  const int off = job * D + col;                         // q heads, then k heads, then v heads, as in the qkv row
  const T* bias = static_cast<const T*>(p.bias);
  Vec8<T> x;
  x.raw = make_uint4(0, 0, 0, 0);
  if (active) x.raw = *reinterpret_cast<const uint4*>(static_cast<const T*>(p.qkv) + (int64_t)t * (Hq + 2 * Hkv) * D + off);
  float v[8];
#pragma unroll
  for (int k = 0; k < 8; ++k) v[k] = toF<T>(x.v[k]);
  if (bias && active) {
    Vec8<T> b;
    b.raw = *reinterpret_cast<const uint4*>(bias + off);
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = roundTo<T>(v[k] + toF<T>(b.v[k]));
  }
  const bool rotate = job < Hq + Hkv;  // q and k (uniform across a job's lanes, so the shuffle below is too)
  // The other half of each pair: lane l +/- hl of the same head (every lane of the warp takes part).
  float w[8];
  const int lane = threadIdx.x & 31, partner = first ? lane + hl : lane - hl;
#pragma unroll
  for (int k = 0; k < 8; ++k) w[k] = __shfl_sync(0xffffffffu, v[k], partner);
  if (!active) return;
  if (rotate) {
    const int i0 = first ? col : col - half;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      float a = first ? v[k] : w[k], b = first ? w[k] : v[k];
      ropeRotate<T>(a, b, sCos[i0 + k], sSin[i0 + k]);
      v[k] = first ? a : b;
    }
  }
  if (job < Hq) {
    Vec8<T> o;
#pragma unroll
    for (int k = 0; k < 8; ++k) o.v[k] = fromF<T>(v[k]);
    *reinterpret_cast<uint4*>(static_cast<T*>(p.qOut) + ((int64_t)t * Hq + job) * D + col) = o.raw;
    return;
  }
  const int slot = p.slotMapping[t];
  if (slot < 0) return;
  const bool isK = rotate;
  const int kvh = isK ? job - Hq : job - Hq - Hkv;
  const int64_t dst = ((int64_t)slot * Hkv + kvh) * D + col;
  if constexpr (FP8) {
    const float scale = isK ? p.kScale : p.vScale;
    uint32_t lo = 0, hi = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      lo |= (uint32_t)toE4m3(__fdiv_rn(v[k], scale)) << (8 * k);
      hi |= (uint32_t)toE4m3(__fdiv_rn(v[k + 4], scale)) << (8 * k);
    }
    *reinterpret_cast<uint2*>(static_cast<uint8_t*>(isK ? p.kCache : p.vCache) + dst) = make_uint2(lo, hi);
  } else {
    Vec8<T> o;
#pragma unroll
    for (int k = 0; k < 8; ++k) o.v[k] = fromF<T>(v[k]);
    *reinterpret_cast<uint4*>(static_cast<T*>(isK ? p.kCache : p.vCache) + dst) = o.raw;
  }
}

// Whether the vector kernel serves p: bf16/f16, no q/k norm, D / 8 lanes a head dividing a warp, 16-byte aligned
// rows and buffers.
bool vecServes(const kvsk_rope_cache_params& p) {
  const int D = p.headDim;
  const bool shape = (D == 16 || D == 32 || D == 64 || D == 128 || D == 256) && !p.qNorm && !p.kNorm &&
                     (p.dtype == KVSK_BF16 || p.dtype == KVSK_F16);
  const uintptr_t fp8Align = p.cacheDtype == KVSK_KV_FP8_E4M3 ? 8 : 16;
  const bool aligned = (reinterpret_cast<uintptr_t>(p.qkv) | reinterpret_cast<uintptr_t>(p.qOut) |
                        reinterpret_cast<uintptr_t>(p.bias)) % 16 == 0 &&
                       (reinterpret_cast<uintptr_t>(p.kCache) | reinterpret_cast<uintptr_t>(p.vCache)) % fp8Align == 0;
  return shape && aligned;
}

}  // namespace kvsk

extern "C" cudaError_t kvsk_rope_cache(const kvsk_rope_cache_params* p, cudaStream_t stream) {
  if (p->numTokens <= 0) return cudaSuccess;
  if (p->headDim % 2 != 0 || p->headDim > 2 * 32 * kvsk::kMaxPairsPerLane) return cudaErrorNotSupported;
  if (p->cacheDtype == KVSK_KV_FP8_E4M3 && (!kvsk::validKvScale(p->kScale) || !kvsk::validKvScale(p->vScale)))
    return cudaErrorInvalidValue;
  if (p->cacheDtype != KVSK_KV_SAME && p->cacheDtype != KVSK_KV_FP8_E4M3) return cudaErrorInvalidValue;
  const bool fp8 = p->cacheDtype == KVSK_KV_FP8_E4M3;
  if (p->vector && kvsk::vecServes(*p)) {
    const int64_t lanes = (int64_t)(p->numHeads + 2 * p->numKvHeads) * (p->headDim / 8);
    const dim3 grid(p->numTokens, (unsigned)((lanes + kvsk::kVecThreads - 1) / kvsk::kVecThreads));
    if (p->dtype == KVSK_BF16)
      return fp8 ? kvsk::launch(kvsk::ropeCacheVecKernel<__nv_bfloat16, true>, grid, kvsk::kVecThreads, 0, stream, *p)
                 : kvsk::launch(kvsk::ropeCacheVecKernel<__nv_bfloat16, false>, grid, kvsk::kVecThreads, 0, stream, *p);
    return fp8 ? kvsk::launch(kvsk::ropeCacheVecKernel<__half, true>, grid, kvsk::kVecThreads, 0, stream, *p)
               : kvsk::launch(kvsk::ropeCacheVecKernel<__half, false>, grid, kvsk::kVecThreads, 0, stream, *p);
  }
  const int64_t items = (int64_t)p->numTokens * (p->numHeads + p->numKvHeads);
  const int warps = 4;
  const int blocks = (int)((items + warps - 1) / warps);
  if (fp8) {
    KVSK_DTYPE_SWITCH(p->dtype, T, return kvsk::launch(kvsk::ropeCacheKernel<T, true>, blocks, warps * 32, 0, stream, *p));
  }
  KVSK_DTYPE_SWITCH(p->dtype, T, return kvsk::launch(kvsk::ropeCacheKernel<T, false>, blocks, warps * 32, 0, stream, *p));
  return cudaSuccess;
}
