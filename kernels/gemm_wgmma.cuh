// The batch-invariant bf16/f16 GEMM on Hopper's warpgroup MMA (gemm_wgmma.cu launches it; sm_90a only):
// Y[M, N] = X[M, K] W[N, K]^T with a float32 sum whose every operation is fixed by (K, partChunks) alone, so a row
// of Y has the same bits whatever M is, wherever the row falls in a tile, whichever tile shape or split computes it.
//
// The reduction of one element y[m, n] (the contract every variant keeps; kvserve_kernels.h states it too):
// - K is cut into chunks of 64 (the last one zero-padded) and the chunks into k-partitions of partChunks
//   consecutive chunks (the last one shorter).
// - A partition's sum is one chain of wgmma.mma_async.m64n128k16 (float32 accumulators) over its chunks in order,
//   four per chunk in k order, the first with its accumulator input off (scale-d 0: D = A B), the others adding to
//   D; y[m, n] is always at column n % 128 of its wgmma (tiles are whole multiples of 128 columns wide).
// - The partition sums are added to a float32 zero in partition order (0 + p0 + p1 + ...), and the result rounded
//   to the dtype (round to nearest even).
// The tensor core computes an element of D from its row of A, its column of B and its own D alone, so the rows
// that share a wgmma (other tokens, or the zeros TMA fills past M) never touch the bits of a row; the kernel tests
// (test/gpu/native/gemm_wgmma_test.cu) check that bitwise for every M from 1 to 512 and every variant.
//
// A CTA computes a bm x bn tile of Y over the chunks [c0, c1) of K (gemm_wgmma_layout.h has the shapes, the
// shared-memory layout and the descriptors). Warp specialization: warpgroups 0 .. consumers-1 each own 64 rows of
// the tile and issue its wgmmas; the last warpgroup gives most of its registers to them (setmaxnreg) and one of its
// threads issues the TMA loads into a ring of `stages` stages (X tile, then W tile, both 128-byte swizzled). Two
// mbarriers per stage: `full` (the producer's expect-tx arrival plus the bytes of both loads) and `empty` (one
// arrival per consumer warp once the wgmmas that read the stage are done). A consumer keeps one chunk's wgmmas in
// flight while it waits for the next chunk. Two ways to cover K, chosen by the launcher for speed only:
// - sequential (kSplit = false): the CTA walks all chunks; at each partition's end it adds the partition's sum to
//   its running total (128 x 256 keeps none: it runs sequential only where the weight has one partition);
// - split (kSplit = true): the CTA computes one partition (grid = tiles x partitions), writes its sum as float32
//   to the workspace [partitions, M, N], and the last of the tile's CTAs to finish (a per-tile counter, reset to
//   zero by that CTA) adds the partitions in order and writes Y.
// Programmatic dependent launch: the first stages of W (immutable) are loaded and the next chunks asked of L2
// before the wait; X, Y, the workspace and the counters are touched only after it.
#pragma once
#include <cuda.h>

#include "common.cuh"
#include "gemm_wgmma_layout.h"
#include "mma.cuh"

