// Prefill attention on tensor cores, version 2 (KVSK_ATTN_PREFILL_V2): bf16/f16 at head_dim 64 and 128, over a
// bf16/f16 or an fp8 cache; the prefill-shaped tiles of a step (prefill, chunked prefill with cached prefixes,
// the decode rows of mixed steps). Included by flash_prefill_v2_{bf16,f16}.cu. Version 1, the default, is
// flash_attention.cuh's kernel of 4 warps x 16 rows; its key tiles, masking, split-KV, partials and merge are
// this kernel's too.
//
// Why. A warp of version 1 multiplies its 16 rows by the whole K and V tile, so each fragment it reads from
// shared memory with ldmatrix feeds one 16-row mma: per 64-key tile at head_dim 128 a warp issues 72
// ldmatrix.x4 (36 KB) for 128 mma. More warps per CTA keep that ratio (run 3's 8-warp tiles gained nothing).
// Here a warp owns 32 rows, two 16-row MMA blocks, and reads each K/V fragment once for both: 80 ldmatrix.x4
// for 256 mma (FlashAttention-2's 128 x 64 tile on 4 warps), and its two blocks' softmax chains (shuffles,
// exp2) interleave.
//
// CTA = (tile of 128 rows, KV head, split); row r = token * G + head of the group, as in version 1; warp w
// owns rows [32 w, 32 w + 32) as blocks b = 0, 1 of 16 (thread rows 32 w + 16 b + g + 8 i). blockIdx.x = tile *
// Hkv + KV head: the plan (paged_attention.cu) orders tiles longest first, so every head's long CTAs start in
// the first wave and short ones fill the tail. Per key tile of 64 keys, through version 1's two-stage
// cp.async ring:
//   S = Q K^T for both blocks (each K fragment feeds both) -> the causal/context mask, only on the tiles
//   where some key lies past the CTA's first position or past ke (a CTA's last one or two) -> online softmax
//   per block -> O = O * alpha + P V (each V fragment feeds both), the rescale skipped when no row's maximum
//   moved (alpha = 1 exactly).
// Registers: 128 float32 of O and 64 of S at head_dim 128 (252-255 in all; no spills on sm_90, 12 bytes on
// sm_80 over a bf16/f16 cache). Shared memory: Q's 128 rows and the ring, 102 KiB (104 KiB over an fp8 cache):
// two CTAs per SM of compute capability 9.0, one on 8.0; 8.6 and 8.9 (99 KiB a CTA) cannot launch it (the
// engine refuses the switch there).
//
// Bits. Every row's arithmetic is version 1's, operation for operation: the same key tiles in the same order,
// mma chains, exact maxima, canonical quarter-wise row sum, rescale, rounding of P and division. The mask is
// one comparison with the row's last visible key (its position clipped to ke - 1; -1 for a padding row), the
// same set as version 1's three; unmasked tiles have no key to mask in any real row; x * 1 = x. So version 2
// gives version 1's bits, a decode row of a mixed step keeps flash_decode.cuh's, and batch invariance holds as
// before (kernel suite attn-prefill: both versions against float64, and bitwise against each other).
#pragma once
#include "flash_attention.cuh"

