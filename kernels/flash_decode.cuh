// Decode attention on tensor cores for head_dim 64 and 128 (included by flash_attention.cuh).
//
// A decode tile is one token's G <= 16 query heads: a single 16-row MMA block. One warp per CTA would leave
// an SM with three warps (the two-stage K/V ring is 68 KB) and nothing to hide latency with, so here the
// CTA's four warps split each 64-key tile: warp w computes S for keys [16 w, 16 w + 16) and O for head-dim
// columns [D/4 w, D/4 (w + 1)). Row maxima and the row-sum quarters meet in shared memory, and P is stored
// there once (rounded to the dtype exactly as the register path packs it) for every warp's P V.
//
// Every value is computed with the same operations in the same order as the one-warp-per-16-rows kernel of
// flash_attention.cuh (same mma chains, exact maxima, the canonical quarter-wise row sum, the same rescale
// and division), so a decode row gives the same bits here and in a prefill-shaped launch: batch invariance
// does not depend on which kernel a step picks.
//
// Over an fp8 cache (FP8, kv_fp8.cuh) the ring holds e4m3 bytes (half the bytes of a tile in flight) and
// nothing is converted in shared memory: each warp turns the bytes it feeds the mma into f16 in registers.
// K: ldmatrix of the byte tile gives lane (g, t) head_dim elements 4t .. 4t+3 of key g, Q's fragments are
// loaded in that order (kv_fp8.cuh), the scores are the prefill-shaped kernel's bit for bit. V: the mma
// wants two keys of one column per register, so lane (g, t) reads its keys 2t, 2t+1, 2t+8, 2t+9 at DT
// adjacent columns and pairs the bytes (prmt); n-tile n of warp w then holds columns w D/4 + DT c + n
// (c = 0..7), which is only where each output column sits: every column's sum is the standard one.
//
// The tile load (decodeLoadTile) and the rows' arithmetic (DecodeRows: Q's fragments, one tile's softmax step,
// the row sums, the stores) are shared with the single-launch decode kernel (flash_decode_v2.cuh), which so
// computes the same bits with another ring and grid.
#pragma once

namespace kvsk {

template <typename T, int D, bool FP8 = false, int STAGES = 2>
struct FlashDecodeSmem {
  using KvT = std::conditional_t<FP8, uint8_t, T>;        // cache element
  using M = std::conditional_t<FP8, Fp8Mma, T>;           // tensor-core operands
  static constexpr int BN = 64, LD = D + 8, LDP = BN + 8;
  static constexpr int KLD = FP8 ? D + 16 : LD;           // ring row stride in elements (fp8: odd multiple of 16 bytes)
  static constexpr size_t kv = sizeof(KvT) * 2 * STAGES * BN * KLD;  // [K, V][STAGES][BN][KLD]
  static constexpr size_t pt = sizeof(M) * 16 * LDP;                 // P in the operand dtype [16][LDP]
  static constexpr size_t bytes = kv + pt + sizeof(float) * (4 * 16 + 4 * 32 * 2 + 16);
};

// Keys [k0, k0 + 64) of KV head kvh, through the block table, into one ring stage (dk, dv: [BN][KLD]) with
// cp.async from all 128 threads. Keys at or past ke are zero-filled, never read: unowned cache slots may hold
// anything (NaN * 0 = NaN).
template <typename T, int D, bool FP8>
__device__ __forceinline__ void decodeLoadTile(const kvsk_attention_params& p, const int32_t* table, int kvh, int k0, int ke,
                                               int bsShift, typename FlashDecodeSmem<T, D, FP8>::KvT* dk,
                                               typename FlashDecodeSmem<T, D, FP8>::KvT* dv, int tid) {
  using Sm = FlashDecodeSmem<T, D, FP8>;
  using KvT = typename Sm::KvT;
  constexpr int BN = Sm::BN, LD = Sm::KLD, EPC = 16 / sizeof(KvT), CH = D / EPC;
  const KvT* kc = static_cast<const KvT*>(p.kCache);
  const KvT* vc = static_cast<const KvT*>(p.vCache);
  for (int e = tid; e < BN * CH; e += 128) {
    const int j = e / CH, c = e % CH, key = k0 + j;
    const bool ok = key < ke;
    int64_t off = 0;
    if (ok) off = (((int64_t)table[key >> bsShift] * p.blockSize + (key & (p.blockSize - 1))) * p.numKvHeads + kvh) * D + c * EPC;
    cpAsync16(dk + j * LD + c * EPC, kc + off, ok ? 16 : 0);
    cpAsync16(dv + j * LD + c * EPC, vc + off, ok ? 16 : 0);
  }
}

// The 16 query rows of a decode tile (row r = token r / G, head r % G of the KV head's group) as the CTA's four
// warps hold them: warp w's lane (g, t) owns rows g and g + 8 (i = 0, 1), the softmax state of those rows and
// O's columns of warp w (DT n-tiles). Each function is called by all 128 threads.
template <typename T, int D, bool FP8>
struct DecodeRows {
  using Sm = FlashDecodeSmem<T, D, FP8>;
  using KvT = typename Sm::KvT;
  using M = typename Sm::M;
  static constexpr int BN = Sm::BN, LD = Sm::KLD, LDP = Sm::LDP;
  static constexpr int DT = D / 32;  // 8-column d-tiles per warp
  static_assert(FlashTile<D>::BN == BN, "same key tiles as the prefill-shaped kernel");

