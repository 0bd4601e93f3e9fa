// FP8-weight GEMV, version 2 (kvsk_gemv_fp8_params.version = 2): y[M, N] = x[M, K] (W8 * wScale)^T, M <= 16, as
// gemv_fp8.cu, in fewer instructions per weight byte (SASS of the steady-state loop, sm_90, per KB of weights:
// 25 at M <= 8 and 31 above, 31 and 37 with each group's bookkeeping, against v1's 90 and 97) and with persistent
// CTAs that keep streaming across tiles. The kernel is here, shared by the plain GEMV (gemv_fp8_v2.cu) and the ones
// with a fused epilogue (gemv_fp8_fused.cu): an epilogue type says which rows of W8 a tile holds and what becomes of
// their sums (below).
//
// Operands: f16 for bf16 and f16 models alike. cvt.rn.f16x2.e4m3x2 (sm_89+; below, cuda_fp8.h's exact software
// decode) turns two e4m3 bytes into an f16x2 in one instruction (every e4m3 value is an f16), where v1 spends five
// on a pair. A bf16 x is rounded to f16 once per CTA: exact for |x| in [2^-17, 65504] (bf16 keeps 8 significant
// bits, f16 11), tinier values rounded to f16's subnormal grid (error <= 2^-25), beyond +-65504 saturated, never
// inf. e4m3 NaN bytes (which the quantizer never writes) read as NaN.
//
// x: copied to shared memory as f16 ([M][xPitch(K)], rows padded by 16 bytes so that the 8 lanes of a 16-byte read
// phase hit 8 different bank groups; zeros past K) while each warp's first group reads it from global memory, when
// it fits in kXSmemBytes; else every block's 16 elements of x come from global memory (L1) and are rounded there,
// to the same f16 values, so where x is read never changes a sum.
//
// Work: a tile is 16 rows of W8 and 4 warps that split K into 64-byte blocks (warp s takes blocks s, s + 4, ...);
// lane (g, t) = (lane / 4, lane % 4) holds 16 bytes at k = 16 t of tile rows g and g + 8, and step i of a block takes
// bytes 4i..4i+3 of them: A's pairs (2t, 2t+1), (2t+8, 2t+9) of mma.cuh's layout are bytes (4i, 4i+1), (4i+2, 4i+3),
// and B's the matching 4 elements of x (as v1). Tokens are the mma's n: 8 per mma, two mmas for M > 8; tokens beyond
// M read row M - 1 and are dropped. A CTA holds kTiles = rowsPerCta / 16 tiles and is persistent: the grid is as many
// CTAs as fit on the device at once (no more than there are groups of kTiles tiles), and CTA c takes tiles
// (c + r gridDim) kTiles + j, r = 0, 1, ... for its tile slots j. Each warp's blocks of all its tiles form one stream
// with kUnroll blocks in flight (256 bytes per lane, 128 at rowsPerCta 64): a block's registers are refilled with the stream's block
// kUnroll ahead as soon as it is consumed, across tile boundaries.
//
// Each (row, token) sum: each warp's mma chain over its blocks in K order, then warp 0's sum plus warps 1, 2, 3's
// in that order (named barriers hand the partials over), times wScale[row]: independent of M, of the other rows of
// x, of rowsPerCta, of where x was read, and of which tile row the row of W8 sits in (an mma's output element is
// its A row's dot product with its B column wherever they sit in the fragments; the gemv-fuse kernel suite checks
// the fused kernels bitwise against the plain one), so an epilogue's rows are the plain GEMV's.
//
// The epilogue type Epi (a kernel parameter, copied to the device) places rows of W8 in the tiles' row slots (slot
// 16 tile + r is row r of a tile) and consumes their sums:
//   kvsk_gemv_fp8_params gemv                     the GEMV (gemv.y is the epilogue's business)
//   int numTiles() const                          (host and device) tiles of 16 slots
//   int row(int slot) const                       the row of W8 in a slot: always a row of W8 (the slots past the
//                                                 end re-read one, and their sums are dropped)
//   bool live(int slot) const                     whether the slot's sums are wanted (the L2 prefetch skips the others)
//   void store(int slot, int m, float lo, float hi) const
//                                                 the sums of slots `slot` (lo) and slot + 8 (hi), slot % 16 < 8, for
//                                                 token m (not yet times wScale; m >= M: to be dropped)
#pragma once
#include <algorithm>
#include <type_traits>

#include "common.cuh"
#include "kv_fp8.cuh"
#include "mma.cuh"

