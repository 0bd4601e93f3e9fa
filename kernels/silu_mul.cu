// SiLU-and-mul of the fused gate/up projection, rounding like transformers: dtype(silu(gate)) * up in dtype.
// 16-byte chunks per thread when the intermediate size allows (every real model), else one element; a token's
// row spread over many CTAs, which decode steps need (one CTA per token would leave a 1-token step on one SM).
#include "silu.cuh"

namespace kvsk {

namespace {

template <typename T>
__global__ void siluMulKernel(kvsk_silu_mul_params p) {
  pdlWait();
  pdlTrigger();
  const int64_t total = (int64_t)p.numTokens * p.intermediate;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = e / p.intermediate, i = e % p.intermediate;
    const T* row = static_cast<const T*>(p.gateUp) + t * 2 * p.intermediate;
    static_cast<T*>(p.out)[e] = siluMul<T>(row[i], row[p.intermediate + i]);
  }
}

// grid.x: chunks of one token's row, grid.y: tokens (strided).
template <typename T>
__global__ void siluMulVecKernel(kvsk_silu_mul_params p) {
  constexpr int N = 16 / sizeof(T);
  union Chunk { uint4 raw; T v[N]; };
  pdlWait();
  pdlTrigger();
  const int c = blockIdx.x * blockDim.x + threadIdx.x, chunks = p.intermediate / N;
  if (c >= chunks) return;
  for (int t = blockIdx.y; t < p.numTokens; t += gridDim.y) {
    const uint4* row = reinterpret_cast<const uint4*>(static_cast<const T*>(p.gateUp) + (int64_t)t * 2 * p.intermediate);
    Chunk g, u, o;
    g.raw = row[c];
    u.raw = row[chunks + c];
#pragma unroll
    for (int e = 0; e < N; ++e) o.v[e] = siluMul<T>(g.v[e], u.v[e]);
    reinterpret_cast<uint4*>(static_cast<T*>(p.out) + (int64_t)t * p.intermediate)[c] = o.raw;
  }
}

template <typename T>
cudaError_t launchSiluMul(const kvsk_silu_mul_params& p, cudaStream_t stream) {
  constexpr int N = 16 / sizeof(T);
  if (!p.out) return cudaErrorInvalidValue;
  if (p.intermediate % N == 0 && ((reinterpret_cast<uintptr_t>(p.gateUp) | reinterpret_cast<uintptr_t>(p.out)) % 16) == 0) {
    const int chunks = p.intermediate / N, threads = 128;
    const dim3 grid((chunks + threads - 1) / threads, p.numTokens < 65535 ? p.numTokens : 65535);
    return launch(siluMulVecKernel<T>, grid, threads, 0, stream, p);
  }
  const int64_t total = (int64_t)p.numTokens * p.intermediate;
  const int blocks = (int)((total + 255) / 256 < 65536 ? (total + 255) / 256 : 65536);
  return launch(siluMulKernel<T>, blocks, 256, 0, stream, p);
}

}  // namespace

}  // namespace kvsk

extern "C" cudaError_t kvsk_silu_mul(const kvsk_silu_mul_params* p, cudaStream_t stream) {
  if ((int64_t)p->numTokens * p->intermediate <= 0) return cudaSuccess;
  KVSK_DTYPE_SWITCH(p->dtype, T, return kvsk::launchSiluMul<T>(*p, stream));
  return cudaSuccess;
}
