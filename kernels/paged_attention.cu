// Paged attention: host-side tile planning and the dtype dispatch of kvsk_attention.
#include <algorithm>
#include <numeric>
#include <vector>

#include "flash_decode_v2.cuh"
#include "flash_prefill.cuh"
#include "paged_attention.cuh"

namespace kvsk {
extern template cudaError_t launchAttention<float>(const kvsk_attention_params&, bool, cudaStream_t);
extern template cudaError_t launchAttention<__nv_bfloat16>(const kvsk_attention_params&, bool, cudaStream_t);
extern template cudaError_t launchAttention<__half>(const kvsk_attention_params&, bool, cudaStream_t);
extern template cudaError_t launchFlashAttention<__nv_bfloat16>(const kvsk_attention_params&, bool, cudaStream_t);
extern template cudaError_t launchFlashAttention<__half>(const kvsk_attention_params&, bool, cudaStream_t);
extern template cudaError_t launchFlashAttentionFp8<__nv_bfloat16>(const kvsk_attention_params&, bool, cudaStream_t);
extern template cudaError_t launchFlashAttentionFp8<__half>(const kvsk_attention_params&, bool, cudaStream_t);
extern template cudaError_t launchFlashPrefillV2<__nv_bfloat16, false>(const kvsk_attention_params&, cudaStream_t);
extern template cudaError_t launchFlashPrefillV2<__nv_bfloat16, true>(const kvsk_attention_params&, cudaStream_t);
extern template cudaError_t launchFlashPrefillV2<__half, false>(const kvsk_attention_params&, cudaStream_t);
extern template cudaError_t launchFlashPrefillV2<__half, true>(const kvsk_attention_params&, cudaStream_t);
extern template cudaError_t launchFlashDecodeV2<__nv_bfloat16, false>(const kvsk_attention_params&, cudaStream_t);
extern template cudaError_t launchFlashDecodeV2<__half, false>(const kvsk_attention_params&, cudaStream_t);
extern template cudaError_t launchFlashDecodeV2<__nv_bfloat16, true>(const kvsk_attention_params&, cudaStream_t);
extern template cudaError_t launchFlashDecodeV2<__half, true>(const kvsk_attention_params&, cudaStream_t);

// The tensor-core kernel (flash_attention.cuh) takes bf16/f16 with head_dim 64, 128, 256; the CUDA-core one
// (paged_attention.cuh) the rest. Rows per tile: 16 (decode) or 64 for the former.
bool useFlash(kvsk_dtype dtype, int headDim, int G) {
  return (dtype == KVSK_BF16 || dtype == KVSK_F16) && (headDim == 64 || headDim == 128 || headDim == 256) && G <= 16;
}
int tileRows(kvsk_dtype dtype, int headDim, int G, bool decode) {
  if (useFlash(dtype, headDim, G)) return decode ? 16 : 64;
  return attnRows(headDim, G, decode);
}
// Prefill version 2 (flash_prefill.cuh): the tensor-core shapes at head_dim 64 and 128, 128 rows a tile.
bool servesPrefillV2(kvsk_dtype dtype, int headDim, int G) { return useFlash(dtype, headDim, G) && headDim <= 128; }
constexpr int kPrefillV2Rows = PrefillV2<__half, 64, false>::ROWS;

// Version 2 launches its tiles in list order (x = tile * Hkv + head): longest first (the keys a tile's CTA
// walks: its last row's position + 1, or its split partition), so the long CTAs start in the first wave and
// the short ones fill the tail. Stable: equal tiles keep the order they were planned in.
void orderLongestFirst(const int32_t* queryStart, const int32_t* contextLens, int tpt, int partitionSize, int n,
                       int32_t* tileSeq, int32_t* tileQStart, int32_t* tileSplitSlot) {
  std::vector<int64_t> keys(n);
  for (int i = 0; i < n; ++i) {
    const int s = tileSeq[i], qLen = queryStart[s + 1] - queryStart[s];
    keys[i] = tileSplitSlot[i] >= 0 ? std::min(partitionSize, contextLens[s])
                                    : contextLens[s] - qLen + tileQStart[i] + std::min(tpt, qLen - tileQStart[i]);
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return keys[a] > keys[b]; });
  auto permute = [&](int32_t* v) {
    std::vector<int32_t> copy(v, v + n);
    for (int i = 0; i < n; ++i) v[i] = copy[order[i]];
  };
  permute(tileSeq);
  permute(tileQStart);
  permute(tileSplitSlot);
}
}  // namespace kvsk