namespace kvsk {
namespace wg {

struct Args {
  CUtensorMap x;  // X [m, k]: box {64, bm}, 128-byte swizzle, zeros past m and k
  CUtensorMap w;  // W [n, k]: box {64, bn}, likewise past n and k
  void* y;        // [m, n]
  int m, n, k;
  int chunks;      // ceil(k / 64)
  int partChunks;  // chunks per k-partition
  int parts;       // ceil(chunks / partChunks)
  bool pairStores; // n even and y 4-byte aligned: two outputs per 32-bit store
  int mTiles, nTiles;
  int* counters;   // split: [mTiles * nTiles], zeros between launches
  float* partial;  // split: [parts, m, n]
};

// The compile-time shape of a tile (gemm_wgmma_layout.h's geometry) and the register split of setmaxnreg (2 CTAs
// of 256 threads: 128 each at entry, the consumers 216 after; 1 CTA of 384: 168 at entry, 232 after).
template <int kTile>
struct Shape {
  static constexpr Geometry g = geometry(kTile);
  static constexpr int kConsumers = g.consumers, kSubN = g.subN, kStages = g.stages, kCtasPerSm = g.ctasPerSm;
  static constexpr int kPrefetch = g.prefetch;
  static constexpr int kThreads = g.threads(), kBM = g.bm(), kBN = g.bn();
  static constexpr int kStageBytes = g.stageBytes(), kSmemBytes = g.smemBytes();
  static constexpr int kProducerRegs = Geometry::kProducerRegs, kConsumerRegs = g.consumerRegs();
  static_assert(kConsumerRegs <= 256 && kConsumerRegs >= g.entryRegs(), "setmaxnreg: at most 256, never fewer");
  static_assert(kStageBytes % kAtomBytes == 0 && kBM * kRowBytes % kAtomBytes == 0, "tiles start on swizzle atoms");
};

__device__ __forceinline__ void mbarInit(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smemAddr(bar)), "r"(count) : "memory");
}
// Makes the initialized barriers visible to the async proxy (TMA) before any thread uses them.
__device__ __forceinline__ void mbarInitFence() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }
__device__ __forceinline__ void mbarArriveExpectTx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smemAddr(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbarArrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smemAddr(bar)) : "memory");
}
// Returns once the barrier's phase of this parity has completed (acquire: what completed it is visible). The loop
// is inside the asm, so the warp leaves it together (the wgmmas after it are .aligned).
__device__ __forceinline__ void mbarWait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(smemAddr(bar)),
      "r"(parity)
      : "memory");
}

// The box at coordinates (k element c0, row c1) of the tensor map into shared memory, completing on `bar`.
__device__ __forceinline__ void tmaLoad(void* dst, const CUtensorMap* map, uint64_t* bar, int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];" ::"r"(
          smemAddr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(smemAddr(bar)), "r"(c0), "r"(c1)
      : "memory");
}
__device__ __forceinline__ void tmaPrefetchL2(const CUtensorMap* map, int c0, int c1) {
  asm volatile("cp.async.bulk.prefetch.tensor.2d.L2.global.tile [%0, {%1, %2}];" ::"l"(reinterpret_cast<uint64_t>(map)),
               "r"(c0), "r"(c1)
               : "memory");
}
__device__ __forceinline__ void prefetchTensorMap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

template <int N>
__device__ __forceinline__ void setMaxRegsDec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void setMaxRegsInc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(N));
}

__device__ __forceinline__ void wgmmaFence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accesses of the accumulators across the asynchronous wgmmas (asm volatile
// statements keep their order; these tie every accumulator to one).
__device__ __forceinline__ void fenceAccumulators(float (&d)[64]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

#define KVSK_WG_D64                                                                                          \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
  "%23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, "  \
  "%44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define KVSK_WG_ACC8(i)                                                                                      \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
      "+f"(d[i + 7])
#define KVSK_WG_ACC64                                                                                        \
  KVSK_WG_ACC8(0), KVSK_WG_ACC8(8), KVSK_WG_ACC8(16), KVSK_WG_ACC8(24), KVSK_WG_ACC8(32), KVSK_WG_ACC8(40), \
      KVSK_WG_ACC8(48), KVSK_WG_ACC8(56)

// d (64 x 128, float32) = A B + (accumulate ? d : 0): A and B K-major in shared memory (descriptors a, b), both
// operands un-transposed (imm-trans 0), unscaled (imm-scale 1).
template <typename T>
__device__ __forceinline__ void wgmma128(float (&d)[64], uint64_t a, uint64_t b, int accumulate);
template <>
__device__ __forceinline__ void wgmma128<__nv_bfloat16>(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " KVSK_WG_D64 ", %64, %65, p, 1, 1, 0, 0;\n"
      "}\n"
      : KVSK_WG_ACC64
      : "l"(a), "l"(b), "r"(accumulate));
}
template <>
__device__ __forceinline__ void wgmma128<__half>(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 " KVSK_WG_D64 ", %64, %65, p, 1, 1, 0, 0;\n"
      "}\n"
      : KVSK_WG_ACC64
      : "l"(a), "l"(b), "r"(accumulate));
}
#undef KVSK_WG_ACC64
#undef KVSK_WG_ACC8
#undef KVSK_WG_D64

