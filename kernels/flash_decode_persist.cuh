// Decode attention on a persistent grid (kvsk_attention_params.decodeVersion 3, KVSERVE_ATTN_DECODE=v3): version
// 2's work items, each CTA walking several of them through one cp.async ring. Included by flash_decode_v2.cuh.
//
// Version 1 and 2 give every (tile, KV head, partition) its own CTA, which fills its ring, streams the partition's
// 64-key tiles and drains. Short partitions never reach a steady stream: at context 512 the engine's 128-key
// partitions are 2 tiles, and in the kernel bench such CTAs read K/V at 53-60% of copy bandwidth (batch 64) where
// CTAs of 8 tiles reach 80-90% (batch 256, 512-key partitions; GPU run 16). Here the grid is what fits on the device
// at once (up to three CTAs per SM) and CTA c takes items c, c + grid, c + 2 grid, ... (version 2's order: a pair's
// partitions side by side, so they finish close together); its ring runs across them, loading the next item's
// first tiles while it computes the current one's last, so the stream stops only at the launch's end.
//
// Bits. Per item everything is version 2's: DecodeRows' arithmetic from an empty state over the same tiles, the
// same partial or direct store, the same arrival count, and a merge by the last partition to arrive with
// flashCombineKernel's terms in partition order (mergeWeight, mergeTerm; the partial outputs read straight from L2
// rather than staged through the ring, which still holds the next item's tiles). So version 3 gives version 1's
// and 2's bits, whatever the grid, the ring's depth or the order the CTAs run.
#pragma once

