// The batch-invariant GEMM for small M on the decode GEMV's memory pattern (kvsk_gemv_inv): y[M, N] = x[M, K]
// w[N, K]^T for 1 <= M <= 16, bf16/f16, with exactly kvsk_gemm_inv's reduction (gemm_inv.cuh): K in chunks of 64,
// the chunks in k-partitions, each partition one chain of mma.sync m16n8k16 from zero over its chunks in order
// (four mmas a chunk, mma i on the chunk's elements 16 i .. 16 i + 15 in their natural order), the partition sums
// added to a float32 zero in order, rounded to nearest even. An element of an mma's D depends on its row of A,
// its column of B and its C alone, so every row of y is bitwise kvsk_gemm_inv's (and so the wgmma kernel's where
// the gemm-wgmma suite finds the two instructions alike): what differs is only how the operands reach the
// tensor cores.
//
// gemm_inv's 16 x 64 tile stages X and W through shared memory with cp.async, one __syncthreads a chunk, and
// reaches 30-46% of copy bandwidth at M = 1 on Llama-3-8B's q/k/v and o (GPU run 13). Here, as in the GEMV
// (gemv.cuh), W goes straight from global memory into registers, streamed past L1, several chunks in flight per
// thread, with no barrier until the end: a warp owns kNt n8 tiles (8 kNt rows of W) and one k-partition. Lane
// (g, t) (g = lane / 4, t = lane % 4) loads 32 contiguous bytes of row 8 j + g of each of its n8 tiles j, the
// chunk's k16 block t; the B fragment of block i wants, on lane (g, t), words t and 4 + t of block i, which lane
// (g, i) holds, so the four lanes of a quad exchange them (quadTranspose: three shuffles and selects per four
// words). X's rows (A: rows g and g + 8) arrive the same way through L1 (__ldg), shared by every warp of the SM.
//
// A CTA is the kParts warps of the weight's partitions for each of J groups of n8 tiles (J = max(1, 8 / parts)).
// The partitions' sums meet in shared memory and one thread per output adds them in partition order. Launched
// with programmatic dependent launch: the first chunks of W are loaded before the wait, X only after it.
#include <algorithm>

#include "common.cuh"
#include "gemm_inv.cuh"
#include "mma.cuh"

