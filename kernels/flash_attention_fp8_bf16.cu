// bf16 queries over an fp8 (e4m3) cache: the tensor-core paged attention's fp8 instantiation (flash_attention.cuh).
#include "flash_attention.cuh"

namespace kvsk {
template cudaError_t launchFlashAttentionFp8<__nv_bfloat16>(const kvsk_attention_params&, bool, cudaStream_t);
}  // namespace kvsk
