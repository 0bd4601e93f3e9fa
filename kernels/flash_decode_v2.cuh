// Decode attention in one launch (kvsk_attention_params.decodeVersion 2, KVSERVE_ATTN_DECODE=v2): bf16/f16
// queries, head_dim 64 and 128, G <= 16, a bf16/f16 or fp8 (e4m3) cache. Included by flash_decode_v2_*.cu.
//
// The split decode kernel of flash_decode.cuh takes two launches per layer (the partitions, then the merge
// kernel, whose loop over the partitions is one L2 round trip per term), reads the step's plan and block table
// only after the programmatic-launch wait, and keeps one 64-key tile in flight while it computes the other. At
// batch 1 that is mostly latency: 13 us per layer for 2 MB of K/V in the engine at context 512. Here:
// - One CTA per (tile, KV head, partition), split fastest in a 1-D grid (a pair's partitions run side by side,
//   so their merges spread over the launch instead of waiting for the last wave).
// - Before the wait: the plan, the block table and an L2 prefetch of the first STAGES - 1 tiles' K/V rows.
//   The plan arrays and block tables are the step's inputs, copied up before the forward pass and never
//   written by its kernels; K/V may still be written (the newest token's, by the previous kernel), but a
//   prefetch only warms L2, which every write reaches: the cp.async reads after the wait see them.
// - A STAGES-deep cp.async ring (2 to 4 stages of 64 keys): STAGES - 1 tiles in flight while one is computed.
// - The merge in the same launch: a partition's CTA writes its partial (as flash_decode.cuh does), counts its
//   arrival in splitCounters[slot, KV head], and the last of the pair's partitions to arrive merges them all
//   (every partial in shared memory with one round trip) and zeroes the counter for the next launch, so CUDA
//   graph replays find it zero. A sequence of one partition writes its output directly.
//
// Bits. The per-tile arithmetic is flash_decode.cuh's (DecodeRows, decodeLoadTile), the partitions are the
// plan's (partitionSize), and the merge is flashCombineKernel's term for term (mergeWeight, mergeTerm; both
// sums in partition order; a one-partition merge is o / l, which the direct store computes). So v2 gives the
// bits of the two-launch path: a decode row is the same in v1, v2, a mixed step and a graphed step, and does
// not depend on STAGES, on the grid's partition count (maxSplits), on which CTA arrives last or on the order
// the CTAs run.
#pragma once
#include <climits>

#include "flash_attention.cuh"