// Y[row, col], Y[row, col + 1] = v0, v1 rounded to T (each only if inside [m, n]).
template <typename T>
__device__ __forceinline__ void store2(const Args& p, int row, int col, float v0, float v1) {
  if (row >= p.m) return;
  T* y = static_cast<T*>(p.y) + (size_t)row * p.n + col;
  if (p.pairStores && col + 1 < p.n) {
    *reinterpret_cast<uint32_t*>(y) = pack2<T>(v0, v1);
    return;
  }
  if (col < p.n) y[0] = fromF<T>(v0);
  if (col + 1 < p.n) y[1] = fromF<T>(v1);
}

// The producer: one thread issues every load of the CTA's chunks [c0, c1) into the ring.
template <typename S>
__device__ __forceinline__ void produce(const Args& p, char* smem, uint64_t* full, uint64_t* empty, int m0, int n0, int c0,
                                        int c1) {
  prefetchTensorMap(&p.x);
  prefetchTensorMap(&p.w);
  const int n = c1 - c0, first = min(n, S::kStages);
  auto xTile = [&](int s) { return smem + s * S::kStageBytes; };
  auto wTile = [&](int s) { return smem + s * S::kStageBytes + S::kBM * kRowBytes; };
  // W is immutable: the first stages' W and the next chunks' L2 prefetch go out before the wait.
  for (int i = 0; i < first; ++i) {
    mbarArriveExpectTx(&full[i], S::kStageBytes);
    tmaLoad(wTile(i), &p.w, &full[i], (c0 + i) * kChunk, n0);
  }
  for (int i = first; i < n && i < first + S::kPrefetch; ++i) tmaPrefetchL2(&p.w, (c0 + i) * kChunk, n0);
  pdlWait();
  pdlTrigger();
  for (int i = 0; i < first; ++i) tmaLoad(xTile(i), &p.x, &full[i], (c0 + i) * kChunk, m0);
  for (int i = first; i < n; ++i) {
    const int s = i % S::kStages;
    mbarWait(&empty[s], (i / S::kStages - 1) & 1);  // the consumers are done with the stage's previous chunk
    mbarArriveExpectTx(&full[s], S::kStageBytes);
    tmaLoad(xTile(s), &p.x, &full[s], (c0 + i) * kChunk, m0);
    tmaLoad(wTile(s), &p.w, &full[s], (c0 + i) * kChunk, n0);
  }
}

