// Paged attention kernel template (included by paged_attention_{f32,bf16,f16}.cu, one dtype each so the
// instantiations compile in parallel).
//
// CTA = (tile, KV head, split); 128 threads. The tile's query rows are (token, head-of-group) pairs,
// row r = token * G + g, held in shared memory as float32. Keys are walked in tiles of BN = 32 through the
// block table; each K/V tile is loaded once (16-byte loads, converted to float32) and used by every row.
// Per key tile: S = (Q K^T) * scale with the causal/length mask -> online softmax (one warp per row) ->
// O = O * alpha + P V with the accumulators in registers (thread owns outputs tid + j * 128).
// Every row's arithmetic (order of the dot products, of the softmax updates and of the P V sums) depends
// only on its own sequence, never on ROWS or on the other rows: results are batch invariant.
#pragma once
#include "common.cuh"

namespace kvsk {

constexpr int kAttnThreads = 128;
constexpr int kAttnBN = 32;

template <int D, int ROWS>
struct AttnSmem {
  static constexpr int kQ = ROWS * D, kK = kAttnBN * (D + 1), kV = kAttnBN * D, kP = ROWS * (kAttnBN + 1);
  static constexpr size_t bytes = sizeof(float) * (kQ + kK + kV + kP + 3 * ROWS);
};

template <typename T, int D, int ROWS>
__global__ void __launch_bounds__(kAttnThreads) pagedAttentionKernel(kvsk_attention_params p) {
  pdlWait();  // the cache and q come from the previous kernel (common.cuh)
  pdlTrigger();
  constexpr int BN = kAttnBN, NT = kAttnThreads;
  constexpr int ACC = (ROWS * D + NT - 1) / NT;
  constexpr int VEC = 16 / sizeof(T), CHUNKS = D / VEC;
  using Sm = AttnSmem<D, ROWS>;
  extern __shared__ float smem[];
  float* sQ = smem;                 // [ROWS][D]
  float* sK = sQ + Sm::kQ;          // [BN][D + 1] (padded: threads of a warp read different keys)
  float* sV = sK + Sm::kK;          // [BN][D]
  float* sP = sV + Sm::kV;          // [ROWS][BN + 1]
  float* sAlpha = sP + Sm::kP;      // [ROWS] rescale of the running output by this tile
  float* sL = sAlpha + ROWS;        // [ROWS] running sum of exp(score - max)
  float* sM = sL + ROWS;            // [ROWS] running max of the scores

  const int tile = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, tid = threadIdx.x, lane = tid & 31;
  static_assert(kAttnBN == 32, "the softmax gives each lane of a warp one key of the tile");
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

  for (int e = tid; e < rows * D; e += NT) {
    const int r = e / D, d = e % D;
    const int h = kvh * G + r % G;
    const int64_t tok = qStart + t0 + r / G;
    sQ[r * D + d] = toF<T>(static_cast<const T*>(p.q)[(tok * p.numHeads + h) * D + d]);
  }
  float acc[ACC];
#pragma unroll
  for (int j = 0; j < ACC; ++j) acc[j] = 0.f;
  for (int r = tid; r < ROWS; r += NT) { sM[r] = -INFINITY; sL[r] = 0.f; }  // running max and sum per row

  const int32_t* table = p.blockTables + (int64_t)seq * p.maxBlocksPerSeq;
  const T* kc = static_cast<const T*>(p.kCache);
  const T* vc = static_cast<const T*>(p.vCache);
  for (int k0 = kb; k0 < ke; k0 += BN) {
    __syncthreads();  // previous tile's sK/sV/sP are consumed (and sQ is written, first time round)
    for (int e = tid; e < BN * CHUNKS; e += NT) {
      const int j = e / CHUNKS, c = e % CHUNKS, key = k0 + j;
      float kf[VEC], vf[VEC];
      if (key < ke) {
        const int64_t blk = table[key / p.blockSize];
        const int64_t off = ((blk * p.blockSize + key % p.blockSize) * p.numKvHeads + kvh) * D + c * VEC;
        const int4 kr = *reinterpret_cast<const int4*>(kc + off);
        const int4 vr = *reinterpret_cast<const int4*>(vc + off);
        const T* kt = reinterpret_cast<const T*>(&kr);
        const T* vt = reinterpret_cast<const T*>(&vr);
#pragma unroll
        for (int i = 0; i < VEC; ++i) { kf[i] = toF<T>(kt[i]); vf[i] = toF<T>(vt[i]); }
      } else {
#pragma unroll
        for (int i = 0; i < VEC; ++i) { kf[i] = 0.f; vf[i] = 0.f; }  // never garbage: 0 * NaN is NaN
      }
#pragma unroll
      for (int i = 0; i < VEC; ++i) { sK[j * (D + 1) + c * VEC + i] = kf[i]; sV[j * D + c * VEC + i] = vf[i]; }
    }
    __syncthreads();
    for (int e = tid; e < rows * BN; e += NT) {
      const int r = e / BN, n = e % BN, key = k0 + n;
      const int limit = firstPos + r / G;  // causal: keys <= own position
      float s = -INFINITY;
      if (key < ke && key <= limit) {
        float dot = 0.f;
#pragma unroll 16
        for (int d = 0; d < D; ++d) dot = fmaf(sQ[r * D + d], sK[n * (D + 1) + d], dot);
        s = dot * p.scale;
      }
      sP[r * (BN + 1) + n] = s;
    }
    __syncthreads();
    // Online softmax, one warp per row (lane n owns key n of the tile: BN == 32).
    for (int r = tid >> 5; r < rows; r += NT / 32) {
      float* pr = sP + r * (BN + 1);
      const float s = pr[lane];
      const float mOld = sM[r];
      const float mx = fmaxf(mOld, warpMax(s));
      float alpha = 1.f, e = 0.f;
      if (mx != -INFINITY) {
        alpha = expf(mOld - mx);  // mOld == -inf -> 0
        e = expf(s - mx);
      }
      pr[lane] = e;
      const float sum = warpSum(e);
      if (lane == 0) {
        sL[r] = sL[r] * alpha + sum;
        sM[r] = mx;
        sAlpha[r] = alpha;
      }
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < ACC; ++j) {
      const int o = tid + j * NT;
      if (o < rows * D) {
        const int r = o / D, d = o % D;
        const float* pr = sP + r * (BN + 1);
        float a = acc[j] * sAlpha[r];
#pragma unroll 8
        for (int n = 0; n < BN; ++n) a = fmaf(pr[n], sV[n * D + d], a);
        acc[j] = a;
      }
    }
  }
  __syncthreads();
  if (slot >= 0) {
    for (int r = tid; r < rows; r += NT) {
      const int64_t idx = ((int64_t)slot * p.numHeads + kvh * G + r % G) * p.maxSplits + split;
      p.partialMax[idx] = sM[r];
      p.partialSum[idx] = sL[r];
    }
  }
#pragma unroll
  for (int j = 0; j < ACC; ++j) {
    const int o = tid + j * NT;
    if (o < rows * D) {
      const int r = o / D, d = o % D;
      const int h = kvh * G + r % G;
      if (slot >= 0) {
        p.partialOut[(((int64_t)slot * p.numHeads + h) * p.maxSplits + split) * D + d] = acc[j];
      } else {
        const int64_t tok = qStart + t0 + r / G;
        const float lr = sL[r];
        static_cast<T*>(p.out)[(tok * p.numHeads + h) * D + d] = fromF<T>(lr > 0.f ? acc[j] / lr : 0.f);
      }
    }
  }
}

// Merges the partitions of split tiles: out = sum_i acc_i * exp(m_i - M) / sum_i l_i * exp(m_i - M).
// A one-partition merge is exactly acc / l, the unsplit formula.
template <typename T>
__global__ void attentionCombineKernel(kvsk_attention_params p) {
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
  float L = 0.f;
  for (int i = 0; i < n; ++i) L += p.partialSum[base + i] * expf(p.partialMax[base + i] - M);
  for (int d = threadIdx.x; d < p.headDim; d += blockDim.x) {
    float a = 0.f;
    for (int i = 0; i < n; ++i) a += p.partialOut[(base + i) * p.headDim + d] * expf(p.partialMax[base + i] - M);
    static_cast<T*>(p.out)[(tok * p.numHeads + h) * p.headDim + d] = fromF<T>(L > 0.f ? a / L : 0.f);
  }
}

// Rows of a CTA: decode holds one token's G rows; prefill holds ROWS * D <= 4096 floats of Q (32 registers
// of accumulators per thread), at most 64 rows.
constexpr int attnPrefillRows(int D) { return D >= 256 ? 16 : D >= 128 ? 32 : 64; }
inline int attnRows(int D, int G, bool decode) {
  if (decode) return G <= 8 ? 8 : G <= 16 ? 16 : 0;
  const int r = attnPrefillRows(D);
  return G <= r ? r : 0;
}

template <typename T, int D, int ROWS>
cudaError_t launchAttentionShape(const kvsk_attention_params& p, cudaStream_t stream) {
  const size_t smem = AttnSmem<D, ROWS>::bytes;
  auto kernel = pagedAttentionKernel<T, D, ROWS>;
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
  }
  dim3 grid(p.numTiles, p.numKvHeads, p.numSplitSlots > 0 ? p.maxSplits : 1);
  cudaError_t e = launch(kernel, grid, kAttnThreads, smem, stream, p);
  if (e == cudaSuccess && p.numSplitSlots > 0) e = launch(attentionCombineKernel<T>, dim3(p.numTiles, p.numHeads), 64, 0, stream, p);
  return e;
}

template <typename T, int D>
cudaError_t launchAttentionD(const kvsk_attention_params& p, bool decode, cudaStream_t stream) {
  const int rows = attnRows(D, p.numHeads / p.numKvHeads, decode);
  if (rows == 8) return launchAttentionShape<T, D, 8>(p, stream);
  if (rows == 16) return launchAttentionShape<T, D, 16>(p, stream);
  if (rows == attnPrefillRows(D)) return launchAttentionShape<T, D, attnPrefillRows(D)>(p, stream);
  return cudaErrorNotSupported;
}

// headDim -> template parameter.
template <typename T>
cudaError_t launchAttention(const kvsk_attention_params& p, bool decode, cudaStream_t stream) {
  switch (p.headDim) {
    case 8: return launchAttentionD<T, 8>(p, decode, stream);
    case 16: return launchAttentionD<T, 16>(p, decode, stream);
    case 32: return launchAttentionD<T, 32>(p, decode, stream);
    case 64: return launchAttentionD<T, 64>(p, decode, stream);
    case 128: return launchAttentionD<T, 128>(p, decode, stream);
    case 256: return launchAttentionD<T, 256>(p, decode, stream);
    default: return cudaErrorNotSupported;
  }
}

}  // namespace kvsk