namespace kvsk {

// The merge's shared memory: maxima (then weights) and sums of G heads x n partitions, then the partial
// outputs of at least one partition of every head. Whether that fits the ring of `ringBytes`.
__host__ __device__ constexpr int mergeRound4(int x) { return (x + 3) & ~3; }
__host__ __device__ constexpr bool mergeFits(int G, int n, int D, size_t ringBytes) {
  return (size_t)(2 * mergeRound4(G * n) + G * D) * sizeof(float) <= ringBytes;
}

// The weights and sums of a merge of G heads' n partitions (partial index of head h, partition i: base + h
// maxSplits + i), read from L2 (other SMs wrote them): sW[i G + h] = mergeWeight(m_i, M) with M = max_i m_i (0 when
// every m_i is -inf), sS the partitions' sums (sW and sS [n][G], mergeRound4(G n) floats each), sMu[h] = M and
// sL[h] = L = sum_i l_i w_i from zero in partition order (16 each), flashCombineKernel's terms. sL is written by
// threads h < G after the last barrier: one more must come before other threads read it.
__device__ __forceinline__ void mergeWeights(const kvsk_attention_params& p, int64_t base, int G, int n, float* sW,
                                             float* sS, float* sMu, float* sL, int tid) {
  constexpr int NT = 128;
  const int Gn = G * n;
  for (int e0 = 0; e0 < Gn; e0 += 4 * NT) {  // four loads of each in flight per thread
    float mx[4], sm[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int e = e0 + u * NT + tid;
      if (e < Gn) {
        const int64_t at = base + (int64_t)(e % G) * p.maxSplits + e / G;
        mx[u] = __ldcg(p.partialMax + at);
        sm[u] = __ldcg(p.partialSum + at);
      }
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int e = e0 + u * NT + tid;
      if (e < Gn) {
        sW[e] = mx[u];
        sS[e] = sm[u];
      }
    }
  }
  __syncthreads();
  if (tid < G) {
    float M = -INFINITY;
    for (int i = 0; i < n; ++i) M = fmaxf(M, sW[i * G + tid]);
    sMu[tid] = M == -INFINITY ? 0.f : M;
  }
  __syncthreads();
  for (int e = tid; e < Gn; e += NT) sW[e] = mergeWeight(sW[e], sMu[e % G]);
  __syncthreads();
  if (tid < G) {
    float L = 0.f;
    for (int i = 0; i < n; ++i) L = mergeTerm(L, sS[i * G + tid], sW[i * G + tid]);
    sL[tid] = L;
  }
}

// One work item of a single-launch decode grid: the CTA (tile, KV head, partition) of index idx in numTiles x
// numKvHeads x gridSplits, the partition fastest (version 2's CTA). nTiles is 0 for a
// partition past its sequence's last.
struct DecodeItem {
  int kvh, split, slot, nSplits, qStart, t0, rows, firstPos, kb, ke, nTiles;
  const int32_t* table;
};

__device__ __forceinline__ DecodeItem decodeItem(const kvsk_attention_params& p, int idx, int gridSplits) {
  DecodeItem it;
  it.split = idx % gridSplits;
  const int pair = idx / gridSplits;
  it.kvh = pair % p.numKvHeads;
  const int tile = pair / p.numKvHeads;
  const int seq = p.tileSeq[tile];
  it.qStart = p.queryStart[seq];
  const int qLen = p.queryStart[seq + 1] - it.qStart, ctx = p.contextLens[seq];
  it.t0 = p.tileQStart[tile];
  const int nTok = min(p.tokensPerTile, qLen - it.t0);
  it.rows = nTok * (p.numHeads / p.numKvHeads);
  it.slot = p.tileSplitSlot[tile];
  it.nSplits = it.slot >= 0 ? (ctx + p.partitionSize - 1) / p.partitionSize : 1;
  it.firstPos = ctx - qLen + it.t0;
  const int kEndTile = it.firstPos + nTok;
  it.kb = it.slot >= 0 ? it.split * p.partitionSize : 0;
  it.ke = it.slot >= 0 ? min(it.kb + p.partitionSize, kEndTile) : kEndTile;
  it.nTiles = it.split < it.nSplits ? (it.ke - it.kb + 63) / 64 : 0;
  it.table = p.blockTables + (int64_t)seq * p.maxBlocksPerSeq;
  return it;
}

// An L2 prefetch of the K/V rows of an item's first `tiles` 64-key tiles (before the programmatic-launch wait:
// K/V may still be written by the previous kernel, but a prefetch only warms L2, which every write reaches).
template <int ROW_BYTES>
__device__ __forceinline__ void prefetchItemTiles(const kvsk_attention_params& p, const DecodeItem& it, int tiles,
                                                  int bsShift, int tid) {
  constexpr int LINES = ROW_BYTES >= 128 ? ROW_BYTES / 128 : 1, LINE = ROW_BYTES >= 128 ? 128 : ROW_BYTES;
  const int keys = min(it.ke - it.kb, tiles * 64);
  const char* kc = static_cast<const char*>(p.kCache);
  const char* vc = static_cast<const char*>(p.vCache);
  for (int e = tid; e < keys * LINES; e += 128) {
    const int key = it.kb + e / LINES;
    const int64_t row = ((int64_t)it.table[key >> bsShift] * p.blockSize + (key & (p.blockSize - 1))) * p.numKvHeads + it.kvh;
    const int64_t at = row * ROW_BYTES + (e % LINES) * LINE;
    prefetchL2(kc + at);
    prefetchL2(vc + at);
  }
}

// The last CTA of a split (slot, KV head) merges the G heads' n partitions into out (token tok): scratch holds
// ringFloats floats (the drained ring), sMerge 32 (mUse, then L, per head). flashCombineKernel's arithmetic:
// M = max_i m_i (exact in any order), w_i = 2^(m_i - M), L = sum_i l_i w_i and out = sum_i o_i w_i / L, both
// sums from zero in partition order.
template <typename T, int D>
__device__ __forceinline__ void mergeSplits(const kvsk_attention_params& p, int slot, int kvh, int G, int n, int64_t tok,
                                            float* scratch, int ringFloats, float* sMerge, int tid) {
  constexpr int NT = 128, C4 = D / 4, PAIRS = (16 * C4 + NT - 1) / NT;  // (head, 4 columns) pairs per thread
  const int Gn = G * n, Gn4 = mergeRound4(Gn);
  float* sW = scratch;     // [n][G] maxima, then weights
  float* sS = sW + Gn4;    // [n][G] sums
  float* sO = sS + Gn4;    // [G][cs][D] a chunk of cs partitions' outputs
  const int cs = min(n, (ringFloats - 2 * Gn4) / (G * D));
  const int64_t base = ((int64_t)slot * p.numHeads + kvh * G) * p.maxSplits;  // head h, partition i: base + h maxSplits + i
  auto stage = [&](int i0) {  // partitions [i0, i0 + cs) of every head, L2 only (other SMs wrote them)
    const int c = min(cs, n - i0);
    for (int e = tid; e < G * c * C4; e += NT) {
      const int h = e / (c * C4), i = e / C4 % c, q = e % C4;
      cpAsync16(sO + (h * cs + i) * D + 4 * q, p.partialOut + (base + (int64_t)h * p.maxSplits + i0 + i) * D + 4 * q, 16);
    }
    cpAsyncCommit();
  };
  stage(0);
  float* sMu = sMerge;
  float* sL = sMerge + 16;
  mergeWeights(p, base, G, n, sW, sS, sMu, sL, tid);
  float acc[PAIRS][4];
#pragma unroll
  for (int k = 0; k < PAIRS; ++k) acc[k][0] = acc[k][1] = acc[k][2] = acc[k][3] = 0.f;
  for (int i0 = 0; i0 < n; i0 += cs) {
    cpAsyncWait<0>();
    __syncthreads();  // the chunk (and, the first time, sL) is visible
    const int c = min(cs, n - i0);
#pragma unroll
    for (int k = 0; k < PAIRS; ++k) {
      const int e = tid + k * NT, h = e / C4, q = e % C4;
      if (h >= G) continue;
      for (int i = 0; i < c; ++i) {
        const float4 v = *reinterpret_cast<const float4*>(sO + (h * cs + i) * D + 4 * q);
        const float wi = sW[(i0 + i) * G + h];
        acc[k][0] = mergeTerm(acc[k][0], v.x, wi);
        acc[k][1] = mergeTerm(acc[k][1], v.y, wi);
        acc[k][2] = mergeTerm(acc[k][2], v.z, wi);
        acc[k][3] = mergeTerm(acc[k][3], v.w, wi);
      }
    }
    if (i0 + cs < n) {
      __syncthreads();  // every thread is done with this chunk
      stage(i0 + cs);
    }
  }
#pragma unroll
  for (int k = 0; k < PAIRS; ++k) {
    const int e = tid + k * NT, h = e / C4, q = e % C4;
    if (h >= G) continue;
    const float L = sL[h];
    float r[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) r[j] = L > 0.f ? acc[k][j] / L : 0.f;
    T* out = static_cast<T*>(p.out) + (tok * p.numHeads + kvh * G + h) * D + 4 * q;
    *reinterpret_cast<uint2*>(out) = make_uint2(pack2<T>(r[0], r[1]), pack2<T>(r[2], r[3]));
  }
}

template <typename T, int D, bool FP8, int STAGES>
__global__ void __launch_bounds__(128, 2) flashDecodeV2Kernel(kvsk_attention_params p) {
  using Rows = DecodeRows<T, D, FP8>;
  using Sm = FlashDecodeSmem<T, D, FP8, STAGES>;
  using KvT = typename Rows::KvT;
  using M = typename Rows::M;
  constexpr int BN = Rows::BN, LD = Rows::LD, LDP = Rows::LDP, ROW_BYTES = D * (int)sizeof(KvT);
  static_assert(STAGES >= 2 && STAGES <= 4, "a 2- to 4-stage ring");
  extern __shared__ __align__(16) unsigned char decodeV2Smem[];
  KvT* sK = reinterpret_cast<KvT*>(decodeV2Smem);      // [STAGES][BN][LD]; with sV, the merge's scratch after the loop
  KvT* sV = sK + STAGES * BN * LD;                     // [STAGES][BN][LD]
  M* sP = reinterpret_cast<M*>(sV + STAGES * BN * LD);   // [16][LDP]
  float* sMax = reinterpret_cast<float*>(sP + 16 * LDP);  // [4 warps][16 rows]; the merge's 32 floats after the loop
  float* sSum = sMax + 4 * 16;                         // [4 warps][32 lanes][2]
  float* sL = sSum + 4 * 32 * 2;                       // [16] final row sums
  __shared__ int lastArrival;

  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
  const int gridSplits = p.numSplitSlots > 0 ? p.maxSplits : 1;
  const DecodeItem item = decodeItem(p, blockIdx.x, gridSplits);
  if (item.nTiles == 0) return;
  const int G = p.numHeads / p.numKvHeads;
  const int kvh = item.kvh, split = item.split, slot = item.slot, nSplits = item.nSplits, qStart = item.qStart, t0 = item.t0;
  const int kb = item.kb, ke = item.ke;
  const int32_t* table = item.table;
  const int bsShift = __ffs(p.blockSize) - 1;
  prefetchItemTiles<ROW_BYTES>(p, item, STAGES - 1, bsShift, tid);  // the rows the ring's first STAGES - 1 tiles read
  pdlWait();  // q, the newest K/V, the partials and the counters come from earlier kernels (common.cuh)
  pdlTrigger();

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (kb + s * BN < ke) decodeLoadTile<T, D, FP8>(p, table, kvh, kb + s * BN, ke, bsShift, sK + s * BN * LD, sV + s * BN * LD, tid);
    cpAsyncCommit();  // possibly empty: group s is tile s
  }
  Rows st;
  st.start(p, qStart, t0, kvh, G, item.rows, item.firstPos, g, t);
  const int nTiles = item.nTiles;
  // Tile it sits in stage it % STAGES; the load issued at iteration it (tile it + STAGES - 1) refills the stage
  // tile it - 1 used, which the previous iteration's last barrier freed.
  for (int it = 0, stage = 0, refill = STAGES - 1; it < nTiles; ++it) {
    if (it + STAGES - 1 < nTiles)
      decodeLoadTile<T, D, FP8>(p, table, kvh, kb + (it + STAGES - 1) * BN, ke, bsShift, sK + refill * BN * LD,
                                sV + refill * BN * LD, tid);
    cpAsyncCommit();
    cpAsyncWait<STAGES - 1>();  // tile it's group is complete
    __syncthreads();
    st.tile(sK + stage * BN * LD, sV + stage * BN * LD, kb + it * BN, ke, sP, sMax, sSum, w, lane, g, t);
    __syncthreads();  // the stage, sP, sMax and sSum are rewritten next iteration
    refill = stage;
    stage = stage + 1 == STAGES ? 0 : stage + 1;
  }

