// Skinny GEMM with FP8 (E4M3) weights for decode: y[M, N] = x[M, K] (W8 * wScale)^T, M <= 16, x and y bf16/f16
// (x is not quantized), float32 sums. Memory bound: W8 is read once, streamed past L1 so that x stays in L1.
//
// Why tensor cores: at 4.2 TB/s an H200 SM must consume 16 weight bytes per clock. Decoding e4m3 and a float32
// FMA per weight and token would need more issue slots than the SM has beyond M = 2; instead each weight is
// converted once (4 integer ops and a packed multiply per pair, exact) and mma.sync m16n8k16 does the
// multiply-adds for 8 tokens at a time, so M up to 16 costs about what M = 1 costs.
//
// Work: a tile is 16 rows of W8, owned by 4 warps that split K into 64-byte blocks (warp s takes blocks s,
// s + 4, ...). Within a block, lane (g, t) = (lane / 4, lane % 4) loads 16 bytes at k = 16 t of rows g and g + 8
// (4 lanes read 64 contiguous bytes of a row), kUnroll blocks ahead: a rolling window of registers, each refilled
// as soon as its block is consumed. The mma's k order is free as long as A
// and B agree (the sum is over k), so step s of a block takes bytes 4s..4s+3 of each lane's 16: A's pairs
// (2t, 2t+1) and (2t+8, 2t+9) of mma.cuh's layout are bytes (4s, 4s+1) and (4s+2, 4s+3), and B's are the
// matching x elements, i.e. words 2s and 2s+1 of the lane's 16 elements of x: x needs no shuffling at all.
// Tokens are the mma's n: 8 per mma, two mmas for M > 8; tokens beyond M read row M - 1 and are dropped.
// A CTA holds 1, 2 or 4 tiles (rowsPerCta 16, 32, 64): a row's sums are the same whatever the CTA shape.
//
// e4m3 -> bf16/f16 exactly: the 7 exponent-and-mantissa bits are shifted under the 16-bit type's exponent
// field and the sign moved to bit 15, which gives the value times 2^-120 (bf16) or 2^-8 (f16), subnormals
// included (an e4m3 subnormal becomes a bf16/f16 subnormal); one multiply by 2^120 / 2^8 then restores it
// exactly. (NaN bytes, which the quantizer never writes, read as +-480.)
//
// Each (row, token) sum: each warp's mma chain in its blocks' order, then the 4 warps' sums in warp order,
// times wScale[row]: deterministic, and independent of M and of the other rows of x.
#include "gemv_tiles.cuh"
#include "mma.cuh"

namespace kvsk {

namespace {

// Where the e4m3 bits go in a 16-bit T, and 2^(T's exponent bias - 7) twice, packed.
template <typename T> struct E4m3In;
template <> struct E4m3In<__nv_bfloat16> { static constexpr int kShift = 4; static constexpr uint32_t kMask = 0x07F007F0u, kBias = 0x7B807B80u; };
template <> struct E4m3In<__half> { static constexpr int kShift = 1; static constexpr uint32_t kMask = 0x3F803F80u, kBias = 0x5C005C00u; };

template <typename T> __device__ __forceinline__ uint32_t mul2(uint32_t a, uint32_t b);
template <> __device__ __forceinline__ uint32_t mul2<__nv_bfloat16>(uint32_t a, uint32_t b) {
  __nv_bfloat162 x, y;
  memcpy(&x, &a, 4);
  memcpy(&y, &b, 4);
  const __nv_bfloat162 r = __hmul2(x, y);
  uint32_t u;
  memcpy(&u, &r, 4);
  return u;
}
template <> __device__ __forceinline__ uint32_t mul2<__half>(uint32_t a, uint32_t b) {
  __half2 x, y;
  memcpy(&x, &a, 4);
  memcpy(&y, &b, 4);
  const __half2 r = __hmul2(x, y);
  uint32_t u;
  memcpy(&u, &r, 4);
  return u;
}

// Two e4m3 bytes of q as a packed T pair: bytes 0, 1 (sel kLo) or 2, 3 (sel kHi), the lower byte in the low half.
constexpr uint32_t kLo = 0x1404u, kHi = 0x3424u;  // __byte_perm: the bytes to bits 15..8 and 31..24
template <typename T>
__device__ __forceinline__ uint32_t e4m3Pair(uint32_t q, uint32_t sel) {
  const uint32_t p = __byte_perm(q, 0u, sel);
  return mul2<T>((p & 0x80008000u) | ((p >> E4m3In<T>::kShift) & E4m3In<T>::kMask), E4m3In<T>::kBias);
}

// The lane's 16 elements of x at k0 of each token tile, as 8 words of packed pairs.
template <typename T, int NT>
__device__ __forceinline__ void loadX(uint32_t (&xw)[NT][8], const T* const (&xRow)[NT], int k0) {
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(xRow[j] + k0));
    const uint4 b = __ldg(reinterpret_cast<const uint4*>(xRow[j] + k0) + 1);
    xw[j][0] = a.x; xw[j][1] = a.y; xw[j][2] = a.z; xw[j][3] = a.w;
    xw[j][4] = b.x; xw[j][5] = b.y; xw[j][6] = b.z; xw[j][7] = b.w;
  }
}

