// The decode GEMV with its weight stream cut evenly over one wave of CTAs (kvsk_gemv_even): Y[M, N] = X[M, K]
// W[N, K]^T, M <= 8, bf16/f16, float32 sums. The plain GEMV (gemv.cu) gives every CTA 1-4 whole rows, and its
// grid of 1024-1536 CTAs fills an H200 in 1.5-2.3 waves. Here W is read as one row-major sequence of 16-byte
// chunks, cut into G equal contiguous pieces (G = the resident CTAs of one wave, kvsk_gemv_even_ctas): CTA g
// streams chunks [g C / G, (g + 1) C / G) of the C = N K / 8, many whole rows and, at its two ends, part of a
// row.
//
// A CTA (gemv.cuh's 4 warps) walks its rows kRows at a time (a group), so that each x chunk it loads serves
// kRows rows. Step j of a row is its chunks 128 j + tid (a warp reads 512 contiguous bytes); a batch is
// kUnroll steps of every row of the group, kRows * kUnroll 16-byte loads in flight per thread (16 up to M = 3,
// 8 above). The next batch, of this group or the next, is loaded before the current group's
// sums are reduced, so the stream does not stop at row ends. Chunks outside the piece are neither loaded nor
// added.
//
// Sums. Thread tid adds its chunks of a row (128 j + tid, j ascending; dot8 in element order), the warp's
// threads meet in gemv.cuh's xor tree, the four warps in warp order (finalSum): for a row wholly inside a
// piece that is exactly gemv.cuh's order, so those rows are bitwise kvsk_gemv's. A row cut between pieces
// gets that sum over each piece's part, written as float32 to the workspace; the last of its CTAs to arrive
// (a counter per row, indexed by the CTA holding the row's first chunk and reset by the last one, so CUDA
// graphs replay it) adds the parts in CTA order (left piece + right piece) and writes Y. A row's bits thus
// depend on its row of x and on N, K and the grid only: not on M, the other rows of X or the order CTAs run.
//
// Programmatic dependent launch as gemv.cuh: L2 is asked for the first kPrefetchBytes of the piece and the
// first batch is loaded before the wait; X, Y and the workspace are touched only after it.
#include <algorithm>

#include "gemv.cuh"

