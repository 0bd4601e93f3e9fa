// The batch-invariant bf16/f16 GEMM's kernel (gemm_inv.cu launches it): Y[M, N] = X[M, K] W[N, K]^T with a
// float32 sum whose every operation is fixed by (K, partChunks) alone, so a row of Y has the same bits whatever
// M is, wherever the row falls in a tile and whichever tile shape or split computes it.
//
// The reduction of one element y[m, n] (the contract every variant keeps; kvserve_kernels.h states it too):
// - K is cut into chunks of 64 (the last one zero-padded) and the chunks into k-partitions of partChunks
//   consecutive chunks (the last one shorter).
// - A partition's sum is one chain of mma.sync m16n8k16 with float32 accumulators, starting from zero, over
//   its chunks in order, four mmas per chunk in order: mma i takes the chunk's elements 16 i .. 16 i + 15 in
//   their natural order as its k (the order wgmma, too, reads a k16 block from shared memory in).
// - The partition sums are added to a float32 zero in partition order (0 + p0 + p1 + ...), and the result
//   rounded to the dtype (round to nearest even).
// The tensor core computes an element of D from its row of A, its column of B and its C alone, so the rows
// that share a tile (other tokens, or the zeros that pad a tile past M) never touch the bits of a row; the
// kernel tests (test/gpu/native/gemm_inv_test.cu) check that bitwise for every variant.
//
// A CTA computes a kBM x kBN tile of Y over the chunks [c0, c1) of K, through a kStages-deep cp.async
// pipeline of one chunk per stage: stage = kBM rows of X then kBN rows of W, each row 64 elements (128 bytes)
// at a pitch of 144 bytes, so that the 8 rows an ldmatrix phase reads (16 bytes each, one column) fall in
// distinct banks. Warps are laid out kWarpsM x kWarpsN; a warp owns kMt m16 tiles x kNt n8 tiles (kNt even:
// one ldmatrix.x4 gives the B fragments of two). Two ways to cover K, chosen by the launcher for speed only:
// - sequential (kSplit = false): the CTA walks all chunks; at each partition's end it adds the partition's
//   sum (acc) to its running total and restarts acc from zero;
// - split (kSplit = true): the CTA computes one partition (grid = tiles x partitions), writes its sum as
//   float32 to the workspace [partitions, M, N], and the last of the tile's CTAs to finish (a per-tile
//   counter, reset to zero by that CTA) adds the partitions in order and writes Y.
// Programmatic dependent launch: the first kStages - 1 stages of W (immutable) are requested before the
// wait; X, the workspace and the counters are touched only after it.
#pragma once
#include "common.cuh"
#include "mma.cuh"