  bool rowOk[2];
  int limit[2];
  uint32_t qa[D / 16][4];
  float scaleLog2;
  float m[2];
  float l[2];  // warp 0's running sums (the other warps' stay unused)
  float o[DT][4];

  // Q's A fragments straight from global memory (the values ldmatrix gives the prefill-shaped kernel), the
  // masks of the tile's `rows` rows (the first at absolute position firstPos) and the empty softmax state.
  __device__ __forceinline__ void start(const kvsk_attention_params& p, int qStart, int t0, int kvh, int G, int rows,
                                        int firstPos, int g, int t) {
    const uint32_t* qRow[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int rr = g + 8 * i;
      rowOk[i] = rr < rows;
      limit[i] = firstPos + rr / G;
      const int64_t tok = qStart + t0 + rr / G;
      qRow[i] = reinterpret_cast<const uint32_t*>(static_cast<const T*>(p.q) + (tok * p.numHeads + kvh * G + rr % G) * D);
    }
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      if constexpr (FP8) {  // f16, fragment order: elements 4t, 4t+1 in slots 2t, 2t+1; 4t+2, 4t+3 in 2t+8, 2t+9
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const uint2 h = rowOk[i] ? queryQuad<T>(reinterpret_cast<const T*>(qRow[i]) + kk * 16 + 4 * t) : make_uint2(0, 0);
          qa[kk][i] = h.x;
          qa[kk][2 + i] = h.y;
        }
      } else {
        qa[kk][0] = rowOk[0] ? qRow[0][(kk * 16 + 2 * t) / 2] : 0u;
        qa[kk][1] = rowOk[1] ? qRow[1][(kk * 16 + 2 * t) / 2] : 0u;
        qa[kk][2] = rowOk[0] ? qRow[0][(kk * 16 + 2 * t + 8) / 2] : 0u;
        qa[kk][3] = rowOk[1] ? qRow[1][(kk * 16 + 2 * t + 8) / 2] : 0u;
      }
    }
    scaleLog2 = FP8 ? fp8ScoreScaleLog2(p) : p.scale * 1.4426950408889634f;
    m[0] = m[1] = -INFINITY;
    l[0] = l[1] = 0.f;
#pragma unroll
    for (int n = 0; n < DT; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  }

