// The decode GEMV (gemv.cuh) with the kernel that follows it in the forward pass fused into its epilogue, so
// the GEMM's output never goes to memory and a decode step launches one kernel less per fusion:
//   qkv projection + RoPE + KV-cache write (rope_cache.cu)    gate/up projection + SiLU-and-mul (silu_mul.cu)
// Both need a row together with a partner row, which the row map puts in the same CTA (no weight
// permutation): RoPE rotates (i, i + D/2) of a head, SiLU-and-mul pairs gate row i with up row I + i. A CTA
// owns kPairs (1 or 2) pairs, lower rows first: rows [0, kPairs) of rowSums are the pairs' first rows, rows
// [kPairs, 2 kPairs) their partners. Every row's sum is gemv.cuh's, in its one fixed order, and the epilogue
// rounds it to the dtype (what the plain GEMV stores) before doing exactly what the unfused kernel does with
// that value (gemv_epilogue.cuh, shared with the FP8 GEMV's fused kernels), so the results are bitwise those of
// kvsk_gemv followed by kvsk_rope_cache / kvsk_silu_mul (test/gpu/native/gemv_fuse_test.cu checks it).
#include "gemv.cuh"
#include "gemv_epilogue.cuh"

namespace kvsk {

namespace {

using namespace gemv;

// Pairs per CTA for a GEMV tuned at rowsPerCta rows: 2 rows (one pair) at 1 or 2, 4 rows (two) at 4.
int pairsFor(int rowsPerCta) { return rowsPerCta == 1 || rowsPerCta == 2 ? 1 : 2; }

// qkv rows [(Hq + 2 Hkv) D] as RoPE pairs (ropePairRow).
template <typename T, int M, int kPairs, bool FP8>
__global__ void __launch_bounds__(kThreads) gemvRopeCacheKernel(kvsk_gemv_params g, kvsk_rope_cache_params r) {
  constexpr int kRows = 2 * kPairs;
  __shared__ float partial[kWarps][kRows * M];
  const int half = r.headDim / 2, pairs = g.n / 2;
  const int p0 = blockIdx.x * kPairs;
  const T* W = static_cast<const T*>(g.w);
  const T* wRow[kRows];
#pragma unroll
  for (int j = 0; j < kPairs; ++j) {
    const int p = min(p0 + j, pairs - 1);  // a tail pair re-reads the last one and writes nothing
    const int lo = ropePairRow(r.headDim, p);
    wRow[j] = W + (size_t)lo * g.k;
    wRow[kPairs + j] = W + (size_t)(lo + half) * g.k;
  }
  rowSums<T, M, kRows>(wRow, static_cast<const T*>(g.x), g.k, partial, g.trigger);

  const int tid = threadIdx.x;
  if (tid >= kPairs * M) return;
  const int j = tid / M, m = tid % M, p = p0 + j;
  if (p >= pairs) return;
  // What kvsk_gemv stores ...
  const float a = roundTo<T>(finalSum(partial, j * M + m)), b = roundTo<T>(finalSum(partial, (kPairs + j) * M + m));
  ropeCachePair<T, FP8>(r, m, p, a, b);  // ... and what kvsk_rope_cache does with it
}

// gate/up rows [2 I] as pairs (siluMulPair).
template <typename T, int M, int kPairs>
__global__ void __launch_bounds__(kThreads) gemvSiluMulKernel(kvsk_gemv_params g, kvsk_silu_mul_params s) {
  constexpr int kRows = 2 * kPairs;
  __shared__ float partial[kWarps][kRows * M];
  const int I = s.intermediate, i0 = blockIdx.x * kPairs;
  const T* W = static_cast<const T*>(g.w);
  const T* wRow[kRows];
#pragma unroll
  for (int j = 0; j < kPairs; ++j) {
    const int i = min(i0 + j, I - 1);  // a tail pair re-reads the last one and writes nothing
    wRow[j] = W + (size_t)i * g.k;
    wRow[kPairs + j] = W + (size_t)(I + i) * g.k;
  }
  rowSums<T, M, kRows>(wRow, static_cast<const T*>(g.x), g.k, partial, g.trigger);

  const int tid = threadIdx.x;
  if (tid >= kPairs * M) return;
  const int j = tid / M, m = tid % M, i = i0 + j;
  if (i >= I) return;
  const T gate = fromF<T>(finalSum(partial, j * M + m)), up = fromF<T>(finalSum(partial, (kPairs + j) * M + m));
  siluMulPair<T>(s, m, i, gate, up);
}

template <typename T, bool FP8>
cudaError_t launchRopeCache(const kvsk_gemv_params& g, const kvsk_rope_cache_params& r, cudaStream_t stream) {
  const int pairs = g.n / 2, kp = pairsFor(g.rowsPerCta);
  const dim3 grid((pairs + kp - 1) / kp);
  const bool pdl = pdlEnabled() && g.trigger != KVSK_PDL_TRIGGER_OFF;
  return withM(g.m, [&](auto m) {
    constexpr int M = decltype(m)::value;
    return kp == 1 ? launchWith(pdl, gemvRopeCacheKernel<T, M, 1, FP8>, grid, kThreads, 0, stream, g, r)
                   : launchWith(pdl, gemvRopeCacheKernel<T, M, 2, FP8>, grid, kThreads, 0, stream, g, r);
  });
}

template <typename T>
cudaError_t launchSiluMul(const kvsk_gemv_params& g, const kvsk_silu_mul_params& s, cudaStream_t stream) {
  const int kp = pairsFor(g.rowsPerCta);
  const dim3 grid((s.intermediate + kp - 1) / kp);
  const bool pdl = pdlEnabled() && g.trigger != KVSK_PDL_TRIGGER_OFF;
  return withM(g.m, [&](auto m) {
    constexpr int M = decltype(m)::value;
    return kp == 1 ? launchWith(pdl, gemvSiluMulKernel<T, M, 1>, grid, kThreads, 0, stream, g, s)
                   : launchWith(pdl, gemvSiluMulKernel<T, M, 2>, grid, kThreads, 0, stream, g, s);
  });
}

bool gemvArgsOk(const kvsk_gemv_params* g) {
  return kvsk_gemv_supported(g->m, g->n, g->k, g->dtype) &&
         (g->rowsPerCta == 0 || g->rowsPerCta == 1 || g->rowsPerCta == 2 || g->rowsPerCta == 4) &&
         g->trigger >= KVSK_PDL_TRIGGER_EARLY && g->trigger <= KVSK_PDL_TRIGGER_OFF;
}

}  // namespace

}  // namespace kvsk

