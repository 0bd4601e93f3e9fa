// Token embedding gather: one CTA per token, 16-byte copies where the row allows it.
#include "common.cuh"

namespace kvsk {

template <typename T>
__global__ void embeddingKernel(kvsk_embedding_params p) {
  pdlWait();
  pdlTrigger();
  const int t = blockIdx.x;
  const int id = p.tokenIds[t];
  T* out = static_cast<T*>(p.out) + (int64_t)t * p.hidden;
  const T* row = static_cast<const T*>(p.table) + (int64_t)id * p.hidden;
  const bool valid = id >= 0 && id < p.vocab;
  constexpr int kVec = 16 / sizeof(T);
  if (p.hidden % kVec == 0) {
    const int n = p.hidden / kVec;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      reinterpret_cast<int4*>(out)[i] = valid ? reinterpret_cast<const int4*>(row)[i] : make_int4(0, 0, 0, 0);
  } else {
    for (int i = threadIdx.x; i < p.hidden; i += blockDim.x) out[i] = valid ? row[i] : fromF<T>(0.f);
  }
}

}  // namespace kvsk

extern "C" cudaError_t kvsk_embedding(const kvsk_embedding_params* p, cudaStream_t stream) {
  if (p->numTokens <= 0) return cudaSuccess;
  KVSK_DTYPE_SWITCH(p->dtype, T, return kvsk::launch(kvsk::embeddingKernel<T>, p->numTokens, 128, 0, stream, *p));
  return cudaSuccess;
}