namespace kvsk {
namespace fp8v2 {

constexpr int kSplits = 4, kTileThreads = kSplits * 32;
// 64-byte blocks of both rows in flight per lane: 8 (256 bytes), 4 at 16 warps per CTA (128 registers a thread)
template <int kTiles> __host__ __device__ constexpr int unrollFor() { return kTiles == 4 ? 4 : 8; }
constexpr int kXPad = 8;                  // f16 elements after each row of x in shared memory
constexpr int kXSmemBytes = 160 * 1024;   // x above this (or above the device's limit) is read from L1 instead:
                                          // on an H200, K = 14336 at M >= 6
constexpr int kPrefetchRowBytes = 4096;   // of each row, asked of L2 before the programmatic-launch wait

__host__ __device__ constexpr int blocksOf(int k) { return (k + 63) / 64; }
__host__ __device__ constexpr int xPitch(int k) { return 64 * blocksOf(k) + kXPad; }
template <int NT, int kTiles> __host__ __device__ constexpr int partialFloats() { return kTiles * (kSplits - 1) * NT * 4 * 32; }

// bf16x2 -> f16x2: round to nearest, saturated to +-65504 (cvt.rn.satfinite.f16x2.f32; the high half from a).
__device__ __forceinline__ uint32_t bf16x2ToHalf2(uint32_t v) {
  uint32_t r;
  asm("cvt.rn.satfinite.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(__uint_as_float(v & 0xFFFF0000u)), "f"(__uint_as_float(v << 16)));
  return r;
}
template <typename T> __device__ __forceinline__ uint4 toHalf(uint4 v) {
  if constexpr (std::is_same_v<T, __half>) return v;
  else return make_uint4(bf16x2ToHalf2(v.x), bf16x2ToHalf2(v.y), bf16x2ToHalf2(v.z), bf16x2ToHalf2(v.w));
}

__device__ __forceinline__ void prefetchL1(const void* p) { asm volatile("prefetch.global.L1 [%0];" ::"l"(p)); }
__device__ __forceinline__ void barSync(int id) { asm volatile("bar.sync %0, %1;" ::"r"(id), "n"(kTileThreads) : "memory"); }
__device__ __forceinline__ void barArrive(int id) { asm volatile("bar.arrive %0, %1;" ::"r"(id), "n"(kTileThreads) : "memory"); }

// Where a warp's B operands come from: x's row r as f16 from shared memory, or as T from global memory (rounded
// to f16 here); load(p) reads the 8 elements at p as 4 packed pairs, edge(row, k) those at column k of a row
// whatever k (zeros past K: the lanes of a partial last block add nothing).
template <typename T, bool kXSmem> struct XSource;
template <typename T> struct XSource<T, true> {
  using E = __half;
  const __half* xs;  // [M][xPitch(K)] f16, zeros past K
  int pitch;
  __device__ __forceinline__ const E* row(int r) const { return xs + (size_t)r * pitch; }
  __device__ __forceinline__ uint4 load(const E* p) const { return *reinterpret_cast<const uint4*>(p); }
  __device__ __forceinline__ uint4 edge(const E* row, int k) const { return load(row + k); }
};
template <typename T> struct XSource<T, false> {
  using E = T;
  const T* x;  // [M][K]
  int K;
  __device__ __forceinline__ const E* row(int r) const { return x + (size_t)r * K; }
  __device__ __forceinline__ uint4 load(const E* p) const { return toHalf<T>(__ldg(reinterpret_cast<const uint4*>(p))); }
  __device__ __forceinline__ uint4 edge(const E* row, int k) const {
    const uint4 v = load(row + min(k, K - 8));
    return k < K ? v : make_uint4(0, 0, 0, 0);
  }
};

// The four e4m3 bytes of q as f16x2 pairs: lo = bytes 0, 1, hi = bytes 2, 3 (exact).
__device__ __forceinline__ void e4m3x4ToHalf2(uint32_t q, uint32_t& lo, uint32_t& hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm("{.reg .b16 l, h;\n mov.b32 {l, h}, %2;\n cvt.rn.f16x2.e4m3x2 %0, l;\n cvt.rn.f16x2.e4m3x2 %1, h;}" : "=r"(lo), "=r"(hi) : "r"(q));
#else
  lo = e4m3x2ToHalf2(q);
  hi = e4m3x2ToHalf2(q >> 16);
#endif
}

// acc[j] += W8 rows (g, g + 8) x tokens of tile j over half h of a 64-byte block: steps 2h, 2h + 1 (bytes 8h ..
// 8h + 7 of the lane's 16 of each row in w) against x[j], elements 8h .. 8h + 7 of the lane's 16.
template <int NT>
__device__ __forceinline__ void mmaHalf(float (&acc)[NT][4], const uint4 (&w)[2], int h, const uint4 (&x)[NT]) {
  const uint32_t r0[2] = {h ? w[0].z : w[0].x, h ? w[0].w : w[0].y}, r1[2] = {h ? w[1].z : w[1].x, h ? w[1].w : w[1].y};
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    uint32_t a[4];  // A fragment: rows g, g + 8 at k slots 2t, 2t+1 (a[0], a[1]) and 2t+8, 2t+9 (a[2], a[3])
    e4m3x4ToHalf2(r0[i], a[0], a[2]);
    e4m3x4ToHalf2(r1[i], a[1], a[3]);
#pragma unroll
    for (int j = 0; j < NT; ++j) mma16816<__half>(acc[j], a, i ? x[j].z : x[j].x, i ? x[j].w : x[j].y);
  }
}

template <typename T, int NT, int kTiles, bool kXSmem, typename Epi>
__global__ void __launch_bounds__(kTiles * kTileThreads) gemvFp8V2Kernel(Epi e) {
  extern __shared__ __align__(16) uint8_t smem[];
  const kvsk_gemv_fp8_params& p = e.gemv;
  float* partial = reinterpret_cast<float*>(smem);  // [kTiles][warp 1..3][NT * 4][32 lanes]
  __half* xs = reinterpret_cast<__half*>(partial + partialFloats<NT, kTiles>());
  constexpr int kUnroll = unrollFor<kTiles>();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int j = warp / kSplits, s = warp % kSplits, g = lane >> 2, t = lane & 3;
  const int K = p.k, M = p.m;
  const int numTiles = e.numTiles(), tileStride = gridDim.x * kTiles;
  const int blocksW = (blocksOf(K) - s + kSplits - 1) / kSplits;  // this warp's blocks of a tile
  const uint8_t* W = static_cast<const uint8_t*>(p.w8);
  // Lane (g, t)'s bytes of block q (this warp's q-th) of a tile's rows g, g + 8; blocks past the row re-read its
  // last 16 bytes (multiplied by zeros of x).
  auto rowOf = [&](int tile, int r) { return W + (size_t)e.row(tile * 16 + g + 8 * r) * K; };
  auto kOf = [&](int q) { return (s + kSplits * q) * 64 + 16 * t; };

  int tile = blockIdx.x * kTiles + j;
  // Before waiting on the previous kernel: ask L2 for the head of the first tiles' rows (immutable) and load the
  // first blocks into registers, so that the weight stream flows by the time x is readable.
  {
    constexpr int kInRegs = kUnroll * kSplits * 64;  // bytes of each row the first loads below cover
    const int rows = kTiles * 16, first = blockIdx.x * rows;
    const int lines = (min(K, kInRegs + kPrefetchRowBytes) - kInRegs + 127) / 128;  // <= 0: K fits in registers
    for (int i = threadIdx.x; i < rows * lines; i += blockDim.x)
      if (e.live(first + i % rows)) prefetchL2(W + (size_t)e.row(first + i % rows) * K + kInRegs + i / rows * 128);
  }
  uint4 w[kUnroll][2];
  {
    const uint8_t* row[2] = {rowOf(tile, 0), rowOf(tile, 1)};
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int r = 0; r < 2; ++r) w[u][r] = tile < numTiles ? loadStreaming(row[r] + min(kOf(u), K - 16)) : make_uint4(0, 0, 0, 0);
  }
  pdlWait();
  if (p.trigger == KVSK_PDL_TRIGGER_EARLY) pdlTrigger();

