// The batch-invariant GEMM on Hopper's warpgroup MMA (gemm_wgmma.cuh, gemm_wgmma.cu): the arithmetic its kernel,
// its launcher and a CPU test share. Plain C++ without CUDA headers, so that test/native/gemm-wgmma-layout.test.ts
// compiles it (test/native/gemm_wgmma_layout_cases.cc) and checks it against the PTX ISA's definitions, written
// out there on their own; nvcc compiles the same functions for the device.
//
// Shared memory. An operand tile holds R rows (of X or W) of one 64-element chunk of K: R rows of 128 bytes, as
// the tensor memory accelerator writes a box {64, R} with CU_TENSOR_MAP_SWIZZLE_128B into a 1024-byte aligned
// destination: byte b (0..127) of row r lands at r * 128 + (b ^ 16 (r % 8)), the row's eight 16-byte pieces
// permuted by the row's place in its group of 8 (the pattern repeats every 1024 bytes).
// wgmma reads a K-major operand through a 64-bit matrix descriptor (PTX ISA, "Matrix Descriptor Format"):
//   bits  0-13  start address >> 4 (shared window; the low 4 bits must be 0)
//   bits 16-29  leading-dimension byte offset >> 4: unused by K-major swizzled layouts ("assumed 1"): 1
//   bits 32-45  stride-dimension byte offset >> 4: from one group of 8 rows to the next, 1024 bytes here
//   bits 49-51  base offset: 0, every tile starts on a 1024-byte boundary (the pattern's start)
//   bits 62-63  swizzle mode: 1 = 128-byte swizzle
// The K-major 128B canonical layout, Swizzle<3,4,3> o ((8,m),(T,2k)):((8T,SBO),(1,T)) with T = 8 16-bit
// elements, puts element (r, c) of a 64 x 16 (A) or 16 x N (B, r = its column n) slice at start + (r % 8) 128 +
// (r / 8) SBO + 2 c and XORs the address's bits 4-6 with its bits 7-9. With the start 32 j bytes past a 1024-
// aligned tile (k16 step j of the chunk) that is the very byte TMA wrote for element 16 j + c of row r.
//
// Accumulators (PTX ISA, "Matrix Fragments for wgmma.mma_async.m64nNk16", D in float32): thread l of warp w of
// the warpgroup holds d[i], i < N / 2, at row 16 w + l / 4 + 8 ((i / 2) % 2), column 8 (i / 4) + 2 (l % 4) + i % 2.
#pragma once
#include <stddef.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define KVSK_WG_HD __host__ __device__
#else
#define KVSK_WG_HD
#endif