namespace kvsk {

template <typename T, int D, bool FP8>
struct PrefillV2 {
  static_assert(D == 64 || D == 128, "version 2 serves head_dim 64 and 128");
  using M = std::conditional_t<FP8, Fp8Mma, T>;   // tensor-core operands
  static constexpr int NT = 128, ROWS = 128;     // 4 warps x 2 blocks x 16 rows
  static constexpr int BN = FlashTile<D>::BN;    // version 1's key tiles (64 keys)
  static constexpr int LD = FlashTile<D>::LD;    // operand row stride (elements)
  static constexpr int LD8 = D + 16;             // fp8: staged row stride (bytes, an odd multiple of 16)
  // Q [ROWS][LD], then K and V: [2 stages][BN][LD]; over an fp8 cache the converted tile [BN][LD] of each,
  // then the e4m3 ring [2][BN][LD8] of each.
  static constexpr size_t smem = FP8 ? sizeof(M) * LD * (ROWS + 2 * BN) + 2 * 2 * BN * LD8
                                     : sizeof(M) * LD * (ROWS + 2 * 2 * BN);
};

template <typename T, int D, bool FP8>
__global__ void __launch_bounds__(128) flashPrefillV2Kernel(kvsk_attention_params p) {
  pdlWait();  // the cache and q come from the previous kernel (common.cuh)
  pdlTrigger();
  using C = PrefillV2<T, D, FP8>;
  using M = typename C::M;
  constexpr int BN = C::BN, LD = C::LD, LD8 = C::LD8, NT = C::NT, ROWS = C::ROWS;
  constexpr int CPR = FP8 ? D / 16 : D / 8;  // 16-byte chunks of a cached row
  constexpr int KPP = NT / CPR;              // key rows the CTA's threads load in one pass
  extern __shared__ __align__(16) unsigned char prefillSmem[];
  M* sQ = reinterpret_cast<M*>(prefillSmem);  // [ROWS][LD]
  M* sK = sQ + ROWS * LD;                     // [2][BN][LD]; fp8: [BN][LD], the current tile converted
  M* sV = sK + (FP8 ? 1 : 2) * BN * LD;       // as sK
  uint8_t* sK8 = reinterpret_cast<uint8_t*>(sV + (FP8 ? 1 : 2) * BN * LD);  // fp8: [2][BN][LD8] e4m3 ring
  uint8_t* sV8 = sK8 + 2 * BN * LD8;                                        // fp8: [2][BN][LD8]

  const int kvh = blockIdx.x % p.numKvHeads, tile = blockIdx.x / p.numKvHeads, split = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
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
  if constexpr (FP8) {  // f16 in fragment order (kv_fp8.cuh), as version 1
    for (int e = tid; e < ROWS * (D / 4); e += NT) {
      const int r = e / (D / 4), c4 = e % (D / 4);
      uint2 h = make_uint2(0, 0);
      if (r < rows) h = queryQuad<T>(q + ((qStart + t0 + r / G) * (int64_t)p.numHeads + kvh * G + r % G) * D + 4 * c4);
      M* dst = sQ + r * LD + 16 * (c4 >> 2) + 2 * (c4 & 3);
      *reinterpret_cast<uint32_t*>(dst) = h.x;
      *reinterpret_cast<uint32_t*>(dst + 8) = h.y;
    }
  } else {
    for (int e = tid; e < ROWS * (D / 8); e += NT) {
      const int r = e / (D / 8), c = e % (D / 8);
      T* dst = sQ + r * LD + c * 8;
      if (r < rows) cpAsync16(dst, q + ((qStart + t0 + r / G) * (int64_t)p.numHeads + kvh * G + r % G) * D + c * 8, 16);
      else *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
    }
  }
  const int32_t* table = p.blockTables + (int64_t)seq * p.maxBlocksPerSeq;
  const int bsShift = __ffs(p.blockSize) - 1;  // block sizes are powers of two (kvsk_attention checks)
  // This thread's 16-byte chunk `ch` of key rows kr, kr + KPP, ... of a tile; keys at or past ke are
  // zero-filled, never read (unowned cache slots may hold anything).
  const int ch = tid % CPR, kr = tid / CPR;
  auto loadKV = [&](int k0, int stage) {
    using KvT = std::conditional_t<FP8, uint8_t, T>;
    constexpr int EPC = 16 / sizeof(KvT), RS = FP8 ? LD8 : LD;  // elements per chunk, ring row stride
    const KvT* kc = static_cast<const KvT*>(p.kCache);
    const KvT* vc = static_cast<const KvT*>(p.vCache);
    KvT* dk = (FP8 ? reinterpret_cast<KvT*>(sK8) : reinterpret_cast<KvT*>(sK)) + (stage * BN + kr) * RS + ch * EPC;
    KvT* dv = (FP8 ? reinterpret_cast<KvT*>(sV8) : reinterpret_cast<KvT*>(sV)) + (stage * BN + kr) * RS + ch * EPC;
#pragma unroll
    for (int i = 0; i < BN / KPP; ++i) {
      const int key = k0 + kr + i * KPP;
      const bool ok = key < ke;
      int64_t off = 0;
      if (ok) off = (((int64_t)table[key >> bsShift] * p.blockSize + (key & (p.blockSize - 1))) * p.numKvHeads + kvh) * D + ch * EPC;
      cpAsync16(dk + i * KPP * RS, kc + off, ok ? 16 : 0);
      cpAsync16(dv + i * KPP * RS, vc + off, ok ? 16 : 0);
    }
  };
  // fp8: the staged tile -> f16 in sK (fragment order) and sV (as stored), by every thread of the CTA.
  auto convertKV = [&](int stage) {
    const uint8_t* k8 = sK8 + stage * BN * LD8;
    const uint8_t* v8 = sV8 + stage * BN * LD8;
#pragma unroll
    for (int i = 0; i < BN / KPP; ++i) {
      const int j = kr + i * KPP;
      uint4 lo, hi;
      kChunkToFrag(*reinterpret_cast<const uint4*>(k8 + j * LD8 + ch * 16), lo, hi);
      *reinterpret_cast<uint4*>(sK + j * LD + ch * 16) = lo;
      *reinterpret_cast<uint4*>(sK + j * LD + ch * 16 + 8) = hi;
      vChunkToHalf(*reinterpret_cast<const uint4*>(v8 + j * LD8 + ch * 16), lo, hi);
      *reinterpret_cast<uint4*>(sV + j * LD + ch * 16) = lo;
      *reinterpret_cast<uint4*>(sV + j * LD + ch * 16 + 8) = hi;
    }
  };
  loadKV(kb, 0);
  cpAsyncCommit();

  const int r0 = warp * 32;  // the warp's first row in the tile
  const bool active = r0 < rows;
  const float scaleLog2 = FP8 ? fp8ScoreScaleLog2(p) : p.scale * 1.4426950408889634f;
  // Tiles [0, nWhole) lie wholly below the CTA's first position and ke: no row masks any of their keys.
  const int nWhole = max(0, (min(firstPos + 1, ke) - kb) / BN);
  float m[2][2], l[2][2];  // running max of the scaled (base-2) scores; this thread's share of the sum of 2^(s - m)
  float o[2][D / 8][4];
#pragma unroll
  for (int b = 0; b < 2; ++b) {
    m[b][0] = m[b][1] = -INFINITY;
    l[b][0] = l[b][1] = 0.f;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) o[b][n][0] = o[b][n][1] = o[b][n][2] = o[b][n][3] = 0.f;
  }

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
      float s[2][BN / 8][4];
#pragma unroll
      for (int b = 0; b < 2; ++b)
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) s[b][j][0] = s[b][j][1] = s[b][j][2] = s[b][j][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t a[2][4];
#pragma unroll
        for (int b = 0; b < 2; ++b) ldmatrixX4(a[b], sQ + (r0 + 16 * b + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int j2 = 0; j2 < BN / 16; ++j2) {
          uint32_t bk[4];
          ldmatrixX4(bk, tk + (j2 * 16 + (lane & 7) + ((lane >> 4) << 3)) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
          for (int b = 0; b < 2; ++b) {
            mma16816<M>(s[b][2 * j2], a[b], bk[0], bk[1]);
            mma16816<M>(s[b][2 * j2 + 1], a[b], bk[2], bk[3]);
          }
        }
      }
      const bool masked = it >= nWhole;
      float alpha[2][2];
      uint32_t pk[2][BN / 16][4];  // P rounded to the operand type, as A fragments of P V (mma.cuh)
#pragma unroll
      for (int b = 0; b < 2; ++b) {
        // The scores in base 2, rounded as version 1 rounds them (__fmul_rn: never contracted with the
        // subtraction below into one fma, which version 1's select between them rules out).
        float mx[2] = {-INFINITY, -INFINITY};
        if (masked) {
          int lim[2];  // the last key row (r0 + 16 b + g + 8 i) sees: its position, at most ke - 1; -1 for padding
#pragma unroll
          for (int i = 0; i < 2; ++i) {
            const int rr = r0 + 16 * b + g + 8 * i;
            lim[i] = rr < rows ? min(firstPos + rr / G, ke - 1) : -1;
          }
#pragma unroll
          for (int j = 0; j < BN / 8; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int key = k0 + 8 * j + 2 * t + (e & 1);
              s[b][j][e] = key <= lim[e >> 1] ? __fmul_rn(s[b][j][e], scaleLog2) : -INFINITY;
            }
        } else {
#pragma unroll
          for (int j = 0; j < BN / 8; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) s[b][j][e] = __fmul_rn(s[b][j][e], scaleLog2);
        }
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) mx[e >> 1] = fmaxf(mx[e >> 1], s[b][j][e]);
        float mUse[2];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
          mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
          const float mNew = fmaxf(m[b][i], mx[i]);
          mUse[i] = mNew == -INFINITY ? 0.f : mNew;  // a row with no visible key yet keeps p = 0, alpha = 0
          alpha[b][i] = exp2f(m[b][i] - mUse[i]);
          m[b][i] = mNew;
        }
        // The row sum in the canonical order (flash_attention.cuh, flash_decode.cuh): four partial sums over
        // consecutive quarters of the tile's n-tiles, then added in order.
        float part[4][2] = {{0.f, 0.f}, {0.f, 0.f}, {0.f, 0.f}, {0.f, 0.f}};
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float pv = exp2f(s[b][j][e] - mUse[e >> 1]);
            s[b][j][e] = pv;
            part[j / (BN / 32)][e >> 1] += pv;
          }
