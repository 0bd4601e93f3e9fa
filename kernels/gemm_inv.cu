// The batch-invariant bf16/f16 GEMM (kernel and its fixed reduction: gemm_inv.cuh): the three tile shapes, the
// k-partitions of a weight, and the choice of tile and split by M. None of these choices changes a bit.
//
// Tile shapes (registers per thread: accumulators kMt * kNt * 4, in sequential mode as many again for the
// running total, and the fragments of one k16 step (kMt * 4 + kNt * 2); shared memory kStages * (kBM + kBN) *
// 144 bytes). ptxas, sm_90: 62-64 / 164 (split) / 226-228 (sequential) registers, no spills.
// - 16 x 64: 4 warps side by side along N, each 16 rows of W (2 n8 tiles); 4 stages = 45 KB, <= 128
//   registers, 4 CTAs per SM. Small M (<= 16): each weight byte is read once (per 16 rows of X), memory
//   bound; 3 chunks (24 KB of W) in flight per CTA, 96 KB per SM, and 8 more chunks asked of L2 before the
//   programmatic-launch wait. The k-partitions give it its CTAs: a Llama-3-8B o_proj (N 4096, 64 tiles)
//   splits K = 4096 in 8 partitions of 512 for 512 CTAs, about one wave of 4 per SM, all resident at once
//   (equal work each, so they finish together).
// - 64 x 128: 2 x 2 warps of 32 x 64 (2 x 8 mma tiles): 64 accumulators + 64 total + 32 fragment registers;
//   4 stages = 108 KB, 2 CTAs per SM. M up to 128.
// - 128 x 128: 2 x 4 warps of 64 x 32 (4 x 4 mma tiles): 64 + 64 + 24 registers (<= 255 at one CTA of 256
//   threads per SM); 4 stages = 144 KB. Large M, compute bound: 6 ldmatrix.x4 feed 16 mmas per k16 step.
//   mma.sync runs at about half of Hopper's wgmma rate, which caps this tile well below cuBLASLt at large M.
// Split (a CTA per partition, sums meeting in the workspace) where the tiles alone are at most half a wave.
#include <algorithm>

#include "gemm_inv.cuh"