// acc[j] += W8 rows (g, g + 8) x tokens of tile j over one 64-byte block (the lane's 16 bytes of each row in w).
template <typename T, int NT>
__device__ __forceinline__ void mmaBlock(float (&acc)[NT][4], const uint4 (&w)[2], const uint32_t (&xw)[NT][8]) {
  const uint32_t r0[4] = {w[0].x, w[0].y, w[0].z, w[0].w}, r1[4] = {w[1].x, w[1].y, w[1].z, w[1].w};
#pragma unroll
  for (int s = 0; s < 4; ++s) {
    const uint32_t a[4] = {e4m3Pair<T>(r0[s], kLo), e4m3Pair<T>(r1[s], kLo), e4m3Pair<T>(r0[s], kHi), e4m3Pair<T>(r1[s], kHi)};
#pragma unroll
    for (int j = 0; j < NT; ++j) mma16816<T>(acc[j], a, xw[j][2 * s], xw[j][2 * s + 1]);
  }
}

template <typename T, int NT, int kTiles>
__global__ void __launch_bounds__(kTiles * kTileThreads) gemvFp8Kernel(kvsk_gemv_fp8_params p) {
  __shared__ float partial[kTiles][kWarpsPerTile][16][8 * NT];  // [tile][warp][row][token]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int tile = warp / kWarpsPerTile, split = warp % kWarpsPerTile, g = lane >> 2, t = lane & 3;
  const int n0 = (blockIdx.x * kTiles + tile) * 16;
  const uint8_t* W = static_cast<const uint8_t*>(p.w8);
  const T* X = static_cast<const T*>(p.x);
  const uint8_t* wRow[2];  // rows past N re-read row N - 1 (their results are dropped)
#pragma unroll
  for (int r = 0; r < 2; ++r) wRow[r] = W + (size_t)min(n0 + g + 8 * r, p.n - 1) * p.k + 16 * t;
  const T* xRow[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j) xRow[j] = X + (size_t)min(8 * j + g, p.m - 1) * p.k + 16 * t;

  // Before waiting on the previous kernel: ask L2 for the head of this tile's rows (immutable) and load the
  // first blocks into registers, so that the weight stream flows by the time x is readable.
  prefetchTileRows(W, n0, p.n, p.k, split * 32 + lane);
  constexpr int kUnroll = unrollFor<NT>();
  const int fullBlocks = p.k / 64, tailBytes = p.k % 64;
  float acc[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
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
      uint32_t xw[NT][8];
      loadX<T, NT>(xw, xRow, (b + kWarpsPerTile * u) * 64);
      mmaBlock<T, NT>(acc, w[u], xw);
      if (next) load(u, nextB + kWarpsPerTile * u);
    }
    b = nextB;
    more = next;
  }
  for (; b < fullBlocks; b += kWarpsPerTile) {
    const uint4 wt[2] = {loadStreaming(wRow[0] + (size_t)b * 64), loadStreaming(wRow[1] + (size_t)b * 64)};
    uint32_t xw[NT][8];
    loadX<T, NT>(xw, xRow, b * 64);
    mmaBlock<T, NT>(acc, wt, xw);
  }
  if (b == fullBlocks && tailBytes > 0) {  // the last, partial block (16, 32 or 48 bytes): lanes past it add zeros
    const bool live = 16 * t < tailBytes;
    const uint4 z = make_uint4(0, 0, 0, 0);
    const uint4 wt[2] = {live ? loadStreaming(wRow[0] + (size_t)b * 64) : z, live ? loadStreaming(wRow[1] + (size_t)b * 64) : z};
    uint32_t xw[NT][8] = {};
    if (live) loadX<T, NT>(xw, xRow, b * 64);
    mmaBlock<T, NT>(acc, wt, xw);
  }

  storeFragments<NT>(partial[tile][split], acc, g, t);
  __syncthreads();
  const int it = split * 32 + lane;
  for (int o = it; o < 16 * 8 * NT; o += kTileThreads) {
    const int r = o % 16, m = o / 16;  // consecutive threads: consecutive rows of y
    if (m >= p.m || n0 + r >= p.n) continue;
    float v = partial[tile][0][r][m];
#pragma unroll
    for (int s = 1; s < kWarpsPerTile; ++s) v += partial[tile][s][r][m];
    static_cast<T*>(p.y)[(size_t)m * p.n + n0 + r] = fromF<T>(v * __ldg(p.wScale + n0 + r));
  }
}

