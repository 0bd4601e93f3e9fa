// Paged attention on tensor cores (bf16/f16, head_dim 64, 128, 256), included by flash_attention_{bf16,f16}.cu.
// Same work list, masking, split-KV and partial layout as the CUDA-core kernel (paged_attention.cuh), which
// stays for float32 and the small head dims.
//
// CTA = (tile, KV head, split), WARPS warps; warp w owns query rows [16 w, 16 w + 16) of the tile (row
// r = token * G + head-of-group, so a decode token's G heads share one MMA row block and every K/V tile serves
// the whole group). Decode launches one warp per CTA (16 rows >= G), prefill four (64 rows).
// Per key tile of BN keys, loaded through the block table with cp.async into a two-stage bf16/f16 ring
// (the next tile streams in while this one is computed):
//   S = Q K^T (mma, float32) -> mask (causal / context) -> online softmax in registers, base 2 ->
//   O = O * alpha + P V (mma, P rounded to the dtype, as FlashAttention does).
// Batch invariance: a row's arithmetic (its key tiles, their order, every mma and softmax update) depends
// only on its own sequence — never on which other rows share the CTA, nor on decode vs prefill shape (the
// per-warp code is the same for WARPS = 1 and 4).
// An fp8 cache (FP8, kv_fp8.cuh): the tiles stream in as e4m3 bytes into their own two-stage ring and are
// converted once per tile into one f16 K/V tile that every warp then reads as above (K's head_dim in
// fragment order, Q stored so too); the operands are f16, the scores carry K's scale, the output V's.
#pragma once
#include "common.cuh"
#include "kv_fp8.cuh"
#include "mma.cuh"