  // Keys [k0, k0 + BN) (the visible ones: < ke and causal) from the ring stage tk / tv, once a barrier has made
  // it visible; sP [16][LDP], sMax [4][16] and sSum [4][32][2] are rewritten, so a barrier must follow before
  // the next tile (or the stage's refill).
  __device__ __forceinline__ void tile(const KvT* tk, const KvT* tv, int k0, int ke, M* sP, float* sMax, float* sSum,
                                       int w, int lane, int g, int t) {
    // S for this warp's 16 keys: n-tiles 2w and 2w + 1 of the tile.
    float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
    if constexpr (FP8) {
      // Matrices: keys 0-7 and 8-15 of the warp at chunk 2 kc, then at chunk 2 kc + 1; a word is 4 bytes of a key.
#pragma unroll
      for (int kc2 = 0; kc2 < D / 32; ++kc2) {
        uint32_t r[4];
        ldmatrixX4(r, tk + (w * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + (2 * kc2 + (lane >> 4)) * 16);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int kk = 2 * kc2 + h;
          mma16816<M>(s[0], qa[kk], e4m3x2ToHalf2(r[2 * h]), e4m3x2ToHalf2(r[2 * h] >> 16));
          mma16816<M>(s[1], qa[kk], e4m3x2ToHalf2(r[2 * h + 1]), e4m3x2ToHalf2(r[2 * h + 1] >> 16));
        }
      }
    } else {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t b[4];
        ldmatrixX4(b, tk + (w * 16 + (lane & 7) + ((lane >> 4) << 3)) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
        mma16816<T>(s[0], qa[kk], b[0], b[1]);
        mma16816<T>(s[1], qa[kk], b[2], b[3]);
      }
    }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int jj = 0; jj < 2; ++jj)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = e >> 1, key = k0 + 16 * w + 8 * jj + 2 * t + (e & 1);
        const float v = rowOk[i] && key < ke && key <= limit[i] ? s[jj][e] * scaleLog2 : -INFINITY;
        s[jj][e] = v;
        mx[i] = fmaxf(mx[i], v);
      }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
      if (t == 0) sMax[w * 16 + g + 8 * i] = mx[i];
    }
    __syncthreads();
    float mUse[2], alpha[2], part[2] = {0.f, 0.f};
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int r = g + 8 * i;
      const float tileMax = fmaxf(fmaxf(sMax[r], sMax[16 + r]), fmaxf(sMax[32 + r], sMax[48 + r]));  // exact
      const float mNew = fmaxf(m[i], tileMax);
      mUse[i] = mNew == -INFINITY ? 0.f : mNew;
      alpha[i] = exp2f(m[i] - mUse[i]);
      m[i] = mNew;
    }
#pragma unroll
    for (int jj = 0; jj < 2; ++jj) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pv = exp2f(s[jj][e] - mUse[e >> 1]);
        s[jj][e] = pv;
        part[e >> 1] += pv;
      }
      const int col = 16 * w + 8 * jj + 2 * t;
      *reinterpret_cast<uint32_t*>(sP + g * LDP + col) = pack2<M>(s[jj][0], s[jj][1]);
      *reinterpret_cast<uint32_t*>(sP + (g + 8) * LDP + col) = pack2<M>(s[jj][2], s[jj][3]);
    }
    sSum[(w * 32 + lane) * 2] = part[0];
    sSum[(w * 32 + lane) * 2 + 1] = part[1];
    __syncthreads();
    if (w == 0) {
#pragma unroll
      for (int i = 0; i < 2; ++i)
        l[i] = l[i] * alpha[i] + (((sSum[lane * 2 + i] + sSum[(32 + lane) * 2 + i]) + sSum[(64 + lane) * 2 + i]) +
                                  sSum[(96 + lane) * 2 + i]);
    }