namespace kvsk {

namespace {

using namespace gemv;

constexpr int kRows = 4;                 // rows of a group: the rows one x chunk serves
constexpr int kPrefetchBytes = 32 << 10;  // of a CTA's piece, asked of L2 before the programmatic-launch wait
// Registers: kRows * kUnroll loads + kRows * M sums + x; <= 128 for 4 CTAs (16 warps) per SM at every M, so
// that the one-wave grid is the same at every M.
constexpr int kMinCtasPerSm = 4;
// Steps per batch: 4 (16 loads in flight per thread) up to M = 3, 2 above (M = 4 at 4 spills on sm_80). Only the
// number of loads in flight: the sums are the same.
template <int M> __host__ __device__ constexpr int evenUnroll() { return M <= 3 ? 4 : 2; }

struct EvenArgs {
  const void* x;    // [m, k]
  const void* w;    // [n, k]
  void* y;          // [m, n]
  int n, k;
  int cpr;          // 16-byte chunks per row: k / 8
  int64_t chunks;   // n * cpr
  int* records;     // [grid][kRecordWords]: kvsk_gemv_even_workspace_bytes' layout
};

// The workspace, one record per CTA g, the same layout for every grid (so shapes of other grids share it):
// word 0 the arrival counter of the cut row whose first chunk CTA g holds (zero between launches), words
// 4 .. 4 + 2 KVSK_GEMV_MAX_M its float32 parts of its first (slot 0) and last (slot 1) row, M of each.
constexpr int kRecordWords = 4 + 2 * KVSK_GEMV_MAX_M;
__device__ int* counterOf(int* records, int g) { return records + (size_t)g * kRecordWords; }
__device__ float* partOf(int* records, int g, int slot, int m) {
  return reinterpret_cast<float*>(records + (size_t)g * kRecordWords + 4) + slot * KVSK_GEMV_MAX_M + m;
}

// The first chunk of CTA g's piece (of G); CTA g holds [pieceStart(g), pieceStart(g + 1)), never empty for G <= C.
__host__ __device__ int64_t pieceStart(int g, int G, int64_t chunks) { return (int64_t)g * chunks / G; }
// The CTA whose piece holds chunk c: the largest g with pieceStart(g) <= c.
__host__ __device__ int ctaOf(int64_t c, int G, int64_t chunks) { return (int)(((c + 1) * G - 1) / chunks); }
// Where CTA g keeps its part of a cut row: slot 0 when the row is its piece's first, else 1 (its last).
__host__ __device__ int slotOf(int g, int row, int G, int64_t chunks, int cpr) {
  return pieceStart(g, G, chunks) / cpr == row ? 0 : 1;
}

// Up to kRows consecutive rows of a piece: rows row0 .. row0 + rows - 1 hold chunks [0, cpr) each, except that
// the first starts at lo (the piece's first row may start mid-row) and the last ends at hi; steps [jBegin,
// jEnd) cover them.
struct Group {
  int row0, rows, lo, hi, jBegin, jEnd;
  __host__ __device__ void start(int row, int rEnd, int64_t c0, int64_t c1, int cpr) {
    row0 = row;
    rows = min(kRows, rEnd - row);
    lo = (int)max((int64_t)0, c0 - (int64_t)row * cpr);
    hi = (int)min((int64_t)cpr, c1 - (int64_t)(row + rows - 1) * cpr);
    jBegin = rows > 1 ? 0 : lo / kThreads;
    jEnd = ((rows > 1 ? cpr : hi) + kThreads - 1) / kThreads;
  }
  // Whether chunk col of row row0 + r is in the piece.
  __host__ __device__ bool holds(int r, int col, int cpr) const {
    return r < rows && col >= (r == 0 ? lo : 0) && col < (r == rows - 1 ? hi : cpr);
  }
  // Whether steps [j, j + steps) of all kRows rows hold every chunk they name (no test per chunk needed).
  __host__ __device__ bool whole(int j, int steps, int cpr) const {
    return rows == kRows && lo == 0 && hi == cpr && (j + steps) * kThreads <= cpr;
  }
};

// Steps [j, j + kUnroll) of the group's rows (row r at wRow + r k) into w[u][r]; bit u * kRows + r of the result
// says chunk (u, r) is in the piece (loaded, to be added). A batch of whole rows, all in, skips the tests.
template <int kUnroll, typename T>
__device__ __forceinline__ uint32_t loadBatch(uint4 (&w)[kUnroll][kRows], const Group& grp, const T* wRow, int k,
                                              int cpr, int j, int tid) {
  constexpr uint32_t kAll = (1u << (kUnroll * kRows)) - 1;
  if (grp.whole(j, kUnroll, cpr)) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int r = 0; r < kRows; ++r) w[u][r] = loadStreaming(wRow + (size_t)r * k + (size_t)((j + u) * kThreads + tid) * 8);
    return kAll;
  }
  uint32_t mask = 0;
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int col = (j + u) * kThreads + tid;
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      if (j + u < grp.jEnd && grp.holds(r, col, cpr)) {
        w[u][r] = loadStreaming(wRow + (size_t)r * k + (size_t)col * 8);
        mask |= 1u << (u * kRows + r);
      }
  }
  return mask;
}

// acc[r][m] += the chunks of w that mask marks, against x at their columns, in step order.
template <typename T, int M, int kUnroll>
__device__ __forceinline__ void addBatch(float (&acc)[kRows][M], const uint4 (&w)[kUnroll][kRows], uint32_t mask,
                                         const uint4* X, int cpr, int j, int jEnd, int tid) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    if (j + u >= jEnd) break;
    const int col = min((j + u) * kThreads + tid, cpr - 1);  // past the row's end: a valid address, nothing added
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const uint4 x = __ldg(X + (size_t)m * cpr + col);
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        if (mask >> (u * kRows + r) & 1u) acc[r][m] = dot8<T>(w[u][r], x, acc[r][m]);
    }
  }
}