  float acc[NT][4];
#pragma unroll
  for (int jj = 0; jj < NT; ++jj) acc[jj][0] = acc[jj][1] = acc[jj][2] = acc[jj][3] = 0.f;
  const int full = K / 64;  // blocks wholly inside a row
  int q0 = 0;               // the stream's current group: blocks q0 .. q0 + kUnroll - 1 of `tile`
  // One group of the stream: consumes it with x from src, loads the next group into the registers it frees, and
  // after a tile's last group sums the tile.
  auto step = [&](const auto& src) {
    using E = typename std::remove_reference_t<decltype(src)>::E;
    if (p.trigger == KVSK_PDL_TRIGGER_LATE && q0 == 0 && tile + tileStride >= numTiles) pdlTrigger();  // last tile
    int tileN = tile, qN = q0 + kUnroll;
    if (qN >= blocksW) tileN += tileStride, qN = 0;
    const bool liveN = tileN < numTiles;
    const uint8_t* rowN[2] = {rowOf(tileN, 0), rowOf(tileN, 1)};
    const E* xRow[NT];  // token g of each token tile (beyond M: row M - 1)
#pragma unroll
    for (int jj = 0; jj < NT; ++jj) xRow[jj] = src.row(min(8 * jj + g, M - 1));
    if (q0 == 0 && s == 0) prefetchL1(p.wScale + e.row(tile * 16 + lane % 16));  // read when the tile is summed
    // Whole blocks in both groups (the common case): no clamps, no per-slot tests.
    const bool plain = liveN && s + kSplits * (q0 + kUnroll - 1) < full && s + kSplits * (qN + kUnroll - 1) < full;
    if (plain) {  // slot u: block q0 + u, k = kOf(q0) + 256 u (immediate offsets from one base per group)
      const uint8_t* wNext[2] = {rowN[0] + kOf(qN), rowN[1] + kOf(qN)};
      const E* xp[NT];
#pragma unroll
      for (int jj = 0; jj < NT; ++jj) xp[jj] = xRow[jj] + kOf(q0);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          uint4 x[NT];
#pragma unroll
          for (int jj = 0; jj < NT; ++jj) x[jj] = src.load(xp[jj] + 256 * u + 8 * h);
          mmaHalf<NT>(acc, w[u], h, x);
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) w[u][r] = loadStreaming(wNext[r] + 256 * u);
      }
    } else {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (q0 + u < blocksW) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            uint4 x[NT];
#pragma unroll
            for (int jj = 0; jj < NT; ++jj) x[jj] = src.edge(xRow[jj], kOf(q0 + u) + 8 * h);
            mmaHalf<NT>(acc, w[u], h, x);
          }
        }
        if (liveN && qN + u < blocksW)
