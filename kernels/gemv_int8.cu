// Skinny int8 GEMM for decode: y[M, N] = dequant(xq[M, K] W8[N, K]^T), M <= 16, on activations already
// quantized per token (kvsk_quantize_rows_int8). Memory bound: W8 is read once, streamed past L1 so that xq
// stays in L1; the integer tensor cores (mma.sync m16n8k32, s8 x s8 -> s32) take the raw bytes of both sides,
// so there is no per-weight conversion at all and M up to 16 costs about what M = 1 costs.
//
// Work: a tile is 16 rows of W8, owned by 4 warps that split K into 64-byte blocks (warp s takes blocks s,
// s + 4, ...). Within a block, lane (g, t) = (lane / 4, lane % 4) loads 16 bytes at k = 16 t of rows g and g + 8
// (4 lanes read 64 contiguous bytes of a row), kUnroll blocks ahead: a rolling window of registers, each
// refilled as soon as its block is consumed. The m16n8k32 fragments (PTX ISA, "mma.m16n8k32" for .s8):
//   A (16 x 32): a0 = row g, k 4t..4t+3   a1 = row g+8, k 4t..4t+3   a2 = row g, k 16+4t..   a3 = row g+8, k 16+4t..
//   B (32 x 8):  b0 = k 4t..4t+3, column g   b1 = k 16+4t..16+4t+3, column g
//   C (16 x 8):  c0, c1 = row g, columns 2t, 2t+1   c2, c3 = row g+8, the same columns   (int32)
// The mma's k order is free as long as A and B agree (the sum is over k), so mma s (0, 1) of a block gives
// its k 4t..4t+3 to bytes 8s..8s+3 of each lane's 16 and its k 16+4t.. to bytes 8s+4..8s+7: A is words 2s and
// 2s + 1 of the lane's two row loads, B the same words of the lane's 16 bytes of xq. Tokens are the mma's n:
// 8 per mma, two mmas for M > 8; tokens beyond M read row M - 1 and are dropped.
// A CTA holds 1, 2 or 4 tiles (rowsPerCta 16, 32, 64): the shape of the work, never its result.
//
// Each (row, token) sum is an int32 sum, exact in any order; the epilogue is kvserve_kernels.h's
// dtype(float(sum) * (xScale[m] * wScale[n])), the dequant kernel's expression after cuBLASLt's product.
#include "gemv_tiles.cuh"

