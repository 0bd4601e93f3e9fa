// Skinny GEMM for decode: Y[M, N] = X[M, K] W[N, K]^T with M <= 8, bf16/f16 in and out, float32 sums.
// Memory bound: W is read exactly once, streamed past L1 (ld.global.nc.L1::no_allocate) so that the few
// rows of X stay in L1 for every warp of the SM.
//
// CTA = 4 warps owning kRows (1, 2 or 4: rowsPerCta) consecutive rows of W; its 128 threads walk the 16-byte chunks of those rows
// (thread i takes chunks i, i + 128, ...: each warp reads 512 contiguous bytes of a row per step, coalesced),
// kUnroll chunks deep, so kRows * kUnroll (up to 16) independent 16-byte loads are in flight per thread even when N is
// small (qkv, o, down: 4096-6144 rows). Fewer rows per CTA mean fewer registers, more resident CTAs and a
// finer last wave: the GEMM runner times each (gemm.cc), as the grid of 1024-1536 CTAs of 4 rows fills an H200
// in 1.5-2.3 waves and its partial last wave costs 20-25% of a small weight's time. Launched with programmatic dependent launch: the weight stream starts
// before the previous kernel (the norm, attention) has finished. Each (row, m) sum is a thread's chunks in K order, a fixed
// xor-shuffle tree over the warp, then the four warps' sums in warp order: deterministic, and a row's result
// depends only on its own row of X (not on M) — but its reduction order differs from cuBLASLt's, so the
// batch-invariant mode never uses it.
#include "common.cuh"

namespace kvsk {

namespace {

constexpr int kGemvWarps = 4, kThreads = kGemvWarps * 32;
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

template <typename T, int M, int kRows>
__global__ void __launch_bounds__(kThreads) gemvKernel(kvsk_gemv_params p) {
  constexpr int kUnroll = unrollFor<M>();
  __shared__ float partial[kGemvWarps][kRows * M];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int n0 = blockIdx.x * kRows;
  const int chunks = p.k / 8;  // 16-byte chunks per row
  const T* W = static_cast<const T*>(p.w);
  const T* X = static_cast<const T*>(p.x);
  const T* wRow[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) wRow[r] = W + (size_t)min(n0 + r, p.n - 1) * p.k;  // tail rows re-read row n-1
  float acc[kRows][M];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < M; ++m) acc[r][m] = 0.f;

  // Before waiting on the previous kernel (programmatic dependent launch): ask L2 for this CTA's rows of W
  // (immutable) and load the first chunks into registers, so that the weight stream is already flowing when
  // X becomes readable. A CTA that starts late gets the same head start on its own loads.
  for (int b = tid * 128; b < p.k * (int)sizeof(T); b += kThreads * 128)
#pragma unroll
    for (int r = 0; r < kRows; ++r) prefetchL2(reinterpret_cast<const char*>(wRow[r]) + b);
  int c = tid;
  bool more = c + kThreads * (kUnroll - 1) < chunks;
  uint4 w[kUnroll][kRows];
  if (more) loadChunks<kUnroll, kRows>(w, wRow, c);
  pdlWait();
  pdlTrigger();
  while (more) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4 x = __ldg(reinterpret_cast<const uint4*>(X + (size_t)m * p.k) + c + kThreads * u);
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
      const uint4 x = __ldg(reinterpret_cast<const uint4*>(X + (size_t)m * p.k) + c);
#pragma unroll
      for (int r = 0; r < kRows; ++r) acc[r][m] = dot8<T>(wt[r], x, acc[r][m]);
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float v = warpSum(acc[r][m]);
      if (lane == 0) partial[warp][r * M + m] = v;
    }
  __syncthreads();
  if (tid < kRows * M) {
    const int r = tid / M, m = tid % M;
    float v = partial[0][tid];
#pragma unroll
    for (int w = 1; w < kGemvWarps; ++w) v += partial[w][tid];
    if (n0 + r < p.n) static_cast<T*>(p.y)[(size_t)m * p.n + n0 + r] = fromF<T>(v);
  }
}

template <typename T, int kRows>
cudaError_t launchGemvRows(const kvsk_gemv_params& p, cudaStream_t stream) {
  const dim3 grid((p.n + kRows - 1) / kRows);
  const dim3 block(kThreads);
  switch (p.m) {
#define KVSK_GEMV_CASE(MM) case MM: return launch(gemvKernel<T, MM, kRows>, grid, block, 0, stream, p);
    KVSK_GEMV_CASE(1) KVSK_GEMV_CASE(2) KVSK_GEMV_CASE(3) KVSK_GEMV_CASE(4)
    KVSK_GEMV_CASE(5) KVSK_GEMV_CASE(6) KVSK_GEMV_CASE(7) KVSK_GEMV_CASE(8)
#undef KVSK_GEMV_CASE
    default: return cudaErrorNotSupported;
  }
}

template <typename T>
cudaError_t launchGemv(const kvsk_gemv_params& p, cudaStream_t stream) {
  switch (p.rowsPerCta) {
    case 1: return launchGemvRows<T, 1>(p, stream);
    case 2: return launchGemvRows<T, 2>(p, stream);
    case 0:
    case 4: return launchGemvRows<T, 4>(p, stream);
    default: return cudaErrorNotSupported;
  }
}

}  // namespace

}  // namespace kvsk

extern "C" int kvsk_gemv_supported(int m, int n, int k, kvsk_dtype dtype) {
  return (dtype == KVSK_BF16 || dtype == KVSK_F16) && m >= 1 && m <= KVSK_GEMV_MAX_M && n >= 1 && k >= 8 &&
         k % 8 == 0;
}

extern "C" cudaError_t kvsk_gemv(const kvsk_gemv_params* p, cudaStream_t stream) {
  if (!kvsk_gemv_supported(p->m, p->n, p->k, p->dtype)) return cudaErrorNotSupported;
  if ((reinterpret_cast<uintptr_t>(p->x) | reinterpret_cast<uintptr_t>(p->w)) % 16 != 0) return cudaErrorInvalidValue;
  if (p->dtype == KVSK_BF16) return kvsk::launchGemv<__nv_bfloat16>(*p, stream);
  return kvsk::launchGemv<__half>(*p, stream);
}