template <typename T, int NT>
cudaError_t launchTiles(const kvsk_gemv_fp8_params& p, cudaStream_t stream) {
  const int rows = p.rowsPerCta == 0 ? 16 : p.rowsPerCta;
  const dim3 grid((p.n + rows - 1) / rows), block(rows / 16 * kTileThreads);
  switch (rows) {
    case 16: return launch(gemvFp8Kernel<T, NT, 1>, grid, block, 0, stream, p);
    case 32: return launch(gemvFp8Kernel<T, NT, 2>, grid, block, 0, stream, p);
    case 64: return launch(gemvFp8Kernel<T, NT, 4>, grid, block, 0, stream, p);
    default: return cudaErrorNotSupported;
  }
}

template <typename T>
cudaError_t launchGemvFp8(const kvsk_gemv_fp8_params& p, cudaStream_t stream) {
  return p.m <= 8 ? launchTiles<T, 1>(p, stream) : launchTiles<T, 2>(p, stream);
}

}  // namespace

cudaError_t gemvFp8V2(const kvsk_gemv_fp8_params& p, cudaStream_t stream);  // gemv_fp8_v2.cu

}  // namespace kvsk

extern "C" int kvsk_gemv_fp8_supported(int m, int n, int k, kvsk_dtype dtype) {
  return (dtype == KVSK_BF16 || dtype == KVSK_F16) && m >= 1 && m <= KVSK_GEMV_FP8_MAX_M && n >= 1 && k >= 16 &&
         k % 16 == 0;
}

extern "C" cudaError_t kvsk_gemv_fp8(const kvsk_gemv_fp8_params* p, cudaStream_t stream) {
  if (!kvsk_gemv_fp8_supported(p->m, p->n, p->k, p->dtype)) return cudaErrorNotSupported;
  if ((reinterpret_cast<uintptr_t>(p->x) | reinterpret_cast<uintptr_t>(p->w8)) % 16 != 0) return cudaErrorInvalidValue;
  if (p->rowsPerCta != 0 && p->rowsPerCta != 16 && p->rowsPerCta != 32 && p->rowsPerCta != 64) return cudaErrorNotSupported;
  if (p->trigger < KVSK_PDL_TRIGGER_EARLY || p->trigger > KVSK_PDL_TRIGGER_OFF) return cudaErrorInvalidValue;
  if (p->version == 2) return kvsk::gemvFp8V2(*p, stream);
  if (p->version != 0 && p->version != 1) return cudaErrorNotSupported;
  if (p->dtype == KVSK_BF16) return kvsk::launchGemvFp8<__nv_bfloat16>(*p, stream);
  return kvsk::launchGemvFp8<__half>(*p, stream);
}