namespace kvsk {

template <typename T> __global__ void flashCombineKernel(kvsk_attention_params p);

template <int D>
struct FlashTile {
  static constexpr int BN = D <= 128 ? 64 : 32;  // keys per K/V tile
  static constexpr int LD = D + 8;               // shared-memory row stride (16-byte pad: conflict-free ldmatrix)
};

template <typename T, int D, int WARPS, bool FP8 = false>
struct FlashSmem {
  static constexpr size_t bytes = sizeof(T) * FlashTile<D>::LD * (16 * WARPS + 2 * 2 * FlashTile<D>::BN);
};
template <typename T, int D, int WARPS>
struct FlashSmem<T, D, WARPS, true> {
  static constexpr int LD8 = D + 16;  // bytes per staged row: an odd multiple of 16 (conflict-free reads)
  static constexpr size_t bytes = sizeof(Fp8Mma) * FlashTile<D>::LD * (16 * WARPS + 2 * FlashTile<D>::BN) +
                                  2 * 2 * FlashTile<D>::BN * LD8;
};

template <typename T, int D, int WARPS, bool FP8 = false>
__global__ void __launch_bounds__(WARPS * 32) flashAttentionKernel(kvsk_attention_params p) {
  pdlWait();  // the cache and q come from the previous kernel (common.cuh)
  pdlTrigger();
  constexpr int BN = FlashTile<D>::BN, LD = FlashTile<D>::LD, NT = WARPS * 32, ROWS = 16 * WARPS, CH = D / 8;
  constexpr int LD8 = D + 16, CH8 = D / 16;  // fp8: staged row stride (bytes), 16-byte chunks per row
  using M = std::conditional_t<FP8, Fp8Mma, T>;  // tensor-core operands
  extern __shared__ __align__(16) unsigned char flashSmem[];
  M* sQ = reinterpret_cast<M*>(flashSmem);  // [ROWS][LD]
  M* sK = sQ + ROWS * LD;                   // [2][BN][LD]; fp8: [BN][LD], the current tile converted
  M* sV = sK + (FP8 ? 1 : 2) * BN * LD;     // as sK
  uint8_t* sK8 = reinterpret_cast<uint8_t*>(sV + (FP8 ? 1 : 2) * BN * LD);  // fp8: [2][BN][LD8] e4m3 ring
  uint8_t* sV8 = sK8 + 2 * BN * LD8;                                        // fp8: [2][BN][LD8]

  const int tile = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, tid = threadIdx.x;
  const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int G = p.numHeads / p.numKvHeads;
  const int seq = p.tileSeq[tile];
  const int qStart = p.queryStart[seq], qLen = p.queryStart[seq + 1] - qStart, ctx = p.contextLens[seq];
  const int t0 = p.tileQStart[tile];
  const int nTok = min(p.tokensPerTile, qLen - t0);
  const int rows = nTok * G;
  const int slot = p.tileSplitSlot[tile];
  const int nSplits = slot >= 0 ? (ctx + p.partitionSize - 1) / p.partitionSize : 1;
  if (split >= nSplits) return;
  const int firstPos = ctx - qLen + t0;  // absolute position of the tile's first query token
  const int kEndTile = firstPos + nTok;  // keys [0, kEndTile) are visible to some row of the tile
  const int kb = slot >= 0 ? split * p.partitionSize : 0;
  const int ke = slot >= 0 ? min(kb + p.partitionSize, kEndTile) : kEndTile;

  const T* q = static_cast<const T*>(p.q);
  if constexpr (FP8) {  // f16 in fragment order: elements 4i, 4i+1 of a chunk at columns 2i, 2i+1; 4i+2, 4i+3 at 8+2i
    for (int e = tid; e < ROWS * (D / 4); e += NT) {
      const int r = e / (D / 4), c4 = e % (D / 4);
      uint2 h = make_uint2(0, 0);
      if (r < rows) h = queryQuad<T>(q + ((qStart + t0 + r / G) * (int64_t)p.numHeads + kvh * G + r % G) * D + 4 * c4);
      M* dst = sQ + r * LD + 16 * (c4 >> 2) + 2 * (c4 & 3);
      *reinterpret_cast<uint32_t*>(dst) = h.x;
      *reinterpret_cast<uint32_t*>(dst + 8) = h.y;
    }
  } else {
    for (int e = tid; e < ROWS * CH; e += NT) {
      const int r = e / CH, c = e % CH;
      T* dst = sQ + r * LD + c * 8;
      if (r < rows) {
        const int64_t tok = qStart + t0 + r / G;
        cpAsync16(dst, q + (tok * p.numHeads + kvh * G + r % G) * D + c * 8, 16);
      } else {
        *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
      }
    }
  }
  const int32_t* table = p.blockTables + (int64_t)seq * p.maxBlocksPerSeq;
  const T* kc = static_cast<const T*>(p.kCache);
  const T* vc = static_cast<const T*>(p.vCache);
  const int bsShift = __ffs(p.blockSize) - 1;  // block sizes are powers of two (kvsk_attention checks)
  // Keys at or past ke are zero-filled, never read: unowned cache slots may hold anything (NaN * 0 = NaN).
  auto loadKV = [&](int k0, int stage) {
    if constexpr (FP8) {
      const uint8_t* kc8 = static_cast<const uint8_t*>(p.kCache);
      const uint8_t* vc8 = static_cast<const uint8_t*>(p.vCache);
      uint8_t* dk = sK8 + stage * BN * LD8;
      uint8_t* dv = sV8 + stage * BN * LD8;
      for (int e = tid; e < BN * CH8; e += NT) {
        const int j = e / CH8, c = e % CH8, key = k0 + j;
        const bool ok = key < ke;
        int64_t off = 0;
        if (ok) off = (((int64_t)table[key >> bsShift] * p.blockSize + (key & (p.blockSize - 1))) * p.numKvHeads + kvh) * D + c * 16;
        cpAsync16(dk + j * LD8 + c * 16, kc8 + off, ok ? 16 : 0);
        cpAsync16(dv + j * LD8 + c * 16, vc8 + off, ok ? 16 : 0);
      }
    } else {
      T* dk = sK + stage * BN * LD;
      T* dv = sV + stage * BN * LD;
      for (int e = tid; e < BN * CH; e += NT) {
        const int j = e / CH, c = e % CH, key = k0 + j;
        const bool ok = key < ke;
        int64_t off = 0;
        if (ok) off = (((int64_t)table[key >> bsShift] * p.blockSize + (key & (p.blockSize - 1))) * p.numKvHeads + kvh) * D + c * 8;
        cpAsync16(dk + j * LD + c * 8, kc + off, ok ? 16 : 0);
        cpAsync16(dv + j * LD + c * 8, vc + off, ok ? 16 : 0);
      }
    }
  };
  // fp8: the staged tile -> f16 in sK (fragment order) and sV (as stored), by every thread of the CTA.
  auto convertKV = [&](int stage) {
    const uint8_t* k8 = sK8 + stage * BN * LD8;
    const uint8_t* v8 = sV8 + stage * BN * LD8;
    for (int e = tid; e < BN * CH8; e += NT) {
      const int j = e / CH8, c = e % CH8;
      uint4 lo, hi;
      kChunkToFrag(*reinterpret_cast<const uint4*>(k8 + j * LD8 + c * 16), lo, hi);
      *reinterpret_cast<uint4*>(sK + j * LD + c * 16) = lo;
      *reinterpret_cast<uint4*>(sK + j * LD + c * 16 + 8) = hi;
      vChunkToHalf(*reinterpret_cast<const uint4*>(v8 + j * LD8 + c * 16), lo, hi);
      *reinterpret_cast<uint4*>(sV + j * LD + c * 16) = lo;
      *reinterpret_cast<uint4*>(sV + j * LD + c * 16 + 8) = hi;
    }
  };
  loadKV(kb, 0);
  cpAsyncCommit();

  const int r0 = warp * 16;  // the warp's first row in the tile
  const bool active = r0 < rows;
  const float scaleLog2 = FP8 ? fp8ScoreScaleLog2(p) : p.scale * 1.4426950408889634f;
  // fp8: V's scale on the output (partial or final), before the division by the row sum.
  auto outScale = [&](float x) {
    if constexpr (FP8) return x * p.vScale;
    else return x;
  };
  bool rowOk[2];
  int limit[2];  // causal: row i of this thread (rows r0 + g and r0 + g + 8) sees keys <= limit[i]
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int rr = r0 + g + 8 * i;
    rowOk[i] = rr < rows;
    limit[i] = firstPos + rr / G;
  }
  float m[2] = {-INFINITY, -INFINITY};  // running max of the scaled (base-2) scores
  float l[2] = {0.f, 0.f};              // this thread's share of the running sum of 2^(s - m)
  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;