#pragma unroll
    for (int n = 0; n < DT; ++n) {
      o[n][0] *= alpha[0]; o[n][1] *= alpha[0];
      o[n][2] *= alpha[1]; o[n][3] *= alpha[1];
    }
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      uint32_t a[4];
      ldmatrixX4(a, sP + (lane & 15) * LDP + kk * 16 + (lane >> 4) * 8);
      if constexpr (FP8) {
        // Keys 2t, 2t+1 and 2t+8, 2t+9 of this 16, columns w D/4 + DT g .. + DT - 1; pair k holds column + k.
        uint32_t pLo, pHi;  // bytes (key 2t, key 2t+1) per column: columns 0, 1 in pLo, 2, 3 in pHi
        uint32_t qLo, qHi;  // the same for keys 2t+8, 2t+9
        const KvT* v0 = tv + (kk * 16 + 2 * t) * LD + w * (D / 4) + DT * g;
        vKeyPairs<DT>(v0, v0 + LD, pLo, pHi);
        vKeyPairs<DT>(v0 + 8 * LD, v0 + 9 * LD, qLo, qHi);
#pragma unroll
        for (int n = 0; n < DT; ++n) {
          const uint32_t pp = n < 2 ? pLo : pHi, qq = n < 2 ? qLo : qHi;
          const int sh = (n & 1) * 16;
          mma16816<M>(o[n], a, e4m3x2ToHalf2(pp >> sh), e4m3x2ToHalf2(qq >> sh));
        }
      } else {
#pragma unroll
        for (int dd = 0; dd < DT / 2; ++dd) {
          uint32_t b[4];
          ldmatrixX4Trans(b, tv + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + (w * DT + 2 * dd) * 8 + (lane >> 4) * 8);
          mma16816<T>(o[2 * dd], a, b[0], b[1]);
          mma16816<T>(o[2 * dd + 1], a, b[2], b[3]);
        }
      }
    }
  }

  // The rows' sums (warp 0 holds them) into sL [16], then a barrier: every warp reads them.
  __device__ __forceinline__ void finish(float* sL, int w, int g, int t) {
    if (w == 0) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
        if (t == 0) sL[g + 8 * i] = l[i];
      }
    }
    __syncthreads();
  }

  // Row half i's split partial (unnormalized, times V's scale over an fp8 cache), max and sum (lr) at
  // partial index idx.
  __device__ __forceinline__ void storePartial(const kvsk_attention_params& p, int64_t idx, float lr, int i, int w, int t) const {
    if (w == 0 && t == 0) {
      p.partialMax[idx] = m[i];
      p.partialSum[idx] = lr;
    }
    float* po = p.partialOut + idx * D;
    if constexpr (FP8) {
      float v[2 * DT];
      fp8DecodeColumns<DT>(o, i, p.vScale, v);
#pragma unroll
      for (int k = 0; k < 2 * DT; k += 4)
        *reinterpret_cast<float4*>(po + w * (D / 4) + 2 * DT * t + k) = make_float4(v[k], v[k + 1], v[k + 2], v[k + 3]);
    } else {
#pragma unroll
      for (int n = 0; n < DT; ++n)
        *reinterpret_cast<float2*>(po + (w * DT + n) * 8 + 2 * t) = make_float2(o[n][2 * i], o[n][2 * i + 1]);
    }
  }

  // Row half i's output, o / lr, to out (the row's D elements).
  __device__ __forceinline__ void storeOut(T* out, float vScale, float lr, int i, int w, int t) const {
    if constexpr (FP8) {
      float v[2 * DT];
      fp8DecodeColumns<DT>(o, i, vScale, v);
#pragma unroll
      for (int k = 0; k < 2 * DT; k += 2)
        *reinterpret_cast<uint32_t*>(out + w * (D / 4) + 2 * DT * t + k) =
            pack2<T>(lr > 0.f ? v[k] / lr : 0.f, lr > 0.f ? v[k + 1] / lr : 0.f);
    } else {
#pragma unroll
      for (int n = 0; n < DT; ++n) {
        const float x = lr > 0.f ? o[n][2 * i] / lr : 0.f, y = lr > 0.f ? o[n][2 * i + 1] / lr : 0.f;
        *reinterpret_cast<uint32_t*>(out + (w * DT + n) * 8 + 2 * t) = pack2<T>(x, y);
      }
    }
  }
};