#pragma unroll
          for (int r = 0; r < 2; ++r) w[u][r] = loadStreaming(rowN[r] + min(kOf(qN + u), K - 16));
      }
    }
    if (qN == 0) {  // the tile is summed: warps 1..3 hand their sums to warp 0 (barriers 1 + 2j full, 2 + 2j empty)
      const int fullBar = 1 + 2 * j, emptyBar = 2 + 2 * j;
      if (s != 0) {
        float* out = partial + (size_t)(j * (kSplits - 1) + s - 1) * NT * 4 * 32 + lane;
        if (tile >= tileStride) barSync(emptyBar);  // not this slot's first tile
#pragma unroll
        for (int jj = 0; jj < NT; ++jj)
#pragma unroll
          for (int i = 0; i < 4; ++i) out[(jj * 4 + i) * 32] = acc[jj][i];
        barArrive(fullBar);
      } else {
        barSync(fullBar);
        const float* in = partial + (size_t)j * (kSplits - 1) * NT * 4 * 32 + lane;
        // C fragment: acc[jj][0..1] = slot 16 tile + g, tokens 8 jj + 2t, +1; acc[jj][2..3] = slot + 8, the same tokens.
#pragma unroll
        for (int jj = 0; jj < NT; ++jj)
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            float lo = acc[jj][c], hi = acc[jj][c + 2];
#pragma unroll
            for (int w1 = 0; w1 < kSplits - 1; ++w1) lo += in[(w1 * NT * 4 + jj * 4 + c) * 32];
#pragma unroll
            for (int w1 = 0; w1 < kSplits - 1; ++w1) hi += in[(w1 * NT * 4 + jj * 4 + c + 2) * 32];
            e.store(tile * 16 + g, 8 * jj + 2 * t + c, lo, hi);
          }
        if (liveN) barArrive(emptyBar);
      }