  const int nTiles = (ke - kb + BN - 1) / BN;
  for (int it = 0; it < nTiles; ++it) {
    const int k0 = kb + it * BN, stage = it & 1;
    if (it + 1 < nTiles) loadKV(k0 + BN, stage ^ 1);
    cpAsyncCommit();  // possibly empty: keeps "all but the newest group" = everything up to this tile
    cpAsyncWait<1>();
    __syncthreads();
    if constexpr (FP8) {
      convertKV(stage);
      __syncthreads();
    }
    if (active) {
      const M* tk = sK + (FP8 ? 0 : stage) * BN * LD;
      const M* tv = sV + (FP8 ? 0 : stage) * BN * LD;
      float s[BN / 8][4];
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t a[4];
        ldmatrixX4(a, sQ + (r0 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int j2 = 0; j2 < BN / 16; ++j2) {
          uint32_t b[4];
          ldmatrixX4(b, tk + (j2 * 16 + (lane & 7) + ((lane >> 4) << 3)) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
          mma16816<M>(s[2 * j2], a, b[0], b[1]);
          mma16816<M>(s[2 * j2 + 1], a, b[2], b[3]);
        }
      }
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = e >> 1, key = k0 + 8 * j + 2 * t + (e & 1);
          const float v = rowOk[i] && key < ke && key <= limit[i] ? s[j][e] * scaleLog2 : -INFINITY;
          s[j][e] = v;
          mx[i] = fmaxf(mx[i], v);
        }
      float mUse[2], alpha[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
        const float mNew = fmaxf(m[i], mx[i]);
        mUse[i] = mNew == -INFINITY ? 0.f : mNew;  // a row with no visible key yet keeps p = 0, alpha = 0
        alpha[i] = exp2f(m[i] - mUse[i]);
        m[i] = mNew;
      }
      // The row sum in the canonical order (flash_decode.cuh computes the same bits with the keys spread
      // over four warps): four partial sums over consecutive quarters of the tile's n-tiles, then added in order.
      float part[4][2] = {{0.f, 0.f}, {0.f, 0.f}, {0.f, 0.f}, {0.f, 0.f}};
#pragma unroll
      for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float pv = exp2f(s[j][e] - mUse[e >> 1]);
          s[j][e] = pv;
          part[j / (BN / 32)][e >> 1] += pv;
        }
#pragma unroll
      for (int i = 0; i < 2; ++i) l[i] = l[i] * alpha[i] + (((part[0][i] + part[1][i]) + part[2][i]) + part[3][i]);
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        o[n][0] *= alpha[0]; o[n][1] *= alpha[0];
        o[n][2] *= alpha[1]; o[n][3] *= alpha[1];
      }
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        const uint32_t a[4] = {pack2<M>(s[2 * kk][0], s[2 * kk][1]), pack2<M>(s[2 * kk][2], s[2 * kk][3]),
                               pack2<M>(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack2<M>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int dd = 0; dd < D / 16; ++dd) {
          uint32_t b[4];
          ldmatrixX4Trans(b, tv + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dd * 16 + (lane >> 4) * 8);
          mma16816<M>(o[2 * dd], a, b[0], b[1]);
          mma16816<M>(o[2 * dd + 1], a, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // this stage is refilled by the load issued in the next iteration but one
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
  if (!active) return;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int rr = r0 + g + 8 * i;
    if (!rowOk[i]) continue;
    const int h = kvh * G + rr % G;
    if (slot >= 0) {
      const int64_t idx = ((int64_t)slot * p.numHeads + h) * p.maxSplits + split;
      if (t == 0) {
        p.partialMax[idx] = m[i];
        p.partialSum[idx] = l[i];
      }
      float* po = p.partialOut + idx * D;
#pragma unroll
      for (int n = 0; n < D / 8; ++n)
        *reinterpret_cast<float2*>(po + 8 * n + 2 * t) = make_float2(outScale(o[n][2 * i]), outScale(o[n][2 * i + 1]));
    } else {
      const int64_t tok = qStart + t0 + rr / G;
      T* out = static_cast<T*>(p.out) + (tok * p.numHeads + h) * D;
      const float lr = l[i];
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        // Division, not a reciprocal: the one-partition merge of graphed steps divides the same way.
        const float x = lr > 0.f ? outScale(o[n][2 * i]) / lr : 0.f, y = lr > 0.f ? outScale(o[n][2 * i + 1]) / lr : 0.f;
        *reinterpret_cast<uint32_t*>(out + 8 * n + 2 * t) = pack2<T>(x, y);
      }
    }
  }
}

// One partition's weight in a merge, 2^(m_i - M) (mUse: M, or 0 when every maximum is -inf), and one term of
// a merge's sums, acc + x w as one fused multiply-add: the merge kernel and the single-launch decode kernel's
// merge (flash_decode_v2.cuh) round alike.
__device__ __forceinline__ float mergeWeight(float m, float mUse) { return exp2f(m - mUse); }
__device__ __forceinline__ float mergeTerm(float acc, float x, float w) { return __fmaf_rn(x, w, acc); }

// Merges the partitions of split tiles (maxima in base 2): out = sum_i o_i 2^(m_i - M) / sum_i l_i 2^(m_i - M),
// both sums from zero in partition order. A one-partition merge is exactly o / l, the unsplit formula.
template <typename T>
__global__ void flashCombineKernel(kvsk_attention_params p) {
  pdlWait();  // the cache and q come from the previous kernel (common.cuh)
  pdlTrigger();
  const int tile = blockIdx.x, h = blockIdx.y;
  const int slot = p.tileSplitSlot[tile];
  if (slot < 0) return;
  const int seq = p.tileSeq[tile];
  const int64_t tok = p.queryStart[seq] + p.tileQStart[tile];
  const int n = (p.contextLens[seq] + p.partitionSize - 1) / p.partitionSize;
  const int64_t base = ((int64_t)slot * p.numHeads + h) * p.maxSplits;
  float M = -INFINITY;
  for (int i = 0; i < n; ++i) M = fmaxf(M, p.partialMax[base + i]);
  const float mUse = M == -INFINITY ? 0.f : M;
  float L = 0.f;
  for (int i = 0; i < n; ++i) L = mergeTerm(L, p.partialSum[base + i], mergeWeight(p.partialMax[base + i], mUse));
  for (int d = threadIdx.x; d < p.headDim; d += blockDim.x) {
    float a = 0.f;
    for (int i = 0; i < n; ++i) a = mergeTerm(a, p.partialOut[(base + i) * p.headDim + d], mergeWeight(p.partialMax[base + i], mUse));
    static_cast<T*>(p.out)[(tok * p.numHeads + h) * p.headDim + d] = fromF<T>(L > 0.f ? a / L : 0.f);
  }
}

}  // namespace kvsk

