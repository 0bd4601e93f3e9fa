// The FP8 GEMV's version 2 (gemv_fp8_v2.cuh) with the kernel that follows it in the forward pass fused into its
// epilogue, as gemv_fused.cu does for the bf16/f16 GEMV, so the GEMM's output never goes to memory and a decode
// step launches one kernel less per fusion:
//   qkv projection + RoPE + KV-cache write (rope_cache.cu)    gate/up projection + SiLU-and-mul (silu_mul.cu)
// Both need a row together with a partner row (RoPE's (i, i + D/2) of a head, gate row i with up row I + i). The
// epilogue places them in the tile's slots r and r + 8 (r < 8: a tile holds 8 pairs, no weight permutation), which
// are the two rows of W8 one lane holds the C fragment of (mma rows g and g + 8), so warp 0's lane (g, t) has both
// sums of pair 8 tile + g for its tokens at once: no exchange, no extra shared memory. Every row's sum is the plain
// kernel's, in its one fixed order; the epilogue multiplies it by wScale and rounds it to the dtype, which is what
// kvsk_gemv_fp8 stores, then does exactly what the unfused kernel does with that value (gemv_epilogue.cuh, shared
// with gemv_fused.cu), so the results are bitwise those of kvsk_gemv_fp8 (version 2) followed by kvsk_rope_cache /
// kvsk_silu_mul (test/gpu/native/gemv_fuse_test.cu checks it).
#include "gemv_epilogue.cuh"
#include "gemv_fp8_v2.cuh"

namespace kvsk {
namespace fp8v2 {

namespace {

// The pair whose first row is in slot 16 tile + r and partner in slot 16 tile + r + 8 (r < 8).
__device__ __forceinline__ int pairOf(int slot) { return (slot >> 4) * 8 + (slot & 7); }
__device__ __forceinline__ bool partnerSlot(int slot) { return (slot & 8) != 0; }

template <typename T, bool FP8>
struct RopeCacheStore {
  kvsk_gemv_fp8_params gemv;
  kvsk_rope_cache_params rope;
  __host__ __device__ int pairs() const { return gemv.n / 2; }
  __host__ __device__ int numTiles() const { return (pairs() + 7) / 8; }
  __device__ __forceinline__ bool live(int slot) const { return pairOf(slot) < pairs(); }
  __device__ __forceinline__ int row(int slot) const {  // a tail pair re-reads the last one and writes nothing
    return ropePairRow(rope.headDim, min(pairOf(slot), pairs() - 1)) + (partnerSlot(slot) ? rope.headDim / 2 : 0);
  }
  __device__ __forceinline__ void store(int slot, int m, float lo, float hi) const {
    const int p = pairOf(slot);
    if (m >= gemv.m || p >= pairs()) return;
    const int a = ropePairRow(rope.headDim, p), b = a + rope.headDim / 2;
    ropeCachePair<T, FP8>(rope, m, p, roundTo<T>(lo * __ldg(gemv.wScale + a)), roundTo<T>(hi * __ldg(gemv.wScale + b)));
  }
};

template <typename T>
struct SiluMulStore {
  kvsk_gemv_fp8_params gemv;
  kvsk_silu_mul_params silu;
  __host__ __device__ int numTiles() const { return (silu.intermediate + 7) / 8; }
  __device__ __forceinline__ bool live(int slot) const { return pairOf(slot) < silu.intermediate; }
  __device__ __forceinline__ int row(int slot) const {  // a tail pair re-reads the last one and writes nothing
    return min(pairOf(slot), silu.intermediate - 1) + (partnerSlot(slot) ? silu.intermediate : 0);
  }
  __device__ __forceinline__ void store(int slot, int m, float lo, float hi) const {
    const int i = pairOf(slot), I = silu.intermediate;
    if (m >= gemv.m || i >= I) return;
    siluMulPair<T>(silu, m, i, fromF<T>(lo * __ldg(gemv.wScale + i)), fromF<T>(hi * __ldg(gemv.wScale + I + i)));
  }
};

// What kvsk_gemv_fp8 accepts for version 2 (gemv_fp8.cu), and only version 2, up to M = 8: one token tile. (With
// two, M 9..16, the RoPE epilogue beside the weight registers in flight spills on sm_90; those steps run the two
// kernels, as the bf16/f16 fusions do beyond their GEMV's M = 8.)
bool gemvArgsOk(const kvsk_gemv_fp8_params* g) {
  return kvsk_gemv_fp8_supported(g->m, g->n, g->k, g->dtype) && g->m <= KVSK_GEMV_MAX_M && g->version == 2 &&
         (g->rowsPerCta == 0 || g->rowsPerCta == 16 || g->rowsPerCta == 32 || g->rowsPerCta == 64) &&
         g->trigger >= KVSK_PDL_TRIGGER_EARLY && g->trigger <= KVSK_PDL_TRIGGER_OFF;
}

bool aligned(const kvsk_gemv_fp8_params* g) {
  return (reinterpret_cast<uintptr_t>(g->x) | reinterpret_cast<uintptr_t>(g->w8)) % 16 == 0;
}

}  // namespace

}  // namespace fp8v2
}  // namespace kvsk