extern "C" int kvsk_attention_plan(const int32_t* queryStart, const int32_t* contextLens, int numSeqs,
                                   int numHeads, int numKvHeads, int headDim, kvsk_dtype dtype, int partitionSize,
                                   kvsk_attn_prefill prefill, int32_t* tileSeq, int32_t* tileQStart,
                                   int32_t* tileSplitSlot, int capacity, kvsk_attention_plan_info* info) {
  if (numKvHeads <= 0 || numHeads % numKvHeads != 0) return -1;
  if (prefill != KVSK_ATTN_PREFILL_V1 && prefill != KVSK_ATTN_PREFILL_V2 && prefill != KVSK_ATTN_PREFILL_AUTO) return -1;
  const int G = numHeads / numKvHeads;
  bool decode = numSeqs > 0;
  int longest = 0;
  for (int s = 0; s < numSeqs; ++s) {
    const int qLen = queryStart[s + 1] - queryStart[s];
    decode = decode && qLen == 1;
    longest = std::max(longest, qLen);
  }
  const bool wantV2 = prefill == KVSK_ATTN_PREFILL_V2 ||
                      (prefill == KVSK_ATTN_PREFILL_AUTO && longest >= KVSK_ATTN_PREFILL_AUTO_MIN_QUERY);
  const bool v2 = !decode && wantV2 && kvsk::servesPrefillV2(dtype, headDim, G);
  const int rows = v2 ? kvsk::kPrefillV2Rows : kvsk::tileRows(dtype, headDim, G, decode);
  if (rows == 0) return -1;
  const int tpt = rows / G;
  int tiles = 0, slots = 0, maxSplits = 1;
  for (int s = 0; s < numSeqs; ++s) {
    const int qLen = queryStart[s + 1] - queryStart[s];
    // Split-KV only for single-token (decode) sequences: a property of the sequence, not of the batch.
    const int nSplits = qLen == 1 ? (contextLens[s] + partitionSize - 1) / partitionSize : 1;
    for (int t0 = 0; t0 < qLen; t0 += tpt) {
      if (tiles >= capacity) return -2;
      tileSeq[tiles] = s;
      tileQStart[tiles] = t0;
      tileSplitSlot[tiles] = nSplits > 1 ? slots++ : -1;
      ++tiles;
    }
    if (nSplits > 1) maxSplits = std::max(maxSplits, nSplits);
  }
  if (v2) kvsk::orderLongestFirst(queryStart, contextLens, tpt, partitionSize, tiles, tileSeq, tileQStart, tileSplitSlot);
  info->numTiles = tiles;
  info->tokensPerTile = tpt;
  info->numSplitSlots = slots;
  info->maxSplits = maxSplits;
  info->decode = decode ? 1 : 0;
  info->prefill = v2 ? KVSK_ATTN_PREFILL_V2 : KVSK_ATTN_PREFILL_V1;
  return 0;
}

extern "C" size_t kvsk_attention_prefill_v2_smem(kvsk_dtype dtype, kvsk_kv_dtype cacheDtype, int headDim, int numHeads,
                                                 int numKvHeads) {
  if (numKvHeads <= 0 || numHeads % numKvHeads != 0 || !kvsk::servesPrefillV2(dtype, headDim, numHeads / numKvHeads)) return 0;
  const bool fp8 = cacheDtype == KVSK_KV_FP8_E4M3;
  if (headDim == 64) return fp8 ? kvsk::PrefillV2<__half, 64, true>::smem : kvsk::PrefillV2<__half, 64, false>::smem;
  return fp8 ? kvsk::PrefillV2<__half, 128, true>::smem : kvsk::PrefillV2<__half, 128, false>::smem;
}

extern "C" int kvsk_attention_fp8_supported(kvsk_dtype dtype, int headDim, int numHeads, int numKvHeads) {
  return numKvHeads > 0 && numHeads % numKvHeads == 0 && kvsk::useFlash(dtype, headDim, numHeads / numKvHeads) ? 1 : 0;
}

extern "C" int kvsk_attention_decode_v2_supported(kvsk_dtype dtype, kvsk_kv_dtype cacheDtype, int headDim, int numHeads,
                                                  int numKvHeads, int maxSplits) {
  if (numKvHeads <= 0 || numHeads % numKvHeads != 0 || (headDim != 64 && headDim != 128)) return 0;
  if (cacheDtype != KVSK_KV_SAME && cacheDtype != KVSK_KV_FP8_E4M3) return 0;
  const int G = numHeads / numKvHeads;
  // The smallest ring, two stages: fp8 bytes at head_dim 64 (the deeper rings only have more room).
  const size_t ring = cacheDtype == KVSK_KV_FP8_E4M3 ? (headDim == 64 ? kvsk::FlashDecodeSmem<__half, 64, true>::kv
                                                                       : kvsk::FlashDecodeSmem<__half, 128, true>::kv)
                                                    : (headDim == 64 ? kvsk::FlashDecodeSmem<__half, 64>::kv
                                                                     : kvsk::FlashDecodeSmem<__half, 128>::kv);
  return kvsk::useFlash(dtype, headDim, G) && maxSplits >= 1 && kvsk::mergeFits(G, maxSplits, headDim, ring) ? 1 : 0;
}

