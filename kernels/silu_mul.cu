// SiLU-and-mul of the fused gate/up projection, rounding like transformers: dtype(silu(gate)) * up in dtype.
// 16-byte chunks per thread when the intermediate size allows (every real model), else one element.
//
// With outQ (the FP8 down_proj's input, bf16/f16): one CTA per token instead, which also quantizes its row
// with quant_fp8.cuh's arithmetic on the outputs as rounded to the dtype, bit for bit what
// kvsk_quantize_rows_fp8 makes of `out`, and writes `out` only when asked. Each thread keeps up to kCached
// output chunks in registers between the absmax and the encode (rows up to 16384 elements, Llama-3-8B's
// 14336 among them); beyond that it recomputes them from gate/up (a second read, mostly from L2), the same
// expression, so the same bits. The unquantized path keeps its own layout (a token's row over many CTAs), which decode steps need: one
// 256-thread CTA per token would leave a 1-token step on one SM.
#include "quant_fp8.cuh"
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

constexpr int kQuantThreads = 256;
constexpr int kCached = 8;  // as quant_fp8.cu's activation kernel

// The 8 outputs of chunk c of a token's gate/up row.
template <typename T>
__device__ __forceinline__ uint4 siluMulChunk(const uint4* row, int chunks, int c) {
  union Chunk { uint4 raw; T v[8]; } g, u, o;
  g.raw = row[c];
  u.raw = row[chunks + c];
#pragma unroll
  for (int e = 0; e < 8; ++e) o.v[e] = siluMul<T>(g.v[e], u.v[e]);
  return o.raw;
}

// grid.x: tokens; bf16/f16, I % 8 == 0.
template <typename T>
__global__ void __launch_bounds__(kQuantThreads) siluMulQuantKernel(kvsk_silu_mul_params p) {
  __shared__ float scratch[32];
  const int tid = threadIdx.x, chunks = p.intermediate / 8;
  const int64_t t = blockIdx.x;
  const uint4* row = reinterpret_cast<const uint4*>(static_cast<const T*>(p.gateUp) + t * 2 * p.intermediate);
  uint4* out = p.out ? reinterpret_cast<uint4*>(static_cast<T*>(p.out) + t * p.intermediate) : nullptr;
  uint2* q = reinterpret_cast<uint2*>(static_cast<uint8_t*>(p.outQ) + t * p.intermediate);
  pdlWait();
  pdlTrigger();
  uint4 o[kCached];
  float amax = 0.f;
  // No store in this loop, so that all of its loads may be in flight at once (out may alias gateUp, as far as
  // the compiler knows).
#pragma unroll
  for (int i = 0; i < kCached; ++i) {
    const int c = tid + i * kQuantThreads;
    o[i] = c < chunks ? siluMulChunk<T>(row, chunks, c) : make_uint4(0, 0, 0, 0);
    amax = absMaxChunk<T>(o[i], amax);
  }
  if (out)
#pragma unroll
    for (int i = 0; i < kCached; ++i) {
      const int c = tid + i * kQuantThreads;
      if (c < chunks) out[c] = o[i];
    }
  for (int c = tid + kCached * kQuantThreads; c < chunks; c += kQuantThreads) {
    const uint4 v = siluMulChunk<T>(row, chunks, c);
    if (out) out[c] = v;
    amax = absMaxChunk<T>(v, amax);
  }
  amax = blockMax(amax, scratch);
  const float scale = fp8ActScale(amax);
  if (tid == 0) p.outScale[t] = scale;
#pragma unroll
  for (int i = 0; i < kCached; ++i) {
    const int c = tid + i * kQuantThreads;
    if (c < chunks) q[c] = encodeE4m3Chunk<T>(o[i], scale);
  }
  for (int c = tid + kCached * kQuantThreads; c < chunks; c += kQuantThreads)
    q[c] = encodeE4m3Chunk<T>(siluMulChunk<T>(row, chunks, c), scale);
}

template <typename T>
cudaError_t launchSiluMul(const kvsk_silu_mul_params& p, cudaStream_t stream) {
  constexpr int N = 16 / sizeof(T);
  if (p.outQ) {
    if constexpr (sizeof(T) == 2) {
      const bool aligned = ((reinterpret_cast<uintptr_t>(p.gateUp) | reinterpret_cast<uintptr_t>(p.out)) % 16) == 0 &&
                           reinterpret_cast<uintptr_t>(p.outQ) % 8 == 0;
      if (p.intermediate % 8 != 0 || !aligned || !p.outScale) return cudaErrorInvalidValue;
      return launch(siluMulQuantKernel<T>, p.numTokens, kQuantThreads, 0, stream, p);
    }
    return cudaErrorInvalidValue;  // e4m3 rows are for bf16/f16 activations
  }
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