#include "flash_decode.cuh"

namespace kvsk {

template <typename T, int D, int WARPS, bool FP8 = false>
cudaError_t launchFlashShape(const kvsk_attention_params& p, cudaStream_t stream) {
  constexpr size_t smem = FlashSmem<T, D, WARPS, FP8>::bytes;
  auto kernel = flashAttentionKernel<T, D, WARPS, FP8>;
  if (smem > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
  }
  const dim3 grid(p.numTiles, p.numKvHeads, p.numSplitSlots > 0 ? p.maxSplits : 1);
  cudaError_t e = launch(kernel, grid, WARPS * 32, smem, stream, p);
  if (e == cudaSuccess && p.numSplitSlots > 0) e = launch(flashCombineKernel<T>, dim3(p.numTiles, p.numHeads), 64, 0, stream, p);
  return e;
}

// Decode: 16 rows per CTA (four warps splitting each tile, flash_decode.cuh; one warp for head_dim 256);
// prefill and mixed steps: four warps of 16 rows each (64 rows).
template <typename T>
cudaError_t launchFlashAttention(const kvsk_attention_params& p, bool decode, cudaStream_t stream) {
  switch (p.headDim) {
    case 64: return decode ? launchFlashDecode<T, 64>(p, stream) : launchFlashShape<T, 64, 4>(p, stream);
    case 128: return decode ? launchFlashDecode<T, 128>(p, stream) : launchFlashShape<T, 128, 4>(p, stream);
    case 256: return decode ? launchFlashShape<T, 256, 1>(p, stream) : launchFlashShape<T, 256, 4>(p, stream);
    default: return cudaErrorNotSupported;
  }
}

// The same shapes over an fp8 cache (instantiated apart, flash_attention_fp8_{bf16,f16}.cu).
template <typename T>
cudaError_t launchFlashAttentionFp8(const kvsk_attention_params& p, bool decode, cudaStream_t stream) {
  switch (p.headDim) {
    case 64: return decode ? launchFlashDecode<T, 64, true>(p, stream) : launchFlashShape<T, 64, 4, true>(p, stream);
    case 128: return decode ? launchFlashDecode<T, 128, true>(p, stream) : launchFlashShape<T, 128, 4, true>(p, stream);
    case 256: return decode ? launchFlashShape<T, 256, 1, true>(p, stream) : launchFlashShape<T, 256, 4, true>(p, stream);
    default: return cudaErrorNotSupported;
  }
}

}  // namespace kvsk
