// SiLU-and-mul of the fused gate/up projection, rounding like transformers: dtype(silu(gate)) * up in dtype.
#include "common.cuh"

namespace kvsk {

template <typename T>
__global__ void siluMulKernel(kvsk_silu_mul_params p) {
  const int64_t total = (int64_t)p.numTokens * p.intermediate;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = e / p.intermediate, i = e % p.intermediate;
    const T* row = static_cast<const T*>(p.gateUp) + t * 2 * p.intermediate;
    const float g = toF<T>(row[i]);
    const float act = roundTo<T>(g / (1.f + expf(-g)));
    static_cast<T*>(p.out)[e] = fromF<T>(act * toF<T>(row[p.intermediate + i]));
  }
}

}  // namespace kvsk

extern "C" cudaError_t kvsk_silu_mul(const kvsk_silu_mul_params* p, cudaStream_t stream) {
  const int64_t total = (int64_t)p->numTokens * p->intermediate;
  if (total <= 0) return cudaSuccess;
  const int blocks = (int)((total + 255) / 256 < 65536 ? (total + 255) / 256 : 65536);
  KVSK_DTYPE_SWITCH(p->dtype, T, kvsk::siluMulKernel<T><<<blocks, 256, 0, stream>>>(*p));
  return cudaGetLastError();
}