template <typename T, int kTile, bool kSplit>
__global__ void __launch_bounds__(Shape<kTile>::kThreads, Shape<kTile>::kCtasPerSm) gemmWgmmaKernel(const __grid_constant__ Args p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using S = Shape<kTile>;
  constexpr bool kTotal = !kSplit && S::kSubN == 1;  // a running total across partitions (see the top)
  extern __shared__ char smemRaw[];
  __shared__ __align__(8) uint64_t full[S::kStages], empty[S::kStages];
  __shared__ int lastCta;
  char* smem = smemRaw + ((kAtomBytes - (smemAddr(smemRaw) & (kAtomBytes - 1))) & (kAtomBytes - 1));
  const int tid = threadIdx.x, wgIdx = tid / 128;
  const int part = kSplit ? blockIdx.x % p.parts : 0;
  const int tile = kSplit ? blockIdx.x / p.parts : blockIdx.x;
  int mTile, nTile;
  tileOf(tile, p.mTiles, p.nTiles, mTile, nTile);
  const int m0 = mTile * S::kBM, n0 = nTile * S::kBN;
  const int c0 = kSplit ? part * p.partChunks : 0, c1 = kSplit ? min(p.chunks, c0 + p.partChunks) : p.chunks;
  if (tid == 0) {
    for (int s = 0; s < S::kStages; ++s) {
      mbarInit(&full[s], 1);
      mbarInit(&empty[s], 4 * S::kConsumers);
    }
    mbarInitFence();
  }
  __syncthreads();

  if (wgIdx == S::kConsumers) {
    setMaxRegsDec<S::kProducerRegs>();
    if (tid == S::kConsumers * 128) produce<S>(p, smem, full, empty, m0, n0, c0, c1);
    else pdlTrigger();  // nothing to load; the producer's thread waits for the previous kernel
    return;
  }
  setMaxRegsInc<S::kConsumerRegs>();
  pdlWait();  // Y, the workspace and the counters may still be in use by the previous kernel
  pdlTrigger();
  const int warp = (tid / 32) % 4, lane = tid % 32;
  const uint64_t desc0 = descriptor(smemAddr(smem));  // + (byte offset >> 4) addresses the rest of the ring

  float acc[S::kSubN][64], total[kTotal ? 64 : 1];
#pragma unroll
  for (int sub = 0; sub < S::kSubN; ++sub)
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[sub][i] = 0.f;  // not read (a partition's first wgmma has scale-d 0): defined
#pragma unroll
  for (int i = 0; i < (kTotal ? 64 : 1); ++i) total[i] = 0.f;
  int partStart = c0, partEnd = min(c1, c0 + p.partChunks);
  bool pending = false;  // the previous chunk's stage, still read by wgmmas in flight
  int pendingStage = 0;
  for (int c = c0; c < c1; ++c) {
    const int i = c - c0, s = i % S::kStages;
    mbarWait(&full[s], (i / S::kStages) & 1);
    const uint32_t x = s * S::kStageBytes, w = x + S::kBM * kRowBytes;
#pragma unroll
    for (int sub = 0; sub < S::kSubN; ++sub) fenceAccumulators(acc[sub]);
    wgmmaFence();
#pragma unroll
    for (int sub = 0; sub < S::kSubN; ++sub)
#pragma unroll
      for (int j = 0; j < kKSteps; ++j)
        wgmma128<T>(acc[sub], desc0 + ((x + aSliceOffset(wgIdx, j)) >> 4), desc0 + ((w + bSliceOffset(sub, j)) >> 4),
                    c != partStart || j != 0);
    wgmmaCommit();
    if (c + 1 != partEnd) {  // one chunk's wgmmas stay in flight; the previous chunk's are done
      wgmmaWait<1>();
#pragma unroll
      for (int sub = 0; sub < S::kSubN; ++sub) fenceAccumulators(acc[sub]);
      if (pending && lane == 0) mbarArrive(&empty[pendingStage]);
      pending = true;
      pendingStage = s;
      continue;
    }
    wgmmaWait<0>();  // a partition's (or the range's) end: all done
#pragma unroll
    for (int sub = 0; sub < S::kSubN; ++sub) fenceAccumulators(acc[sub]);
    if (lane == 0) {
      if (pending) mbarArrive(&empty[pendingStage]);
      mbarArrive(&empty[s]);
    }
    pending = false;
    if constexpr (kTotal) {  // total += the partition's sum; the next one starts from scale-d 0
#pragma unroll
      for (int r = 0; r < 64; ++r) total[r] += acc[0][r];
    }
    partStart = c + 1;
    partEnd = min(c1, partEnd + p.partChunks);
  }
  // Every wgmma is complete here already (a range's last chunk waits for all): this wait only shows ptxas so,
  // which otherwise injects one of its own before the accumulators' first use on the loop's exit (C7517).
  wgmmaWait<0>();
#pragma unroll
  for (int sub = 0; sub < S::kSubN; ++sub) fenceAccumulators(acc[sub]);

  const int rowBase = m0 + wgIdx * kMmaM, colBase = n0;
  if (!kSplit) {
#pragma unroll
    for (int sub = 0; sub < S::kSubN; ++sub)
#pragma unroll
      for (int i = 0; i < 64; i += 2) {
        float v0, v1;
        if constexpr (kTotal) {
          v0 = total[i];
          v1 = total[i + 1];
        } else {  // one partition (the launcher's promise): 0 + p0, as the total and the split's fold add it
          v0 = 0.f + acc[sub][i];
          v1 = 0.f + acc[sub][i + 1];
        }
        store2<T>(p, rowBase + accRow(warp, lane, i), colBase + sub * kMmaN + accCol(lane, i), v0, v1);
      }
    return;
  }

  // Split: this partition's sums to the workspace, then the tile's last CTA adds them up in partition order.
  float* mine = p.partial + (size_t)part * p.m * p.n;
#pragma unroll
  for (int sub = 0; sub < S::kSubN; ++sub)
#pragma unroll
    for (int i = 0; i < 64; i += 2) {
      const int row = rowBase + accRow(warp, lane, i), col = colBase + sub * kMmaN + accCol(lane, i);
      if (row >= p.m) continue;
      float* o = mine + (size_t)row * p.n + col;
      if (p.pairStores && col + 1 < p.n) {
        *reinterpret_cast<float2*>(o) = make_float2(acc[sub][i], acc[sub][i + 1]);
      } else {
        if (col < p.n) o[0] = acc[sub][i];
        if (col + 1 < p.n) o[1] = acc[sub][i + 1];
      }
    }
  constexpr int kConsumerThreads = S::kConsumers * 128;
  __threadfence();  // this CTA's sums are visible device-wide before its arrival is counted
  asm volatile("bar.sync 1, %0;" ::"n"(kConsumerThreads) : "memory");  // the consumers only: the producer has left
  if (tid == 0) lastCta = atomicAdd(p.counters + tile, 1) == p.parts - 1;
  asm volatile("bar.sync 1, %0;" ::"n"(kConsumerThreads) : "memory");
  if (!lastCta) return;
  __threadfence();
  T* Y = static_cast<T*>(p.y);
  const size_t stride = (size_t)p.m * p.n;
  if (p.n % 4 == 0 && reinterpret_cast<uintptr_t>(p.partial) % 16 == 0) {
    // Four consecutive columns a thread (16-byte loads: the workspace, its partitions and rows are 16-byte
    // aligned when n % 4 == 0), two such groups a pass, every load of a pass in flight at once: a tile's fold
    // takes kBM * kBN / (8 * threads) L2 round trips instead of kBM * kBN / threads (64 against 8 for a full
    // 64 x 128 tile). The same adds in the same order as the scalar loop below: the same bits.
    constexpr int kGroups = S::kBM * S::kBN / 4, kPerRow = S::kBN / 4, kUnroll = 2;
    for (int g0 = tid; g0 < kGroups; g0 += kConsumerThreads * kUnroll) {
      float4 sums[kUnroll][kMaxParts];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int g = g0 + u * kConsumerThreads, row = m0 + g / kPerRow, col = n0 + (g % kPerRow) * 4;
        const bool in = g < kGroups && row < p.m && col < p.n;
        const float4* at = reinterpret_cast<const float4*>(p.partial + (size_t)row * p.n + col);
#pragma unroll
        for (int q = 0; q < kMaxParts; ++q)
          sums[u][q] = in && q < p.parts ? __ldcg(at + q * (stride / 4)) : make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int g = g0 + u * kConsumerThreads, row = m0 + g / kPerRow, col = n0 + (g % kPerRow) * 4;
        if (g >= kGroups || row >= p.m || col >= p.n) continue;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int q = 0; q < kMaxParts; ++q)
          if (q < p.parts) {
            v.x += sums[u][q].x;
            v.y += sums[u][q].y;
            v.z += sums[u][q].z;
            v.w += sums[u][q].w;
          }
        store2<T>(p, row, col, v.x, v.y);
        store2<T>(p, row, col + 2, v.z, v.w);
      }
    }
    if (tid == 0) p.counters[tile] = 0;
    return;
  }
  for (int i = tid; i < S::kBM * S::kBN; i += kConsumerThreads) {
    const int row = m0 + i / S::kBN, col = n0 + i % S::kBN;  // consecutive threads: consecutive columns
    if (row >= p.m || col >= p.n) continue;
    const float* at = p.partial + (size_t)row * p.n + col;
    float sums[kMaxParts];  // all loads in flight at once: one L2 round trip, not parts of them
#pragma unroll
    for (int q = 0; q < kMaxParts; ++q) sums[q] = q < p.parts ? __ldcg(at + q * stride) : 0.f;
    float v = 0.f;
#pragma unroll
    for (int q = 0; q < kMaxParts; ++q)
      if (q < p.parts) v += sums[q];
    Y[(size_t)row * p.n + col] = fromF<T>(v);
  }
  if (tid == 0) p.counters[tile] = 0;  // every CTA of the tile has arrived: ready for the next launch
#endif
}

}  // namespace wg
}  // namespace kvsk