template <typename T, int M>
__global__ void __launch_bounds__(kThreads, kMinCtasPerSm) gemvEvenKernel(EvenArgs a) {
  constexpr int kUnroll = evenUnroll<M>();
  __shared__ float ring[2][kWarps][kRows * M];  // warp sums of a group, two groups deep (one barrier per group)
  __shared__ int lastCta[2];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, G = gridDim.x, g = blockIdx.x;
  const int cpr = a.cpr;
  const int64_t c0 = pieceStart(g, G, a.chunks), c1 = pieceStart(g + 1, G, a.chunks);
  const int rBegin = (int)(c0 / cpr), rEnd = (int)((c1 - 1) / cpr) + 1;
  const T* W = static_cast<const T*>(a.w);
  const uint4* X = static_cast<const uint4*>(a.x);
  auto cut = [&](int row) { return (int64_t)row * cpr < c0 || (int64_t)(row + 1) * cpr > c1; };

  const char* piece = reinterpret_cast<const char*>(W) + c0 * 16;
  const int64_t prefetch = min((c1 - c0) * 16, (int64_t)kPrefetchBytes);
  for (int64_t b = (int64_t)tid * 128; b < prefetch; b += kThreads * 128) prefetchL2(piece + b);

  Group grp;
  grp.start(rBegin, rEnd, c0, c1, cpr);
  const T* wRow = W + (size_t)rBegin * a.k;  // the group's first row
  int j = grp.jBegin;
  uint4 w[kUnroll][kRows];
  uint32_t mask = loadBatch<kUnroll>(w, grp, wRow, a.k, cpr, j, tid);
  pdlWait();
  pdlTrigger();

  float acc[kRows][M];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < M; ++m) acc[r][m] = 0.f;
  T* Y = static_cast<T*>(a.y);
  for (int buf = 0;; buf ^= 1) {
    // The group's batches; the first batch of the next group is in flight while this one's sums are reduced.
    const int row0 = grp.row0;
    bool more;
    for (;;) {
      addBatch<T, M, kUnroll>(acc, w, mask, X, cpr, j, grp.jEnd, tid);
      j += kUnroll;
      const bool groupDone = j >= grp.jEnd;
      more = !groupDone || row0 + kRows < rEnd;
      if (groupDone && more) {
        grp.start(row0 + kRows, rEnd, c0, c1, cpr);
        wRow += (size_t)kRows * a.k;
        j = grp.jBegin;
      }
      if (more) mask = loadBatch<kUnroll>(w, grp, wRow, a.k, cpr, j, tid);
      if (groupDone) break;
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float v = warpSum(acc[r][m]);
        if (lane == 0) ring[buf][warp][r * M + m] = v;
        acc[r][m] = 0.f;
      }
    __syncthreads();
    if (tid < kRows * M) {
      const int row = row0 + tid / M, m = tid % M;
      if (row < rEnd) {
        const float v = finalSum(ring[buf], tid);
        if (cut(row)) *partOf(a.records, g, slotOf(g, row, G, a.chunks, cpr), m) = v;
        else Y[(size_t)m * a.n + row] = fromF<T>(v);
      }
    }
    if (!more) break;
  }

  // The cut rows (this piece's first and last, at most): the last of a row's CTAs adds the parts in CTA order.
  const bool headCut = cut(rBegin), tailCut = rEnd - 1 > rBegin && cut(rEnd - 1);
  if (!headCut && !tailCut) return;
  __threadfence();  // this CTA's parts are visible device-wide before its arrival is counted
  __syncthreads();
  if (tid < 2) {
    const int row = tid == 0 ? rBegin : rEnd - 1;
    lastCta[tid] = 0;
    if (tid == 0 ? headCut : tailCut) {
      const int gFirst = ctaOf((int64_t)row * cpr, G, a.chunks), gLast = ctaOf((int64_t)(row + 1) * cpr - 1, G, a.chunks);
      lastCta[tid] = atomicAdd(counterOf(a.records, gFirst), 1) == gLast - gFirst;
    }
  }
  __syncthreads();
  if (tid < 2 * M && lastCta[tid / M]) {
    __threadfence();
    const int s = tid / M, m = tid % M, row = s == 0 ? rBegin : rEnd - 1;
    const int gFirst = ctaOf((int64_t)row * cpr, G, a.chunks), gLast = ctaOf((int64_t)(row + 1) * cpr - 1, G, a.chunks);
    float v = 0.f;
    for (int c = gFirst; c <= gLast; ++c) {
      const float part = __ldcg(partOf(a.records, c, slotOf(c, row, G, a.chunks, cpr), m));
      v = c == gFirst ? part : v + part;
    }
    Y[(size_t)m * a.n + row] = fromF<T>(v);
    if (m == 0) *counterOf(a.records, gFirst) = 0;  // every CTA of the row has arrived: ready for the next launch
  }
}