#pragma unroll
      for (int jj = 0; jj < NT; ++jj) acc[jj][0] = acc[jj][1] = acc[jj][2] = acc[jj][3] = 0.f;
    }
    tile = tileN;
    q0 = qN;
  };

  const XSource<T, false> xGlobal{static_cast<const T*>(p.x), K};
  if constexpr (kXSmem) {
    // x is copied to shared memory while the first group reads it from global memory, so that no warp waits
    // for the copy before its first mma; the later groups read the copy.
    const int pitch = xPitch(K), chunks = pitch / 8 - 1;  // 16-byte chunks of a row up to 64 blocksOf(K)
    const T* X = static_cast<const T*>(p.x);
    for (int m = 0; m < M; ++m)
      for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
        const bool in = 8 * c < K;
        cpAsync16(xs + (size_t)m * pitch + 8 * c, X + (size_t)m * K + (in ? 8 * c : 0), in ? 16 : 0);
      }
    cpAsyncCommit();
    if (tile < numTiles) step(xGlobal);
    cpAsyncWait<0>();
    if constexpr (!std::is_same_v<T, __half>)  // each thread rounds the chunks it copied
      for (int m = 0; m < M; ++m)
        for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
          uint4* q = reinterpret_cast<uint4*>(xs + (size_t)m * pitch + 8 * c);
          *q = toHalf<T>(*q);
        }
    __syncthreads();
    const XSource<T, true> xShared{xs, pitch};
    while (tile < numTiles) step(xShared);
  } else {
    while (tile < numTiles) step(xGlobal);
  }
}

// Dynamic shared memory of one CTA: the partial sums, and x when it is staged.
template <int NT, int kTiles>
size_t smemBytes(const kvsk_gemv_fp8_params& p, bool xSmem) {
  return partialFloats<NT, kTiles>() * sizeof(float) + (xSmem ? (size_t)p.m * xPitch(p.k) * sizeof(__half) : 0);
}

// What the launches ask of the current device (gemv_fp8_v2.cu; cached per device and per (kernel, shared memory)):
// its SMs and the shared memory a CTA may have; how many CTAs of a kernel fit on one SM (0 on an error).
struct DeviceLimits {
  int sms = 0, smemPerCta = 0;
};
bool deviceLimits(DeviceLimits* out);
int ctasPerSm(const void* kernel, int threads, size_t smem);

// Persistent CTAs: as many as fit on the device at once, no more than there are groups of kTiles tiles.
template <typename T, int NT, int kTiles, bool kXSmem, typename Epi>
cudaError_t launchV2(const Epi& e, const DeviceLimits& dev, cudaStream_t stream) {
  auto kernel = gemvFp8V2Kernel<T, NT, kTiles, kXSmem, Epi>;
  const size_t smem = smemBytes<NT, kTiles>(e.gemv, kXSmem);
  const int threads = kTiles * kTileThreads;
  if (smem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (err != cudaSuccess) return err;
  }
  const int groups = (e.numTiles() + kTiles - 1) / kTiles, resident = dev.sms * ctasPerSm((const void*)kernel, threads, smem);
  if (resident <= 0) return cudaErrorLaunchOutOfResources;
  const bool pdl = pdlEnabled() && e.gemv.trigger != KVSK_PDL_TRIGGER_OFF;
  return launchWith(pdl, kernel, dim3(std::min(groups, resident)), dim3(threads), smem, stream, e);
}

// x goes to shared memory when it fits in kXSmemBytes and in what the device gives a CTA.
template <typename T, int NT, int kTiles, typename Epi>
cudaError_t launchXV2(const Epi& e, cudaStream_t stream) {
  DeviceLimits dev;
  if (!deviceLimits(&dev)) return cudaErrorInvalidDevice;
  const size_t xBytes = smemBytes<NT, kTiles>(e.gemv, true) - smemBytes<NT, kTiles>(e.gemv, false);
  if (xBytes <= (size_t)kXSmemBytes && smemBytes<NT, kTiles>(e.gemv, true) <= (size_t)dev.smemPerCta)
    return launchV2<T, NT, kTiles, true>(e, dev, stream);
  return launchV2<T, NT, kTiles, false>(e, dev, stream);
}

template <typename T, int NT, typename Epi>
cudaError_t launchTilesV2(const Epi& e, cudaStream_t stream) {
  switch (e.gemv.rowsPerCta == 0 ? 16 : e.gemv.rowsPerCta) {
    case 16: return launchXV2<T, NT, 1>(e, stream);
    case 32: return launchXV2<T, NT, 2>(e, stream);
    case 64: return launchXV2<T, NT, 4>(e, stream);
    default: return cudaErrorNotSupported;
  }
}

// e's kernel for its M: one token tile up to M = 8, two above.
template <typename T, typename Epi>
cudaError_t launchFor(const Epi& e, cudaStream_t stream) {
  return e.gemv.m <= 8 ? launchTilesV2<T, 1>(e, stream) : launchTilesV2<T, 2>(e, stream);
}

}  // namespace fp8v2
}  // namespace kvsk
