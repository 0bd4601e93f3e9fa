// Residual add fused with RMSNorm (transformers' LlamaRMSNorm rounding). One CTA per row: the first pass
// adds, writes the residual back and accumulates sum(x^2) in float32; the second pass normalizes.
#include "common.cuh"

namespace kvsk {

template <typename T>
__global__ void rmsnormKernel(kvsk_rmsnorm_params p) {
  __shared__ float scratch[32];
  const int r = blockIdx.x;
  const int src = p.rowIndex ? p.rowIndex[r] : r;
  T* res = static_cast<T*>(p.residual) + (int64_t)src * p.hidden;
  const T* add = p.add ? static_cast<const T*>(p.add) + (int64_t)src * p.hidden : nullptr;
  const T* w = static_cast<const T*>(p.weight);
  T* out = static_cast<T*>(p.out) + (int64_t)r * p.hidden;

  float ss = 0.f;
  for (int i = threadIdx.x; i < p.hidden; i += blockDim.x) {
    float x = toF<T>(res[i]);
    if (add) {
      x = roundTo<T>(x + toF<T>(add[i]));
      res[i] = fromF<T>(x);
    }
    ss += x * x;
  }
  ss = blockSum(ss, scratch);
  const float inv = rsqrtf(ss / (float)p.hidden + p.eps);
  // Each thread rereads exactly the elements it wrote above, so no barrier is needed in between.
  for (int i = threadIdx.x; i < p.hidden; i += blockDim.x) {
    const float xn = roundTo<T>(toF<T>(res[i]) * inv);
    out[i] = fromF<T>(toF<T>(w[i]) * xn);
  }
}

}  // namespace kvsk

extern "C" cudaError_t kvsk_rmsnorm(const kvsk_rmsnorm_params* p, cudaStream_t stream) {
  if (p->rows <= 0) return cudaSuccess;
  const int threads = p->hidden >= 2048 ? 512 : p->hidden >= 512 ? 256 : 128;
  KVSK_DTYPE_SWITCH(p->dtype, T, kvsk::rmsnormKernel<T><<<p->rows, threads, 0, stream>>>(*p));
  return cudaGetLastError();
}