namespace kvsk {

// The merge of a split (slot, KV head) by the last of its partitions to arrive, with flashCombineKernel's
// arithmetic term for term (mergeWeights, then each output's terms in partition order, the partial outputs read
// from L2): scratch holds 2 mergeRound4(G n) + 32 floats (weights, sums, then M and L per head).
template <typename T, int D>
__device__ __forceinline__ void mergeSplitsDirect(const kvsk_attention_params& p, int slot, int kvh, int G, int n,
                                                  int64_t tok, float* scratch, int tid) {
  constexpr int NT = 128;
  const int Gn4 = mergeRound4(G * n);
  float* sW = scratch;    // [n][G] weights
  float* sS = sW + Gn4;   // [n][G] sums
  float* sMu = sS + Gn4;  // [16]
  float* sL = sMu + 16;   // [16]
  const int64_t base = ((int64_t)slot * p.numHeads + kvh * G) * p.maxSplits;  // head h, partition i: base + h maxSplits + i
  mergeWeights(p, base, G, n, sW, sS, sMu, sL, tid);
  __syncthreads();  // sL
  for (int e = tid; e < G * D; e += NT) {  // (head, column): a warp reads 32 consecutive columns of a partition
    const int h = e / D, d = e % D;
    const float* po = p.partialOut + (base + (int64_t)h * p.maxSplits) * D + d;
    float a = 0.f;
    for (int i = 0; i < n; ++i) a = mergeTerm(a, __ldcg(po + (int64_t)i * D), sW[i * G + h]);
    const float L = sL[h];
    static_cast<T*>(p.out)[(tok * p.numHeads + kvh * G + h) * D + d] = fromF<T>(L > 0.f ? a / L : 0.f);
  }
}

// Dynamic shared memory of the persistent kernel: version 2's ring and rows, then the merge's scratch.
template <typename T, int D, bool FP8, int STAGES>
__host__ __device__ constexpr size_t persistSmemBytes(int G, int gridSplits) {
  return FlashDecodeSmem<T, D, FP8, STAGES>::bytes + (size_t)(2 * mergeRound4(G * gridSplits) + 32) * sizeof(float);
}

template <typename T, int D, bool FP8, int STAGES>
__global__ void __launch_bounds__(128, 2) flashDecodePersistKernel(kvsk_attention_params p, int items) {
  using Rows = DecodeRows<T, D, FP8>;
  using Sm = FlashDecodeSmem<T, D, FP8, STAGES>;
  using KvT = typename Rows::KvT;
  using M = typename Rows::M;
  constexpr int BN = Rows::BN, LD = Rows::LD, LDP = Rows::LDP, ROW_BYTES = D * (int)sizeof(KvT);
  static_assert(STAGES >= 2 && STAGES <= 4, "a 2- to 4-stage ring");
  extern __shared__ __align__(16) unsigned char persistSmem[];
  KvT* sK = reinterpret_cast<KvT*>(persistSmem);        // [STAGES][BN][LD]
  KvT* sV = sK + STAGES * BN * LD;                      // [STAGES][BN][LD]
  M* sP = reinterpret_cast<M*>(sV + STAGES * BN * LD);   // [16][LDP]
  float* sMax = reinterpret_cast<float*>(sP + 16 * LDP);  // [4 warps][16 rows]
  float* sSum = sMax + 4 * 16;                          // [4 warps][32 lanes][2]
  float* sL = sSum + 4 * 32 * 2;                        // [16] final row sums
  float* sMerge = reinterpret_cast<float*>(persistSmem + Sm::bytes);
  __shared__ int lastArrival;

  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
  const int gridSplits = p.numSplitSlots > 0 ? p.maxSplits : 1;
  const int G = p.numHeads / p.numKvHeads;
  const int bsShift = __ffs(p.blockSize) - 1;

  // The load side runs STAGES - 1 tiles ahead of the compute side over the same (item, tile) sequence: items
  // blockIdx.x + k gridDim.x with tiles, each item's tiles in order.
  int li = blockIdx.x;
  DecodeItem L = decodeItem(p, li, gridSplits);
  while (L.nTiles == 0 && (li += gridDim.x) < items) L = decodeItem(p, li, gridSplits);
  if (li >= items) return;  // no keys for this CTA (a grid wider than the step's work)
  int ci = li, lt = 0, ct = 0;
  DecodeItem C = L;
  auto advanceLoad = [&] {
    if (++lt < L.nTiles) return;
    lt = 0;
    do li += gridDim.x;
    while (li < items && (L = decodeItem(p, li, gridSplits)).nTiles == 0);
  };
  prefetchItemTiles<ROW_BYTES>(p, C, STAGES - 1, bsShift, tid);  // the first item's first STAGES - 1 tiles
  pdlWait();  // q, the newest K/V, the partials and the counters come from earlier kernels (common.cuh)
  pdlTrigger();

  auto loadNext = [&](int stage) {
    if (li < items) {
      decodeLoadTile<T, D, FP8>(p, L.table, L.kvh, L.kb + lt * BN, L.ke, bsShift, sK + stage * BN * LD, sV + stage * BN * LD, tid);
      advanceLoad();
    }
    cpAsyncCommit();  // possibly empty: one group per tile of the sequence, in order
  };
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) loadNext(s);
  Rows st;
  st.start(p, C.qStart, C.t0, C.kvh, G, C.rows, C.firstPos, g, t);
  // Tile k of the CTA's sequence sits in stage k % STAGES; the load issued at iteration k (tile k + STAGES - 1)
  // refills the stage tile k - 1 used, which the previous iteration's last barrier freed.
  for (int stage = 0, refill = STAGES - 1;;) {
    loadNext(refill);
    cpAsyncWait<STAGES - 1>();  // tile k's group is complete
    __syncthreads();
    st.tile(sK + stage * BN * LD, sV + stage * BN * LD, C.kb + ct * BN, C.ke, sP, sMax, sSum, w, lane, g, t);
    __syncthreads();  // the stage, sP, sMax and sSum are rewritten next iteration
    refill = stage;
    stage = stage + 1 == STAGES ? 0 : stage + 1;
    if (++ct < C.nTiles) continue;

    // The item's last tile: its rows' stores, as version 2's CTA ends.
    st.finish(sL, w, g, t);
    const bool direct = C.nSplits == 1;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int rr = g + 8 * i;
      if (!st.rowOk[i]) continue;
      const int h = C.kvh * G + rr % G;
      if (direct) st.storeOut(static_cast<T*>(p.out) + ((C.qStart + C.t0 + rr / G) * (int64_t)p.numHeads + h) * D, p.vScale, sL[rr], i, w, t);
      else st.storePartial(p, ((int64_t)C.slot * p.numHeads + h) * p.maxSplits + C.split, sL[rr], i, w, t);
    }
    if (!direct) {
      __threadfence();  // this CTA's partial is visible device-wide before its arrival is counted
      __syncthreads();
      unsigned* counter = p.splitCounters + (int64_t)C.slot * p.numKvHeads + C.kvh;
      if (tid == 0) lastArrival = atomicAdd(counter, 1u) == (unsigned)(C.nSplits - 1);
      __syncthreads();
      if (lastArrival) {
        if (tid == 0) *counter = 0u;  // every partition has arrived: zero for the next launch
        __threadfence();
        mergeSplitsDirect<T, D>(p, C.slot, C.kvh, G, C.nSplits, C.qStart + C.t0, sMerge, tid);
      }
    }
    __syncthreads();  // sL, lastArrival and the merge's scratch are the next item's

