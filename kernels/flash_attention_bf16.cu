// bf16 instantiation of the tensor-core paged attention (flash_attention.cuh).
#include "flash_attention.cuh"

namespace kvsk {
template cudaError_t launchFlashAttention<__nv_bfloat16>(const kvsk_attention_params&, bool, cudaStream_t);
}  // namespace kvsk