namespace kvsk {

namespace {

// c += a * b (m16n8k32, int8 operands, int32 accumulators; exact).
__device__ __forceinline__ void mma16832(int (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
               : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The lane's 16 bytes of xq at k0 of each token tile.
template <int NT>
__device__ __forceinline__ void loadX(uint4 (&x)[NT], const int8_t* const (&xRow)[NT], int k0) {
#pragma unroll
  for (int j = 0; j < NT; ++j) x[j] = __ldg(reinterpret_cast<const uint4*>(xRow[j] + k0));
}

// acc[j] += W8 rows (g, g + 8) x tokens of tile j over one 64-byte block (the lane's 16 bytes of each row in w).
template <int NT>
__device__ __forceinline__ void mmaBlock(int (&acc)[NT][4], const uint4 (&w)[2], const uint4 (&x)[NT]) {
  const uint32_t r0[4] = {w[0].x, w[0].y, w[0].z, w[0].w}, r1[4] = {w[1].x, w[1].y, w[1].z, w[1].w};
#pragma unroll
  for (int s = 0; s < 2; ++s) {
    const uint32_t a[4] = {r0[2 * s], r1[2 * s], r0[2 * s + 1], r1[2 * s + 1]};
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      const uint32_t xw[4] = {x[j].x, x[j].y, x[j].z, x[j].w};
      mma16832(acc[j], a, xw[2 * s], xw[2 * s + 1]);
    }
  }
}

template <typename T, int NT, int kTiles>
__global__ void __launch_bounds__(kTiles * kTileThreads) gemvInt8Kernel(kvsk_gemv_int8_params p) {
  __shared__ int partial[kTiles][kWarpsPerTile][16][8 * NT];  // [tile][warp][row][token]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int tile = warp / kWarpsPerTile, split = warp % kWarpsPerTile, g = lane >> 2, t = lane & 3;
  const int n0 = (blockIdx.x * kTiles + tile) * 16;
  const int8_t* W = static_cast<const int8_t*>(p.w8);
  const int8_t* X = static_cast<const int8_t*>(p.xq);
  const int8_t* wRow[2];  // rows past N re-read row N - 1 (their results are dropped)
#pragma unroll
  for (int r = 0; r < 2; ++r) wRow[r] = W + (size_t)min(n0 + g + 8 * r, p.n - 1) * p.k + 16 * t;
  const int8_t* xRow[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j) xRow[j] = X + (size_t)min(8 * j + g, p.m - 1) * p.k + 16 * t;

  // Before waiting on the previous kernel: ask L2 for the head of this tile's rows (immutable) and load the
  // first blocks into registers, so that the weight stream flows by the time xq is readable.
  prefetchTileRows(static_cast<const uint8_t*>(p.w8), n0, p.n, p.k, split * 32 + lane);
  constexpr int kUnroll = unrollFor<NT>();
  const int fullBlocks = p.k / 64, tailBytes = p.k % 64;
  int acc[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0;
  // Groups of kUnroll blocks (this warp's blocks b, b + 4, ...). A block's registers are refilled with the
  // same slot of the next group as soon as the block is consumed, so kUnroll blocks stay in flight throughout.
  int b = split;
  bool more = b + kWarpsPerTile * (kUnroll - 1) < fullBlocks;  // a whole group at b
  uint4 w[kUnroll][2];
  auto load = [&](int u, int block) {
#pragma unroll
    for (int r = 0; r < 2; ++r) w[u][r] = loadStreaming(wRow[r] + (size_t)block * 64);
  };
  if (more)
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) load(u, b + kWarpsPerTile * u);
  pdlWait();
  pdlTrigger();
  while (more) {
    const int nextB = b + kWarpsPerTile * kUnroll;
    const bool next = nextB + kWarpsPerTile * (kUnroll - 1) < fullBlocks;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      uint4 x[NT];
      loadX<NT>(x, xRow, (b + kWarpsPerTile * u) * 64);
      mmaBlock<NT>(acc, w[u], x);
      if (next) load(u, nextB + kWarpsPerTile * u);
    }
    b = nextB;
    more = next;
  }
  for (; b < fullBlocks; b += kWarpsPerTile) {
    const uint4 wt[2] = {loadStreaming(wRow[0] + (size_t)b * 64), loadStreaming(wRow[1] + (size_t)b * 64)};
    uint4 x[NT];
    loadX<NT>(x, xRow, b * 64);
    mmaBlock<NT>(acc, wt, x);
  }
  if (b == fullBlocks && tailBytes > 0) {  // the last, partial block (16, 32 or 48 bytes): lanes past it add zeros
    const bool live = 16 * t < tailBytes;
    const uint4 z = make_uint4(0, 0, 0, 0);
    const uint4 wt[2] = {live ? loadStreaming(wRow[0] + (size_t)b * 64) : z, live ? loadStreaming(wRow[1] + (size_t)b * 64) : z};
    uint4 x[NT];
#pragma unroll
    for (int j = 0; j < NT; ++j) x[j] = z;
    if (live) loadX<NT>(x, xRow, b * 64);
    mmaBlock<NT>(acc, wt, x);
  }

  storeFragments<NT>(partial[tile][split], acc, g, t);
  __syncthreads();
  const int it = split * 32 + lane;
  for (int o = it; o < 16 * 8 * NT; o += kTileThreads) {
    const int r = o % 16, m = o / 16;  // consecutive threads: consecutive rows of y
    if (m >= p.m || n0 + r >= p.n) continue;
    int v = partial[tile][0][r][m];
#pragma unroll
    for (int s = 1; s < kWarpsPerTile; ++s) v += partial[tile][s][r][m];
    const float scale = __fmul_rn(p.xScale[m], __ldg(p.wScale + n0 + r));
    static_cast<T*>(p.y)[(size_t)m * p.n + n0 + r] = fromF<T>(__fmul_rn(__int2float_rn(v), scale));
  }
}

template <typename T, int NT>
cudaError_t launchTiles(const kvsk_gemv_int8_params& p, cudaStream_t stream) {
  const int rows = p.rowsPerCta == 0 ? 16 : p.rowsPerCta;
  const dim3 grid((p.n + rows - 1) / rows), block(rows / 16 * kTileThreads);
  switch (rows) {
    case 16: return launch(gemvInt8Kernel<T, NT, 1>, grid, block, 0, stream, p);
    case 32: return launch(gemvInt8Kernel<T, NT, 2>, grid, block, 0, stream, p);
    case 64: return launch(gemvInt8Kernel<T, NT, 4>, grid, block, 0, stream, p);
    default: return cudaErrorNotSupported;
  }
}

template <typename T>
cudaError_t launchGemvInt8(const kvsk_gemv_int8_params& p, cudaStream_t stream) {
  return p.m <= 8 ? launchTiles<T, 1>(p, stream) : launchTiles<T, 2>(p, stream);
}

}  // namespace

}  // namespace kvsk

extern "C" int kvsk_gemv_int8_supported(int m, int n, int k, kvsk_dtype dtype) {
  return (dtype == KVSK_BF16 || dtype == KVSK_F16) && m >= 1 && m <= KVSK_GEMV_INT8_MAX_M && n >= 1 && k >= 16 &&
         k % 16 == 0;
}

extern "C" cudaError_t kvsk_gemv_int8(const kvsk_gemv_int8_params* p, cudaStream_t stream) {
  if (!kvsk_gemv_int8_supported(p->m, p->n, p->k, p->dtype)) return cudaErrorNotSupported;
  if ((reinterpret_cast<uintptr_t>(p->xq) | reinterpret_cast<uintptr_t>(p->w8)) % 16 != 0) return cudaErrorInvalidValue;
  if (p->rowsPerCta != 0 && p->rowsPerCta != 16 && p->rowsPerCta != 32 && p->rowsPerCta != 64) return cudaErrorNotSupported;
  if (p->dtype == KVSK_BF16) return kvsk::launchGemvInt8<__nv_bfloat16>(*p, stream);
  return kvsk::launchGemvInt8<__half>(*p, stream);
}