    do ci += gridDim.x;
    while (ci < items && (C = decodeItem(p, ci, gridSplits)).nTiles == 0);
    if (ci >= items) break;
    ct = 0;
    st.start(p, C.qStart, C.t0, C.kvh, G, C.rows, C.firstPos, g, t);
  }
  cpAsyncWait<0>();  // the ring's last groups are empty
}

template <typename T, int D, bool FP8, int STAGES>
cudaError_t launchDecodePersistShape(const kvsk_attention_params& p, cudaStream_t stream) {
  auto kernel = flashDecodePersistKernel<T, D, FP8, STAGES>;
  const int gridSplits = p.numSplitSlots > 0 ? p.maxSplits : 1;
  const size_t smem = persistSmemBytes<T, D, FP8, STAGES>(p.numHeads / p.numKvHeads, gridSplits);
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                       (int)persistSmemBytes<T, D, FP8, STAGES>(16, 64));
  if (attr != cudaSuccess) return attr;
  // Device limits, read once (attribute queries only: this may run while a CUDA graph is being captured).
  struct Limits { int sms = 0, smemPerSm = 0, reserved = 0; };
  static const Limits lim = [] {
    Limits l;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&l.sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&l.smemPerSm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&l.reserved, cudaDevAttrReservedSharedMemoryPerBlock, dev) != cudaSuccess)
      l.sms = 0;
    return l;
  }();
  // The grid: up to 3 CTAs per SM (what 128 threads of ~140 registers and v1's shared memory allow on the H200)
  // as its shared memory fits. More CTAs than fit would only queue (no CTA waits on another), so this is speed only.
  const int fit = lim.sms > 0 ? (int)(lim.smemPerSm / (smem + lim.reserved + 16)) : 0;
  if (fit < 1) return cudaErrorNotSupported;
  const int64_t items = (int64_t)p.numTiles * p.numKvHeads * gridSplits;
  if (items > INT_MAX) return cudaErrorInvalidValue;
  const int grid = (int)std::min<int64_t>(items, (int64_t)lim.sms * std::min(3, fit));
  return launch(kernel, dim3((unsigned)grid), 128, smem, stream, p, (int)items);
}

template <typename T, int D, bool FP8>
cudaError_t launchDecodePersistD(const kvsk_attention_params& p, cudaStream_t stream) {
  switch (p.decodeStages ? p.decodeStages : 2) {
    case 2: return launchDecodePersistShape<T, D, FP8, 2>(p, stream);
    case 3: return launchDecodePersistShape<T, D, FP8, 3>(p, stream);
    case 4: return launchDecodePersistShape<T, D, FP8, 4>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace kvsk
