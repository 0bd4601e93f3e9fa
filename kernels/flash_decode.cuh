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
#pragma once

namespace kvsk {

template <typename T, int D>
struct FlashDecodeSmem {
  static constexpr int BN = 64, LD = D + 8, LDP = BN + 8;
  static constexpr size_t kv = sizeof(T) * 2 * 2 * BN * LD;  // [K, V][2 stages][BN][LD]
  static constexpr size_t pt = sizeof(T) * 16 * LDP;          // P in the dtype [16][LDP]
  static constexpr size_t bytes = kv + pt + sizeof(float) * (4 * 16 + 4 * 32 * 2 + 16);
};

template <typename T, int D>
__global__ void __launch_bounds__(128) flashDecodeKernel(kvsk_attention_params p) {
  pdlWait();  // the cache and q come from the previous kernel (common.cuh)
  pdlTrigger();
  using Sm = FlashDecodeSmem<T, D>;
  constexpr int BN = Sm::BN, LD = Sm::LD, LDP = Sm::LDP, NT = 128, CH = D / 8;
  constexpr int DT = D / 32;  // 8-column d-tiles per warp
  static_assert(FlashTile<D>::BN == BN, "same key tiles as the prefill-shaped kernel");
  extern __shared__ __align__(16) unsigned char decodeSmem[];
  T* sK = reinterpret_cast<T*>(decodeSmem);            // [2][BN][LD]
  T* sV = sK + 2 * BN * LD;                            // [2][BN][LD]
  T* sP = sV + 2 * BN * LD;                            // [16][LDP]
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
  const T* kc = static_cast<const T*>(p.kCache);
  const T* vc = static_cast<const T*>(p.vCache);
  const int bsShift = __ffs(p.blockSize) - 1;
  auto loadKV = [&](int k0, int stage) {
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
  };
  loadKV(kb, 0);
  cpAsyncCommit();

  // Q's A fragments straight from global memory (the values ldmatrix gives the prefill-shaped kernel).
  bool rowOk[2];
  int limit[2];
  const uint32_t* qRow[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int rr = g + 8 * i;
    rowOk[i] = rr < rows;
    limit[i] = firstPos + rr / G;
    const int64_t tok = qStart + t0 + rr / G;
    qRow[i] = reinterpret_cast<const uint32_t*>(static_cast<const T*>(p.q) + (tok * p.numHeads + kvh * G + rr % G) * D);
  }
  uint32_t qa[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    qa[kk][0] = rowOk[0] ? qRow[0][(kk * 16 + 2 * t) / 2] : 0u;
    qa[kk][1] = rowOk[1] ? qRow[1][(kk * 16 + 2 * t) / 2] : 0u;
    qa[kk][2] = rowOk[0] ? qRow[0][(kk * 16 + 2 * t + 8) / 2] : 0u;
    qa[kk][3] = rowOk[1] ? qRow[1][(kk * 16 + 2 * t + 8) / 2] : 0u;
  }

  const float scaleLog2 = p.scale * 1.4426950408889634f;
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.f, 0.f};  // warp 0's running sums (the other warps' stay unused)
  float o[DT][4];
#pragma unroll
  for (int n = 0; n < DT; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;

  const int nTiles = (ke - kb + BN - 1) / BN;
  for (int it = 0; it < nTiles; ++it) {
    const int k0 = kb + it * BN, stage = it & 1;
    if (it + 1 < nTiles) loadKV(k0 + BN, stage ^ 1);
    cpAsyncCommit();
    cpAsyncWait<1>();
    __syncthreads();
    const T* tk = sK + stage * BN * LD;
    const T* tv = sV + stage * BN * LD;
    // S for this warp's 16 keys: n-tiles 2w and 2w + 1 of the tile.
    float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t b[4];
      ldmatrixX4(b, tk + (w * 16 + (lane & 7) + ((lane >> 4) << 3)) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
      mma16816<T>(s[0], qa[kk], b[0], b[1]);
      mma16816<T>(s[1], qa[kk], b[2], b[3]);
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
      *reinterpret_cast<uint32_t*>(sP + g * LDP + col) = pack2<T>(s[jj][0], s[jj][1]);
      *reinterpret_cast<uint32_t*>(sP + (g + 8) * LDP + col) = pack2<T>(s[jj][2], s[jj][3]);
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
#pragma unroll
      for (int dd = 0; dd < DT / 2; ++dd) {
        uint32_t b[4];
        ldmatrixX4Trans(b, tv + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + (w * DT + 2 * dd) * 8 + (lane >> 4) * 8);
        mma16816<T>(o[2 * dd], a, b[0], b[1]);
        mma16816<T>(o[2 * dd + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();  // K/V stage, sP, sMax and sSum are rewritten next iteration
  }

  if (w == 0) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
      l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
      if (t == 0) sL[g + 8 * i] = l[i];
    }
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int rr = g + 8 * i;
    if (!rowOk[i]) continue;
    const int h = kvh * G + rr % G;
    const float lr = sL[rr];
    if (slot >= 0) {
      const int64_t idx = ((int64_t)slot * p.numHeads + h) * p.maxSplits + split;
      if (w == 0 && t == 0) {
        p.partialMax[idx] = m[i];
        p.partialSum[idx] = lr;
      }
      float* po = p.partialOut + idx * D;
#pragma unroll
      for (int n = 0; n < DT; ++n)
        *reinterpret_cast<float2*>(po + (w * DT + n) * 8 + 2 * t) = make_float2(o[n][2 * i], o[n][2 * i + 1]);
    } else {
      const int64_t tok = qStart + t0 + rr / G;
      T* out = static_cast<T*>(p.out) + (tok * p.numHeads + h) * D;
#pragma unroll
      for (int n = 0; n < DT; ++n) {
        const float x = lr > 0.f ? o[n][2 * i] / lr : 0.f, y = lr > 0.f ? o[n][2 * i + 1] / lr : 0.f;
        *reinterpret_cast<uint32_t*>(out + (w * DT + n) * 8 + 2 * t) = pack2<T>(x, y);
      }
    }
  }
}

template <typename T, int D>
cudaError_t launchFlashDecode(const kvsk_attention_params& p, cudaStream_t stream) {
  constexpr size_t smem = FlashDecodeSmem<T, D>::bytes;
  auto kernel = flashDecodeKernel<T, D>;
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
