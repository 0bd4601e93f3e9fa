// The single-launch decode attention (flash_decode_v2.cuh) for bf16 queries over an fp8 (e4m3) cache.
#include "flash_decode_v2.cuh"

namespace kvsk {
template cudaError_t launchFlashDecodeV2<__nv_bfloat16, true>(const kvsk_attention_params&, cudaStream_t);
}  // namespace kvsk
