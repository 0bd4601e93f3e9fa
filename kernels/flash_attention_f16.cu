// f16 instantiation of the tensor-core paged attention (flash_attention.cuh).
#include "flash_attention.cuh"

namespace kvsk {
template cudaError_t launchFlashAttention<__half>(const kvsk_attention_params&, bool, cudaStream_t);
}  // namespace kvsk