#pragma unroll
        for (int i = 0; i < 2; ++i) l[b][i] = l[b][i] * alpha[b][i] + (((part[0][i] + part[1][i]) + part[2][i]) + part[3][i]);
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
          pk[b][kk][0] = pack2<M>(s[b][2 * kk][0], s[b][2 * kk][1]);
          pk[b][kk][1] = pack2<M>(s[b][2 * kk][2], s[b][2 * kk][3]);
          pk[b][kk][2] = pack2<M>(s[b][2 * kk + 1][0], s[b][2 * kk + 1][1]);
          pk[b][kk][3] = pack2<M>(s[b][2 * kk + 1][2], s[b][2 * kk + 1][3]);
        }
      }
      const bool moved = alpha[0][0] != 1.f || alpha[0][1] != 1.f || alpha[1][0] != 1.f || alpha[1][1] != 1.f;
      if (__any_sync(0xffffffffu, moved)) {
#pragma unroll
        for (int b = 0; b < 2; ++b)
#pragma unroll
          for (int n = 0; n < D / 8; ++n) {
            o[b][n][0] *= alpha[b][0]; o[b][n][1] *= alpha[b][0];
            o[b][n][2] *= alpha[b][1]; o[b][n][3] *= alpha[b][1];
          }
      }
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
#pragma unroll
        for (int dd = 0; dd < D / 16; ++dd) {
          uint32_t bv[4];
          ldmatrixX4Trans(bv, tv + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dd * 16 + (lane >> 4) * 8);
#pragma unroll
          for (int b = 0; b < 2; ++b) {
            mma16816<M>(o[b][2 * dd], pk[b][kk], bv[0], bv[1]);
            mma16816<M>(o[b][2 * dd + 1], pk[b][kk], bv[2], bv[3]);
          }
        }
      }
    }
    __syncthreads();  // this stage is refilled by the load issued in the next iteration but one
  }