namespace kvsk {
namespace wg {

constexpr int kChunk = 64;                 // k elements per chunk: one pipeline stage
constexpr int kRowBytes = 128;             // one operand row of a chunk (16-bit elements)
constexpr int kAtomBytes = 1024;           // the 128-byte swizzle's repeat: 8 rows
constexpr int kMmaM = 64, kMmaN = 128, kMmaK = 16;  // every product is wgmma.m64n128k16
constexpr int kKSteps = kChunk / kMmaK;    // 4 wgmmas per chunk and n128 block, in k order
constexpr int kMaxCounters = 16384;        // split mode: per-tile counters at the workspace's start
constexpr size_t kCounterBytes = kMaxCounters * sizeof(int);
constexpr int kMaxParts = 16;              // split mode: the fold loads every partition's sum before adding

// The descriptor of a K-major, 128-byte swizzled operand starting at shared address `smemAddr`.
KVSK_WG_HD constexpr uint64_t descriptor(uint32_t smemAddr) {
  return (uint64_t)((smemAddr & 0x3FFFFu) >> 4) | (uint64_t)1 << 16 | (uint64_t)(kAtomBytes >> 4) << 32 |
         (uint64_t)1 << 62;
}

// Where TMA puts byte b (0..127) of row r of a tile (bytes from the tile's 1024-aligned start).
KVSK_WG_HD constexpr uint32_t swizzledByte(int r, int b) { return (uint32_t)(r * kRowBytes + (b ^ ((r & 7) << 4))); }

// Start of k16 step j of the A slice of consumer warpgroup `wg` (its 64 rows of X), from the X tile's start.
KVSK_WG_HD constexpr uint32_t aSliceOffset(int wg, int j) { return (uint32_t)(wg * kMmaM * kRowBytes + j * kMmaK * 2); }
// Start of k16 step j of n128 block `sub` of the W tile (its rows are B's columns), from the W tile's start.
KVSK_WG_HD constexpr uint32_t bSliceOffset(int sub, int j) { return (uint32_t)(sub * kMmaN * kRowBytes + j * kMmaK * 2); }

// Row and column (within the warpgroup's 64 x 128 block) of accumulator i of lane `lane` of warp `warp`.
KVSK_WG_HD constexpr int accRow(int warp, int lane, int i) { return 16 * warp + lane / 4 + 8 * ((i / 2) % 2); }
KVSK_WG_HD constexpr int accCol(int lane, int i) { return 8 * (i / 4) + 2 * (lane % 4) + i % 2; }

// Tile shapes (the values of kvsk_gemm_wgmma_tile). A CTA is `consumers` warpgroups of MMA, each 64 rows of X by
// 128 * subN columns (subN wgmma blocks side by side), plus one producer warpgroup whose one thread issues the
// TMA loads; stages chunks in flight (X tile then W tile per stage).
constexpr int kTile64x128 = 1, kTile128x128 = 2, kTile128x256 = 3;
struct Geometry {
  int consumers, subN, stages, ctasPerSm;
  int prefetch;  // chunks of W after the first stages asked of L2 before the programmatic-launch wait
  KVSK_WG_HD constexpr int bm() const { return kMmaM * consumers; }
  KVSK_WG_HD constexpr int bn() const { return kMmaN * subN; }
  KVSK_WG_HD constexpr int threads() const { return (consumers + 1) * 128; }
  KVSK_WG_HD constexpr int stageBytes() const { return (bm() + bn()) * kRowBytes; }
  // Dynamic shared memory: the stages, plus the slack that aligns their start to 1024 bytes.
  KVSK_WG_HD constexpr int smemBytes() const { return stages * stageBytes() + kAtomBytes; }
  // Registers per thread: what the launch bounds (threads, ctasPerSm) give every thread at entry (65536 per SM, in
  // steps of 8), then setmaxnreg: the producer warpgroup keeps kProducerRegs, the consumers share the rest.
  KVSK_WG_HD constexpr int entryRegs() const { return 65536 / (threads() * ctasPerSm) / 8 * 8; }
  KVSK_WG_HD constexpr int consumerRegs() const {
    return (entryRegs() * threads() - 128 * kProducerRegs) / (128 * consumers) / 8 * 8;
  }
  static constexpr int kProducerRegs = 40;
};
// 64 x 128: 4 stages of 24 KB, 2 CTAs per SM (small M: memory bound, W streamed once per 64 rows). 128 x 128:
// 6 stages of 32 KB. 128 x 256: 4 stages of 48 KB; it keeps no running total across k-partitions (128
// accumulators per thread already), so it runs only where a CTA computes one partition.
KVSK_WG_HD constexpr Geometry geometry(int tile) {
  return tile == kTile64x128    ? Geometry{1, 1, 4, 2, 4}
         : tile == kTile128x128 ? Geometry{2, 1, 6, 1, 0}
                                : Geometry{2, 2, 4, 1, 0};
}

// The k-reduction of a weight [n, k]: K in chunks of 64 (the last zero-padded), the chunks in parts k-partitions
// of partChunks consecutive chunks (the last one shorter). `splits` asks for a count; the partitions it makes
// are all non-empty, so two splits with the same partChunks are the same reduction.
inline int ceilDiv(int a, int b) { return (a + b - 1) / b; }
inline int chunksOf(int k) { return ceilDiv(k, kChunk); }
inline int partChunksOf(int k, int splits) {
  const int c = chunksOf(k), s = splits < 1 ? 1 : splits > c ? c : splits;
  return ceilDiv(c, s);
}
inline int partsOf(int k, int splits) { return ceilDiv(chunksOf(k), partChunksOf(k, splits)); }

// Enough partitions that the 64 x 128 tiles of the weight, one CTA per (tile, partition), come close to one full
// wave of resident CTAs at M = 1 without passing it; partitions of at least 4 chunks, at most kMaxParts.
inline int splitsFor(int n, int k, int numSms) {
  const int tiles = ceilDiv(n < 1 ? 1 : n, geometry(kTile64x128).bn());
  const int slots = geometry(kTile64x128).ctasPerSm * (numSms < 1 ? 1 : numSms);
  int wanted = slots / tiles;
  const int byChunks = chunksOf(k < 1 ? 1 : k) / 4;
  if (wanted > byChunks) wanted = byChunks;
  if (wanted > kMaxParts) wanted = kMaxParts;
  return partsOf(k < 1 ? 1 : k, wanted < 1 ? 1 : wanted);
}

// The tile by M, from forced-tile timings on an H200 (kvserve_kernel_bench wgmma, GPU runs 12 and 14). A weight
// of several partitions (its tiles walk them with a running total) takes 64 x 128 up to M = 256 (qkv at M = 64:
// 31 against 53 us split; at M = 128: 31.8 us, every other tile and split slower; down at M = 256: 81 against
// 99 us on 128 x 128 split) and 128 x 128 beyond, except that a long K (down_proj, K >= 8192) between M = 65
// and 128 splits on 128 x 256 (down at M = 128: 64.5 us against 80.6 on 64 x 128 and 71.7 on 128 x 128 split);
// a weight of one partition takes 64 x 128 up to M = 64 (one wgmma's rows: a smaller M pads to 64 rows, which
// memory-bound small M does not feel) and 128 x 256 beyond (gate/up at M = 128: 73.4 us, at M = 256: 110.6
// against 157.6 on 64 x 128; lm_head at M = 128: 308.6 us).
inline int autoTile(int m, int k, int parts) {
  if (parts > 1) return m > 64 && m <= 128 && k >= 8192 ? kTile128x256 : m <= 256 ? kTile64x128 : kTile128x128;
  return m <= 64 ? kTile64x128 : kTile128x256;
}

inline int tilesOf(int tile, int m, int n) { return ceilDiv(m, geometry(tile).bm()) * ceilDiv(n, geometry(tile).bn()); }
inline size_t splitBytes(int m, int n, int parts) { return kCounterBytes + sizeof(float) * (size_t)parts * (size_t)m * n; }

// Whether the automatic choice splits at this tile (the workspace aside): M at most 16, or at most 128 where K is
// at least 8192 (down_proj: 51 against 80 us at M = 64, 64.5 against 80.6 at M = 128 on 128 x 256, where qkv
// and o lose, 53 against 31 and 51 against 30 us at M = 64: their partitions of 8 chunks cannot fill a CTA's
// pipeline, and the partition sums cost parts x M x N x 8 bytes), and the tiles alone filling at most half a
// wave of resident CTAs (between half and one wave, a split's partition sums cost about what it wins).
inline bool splitWanted(int tile, int m, int n, int k, int parts, int numSms) {
  const int tiles = tilesOf(tile, m, n);
  return parts > 1 && parts <= kMaxParts && (m <= 16 || (m <= 128 && k >= 8192)) &&
         2 * tiles <= geometry(tile).ctasPerSm * (numSms < 1 ? 1 : numSms) && tiles <= kMaxCounters;
}

// What runs for a call (kvsk_gemm_wgmma_choose): tile 0 = autoTile; split -1 = splitWanted, 0 = never, 1 = where it
// can (more than one partition, at most kMaxParts, a workspace of splitBytes, at most kMaxCounters tiles). A
// 128 x 256 tile that would have to walk several partitions becomes 128 x 128 (the automatic one up to M = 256:
// 64 x 128, the tile it beat). None of it changes a bit.
struct Choice {
  int tile, split;
};
inline Choice choose(int m, int n, int k, int splits, int tile, int split, bool haveWorkspace, size_t workspaceBytes,
                     int numSms) {
  const int parts = partsOf(k, splits);
  Choice c{tile != 0 ? tile : autoTile(m, k, parts), 0};
  const bool fits = haveWorkspace && workspaceBytes >= splitBytes(m, n, parts) && tilesOf(c.tile, m, n) <= kMaxCounters &&
                    parts <= kMaxParts;
  const bool wanted = split < 0 ? splitWanted(c.tile, m, n, k, parts, numSms) : split > 0;
  c.split = parts > 1 && fits && wanted;
  if (c.tile == kTile128x256 && parts > 1 && !c.split) c.tile = tile == 0 && m <= 256 ? kTile64x128 : kTile128x128;
  return c;
}

// The workspace the automatic choices use at some M in [1, maxM]: the largest (0 when they never split).
inline size_t workspaceBytes(int maxM, int n, int k, int splits, int numSms) {
  size_t bytes = 0;
  const int parts = partsOf(k < 1 ? 1 : k, splits);
  for (int m = 1; m <= maxM; ++m) {
    const Choice c = choose(m, n, k, splits, 0, -1, true, (size_t)-1, numSms);
    if (c.split && splitBytes(m, n, parts) > bytes) bytes = splitBytes(m, n, parts);
  }
  return bytes;
}

// The CTA's tile for linear index id, in groups of 8 m-tiles: consecutive CTAs share a W tile (L2 reuse at large M).
KVSK_WG_HD inline void tileOf(int id, int mTiles, int nTiles, int& mTile, int& nTile) {
  constexpr int kGroup = 8;
  const int perGroup = kGroup * nTiles;
  const int first = id / perGroup * kGroup, rows = mTiles - first < kGroup ? mTiles - first : kGroup;
  mTile = first + id % perGroup % rows;
  nTile = id % perGroup / rows;
}

}  // namespace wg
}  // namespace kvsk
