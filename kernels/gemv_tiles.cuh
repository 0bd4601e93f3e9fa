// The work layout the FP8 GEMV (gemv_fp8.cu, version 1) and the int8 GEMV (gemv_int8.cu) share: a tile is 16 rows
// of W8, owned by kWarpsPerTile warps that split K into 64-byte blocks (warp s takes blocks s, s + 4, ...); lane
// (g, t) = (lane / 4, lane % 4) reads 16 bytes at k = 16 t of rows g and g + 8 of each block; a warp's m16n8 C
// fragments of its NT token tiles (8 tokens each) meet the other warps' in shared memory for the tile's sum.
#pragma once
#include "common.cuh"

namespace kvsk {

constexpr int kWarpsPerTile = 4, kTileThreads = kWarpsPerTile * 32;
// 64-byte blocks of both rows in flight per lane: 256 bytes, or 192 with two token tiles (registers: x of
// two tiles, and no spills at 512 threads per CTA).
template <int NT> __host__ __device__ constexpr int unrollFor() { return NT == 1 ? 8 : 6; }
constexpr int kPrefetchRowBytes = 4096;  // of each row, asked of L2 before the programmatic-launch wait

// Thread `it` (0 .. kTileThreads - 1) of a tile asks L2 for its share of the first kPrefetchRowBytes of the tile's
// 16 rows of w [n, k] bytes (rows past n: row n - 1), one 128-byte line in every 8.
__device__ __forceinline__ void prefetchTileRows(const uint8_t* w, int n0, int n, int k, int it) {
  const uint8_t* row = w + (size_t)min(n0 + it % 16, n - 1) * k;
  const int bytes = min(k, kPrefetchRowBytes);
  for (int b = it / 16 * 128; b < bytes; b += 8 * 128) prefetchL2(row + b);
}

// A warp's C fragments into its [row][token] slice of the partial sums: acc[j][0..1] = row g, tokens 8j + 2t, +1;
// acc[j][2..3] = row g + 8, the same tokens.
template <int NT, typename A>
__device__ __forceinline__ void storeFragments(A (&partial)[16][8 * NT], const A (&acc)[NT][4], int g, int t) {
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) partial[g + 8 * (i / 2)][8 * j + 2 * t + i % 2] = acc[j][i];
}

}  // namespace kvsk