// The fewest CTAs per SM of any instantiation: one grid for every M and dtype, so that a row's bits do not
// depend on M. 0 when the occupancy query fails.
int ctasPerSm() {
  int fewest = 1 << 30;
  auto add = [&](auto kernel) {
    int n = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, 0) != cudaSuccess) n = 0;
    fewest = std::min(fewest, n);
  };
  for (int m = 1; m <= KVSK_GEMV_MAX_M; ++m) {
    withM(m, [&](auto mm) {
      add(gemvEvenKernel<__nv_bfloat16, decltype(mm)::value>);
      add(gemvEvenKernel<__half, decltype(mm)::value>);
      return cudaSuccess;
    });
  }
  return fewest == (1 << 30) ? 0 : fewest;
}

}  // namespace

}  // namespace kvsk

extern "C" int kvsk_gemv_even_ctas(int n, int k, int numSms) {
  static const int perSm = kvsk::ctasPerSm();
  const int64_t chunks = (int64_t)std::max(n, 1) * std::max(k / 8, 1);
  return (int)std::min<int64_t>((int64_t)perSm * std::max(numSms, 1), chunks);
}

extern "C" size_t kvsk_gemv_even_workspace_bytes(int ctas) {
  return (size_t)std::max(ctas, 1) * kvsk::kRecordWords * sizeof(int);
}

extern "C" cudaError_t kvsk_gemv_even(const kvsk_gemv_even_params* p, cudaStream_t stream) {
  using namespace kvsk;
  if (!kvsk_gemv_supported(p->m, p->n, p->k, p->dtype)) return cudaErrorNotSupported;
  if ((reinterpret_cast<uintptr_t>(p->x) | reinterpret_cast<uintptr_t>(p->w)) % 16 != 0 || p->ctas < 1)
    return cudaErrorInvalidValue;
  EvenArgs a{};
  a.x = p->x;
  a.w = p->w;
  a.y = p->y;
  a.n = p->n;
  a.k = p->k;
  a.cpr = p->k / 8;
  a.chunks = (int64_t)p->n * a.cpr;
  const int grid = (int)std::min<int64_t>(p->ctas, a.chunks);
  if (!p->workspace || p->workspaceBytes < kvsk_gemv_even_workspace_bytes(grid) ||
      reinterpret_cast<uintptr_t>(p->workspace) % 16 != 0)
    return cudaErrorInvalidValue;
  a.records = static_cast<int*>(p->workspace);
  return gemv::withM(p->m, [&](auto m) {
    constexpr int M = decltype(m)::value;
    if (p->dtype == KVSK_BF16) return launch(gemvEvenKernel<__nv_bfloat16, M>, dim3(grid), kThreads, 0, stream, a);
    return launch(gemvEvenKernel<__half, M>, dim3(grid), kThreads, 0, stream, a);
  });
}