extern "C" cudaError_t kvsk_attention(const kvsk_attention_params* p, int decode, cudaStream_t stream) {
  if (p->numTiles <= 0) return cudaSuccess;
  if (p->numKvHeads <= 0 || p->numHeads % p->numKvHeads != 0) return cudaErrorInvalidValue;
  if (p->decodeVersion < 0 || p->decodeVersion > 2) return cudaErrorInvalidValue;
  if (p->prefill != KVSK_ATTN_PREFILL_V1 && p->prefill != KVSK_ATTN_PREFILL_V2) return cudaErrorInvalidValue;
  if (decode && p->decodeVersion == 2) {
    const bool fp8 = p->cacheDtype == KVSK_KV_FP8_E4M3;
    if (!kvsk_attention_decode_v2_supported(p->dtype, p->cacheDtype, p->headDim, p->numHeads, p->numKvHeads,
                                            p->numSplitSlots > 0 ? p->maxSplits : 1) ||
        p->blockSize <= 0 || (p->blockSize & (p->blockSize - 1)) != 0)
      return cudaErrorNotSupported;
    if (fp8 && (!kvsk::validKvScale(p->kScale) || !kvsk::validKvScale(p->vScale))) return cudaErrorInvalidValue;
    if (p->numSplitSlots > 0 && !p->splitCounters) return cudaErrorInvalidValue;
    if (p->dtype == KVSK_BF16)
      return fp8 ? kvsk::launchFlashDecodeV2<__nv_bfloat16, true>(*p, stream) : kvsk::launchFlashDecodeV2<__nv_bfloat16, false>(*p, stream);
    return fp8 ? kvsk::launchFlashDecodeV2<__half, true>(*p, stream) : kvsk::launchFlashDecodeV2<__half, false>(*p, stream);
  }
  const int G = p->numHeads / p->numKvHeads;
  const bool v2 = !decode && p->prefill == KVSK_ATTN_PREFILL_V2;
  if (v2 && !kvsk::servesPrefillV2(p->dtype, p->headDim, G)) return cudaErrorNotSupported;
  const bool flash = kvsk::useFlash(p->dtype, p->headDim, G);
  // A tile of more rows than its kernel's CTA holds would lose the rest (a plan of another prefill version).
  if (flash && p->tokensPerTile * G > (decode ? 16 : v2 ? kvsk::kPrefillV2Rows : 64)) return cudaErrorInvalidValue;
  if (p->cacheDtype == KVSK_KV_FP8_E4M3) {  // tensor cores only: the CUDA-core kernel reads bf16/f16/f32 caches
    if (!flash) return cudaErrorNotSupported;
    if (p->blockSize <= 0 || (p->blockSize & (p->blockSize - 1)) != 0) return cudaErrorNotSupported;
    if (!kvsk::validKvScale(p->kScale) || !kvsk::validKvScale(p->vScale)) return cudaErrorInvalidValue;
    if (v2) return p->dtype == KVSK_BF16 ? kvsk::launchFlashPrefillV2<__nv_bfloat16, true>(*p, stream)
                                         : kvsk::launchFlashPrefillV2<__half, true>(*p, stream);
    if (p->dtype == KVSK_BF16) return kvsk::launchFlashAttentionFp8<__nv_bfloat16>(*p, decode != 0, stream);
    return kvsk::launchFlashAttentionFp8<__half>(*p, decode != 0, stream);
  }
  if (p->cacheDtype != KVSK_KV_SAME) return cudaErrorInvalidValue;
  if (flash) {
    if (p->blockSize <= 0 || (p->blockSize & (p->blockSize - 1)) != 0) return cudaErrorNotSupported;
    if (v2) return p->dtype == KVSK_BF16 ? kvsk::launchFlashPrefillV2<__nv_bfloat16, false>(*p, stream)
                                         : kvsk::launchFlashPrefillV2<__half, false>(*p, stream);
    if (p->dtype == KVSK_BF16) return kvsk::launchFlashAttention<__nv_bfloat16>(*p, decode != 0, stream);
    return kvsk::launchFlashAttention<__half>(*p, decode != 0, stream);
  }
  switch (p->dtype) {
    case KVSK_F32: return kvsk::launchAttention<float>(*p, decode != 0, stream);
    case KVSK_BF16: return kvsk::launchAttention<__nv_bfloat16>(*p, decode != 0, stream);
    case KVSK_F16: return kvsk::launchAttention<__half>(*p, decode != 0, stream);
    default: return cudaErrorInvalidValue;
  }
}