template <typename T, int D, bool FP8 = false>
__global__ void __launch_bounds__(128) flashDecodeKernel(kvsk_attention_params p) {
  pdlWait();  // the cache and q come from the previous kernel (common.cuh)
  pdlTrigger();
  using Rows = DecodeRows<T, D, FP8>;
  using KvT = typename Rows::KvT;
  using M = typename Rows::M;
  constexpr int BN = Rows::BN, LD = Rows::LD, LDP = Rows::LDP;
  extern __shared__ __align__(16) unsigned char decodeSmem[];
  KvT* sK = reinterpret_cast<KvT*>(decodeSmem);        // [2][BN][LD]
  KvT* sV = sK + 2 * BN * LD;                          // [2][BN][LD]
  M* sP = reinterpret_cast<M*>(sV + 2 * BN * LD);      // [16][LDP]
  float* sMax = reinterpret_cast<float*>(sP + 16 * LDP);  // [4 warps][16 rows]
  float* sSum = sMax + 4 * 16;                         // [4 warps][32 lanes][2]
  float* sL = sSum + 4 * 32 * 2;                       // [16] final row sums

  const int tile = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, tid = threadIdx.x;
  const int lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
  const int G = p.numHeads / p.numKvHeads;
  const int seq = p.tileSeq[tile];
  const int qStart = p.queryStart[seq], qLen = p.queryStart[seq + 1] - qStart, ctx = p.contextLens[seq];
  const int t0 = p.tileQStart[tile];
  const int nTok = min(p.tokensPerTile, qLen - t0);
  const int rows = nTok * G;
  const int slot = p.tileSplitSlot[tile];
  const int nSplits = slot >= 0 ? (ctx + p.partitionSize - 1) / p.partitionSize : 1;
  if (split >= nSplits) return;
  const int firstPos = ctx - qLen + t0;
  const int kEndTile = firstPos + nTok;
  const int kb = slot >= 0 ? split * p.partitionSize : 0;
  const int ke = slot >= 0 ? min(kb + p.partitionSize, kEndTile) : kEndTile;

  const int32_t* table = p.blockTables + (int64_t)seq * p.maxBlocksPerSeq;
  const int bsShift = __ffs(p.blockSize) - 1;
  decodeLoadTile<T, D, FP8>(p, table, kvh, kb, ke, bsShift, sK, sV, tid);
  cpAsyncCommit();

  Rows st;
  st.start(p, qStart, t0, kvh, G, rows, firstPos, g, t);
  const int nTiles = (ke - kb + BN - 1) / BN;
  for (int it = 0; it < nTiles; ++it) {
    const int k0 = kb + it * BN, stage = it & 1;
    if (it + 1 < nTiles) decodeLoadTile<T, D, FP8>(p, table, kvh, k0 + BN, ke, bsShift, sK + (stage ^ 1) * BN * LD, sV + (stage ^ 1) * BN * LD, tid);
    cpAsyncCommit();
    cpAsyncWait<1>();
    __syncthreads();
    st.tile(sK + stage * BN * LD, sV + stage * BN * LD, k0, ke, sP, sMax, sSum, w, lane, g, t);
    __syncthreads();  // K/V stage, sP, sMax and sSum are rewritten next iteration
  }

  st.finish(sL, w, g, t);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int rr = g + 8 * i;
    if (!st.rowOk[i]) continue;
    const int h = kvh * G + rr % G;
    const float lr = sL[rr];
    if (slot >= 0) {
      st.storePartial(p, ((int64_t)slot * p.numHeads + h) * p.maxSplits + split, lr, i, w, t);
    } else {
      const int64_t tok = qStart + t0 + rr / G;
      st.storeOut(static_cast<T*>(p.out) + (tok * p.numHeads + h) * D, p.vScale, lr, i, w, t);
    }
  }
}

template <typename T, int D, bool FP8 = false>
cudaError_t launchFlashDecode(const kvsk_attention_params& p, cudaStream_t stream) {
  constexpr size_t smem = FlashDecodeSmem<T, D, FP8>::bytes;
  auto kernel = flashDecodeKernel<T, D, FP8>;
  if (smem > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
  }
  const dim3 grid(p.numTiles, p.numKvHeads, p.numSplitSlots > 0 ? p.maxSplits : 1);
  cudaError_t e = launch(kernel, grid, 128, smem, stream, p);
  if (e == cudaSuccess && p.numSplitSlots > 0) e = launch(flashCombineKernel<T>, dim3(p.numTiles, p.numHeads), 64, 0, stream, p);
  return e;
}

}  // namespace kvsk
