// Weight upload conversion (checkpoint dtype -> compute dtype, on the device) and deterministic dummy fill.
#include "common.cuh"

namespace kvsk {

template <typename S, typename D>
__global__ void convertKernel(const S* src, D* dst, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = fromF<D>(toF<S>(src[i]));
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

template <typename T>
__global__ void fillKernel(kvsk_fill_params p) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = p.value;
    if (p.scale != 0.f) {
      const float u = (float)(splitmix64(p.seed ^ splitmix64((uint64_t)i)) >> 40) * (1.f / 16777216.f);
      v = (2.f * u - 1.f) * p.scale;
    }
    static_cast<T*>(p.dst)[i] = fromF<T>(v);
  }
}

inline int gridFor(int64_t n) { return (int)((n + 255) / 256 < 16384 ? (n + 255) / 256 : 16384); }

}  // namespace kvsk

extern "C" cudaError_t kvsk_convert(const kvsk_convert_params* p, cudaStream_t stream) {
  if (p->n <= 0) return cudaSuccess;
  const int g = kvsk::gridFor(p->n);
  KVSK_DTYPE_SWITCH(p->srcType, S,
    KVSK_DTYPE_SWITCH(p->dstType, D,
      kvsk::convertKernel<S, D><<<g, 256, 0, stream>>>(static_cast<const S*>(p->src), static_cast<D*>(p->dst), p->n)));
  return cudaGetLastError();
}

extern "C" cudaError_t kvsk_fill(const kvsk_fill_params* p, cudaStream_t stream) {
  if (p->n <= 0) return cudaSuccess;
  KVSK_DTYPE_SWITCH(p->dtype, T, kvsk::fillKernel<T><<<kvsk::gridFor(p->n), 256, 0, stream>>>(*p));
  return cudaGetLastError();
}
