// f16 instantiations of the tensor-core prefill version 2 (flash_prefill.cuh), over an f16 and an fp8 cache.
#include "flash_prefill.cuh"

namespace kvsk {
template cudaError_t launchFlashPrefillV2<__half, false>(const kvsk_attention_params&, cudaStream_t);
template cudaError_t launchFlashPrefillV2<__half, true>(const kvsk_attention_params&, cudaStream_t);
}  // namespace kvsk