namespace kvsk {
namespace inv {

constexpr int kChunk = 64;          // k elements per chunk (one pipeline stage)
constexpr int kRowBytes = 144;      // shared-memory pitch of a 64-element row: 128 bytes + 16 of padding
constexpr int kMaxCounters = 16384; // split mode: per-tile counters at the workspace's start
constexpr size_t kCounterBytes = kMaxCounters * sizeof(int);
constexpr int kMaxParts = 16;       // split mode: the fold loads every partition's sum before adding

// The k-partitions that `splits` makes of K (the contract above; host side, shared by gemm_inv.cu and gemv_inv.cu):
// every partition non-empty, so the same partChunks gives the same count.
inline int ceilDiv(int a, int b) { return (a + b - 1) / b; }
inline int chunksOf(int k) { return ceilDiv(k, kChunk); }
inline int partChunksOf(int k, int splits) {
  const int c = chunksOf(k);
  return ceilDiv(c, splits < 1 ? 1 : splits > c ? c : splits);
}
inline int partsOf(int k, int splits) { return ceilDiv(chunksOf(k), partChunksOf(k, splits)); }

struct Args {
  const void* x;    // [m, k]
  const void* w;    // [n, k]
  void* y;          // [m, n]
  int m, n, k;
  int chunks;       // ceil(k / 64)
  int partChunks;   // chunks per k-partition
  int parts;        // ceil(chunks / partChunks)
  bool pairStores;  // n even and y 4-byte aligned: two outputs per 32-bit store
  int mTiles, nTiles;
  int* counters;    // split: [mTiles * nTiles], zeros between launches
  float* partial;   // split: [parts, m, n]
};

// A tile shape: kWarpsM x kWarpsN warps, each kMt x kNt mma tiles (16 x 8 each), kStages chunks in flight.
// kMinBlocks is the CTAs per SM the register and shared-memory budget leaves room for (__launch_bounds__);
// kPrefetch the chunks of W after the pipeline's first ones that are asked of L2 before the wait.
template <int WarpsM, int WarpsN, int Mt, int Nt, int Stages, int MinBlocks, int Prefetch>
struct TileShape {
  static constexpr int kWarpsM = WarpsM, kWarpsN = WarpsN, kMt = Mt, kNt = Nt, kStages = Stages, kMinBlocks = MinBlocks;
  static constexpr int kPrefetch = Prefetch;
  static constexpr int kThreads = WarpsM * WarpsN * 32;
  static constexpr int kBM = WarpsM * Mt * 16, kBN = WarpsN * Nt * 8;
  static constexpr int kStageBytes = (kBM + kBN) * kRowBytes;
  static constexpr int kSmemBytes = Stages * kStageBytes;
};

// Chunk c of rows [r0, r0 + kRows) of a row-major [rows, k] matrix into a stage (kRows x kRowBytes), with
// cp.async: 8 threads per row, 16 bytes each. Rows >= rows and elements >= k become zeros (k % 8 == 0, so a
// 16-byte piece is wholly inside or wholly outside).
template <int kRows, int kThreads, typename T>
__device__ __forceinline__ void loadChunk(char* dst, const T* src, int r0, int rows, int k, int c, int tid) {
  constexpr int kPieces = kRows * 8;
#pragma unroll
  for (int i = 0; i < (kPieces + kThreads - 1) / kThreads; ++i) {
    const int idx = tid + i * kThreads;
    if (kPieces % kThreads != 0 && idx >= kPieces) break;
    const int r = idx >> 3, q = idx & 7;
    const int row = r0 + r, col = c * kChunk + q * 8;
    const bool in = row < rows && col < k;
    cpAsync16(dst + r * kRowBytes + q * 16, in ? src + (size_t)row * k + col : src, in ? 16 : 0);
  }
}

// acc[mt][nt] += the warp's A rows (a: its first row in the stage) times its W rows (b) over one chunk: the
// four mmas of the contract in order, fragments by ldmatrix (mma.cuh): for A, lane l points at row l % 16,
// element 16 i + 8 (l / 16); for B (W rows are B's columns), at row (l % 8) + 8 (l / 16) of an n8 pair,
// element 16 i + 8 ((l / 8) % 2), which gives b[0], b[1] of both n8 tiles.
template <typename T, int kMt, int kNt>
__device__ __forceinline__ void mmaChunk(float (&acc)[kMt][kNt][4], const char* a, const char* b, int lane) {
  static_assert(kNt % 2 == 0, "B fragments come in n8 pairs");
  const char* aLane = a + (lane & 15) * kRowBytes + (lane >> 4) * 16;
  const char* bLane = b + ((lane & 7) + 8 * (lane >> 4)) * kRowBytes + ((lane >> 3) & 1) * 16;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    uint32_t af[kMt][4], bf[kNt / 2][4];
#pragma unroll
    for (int mt = 0; mt < kMt; ++mt) ldmatrixX4(af[mt], aLane + mt * 16 * kRowBytes + i * 32);
#pragma unroll
    for (int np = 0; np < kNt / 2; ++np) ldmatrixX4(bf[np], bLane + np * 16 * kRowBytes + i * 32);
#pragma unroll
    for (int mt = 0; mt < kMt; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNt; ++nt)
        mma16816<T>(acc[mt][nt], af[mt], bf[nt / 2][2 * (nt % 2)], bf[nt / 2][2 * (nt % 2) + 1]);
  }
}

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

// The tile of linear index id, in groups of 8 m-tiles (consecutive CTAs share W tiles: L2 reuse at large M).
__device__ __forceinline__ void tileOf(int id, const Args& p, int& mTile, int& nTile) {
  constexpr int kGroup = 8;
  const int perGroup = kGroup * p.nTiles;
  const int first = id / perGroup * kGroup, rows = min(p.mTiles - first, kGroup);
  mTile = first + id % perGroup % rows;
  nTile = id % perGroup / rows;
}

template <typename T, typename S, bool kSplit>
__global__ void __launch_bounds__(S::kThreads, S::kMinBlocks) gemmInvKernel(const Args p) {
  extern __shared__ __align__(16) char smem[];
  __shared__ int lastCta;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int wm = warp / S::kWarpsN, wn = warp % S::kWarpsN;
  const int part = kSplit ? blockIdx.x % p.parts : 0;
  const int tile = kSplit ? blockIdx.x / p.parts : blockIdx.x;
  int mTile, nTile;
  tileOf(tile, p, mTile, nTile);
  const int m0 = mTile * S::kBM, n0 = nTile * S::kBN;
  const int c0 = kSplit ? part * p.partChunks : 0, c1 = kSplit ? min(p.chunks, c0 + p.partChunks) : p.chunks;
  const T* X = static_cast<const T*>(p.x);
  const T* W = static_cast<const T*>(p.w);
  auto stage = [&](int chunk) { return smem + (chunk - c0) % S::kStages * S::kStageBytes; };

  // Groups committed: W of stages 0 .. kStages-2, then X of the same stages, then one (W and X) per chunk
  // issued in the loop. Chunk c's newest group is then always the (kStages - 1)-th newest at its turn.
  for (int c = c0; c < c0 + S::kStages - 1; ++c) {
    if (c < c1) loadChunk<S::kBN, S::kThreads>(stage(c) + S::kBM * kRowBytes, W, n0, p.n, p.k, c, tid);
    cpAsyncCommit();
  }
  // The next chunks of W (immutable) asked of L2 too: the weight stream flows while the previous kernel drains.
  if constexpr (S::kPrefetch > 0)
    for (int i = tid; i < S::kPrefetch * S::kBN; i += S::kThreads) {
      const int row = n0 + i % S::kBN, c = c0 + S::kStages - 1 + i / S::kBN;
      if (row < p.n && c < c1) prefetchL2(W + (size_t)row * p.k + c * kChunk);
    }
  pdlWait();
  pdlTrigger();
  for (int c = c0; c < c0 + S::kStages - 1; ++c) {
    if (c < c1) loadChunk<S::kBM, S::kThreads>(stage(c), X, m0, p.m, p.k, c, tid);
    cpAsyncCommit();
  }

  float acc[S::kMt][S::kNt][4], total[S::kMt][S::kNt][4];
#pragma unroll
  for (int mt = 0; mt < S::kMt; ++mt)
#pragma unroll
    for (int nt = 0; nt < S::kNt; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = total[mt][nt][i] = 0.f;
  int partEnd = min(c1, c0 + p.partChunks);
  for (int c = c0; c < c1; ++c) {
    cpAsyncWait<S::kStages - 2>();
    __syncthreads();  // chunk c is in, and every warp is done with the stage the next load overwrites
    const int next = c + S::kStages - 1;
    if (next < c1) {
      char* st = stage(next);
      loadChunk<S::kBM, S::kThreads>(st, X, m0, p.m, p.k, next, tid);
      loadChunk<S::kBN, S::kThreads>(st + S::kBM * kRowBytes, W, n0, p.n, p.k, next, tid);
    }
    cpAsyncCommit();
    const char* st = stage(c);
    mmaChunk<T, S::kMt, S::kNt>(acc, st + wm * S::kMt * 16 * kRowBytes, st + (S::kBM + wn * S::kNt * 8) * kRowBytes, lane);
    if (!kSplit && c + 1 == partEnd) {  // a partition's end: total += its sum, the next one starts from zero
#pragma unroll
      for (int mt = 0; mt < S::kMt; ++mt)
#pragma unroll
        for (int nt = 0; nt < S::kNt; ++nt)
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            total[mt][nt][i] += acc[mt][nt][i];
            acc[mt][nt][i] = 0.f;
          }
      partEnd = min(c1, partEnd + p.partChunks);
    }
  }
  cpAsyncWait<0>();

  // C fragment: [0], [1] = row g, columns 2t, 2t + 1 of the mma tile; [2], [3] = row g + 8.
  const int rowBase = m0 + wm * S::kMt * 16 + g, colBase = n0 + wn * S::kNt * 8 + 2 * t;
  if (!kSplit) {
#pragma unroll
    for (int mt = 0; mt < S::kMt; ++mt)
#pragma unroll
      for (int nt = 0; nt < S::kNt; ++nt)
#pragma unroll
        for (int r = 0; r < 2; ++r)
          store2<T>(p, rowBase + mt * 16 + 8 * r, colBase + nt * 8, total[mt][nt][2 * r], total[mt][nt][2 * r + 1]);
    return;
  }

  // Split: this partition's sums to the workspace, then the tile's last CTA adds them up in partition order.
  float* mine = p.partial + (size_t)part * p.m * p.n;
#pragma unroll
  for (int mt = 0; mt < S::kMt; ++mt)
#pragma unroll
    for (int nt = 0; nt < S::kNt; ++nt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = rowBase + mt * 16 + 8 * r, col = colBase + nt * 8;
        if (row >= p.m) continue;
        float* o = mine + (size_t)row * p.n + col;
        if (p.pairStores && col + 1 < p.n) {
          *reinterpret_cast<float2*>(o) = make_float2(acc[mt][nt][2 * r], acc[mt][nt][2 * r + 1]);
        } else {
          if (col < p.n) o[0] = acc[mt][nt][2 * r];
          if (col + 1 < p.n) o[1] = acc[mt][nt][2 * r + 1];
        }
      }
  __threadfence();  // this CTA's sums are visible device-wide before its arrival is counted
  __syncthreads();
  if (tid == 0) lastCta = atomicAdd(p.counters + tile, 1) == p.parts - 1;
  __syncthreads();
  if (!lastCta) return;
  __threadfence();
  T* Y = static_cast<T*>(p.y);
  for (int i = tid; i < S::kBM * S::kBN; i += S::kThreads) {
    const int row = m0 + i / S::kBN, col = n0 + i % S::kBN;  // consecutive threads: consecutive columns
    if (row >= p.m || col >= p.n) continue;
    const float* at = p.partial + (size_t)row * p.n + col;
    const size_t stride = (size_t)p.m * p.n;
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
}

}  // namespace inv
}  // namespace kvsk