namespace kvsk {

namespace {

using inv::TileShape;
using Tile16x64 = TileShape<1, 4, 1, 2, 4, 4, 8>;  // + 8 chunks (64 KB) of W asked of L2 before the wait
using Tile64x128 = TileShape<2, 2, 2, 8, 4, 2, 0>;
using Tile128x128 = TileShape<2, 4, 4, 4, 4, 1, 0>;

using inv::ceilDiv;
using inv::chunksOf;
using inv::partChunksOf;
using inv::partsOf;

struct Geometry {
  int bm, bn, ctasPerSm;
};
Geometry geometry(kvsk_gemm_inv_tile t) {
  switch (t) {
    case KVSK_GEMM_INV_TILE_16x64: return {Tile16x64::kBM, Tile16x64::kBN, Tile16x64::kMinBlocks};
    case KVSK_GEMM_INV_TILE_64x128: return {Tile64x128::kBM, Tile64x128::kBN, Tile64x128::kMinBlocks};
    default: return {Tile128x128::kBM, Tile128x128::kBN, Tile128x128::kMinBlocks};
  }
}

kvsk_gemm_inv_tile tileFor(int m) {
  return m <= 16 ? KVSK_GEMM_INV_TILE_16x64 : m <= 128 ? KVSK_GEMM_INV_TILE_64x128 : KVSK_GEMM_INV_TILE_128x128;
}

size_t splitBytes(int m, int n, int parts) { return inv::kCounterBytes + sizeof(float) * parts * (size_t)m * n; }

// Whether the automatic choice splits at this tile shape (the workspace aside): the tiles alone fill at most
// half a wave of resident CTAs (between half and one wave, a split's partition sums cost about what it wins).
bool splitWanted(kvsk_gemm_inv_tile t, int m, int n, int parts, int numSms) {
  const Geometry g = geometry(t);
  const int tiles = ceilDiv(m, g.bm) * ceilDiv(n, g.bn);
  return parts > 1 && parts <= inv::kMaxParts && 2 * tiles <= g.ctasPerSm * std::max(1, numSms) && tiles <= inv::kMaxCounters;
}

template <typename T, typename S, bool kSplit>
cudaError_t launchShape(const inv::Args& a, cudaStream_t stream) {
  auto kernel = inv::gemmInvKernel<T, S, kSplit>;
  if (S::kSmemBytes > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::kSmemBytes);
    if (e != cudaSuccess) return e;
  }
  const int tiles = a.mTiles * a.nTiles;
  return launch(kernel, dim3(kSplit ? tiles * a.parts : tiles), S::kThreads, S::kSmemBytes, stream, a);
}

template <typename T, typename S>
cudaError_t launchTile(inv::Args a, bool split, cudaStream_t stream) {
  a.mTiles = ceilDiv(a.m, S::kBM);
  a.nTiles = ceilDiv(a.n, S::kBN);
  return split ? launchShape<T, S, true>(a, stream) : launchShape<T, S, false>(a, stream);
}

template <typename T>
cudaError_t launchGemmInv(const inv::Args& a, kvsk_gemm_inv_choice c, cudaStream_t stream) {
  switch (c.tile) {
    case KVSK_GEMM_INV_TILE_16x64: return launchTile<T, Tile16x64>(a, c.split != 0, stream);
    case KVSK_GEMM_INV_TILE_64x128: return launchTile<T, Tile64x128>(a, c.split != 0, stream);
    case KVSK_GEMM_INV_TILE_128x128: return launchTile<T, Tile128x128>(a, c.split != 0, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

}  // namespace kvsk

extern "C" int kvsk_gemm_inv_supported(int n, int k, kvsk_dtype dtype) {
  return (dtype == KVSK_BF16 || dtype == KVSK_F16) && n >= 1 && k >= 8 && k % 8 == 0;
}

// Enough partitions that the 16 x 64 tiles of the weight, one CTA per (tile, partition), come close to one
// full wave of resident CTAs at M = 1 without passing it; partitions of at least 4 chunks, at most 16 of them.
extern "C" int kvsk_gemm_inv_splits(int n, int k, int numSms) {
  using namespace kvsk;
  const int tiles = ceilDiv(std::max(n, 1), Tile16x64::kBN), slots = Tile16x64::kMinBlocks * std::max(numSms, 1);
  const int wanted = std::min({std::max(1, slots / tiles), std::max(1, chunksOf(std::max(k, 1)) / 4), 16});
  return partsOf(std::max(k, 1), wanted);
}

extern "C" kvsk_gemm_inv_choice kvsk_gemm_inv_choose(const kvsk_gemm_inv_params* p) {
  using namespace kvsk;
  kvsk_gemm_inv_choice c{p->tile == KVSK_GEMM_INV_TILE_AUTO ? tileFor(p->m) : p->tile, 0};
  const int parts = partsOf(p->k, p->splits);
  const Geometry g = geometry(c.tile);
  const bool fits = p->workspace && p->workspaceBytes >= splitBytes(p->m, p->n, parts) &&
                    ceilDiv(p->m, g.bm) * ceilDiv(p->n, g.bn) <= inv::kMaxCounters && parts <= inv::kMaxParts;
  const bool wanted = p->split < 0 ? splitWanted(c.tile, p->m, p->n, parts, p->numSms) : p->split > 0;
  c.split = parts > 1 && fits && wanted;
  return c;
}

extern "C" size_t kvsk_gemm_inv_workspace_bytes(int maxM, int n, int k, int splits, int numSms) {
  using namespace kvsk;
  const int parts = partsOf(std::max(k, 1), splits);
  size_t bytes = 0;
  for (int m = 1; m <= maxM; ++m)
    if (splitWanted(tileFor(m), m, n, parts, numSms)) bytes = std::max(bytes, splitBytes(m, n, parts));
  return bytes;
}

extern "C" cudaError_t kvsk_gemm_inv(const kvsk_gemm_inv_params* p, cudaStream_t stream) {
  using namespace kvsk;
  if (!kvsk_gemm_inv_supported(p->n, p->k, p->dtype) || p->m < 1 || p->splits < 1) return cudaErrorNotSupported;
  if ((reinterpret_cast<uintptr_t>(p->x) | reinterpret_cast<uintptr_t>(p->w)) % 16 != 0) return cudaErrorInvalidValue;
  const kvsk_gemm_inv_choice c = kvsk_gemm_inv_choose(p);
  inv::Args a{};
  a.x = p->x;
  a.w = p->w;
  a.y = p->y;
  a.m = p->m;
  a.n = p->n;
  a.k = p->k;
  a.chunks = chunksOf(p->k);
  a.partChunks = partChunksOf(p->k, p->splits);
  a.parts = partsOf(p->k, p->splits);
  a.pairStores = p->n % 2 == 0 && reinterpret_cast<uintptr_t>(p->y) % 4 == 0;
  if (c.split) {
    a.counters = static_cast<int*>(p->workspace);
    a.partial = reinterpret_cast<float*>(static_cast<char*>(p->workspace) + inv::kCounterBytes);
  }
  if (p->dtype == KVSK_BF16) return launchGemmInv<__nv_bfloat16>(a, c, stream);
  return launchGemmInv<__half>(a, c, stream);
}