  st.finish(sL, w, g, t);
  const bool direct = nSplits == 1;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int rr = g + 8 * i;
    if (!st.rowOk[i]) continue;
    const int h = kvh * G + rr % G;
    if (direct) st.storeOut(static_cast<T*>(p.out) + ((qStart + t0 + rr / G) * (int64_t)p.numHeads + h) * D, p.vScale, sL[rr], i, w, t);
    else st.storePartial(p, ((int64_t)slot * p.numHeads + h) * p.maxSplits + split, sL[rr], i, w, t);
  }
  if (direct) return;
  __threadfence();  // this CTA's partial is visible device-wide before its arrival is counted
  __syncthreads();
  unsigned* counter = p.splitCounters + (int64_t)slot * p.numKvHeads + kvh;
  if (tid == 0) lastArrival = atomicAdd(counter, 1u) == (unsigned)(nSplits - 1);
  __syncthreads();
  if (!lastArrival) return;
  if (tid == 0) *counter = 0u;  // every partition has arrived: zero for the next launch
  __threadfence();
  cpAsyncWait<0>();  // the ring's last groups are empty; its memory becomes the merge's
  mergeSplits<T, D>(p, slot, kvh, G, nSplits, qStart + t0, reinterpret_cast<float*>(decodeV2Smem), (int)(Sm::kv / sizeof(float)),
                    sMax, tid);
}

