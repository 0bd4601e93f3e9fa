// Instantiates the paged attention kernels for one dtype (see paged_attention.cuh).
#include "paged_attention.cuh"

namespace kvsk {
template cudaError_t launchAttention<__nv_bfloat16>(const kvsk_attention_params&, bool, cudaStream_t);
}  // namespace kvsk