namespace kvsk {

namespace {

constexpr int kChunk = inv::kChunk;  // 64
constexpr int kMaxParts = inv::kMaxParts;  // 16
constexpr int kMaxWarps = 16;  // parts x max(1, 8 / parts) for parts <= 16
// Chunks in registers per warp (the one being multiplied, the rest in flight): as many as the registers of a
// 512-thread CTA allow, by the words a chunk takes per lane.
template <int kNt, int kRowsA> __host__ __device__ constexpr int depthFor() {
  return 8 * (kNt + kRowsA) <= 16 ? 4 : 8 * (kNt + kRowsA) <= 24 ? 3 : 2;
}

// out[i] = word t of v as lane (quad, i) holds it, for the lane t = lane % 4 of each quad.
__device__ __forceinline__ uint32_t sel4(const uint32_t (&v)[4], int i) {
  const uint32_t lo = i & 1 ? v[1] : v[0], hi = i & 1 ? v[3] : v[2];
  return i & 2 ? hi : lo;
}
__device__ __forceinline__ void quadTranspose(const uint32_t (&v)[4], uint32_t (&out)[4], int t) {
  uint32_t r[4];
#pragma unroll
  for (int s = 0; s < 4; ++s) {
    // To lane t ^ s its word t ^ s; from lane t ^ s its word t, which is out[t ^ s].
    const uint32_t send = sel4(v, t ^ s);
    r[s] = s == 0 ? send : __shfl_xor_sync(0xffffffffu, send, s);
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) out[i] = sel4(r, t ^ i);
}

struct Args {
  const void* x;  // [m, k]
  const void* w;  // [n, k]
  void* y;        // [m, n]
  int m, n, k;
  int chunks, partChunks, parts;
  int groups;     // n-tile groups: ceil(n / (8 kNt))
  int groupsPerCta;  // J
  int trigger;       // kvsk_gemv_inv_params' trigger
};

// 32 bytes of a row: the chunk's k16 block t (16 elements), as two 16-byte words quads; zeros past k or past the
// matrix's rows.
template <bool kStream>
__device__ __forceinline__ void load32(uint32_t (&lo)[4], uint32_t (&hi)[4], const char* row, int col, int k, bool rowIn) {
  const bool in0 = rowIn && col < k, in1 = rowIn && col + 8 < k;
  uint4 a = make_uint4(0, 0, 0, 0), b = a;
  if (kStream) {
    if (in0) a = loadStreaming(row + (size_t)col * 2);
    if (in1) b = loadStreaming(row + (size_t)(col + 8) * 2);
  } else {
    if (in0) a = __ldg(reinterpret_cast<const uint4*>(row + (size_t)col * 2));
    if (in1) b = __ldg(reinterpret_cast<const uint4*>(row + (size_t)(col + 8) * 2));
  }
  lo[0] = a.x; lo[1] = a.y; lo[2] = a.z; lo[3] = a.w;
  hi[0] = b.x; hi[1] = b.y; hi[2] = b.z; hi[3] = b.w;
}

// One chunk's operands in registers, as loaded (before the quad exchange).
template <int kNt, int kRowsA>
struct Chunk {
  uint32_t w[kNt][2][4];      // n8 tile j, words 0-3 / 4-7 of block t of row 8 j + g
  uint32_t x[kRowsA][2][4];   // A rows g (and g + 8)
};

template <typename T, int kNt, int kRowsA>
__device__ __forceinline__ void loadW(Chunk<kNt, kRowsA>& c, const Args& p, int n0, int chunk, int g, int t) {
  const char* W = static_cast<const char*>(p.w);
  const int col = chunk * kChunk + 16 * t;
#pragma unroll
  for (int j = 0; j < kNt; ++j) {
    const int row = n0 + 8 * j + g;
    load32<true>(c.w[j][0], c.w[j][1], W + (size_t)min(row, p.n - 1) * p.k * 2, col, p.k, row < p.n);
  }
}

template <typename T, int kNt, int kRowsA>
__device__ __forceinline__ void loadX(Chunk<kNt, kRowsA>& c, const Args& p, int chunk, int g, int t) {
  const char* X = static_cast<const char*>(p.x);
  const int col = chunk * kChunk + 16 * t;
#pragma unroll
  for (int r = 0; r < kRowsA; ++r) {
    const int row = g + 8 * r;
    load32<false>(c.x[r][0], c.x[r][1], X + (size_t)min(row, p.m - 1) * p.k * 2, col, p.k, row < p.m);
  }
}

// acc[j] += the chunk's four mmas in order (block i: k elements 16 i .. 16 i + 15).
template <typename T, int kNt, int kRowsA>
__device__ __forceinline__ void mmaChunk(float (&acc)[kNt][4], const Chunk<kNt, kRowsA>& c, int t) {
  uint32_t a[4][4];  // [block][fragment register]
  {
    uint32_t o[4];
    quadTranspose(c.x[0][0], o, t);
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i][0] = o[i];
    quadTranspose(c.x[0][1], o, t);
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i][2] = o[i];
    if constexpr (kRowsA > 1) {
      quadTranspose(c.x[1][0], o, t);
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i][1] = o[i];
      quadTranspose(c.x[1][1], o, t);
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i][3] = o[i];
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i][1] = a[i][3] = 0u;  // rows g + 8 >= M: zeros, as gemm_inv's padding
    }
  }
#pragma unroll
  for (int j = 0; j < kNt; ++j) {
    uint32_t b0[4], b1[4];
    quadTranspose(c.w[j][0], b0, t);
    quadTranspose(c.w[j][1], b1, t);
#pragma unroll
    for (int i = 0; i < 4; ++i) mma16816<T>(acc[j], a[i], b0[i], b1[i]);
  }
}