#pragma unroll
  for (int b = 0; b < 2; ++b)
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      l[b][i] += __shfl_xor_sync(0xffffffffu, l[b][i], 1);
      l[b][i] += __shfl_xor_sync(0xffffffffu, l[b][i], 2);
    }
  if (!active) return;
#pragma unroll
  for (int b = 0; b < 2; ++b)
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int rr = r0 + 16 * b + g + 8 * i;
      if (rr >= rows) continue;
      const int h = kvh * G + rr % G;
      if (slot >= 0) {
        const int64_t idx = ((int64_t)slot * p.numHeads + h) * p.maxSplits + split;
        if (t == 0) {
          p.partialMax[idx] = m[b][i];
          p.partialSum[idx] = l[b][i];
        }
        float* po = p.partialOut + idx * D;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
          const float x = o[b][n][2 * i], y = o[b][n][2 * i + 1];
          *reinterpret_cast<float2*>(po + 8 * n + 2 * t) = FP8 ? make_float2(x * p.vScale, y * p.vScale) : make_float2(x, y);
        }
      } else {
        const int64_t tok = qStart + t0 + rr / G;
        T* out = static_cast<T*>(p.out) + (tok * p.numHeads + h) * D;
        const float lr = l[b][i];
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
          float x = o[b][n][2 * i], y = o[b][n][2 * i + 1];
          if constexpr (FP8) { x *= p.vScale; y *= p.vScale; }  // V's scale before the division, as version 1
          // Division, not a reciprocal: the one-partition merge of graphed steps divides the same way.
          *reinterpret_cast<uint32_t*>(out + 8 * n + 2 * t) = pack2<T>(lr > 0.f ? x / lr : 0.f, lr > 0.f ? y / lr : 0.f);
        }
      }
    }
}

// One shape's launch; a split tile's partitions are merged by version 1's flashCombineKernel.
template <typename T, int D, bool FP8>
cudaError_t launchFlashPrefillV2Shape(const kvsk_attention_params& p, cudaStream_t stream) {
  using C = PrefillV2<T, D, FP8>;
  auto kernel = flashPrefillV2Kernel<T, D, FP8>;
  const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)C::smem);
  if (attr != cudaSuccess) return attr;
  const dim3 grid(p.numTiles * p.numKvHeads, 1, p.numSplitSlots > 0 ? p.maxSplits : 1);
  cudaError_t e = launch(kernel, grid, C::NT, C::smem, stream, p);
  if (e == cudaSuccess && p.numSplitSlots > 0) e = launch(flashCombineKernel<T>, dim3(p.numTiles, p.numHeads), 64, 0, stream, p);
  return e;
}

// Version 2 for head_dim 64 and 128 (cudaErrorNotSupported otherwise).
template <typename T, bool FP8>
cudaError_t launchFlashPrefillV2(const kvsk_attention_params& p, cudaStream_t stream) {
  switch (p.headDim) {
    case 64: return launchFlashPrefillV2Shape<T, 64, FP8>(p, stream);
    case 128: return launchFlashPrefillV2Shape<T, 128, FP8>(p, stream);
    default: return cudaErrorNotSupported;
  }
}

}  // namespace kvsk
