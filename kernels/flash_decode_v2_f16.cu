// The single-launch decode attention (flash_decode_v2.cuh) for f16 queries over a f16 cache.
#include "flash_decode_v2.cuh"

namespace kvsk {
template cudaError_t launchFlashDecodeV2<__half, false>(const kvsk_attention_params&, cudaStream_t);
}  // namespace kvsk