// The ring's depth by default: the deepest of 4, 3, 2 stages that still lets two CTAs share an SM (a batch-1
// step's KV heads x partitions fill the GPU only at two per SM), else 2. Read once from device 0's limits.
template <typename T, int D, bool FP8>
int decodeV2Stages() {
  static const int stages = [] {
    int dev = 0, perSm = 0, perBlock = 0, reserved = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&perSm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&perBlock, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, dev) != cudaSuccess)
      return 2;
    auto fits = [&](size_t bytes) { return bytes <= (size_t)perBlock && 2 * (bytes + reserved + 16) <= (size_t)perSm; };
    if (fits(FlashDecodeSmem<T, D, FP8, 4>::bytes)) return 4;
    if (fits(FlashDecodeSmem<T, D, FP8, 3>::bytes)) return 3;
    return 2;
  }();
  return stages;
}

template <typename T, int D, bool FP8, int STAGES>
cudaError_t launchDecodeV2Shape(const kvsk_attention_params& p, cudaStream_t stream) {
  using Sm = FlashDecodeSmem<T, D, FP8, STAGES>;
  auto kernel = flashDecodeV2Kernel<T, D, FP8, STAGES>;
  static const cudaError_t attr =
      Sm::bytes > 48 * 1024 ? cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)Sm::bytes) : cudaSuccess;
  if (attr != cudaSuccess) return attr;
  const int splits = p.numSplitSlots > 0 ? p.maxSplits : 1;
  if (p.numSplitSlots > 0 && !mergeFits(p.numHeads / p.numKvHeads, splits, D, Sm::kv)) return cudaErrorNotSupported;
  const int64_t ctas = (int64_t)p.numTiles * p.numKvHeads * splits;
  if (ctas > INT_MAX) return cudaErrorInvalidValue;
  return launch(kernel, dim3((unsigned)ctas), 128, Sm::bytes, stream, p);
}

template <typename T, int D, bool FP8>
cudaError_t launchDecodeV2D(const kvsk_attention_params& p, cudaStream_t stream) {
  switch (p.decodeStages ? p.decodeStages : decodeV2Stages<T, D, FP8>()) {
    case 2: return launchDecodeV2Shape<T, D, FP8, 2>(p, stream);
    case 3: return launchDecodeV2Shape<T, D, FP8, 3>(p, stream);
    case 4: return launchDecodeV2Shape<T, D, FP8, 4>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

// kvsk_attention's v2 decode launch for queries of type T over a T cache or, FP8, an e4m3 one (instantiated in
// flash_decode_v2_{bf16,f16,fp8_bf16,fp8_f16}.cu).
template <typename T, bool FP8>
cudaError_t launchFlashDecodeV2(const kvsk_attention_params& p, cudaStream_t stream) {
  switch (p.headDim) {
    case 64: return launchDecodeV2D<T, 64, FP8>(p, stream);
    case 128: return launchDecodeV2D<T, 128, FP8>(p, stream);
    default: return cudaErrorNotSupported;
  }
}

}  // namespace kvsk
