// The body of the skinny bf16/f16 GEMM for decode (M <= 8), shared by the plain kernel (gemv.cu) and the
// ones with a fused epilogue (gemv_fused.cu): Y[M, N] = X[M, K] W[N, K]^T, float32 sums. Memory bound: W is
// read exactly once, streamed past L1 (ld.global.nc.L1::no_allocate) so that the few rows of X stay in L1
// for every warp of the SM.
//
// CTA = 4 warps owning kRows (1, 2 or 4) rows of W, which rows being the caller's choice (a row map): its
// 128 threads walk the 16-byte chunks of those rows (thread i takes chunks i, i + 128, ...: each warp reads
// 512 contiguous bytes of a row per step, coalesced), kUnroll chunks deep, so kRows * kUnroll (up to 16)
// independent 16-byte loads are in flight per thread even when N is small (qkv, o, down: 4096-6144 rows).
// Fewer rows per CTA mean fewer registers, more resident CTAs and a finer last wave: the GEMM runner times
// each (gemm.cc), as the grid of 1024-1536 CTAs of 4 rows fills an H200 in 1.5-2.3 waves and its partial
// last wave costs 20-25% of a small weight's time. Launched with programmatic dependent launch: the weight
// stream starts before the previous kernel (the norm, attention) has finished.
//
// Each (row, m) sum is a thread's chunks in K order, a fixed xor-shuffle tree over the warp, then the four
// warps' sums in warp order (finalSum): deterministic, and a row's result depends only on its own row of W
// and of X — not on M, kRows, the row map or the CTA it lands in — so a fused kernel's rows are bitwise the
// plain kernel's. Its reduction order differs from cuBLASLt's, so the batch-invariant mode never uses it.
#pragma once
#include <type_traits>

#include "common.cuh"

namespace kvsk {
namespace gemv {

constexpr int kWarps = 4, kThreads = kWarps * 32;
// Chunks per row in flight per thread: 4, or 2 above M = 4 (registers: kRows * kUnroll loads + kRows * M sums).
template <int M> __host__ __device__ constexpr int unrollFor() { return M <= 4 ? 4 : 2; }

// w[u][r] = chunk c + kThreads * u of row r.
template <int kUnroll, int kRows, typename T>
__device__ __forceinline__ void loadChunks(uint4 (&w)[kUnroll][kRows], const T* const (&wRow)[kRows], int c) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u)
#pragma unroll
    for (int r = 0; r < kRows; ++r) w[u][r] = loadStreaming(wRow[r] + (size_t)(c + kThreads * u) * 8);
}

// Two packed 16-bit values as floats.
template <typename T> __device__ __forceinline__ float2 unpack2(uint32_t v);
template <> __device__ __forceinline__ float2 unpack2<__nv_bfloat16>(uint32_t v) {
  return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
}
template <> __device__ __forceinline__ float2 unpack2<__half>(uint32_t v) {
  __half2 h;
  memcpy(&h, &v, 4);
  return __half22float2(h);
}

// acc += <w, x> over 8 elements, in element order.
template <typename T>
__device__ __forceinline__ float dot8(const uint4& w, const uint4& x, float acc) {
  const uint32_t ws[4] = {w.x, w.y, w.z, w.w}, xs[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 a = unpack2<T>(ws[i]), b = unpack2<T>(xs[i]);
    acc = fmaf(a.x, b.x, acc);
    acc = fmaf(a.y, b.y, acc);
  }
  return acc;
}

// The sums of rows wRow[0 .. kRows) of W ([k] each, 16-byte aligned) against X [M, k]: on return (after a
// __syncthreads) partial[w][r * M + m] holds warp w's part of row r's sum for token m; finalSum adds them.
// Waits on the previous kernel (pdlWait) after its first weight loads and lets the next one launch as `trigger`
// (kvsk_pdl_trigger) says: right after the wait, or after the loops.
template <typename T, int M, int kRows>
__device__ __forceinline__ void rowSums(const T* const (&wRow)[kRows], const T* X, int k,
                                        float (&partial)[kWarps][kRows * M], int trigger) {
  constexpr int kUnroll = unrollFor<M>();
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int chunks = k / 8;  // 16-byte chunks per row
  float acc[kRows][M];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < M; ++m) acc[r][m] = 0.f;

  // Before waiting on the previous kernel (programmatic dependent launch): ask L2 for this CTA's rows of W
  // (immutable) and load the first chunks into registers, so that the weight stream is already flowing when
  // X becomes readable. A CTA that starts late gets the same head start on its own loads.
  for (int b = tid * 128; b < k * (int)sizeof(T); b += kThreads * 128)
#pragma unroll
    for (int r = 0; r < kRows; ++r) prefetchL2(reinterpret_cast<const char*>(wRow[r]) + b);
  int c = tid;
  bool more = c + kThreads * (kUnroll - 1) < chunks;
  uint4 w[kUnroll][kRows];
  if (more) loadChunks<kUnroll, kRows>(w, wRow, c);
  pdlWait();
  if (trigger == KVSK_PDL_TRIGGER_EARLY) pdlTrigger();
  while (more) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4 x = __ldg(reinterpret_cast<const uint4*>(X + (size_t)m * k) + c + kThreads * u);
#pragma unroll
        for (int r = 0; r < kRows; ++r) acc[r][m] = dot8<T>(w[u][r], x, acc[r][m]);
      }
    c += kThreads * kUnroll;
    more = c + kThreads * (kUnroll - 1) < chunks;
    if (more) loadChunks<kUnroll, kRows>(w, wRow, c);
  }
  for (; c < chunks; c += kThreads) {
    uint4 wt[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) wt[r] = loadStreaming(wRow[r] + (size_t)c * 8);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const uint4 x = __ldg(reinterpret_cast<const uint4*>(X + (size_t)m * k) + c);
#pragma unroll
      for (int r = 0; r < kRows; ++r) acc[r][m] = dot8<T>(wt[r], x, acc[r][m]);
    }
  }
  if (trigger == KVSK_PDL_TRIGGER_LATE) pdlTrigger();
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float v = warpSum(acc[r][m]);
      if (lane == 0) partial[warp][r * M + m] = v;
    }
  __syncthreads();
}

// Entry i (= r * M + m) of rowSums' result: the four warps' parts in warp order.
template <int N>
__device__ __forceinline__ float finalSum(const float (&partial)[kWarps][N], int i) {
  float v = partial[0][i];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) v += partial[w][i];
  return v;
}

// f(std::integral_constant<int, M>{}) for m in [1, KVSK_GEMV_MAX_M]: the kernels' M as a template parameter.
template <typename F>
cudaError_t withM(int m, const F& f) {
  switch (m) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 7: return f(std::integral_constant<int, 7>{});
    case 8: return f(std::integral_constant<int, 8>{});
    default: return cudaErrorNotSupported;
  }
}

}  // namespace gemv
}  // namespace kvsk