extern "C" int kvsk_gemv_rope_cache_supported(const kvsk_gemv_params* g, const kvsk_rope_cache_params* r) {
  return kvsk::gemvArgsOk(g) && r->dtype == g->dtype && r->numTokens == g->m && r->headDim >= 2 &&
         r->headDim % 2 == 0 && r->numHeads >= 1 && r->numKvHeads >= 1 &&
         (int64_t)(r->numHeads + 2 * r->numKvHeads) * r->headDim == g->n && !r->qNorm && !r->kNorm &&
         (r->cacheDtype == KVSK_KV_SAME || r->cacheDtype == KVSK_KV_FP8_E4M3);
}

extern "C" cudaError_t kvsk_gemv_rope_cache(const kvsk_gemv_params* g, const kvsk_rope_cache_params* r,
                                            cudaStream_t stream) {
  if (!kvsk_gemv_rope_cache_supported(g, r)) return cudaErrorNotSupported;
  if ((reinterpret_cast<uintptr_t>(g->x) | reinterpret_cast<uintptr_t>(g->w)) % 16 != 0) return cudaErrorInvalidValue;
  const bool fp8 = r->cacheDtype == KVSK_KV_FP8_E4M3;
  if (fp8 && (!kvsk::validKvScale(r->kScale) || !kvsk::validKvScale(r->vScale))) return cudaErrorInvalidValue;
  if (g->dtype == KVSK_BF16)
    return fp8 ? kvsk::launchRopeCache<__nv_bfloat16, true>(*g, *r, stream) : kvsk::launchRopeCache<__nv_bfloat16, false>(*g, *r, stream);
  return fp8 ? kvsk::launchRopeCache<__half, true>(*g, *r, stream) : kvsk::launchRopeCache<__half, false>(*g, *r, stream);
}

extern "C" int kvsk_gemv_silu_mul_supported(const kvsk_gemv_params* g, const kvsk_silu_mul_params* s) {
  return kvsk::gemvArgsOk(g) && s->dtype == g->dtype && s->numTokens == g->m && s->intermediate >= 1 &&
         (int64_t)2 * s->intermediate == g->n && s->out != nullptr;
}

extern "C" cudaError_t kvsk_gemv_silu_mul(const kvsk_gemv_params* g, const kvsk_silu_mul_params* s, cudaStream_t stream) {
  if (!kvsk_gemv_silu_mul_supported(g, s)) return cudaErrorNotSupported;
  if ((reinterpret_cast<uintptr_t>(g->x) | reinterpret_cast<uintptr_t>(g->w)) % 16 != 0) return cudaErrorInvalidValue;
  if (g->dtype == KVSK_BF16) return kvsk::launchSiluMul<__nv_bfloat16>(*g, *s, stream);
  return kvsk::launchSiluMul<__half>(*g, *s, stream);
}