extern "C" int kvsk_gemv_fp8_rope_cache_supported(const kvsk_gemv_fp8_params* g, const kvsk_rope_cache_params* r) {
  return kvsk::fp8v2::gemvArgsOk(g) && r->dtype == g->dtype && r->numTokens == g->m && r->headDim >= 2 &&
         r->headDim % 2 == 0 && r->numHeads >= 1 && r->numKvHeads >= 1 &&
         (int64_t)(r->numHeads + 2 * r->numKvHeads) * r->headDim == g->n && !r->qNorm && !r->kNorm &&
         (r->cacheDtype == KVSK_KV_SAME || r->cacheDtype == KVSK_KV_FP8_E4M3);
}

extern "C" cudaError_t kvsk_gemv_fp8_rope_cache(const kvsk_gemv_fp8_params* g, const kvsk_rope_cache_params* r,
                                                cudaStream_t stream) {
  using namespace kvsk::fp8v2;
  if (!kvsk_gemv_fp8_rope_cache_supported(g, r)) return cudaErrorNotSupported;
  if (!aligned(g)) return cudaErrorInvalidValue;
  const bool fp8 = r->cacheDtype == KVSK_KV_FP8_E4M3;
  if (fp8 && (!kvsk::validKvScale(r->kScale) || !kvsk::validKvScale(r->vScale))) return cudaErrorInvalidValue;
  if (g->dtype == KVSK_BF16)
    return fp8 ? launchTilesV2<__nv_bfloat16, 1>(RopeCacheStore<__nv_bfloat16, true>{*g, *r}, stream)
               : launchTilesV2<__nv_bfloat16, 1>(RopeCacheStore<__nv_bfloat16, false>{*g, *r}, stream);
  return fp8 ? launchTilesV2<__half, 1>(RopeCacheStore<__half, true>{*g, *r}, stream)
             : launchTilesV2<__half, 1>(RopeCacheStore<__half, false>{*g, *r}, stream);
}

extern "C" int kvsk_gemv_fp8_silu_mul_supported(const kvsk_gemv_fp8_params* g, const kvsk_silu_mul_params* s) {
  return kvsk::fp8v2::gemvArgsOk(g) && s->dtype == g->dtype && s->numTokens == g->m && s->intermediate >= 1 &&
         (int64_t)2 * s->intermediate == g->n && s->out != nullptr;
}

extern "C" cudaError_t kvsk_gemv_fp8_silu_mul(const kvsk_gemv_fp8_params* g, const kvsk_silu_mul_params* s,
                                              cudaStream_t stream) {
  using namespace kvsk::fp8v2;
  if (!kvsk_gemv_fp8_silu_mul_supported(g, s)) return cudaErrorNotSupported;
  if (!aligned(g)) return cudaErrorInvalidValue;
  if (g->dtype == KVSK_BF16) return launchTilesV2<__nv_bfloat16, 1>(SiluMulStore<__nv_bfloat16>{*g, *s}, stream);
  return launchTilesV2<__half, 1>(SiluMulStore<__half>{*g, *s}, stream);
}