template <typename T, int kNt, int kRowsA>
__global__ void __launch_bounds__(512) gemvInvKernel(const Args p) {
  constexpr int kDepth = depthFor<kNt, kRowsA>();
  __shared__ float sums[kMaxWarps][kNt * 8 * 16];  // [warp][n8 tile j][row 0..15][col 0..7]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int q = warp % p.parts, jg = warp / p.parts;
  const int group = blockIdx.x * p.groupsPerCta + jg;
  const int n0 = group * 8 * kNt;
  const bool active = group < p.groups;
  const int c0 = q * p.partChunks, c1 = min(p.chunks, c0 + p.partChunks);

  float acc[kNt][4];
#pragma unroll
  for (int j = 0; j < kNt; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;

  Chunk<kNt, kRowsA> buf[kDepth];
  // The first chunks of W before the programmatic-launch wait (immutable); X only after it.
#pragma unroll
  for (int s = 0; s < kDepth; ++s)
    if (active && c0 + s < c1) loadW<T>(buf[s], p, n0, c0 + s, g, t);
  pdlWait();
  if (p.trigger == KVSK_PDL_TRIGGER_EARLY) pdlTrigger();
#pragma unroll
  for (int s = 0; s < kDepth; ++s)
    if (active && c0 + s < c1) loadX<T>(buf[s], p, c0 + s, g, t);

  if (active) {
    for (int c = c0; c < c1; c += kDepth) {
#pragma unroll
      for (int s = 0; s < kDepth; ++s) {
        if (c + s >= c1) break;
        mmaChunk<T>(acc, buf[s], t);
        const int next = c + s + kDepth;
        if (next < c1) {
          loadW<T>(buf[s], p, n0, next, g, t);
          loadX<T>(buf[s], p, next, g, t);
        }
      }
    }
  }

  if (p.trigger == KVSK_PDL_TRIGGER_LATE) pdlTrigger();  // every load of X and W issued and consumed
  // C fragment: [0], [1] = row g, columns 2t, 2t + 1 of the n8 tile; [2], [3] = row g + 8.
  float* mine = sums[warp];
#pragma unroll
  for (int j = 0; j < kNt; ++j) {
    mine[j * 128 + g * 8 + 2 * t] = acc[j][0];
    mine[j * 128 + g * 8 + 2 * t + 1] = acc[j][1];
    mine[j * 128 + (g + 8) * 8 + 2 * t] = acc[j][2];
    mine[j * 128 + (g + 8) * 8 + 2 * t + 1] = acc[j][3];
  }
  __syncthreads();
  // One thread per (group, tile, row < M, column): the partitions' sums added to zero in partition order.
  const int outputs = p.groupsPerCta * kNt * 8 * p.m;
  T* Y = static_cast<T*>(p.y);
  for (int i = threadIdx.x; i < outputs; i += blockDim.x) {
    const int col = i % (kNt * 8), row = i / (kNt * 8) % p.m, gj = i / (kNt * 8 * p.m);
    const int n = (blockIdx.x * p.groupsPerCta + gj) * 8 * kNt + col;
    if (n >= p.n) continue;
    const int j = col / 8, cc = col % 8;
    float v = 0.f;
    for (int qq = 0; qq < p.parts; ++qq) v += sums[gj * p.parts + qq][j * 128 + row * 8 + cc];
    Y[(size_t)row * p.n + n] = fromF<T>(v);
  }
}

using inv::ceilDiv;
using inv::partChunksOf;
using inv::partsOf;

// n8 tiles per warp by default: 2 (GPU run 15, kvserve_kernel_bench gemv-inv: single launches at M = 1 with 2 took
// 0.66-0.88x the time of 1 on q/k/v, gate/up and o, the same on down). Two later versions of this kernel were
// slower: asking L2 for W chunks ahead inside the loop slowed every shape, and keeping only W in the ring (X one
// chunk ahead) slowed o and down and, inside the engine's step, q/k/v and o.
constexpr int kDefaultTilesPerWarp = 2;

template <typename T, int kNt>
cudaError_t launchNt(Args a, cudaStream_t stream) {
  a.groups = ceilDiv(a.n, 8 * kNt);
  const dim3 grid(ceilDiv(a.groups, a.groupsPerCta));
  const int threads = 32 * a.parts * a.groupsPerCta;
  const bool pdl = pdlEnabled() && a.trigger != KVSK_PDL_TRIGGER_OFF;
  return a.m > 8 ? launchWith(pdl, gemvInvKernel<T, kNt, 2>, grid, threads, 0, stream, a)
                 : launchWith(pdl, gemvInvKernel<T, kNt, 1>, grid, threads, 0, stream, a);
}

}  // namespace

}  // namespace kvsk

extern "C" int kvsk_gemv_inv_supported(int m, int n, int k, kvsk_dtype dtype, int splits) {
  if (!kvsk_gemm_inv_supported(n, k, dtype) || m < 1 || m > KVSK_GEMV_INV_MAX_M || splits < 1) return 0;
  return kvsk::inv::partsOf(k, splits) <= kvsk::kMaxParts;
}

extern "C" cudaError_t kvsk_gemv_inv(const kvsk_gemv_inv_params* p, cudaStream_t stream) {
  using namespace kvsk;
  if (!kvsk_gemv_inv_supported(p->m, p->n, p->k, p->dtype, p->splits)) return cudaErrorNotSupported;
  if ((reinterpret_cast<uintptr_t>(p->x) | reinterpret_cast<uintptr_t>(p->w)) % 16 != 0) return cudaErrorInvalidValue;
  if (p->tilesPerWarp != 0 && p->tilesPerWarp != 1 && p->tilesPerWarp != 2) return cudaErrorInvalidValue;
  if (p->trigger < KVSK_PDL_TRIGGER_EARLY || p->trigger > KVSK_PDL_TRIGGER_OFF) return cudaErrorInvalidValue;
  Args a{};
  a.x = p->x;
  a.w = p->w;
  a.y = p->y;
  a.m = p->m;
  a.n = p->n;
  a.k = p->k;
  a.chunks = inv::chunksOf(p->k);
  a.partChunks = partChunksOf(p->k, p->splits);
  a.parts = partsOf(p->k, p->splits);
  a.groupsPerCta = std::max(1, 8 / a.parts);
  a.trigger = p->trigger;
  const int nt = p->tilesPerWarp != 0 ? p->tilesPerWarp : kDefaultTilesPerWarp;
  if (p->dtype == KVSK_BF16)
    return nt == 2 ? launchNt<__nv_bfloat16, 2>(a, stream) : launchNt<__nv_bfloat16, 1>(a, stream);
  return nt == 2 ? launchNt<__half, 2>(a, stream) : launchNt<__half, 1>(a, stream);
}
