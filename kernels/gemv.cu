// Skinny GEMM for decode: Y[M, N] = X[M, K] W[N, K]^T with M <= 8, bf16/f16 in and out, float32 sums. A CTA
// owns kRows (rowsPerCta: 1, 2 or 4) consecutive rows of W; the loop and the fixed order of every row's sum
// are gemv.cuh's (shared with the fused-epilogue kernels of gemv_fused.cu).
#include "gemv.cuh"

namespace kvsk {

namespace {

using namespace gemv;

template <typename T, int M, int kRows>
__global__ void __launch_bounds__(kThreads) gemvKernel(kvsk_gemv_params p) {
  __shared__ float partial[kWarps][kRows * M];
  const int n0 = blockIdx.x * kRows;
  const T* W = static_cast<const T*>(p.w);
  const T* wRow[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) wRow[r] = W + (size_t)min(n0 + r, p.n - 1) * p.k;  // tail rows re-read row n-1
  rowSums<T, M, kRows>(wRow, static_cast<const T*>(p.x), p.k, partial, p.trigger);
  const int tid = threadIdx.x;
  if (tid < kRows * M) {
    const int r = tid / M, m = tid % M;
    if (n0 + r < p.n) static_cast<T*>(p.y)[(size_t)m * p.n + n0 + r] = fromF<T>(finalSum(partial, tid));
  }
}

template <typename T, int kRows>
cudaError_t launchGemvRows(const kvsk_gemv_params& p, cudaStream_t stream) {
  const dim3 grid((p.n + kRows - 1) / kRows);
  const bool pdl = pdlEnabled() && p.trigger != KVSK_PDL_TRIGGER_OFF;
  return withM(p.m, [&](auto m) { return launchWith(pdl, gemvKernel<T, decltype(m)::value, kRows>, grid, kThreads, 0, stream, p); });
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
  if (p->trigger < KVSK_PDL_TRIGGER_EARLY || p->trigger > KVSK_PDL_TRIGGER_OFF) return cudaErrorInvalidValue;
  if (p->dtype == KVSK_BF16) return kvsk::launchGemv<__nv_bfloat16>(*p, stream);
  return kvsk::launchGemv<__half>(*p, stream);
}
