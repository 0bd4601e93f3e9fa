// Residual add fused with RMSNorm (transformers' LlamaRMSNorm rounding). One CTA per row.
//
// The vector kernel (rows of 16-byte multiples, the common case): each thread holds up to kMaxChunks 16-byte
// chunks of the row in registers, so the row is read once, the new residual written once and the output
// written once (3 passes over memory instead of 5). The scalar kernel covers every other shape. Both sum
// x^2 in a fixed order set by the thread layout: a row's result depends on nothing but the row.
//
// QUANT (outQ set, bf16/f16): the same kernels also quantize each output row for the FP8 GEMM that reads it,
// with quant_fp8.cuh's arithmetic on the output values as rounded to the dtype, so that outQ and outScale are
// bit for bit what kvsk_quantize_rows_fp8 makes of `out`. That saves the quantize pass's read of the row and
// its launch. The absmax is one more block-wide max after the sum of squares; the vector kernel keeps the
// rounded outputs in registers for it, the scalar kernel recomputes them (the same expression, so the same
// bits) instead of reading back an `out` it may not write.
#include <algorithm>

#include "quant_fp8.cuh"

namespace kvsk {

namespace {

constexpr int kMaxChunks = 4;

template <typename T, bool QUANT>
__global__ void rmsnormKernel(kvsk_rmsnorm_params p) {
  __shared__ float scratch[32];
  pdlWait();
  pdlTrigger();
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
  auto normed = [&](int i) { return fromF<T>(toF<T>(w[i]) * roundTo<T>(toF<T>(res[i]) * inv)); };
  if (!QUANT || p.out)
    for (int i = threadIdx.x; i < p.hidden; i += blockDim.x) out[i] = normed(i);
  if constexpr (QUANT) {
    // Groups of 8 elements (one e4m3 word pair) per thread: a group holds elements other threads added to
    // the residual, which blockSum's barriers made visible to the whole block.
    const int groups = p.hidden / 8;
    uint2* q = reinterpret_cast<uint2*>(static_cast<uint8_t*>(p.outQ) + (int64_t)r * p.hidden);
    float amax = 0.f;
    for (int g = threadIdx.x; g < groups; g += blockDim.x)
#pragma unroll
      for (int e = 0; e < 8; ++e) amax = fmaxf(amax, fabsf(toF<T>(normed(8 * g + e))));
    amax = blockMax(amax, scratch);
    const float scale = fp8ActScale(amax);
    if (threadIdx.x == 0) p.outScale[r] = scale;
    for (int g = threadIdx.x; g < groups; g += blockDim.x) {
      float v[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) v[e] = toF<T>(normed(8 * g + e));
      q[g] = encodeE4m3x8(v, scale);
    }
  }
}

template <typename T>
union Chunk {
  static constexpr int N = 16 / sizeof(T);
  uint4 raw;
  T v[N];
};

template <typename T, int CHUNKS, bool QUANT>
__global__ void __launch_bounds__(1024) rmsnormVecKernel(kvsk_rmsnorm_params p) {
  using C = Chunk<T>;
  __shared__ float scratch[32];
  const int nChunks = p.hidden / C::N;
  const T* w = static_cast<const T*>(p.weight);
  C wc[CHUNKS];  // the norm weight is immutable: read before waiting on the previous kernel
#pragma unroll
  for (int j = 0; j < CHUNKS; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    if (c < nChunks) wc[j].raw = __ldg(reinterpret_cast<const uint4*>(w) + c);
  }
  pdlWait();
  pdlTrigger();
  const int r = blockIdx.x;
  const int src = p.rowIndex ? p.rowIndex[r] : r;
  uint4* res = reinterpret_cast<uint4*>(static_cast<T*>(p.residual) + (int64_t)src * p.hidden);
  const uint4* add = p.add ? reinterpret_cast<const uint4*>(static_cast<const T*>(p.add) + (int64_t)src * p.hidden) : nullptr;
  uint4* out = reinterpret_cast<uint4*>(static_cast<T*>(p.out) + (int64_t)r * p.hidden);

  float x[CHUNKS][C::N];
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < CHUNKS; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    if (c >= nChunks) continue;
    C h, a;
    h.raw = res[c];
    if (add) a.raw = add[c];
#pragma unroll
    for (int e = 0; e < C::N; ++e) {
      float v = toF<T>(h.v[e]);
      if (add) {
        v = roundTo<T>(v + toF<T>(a.v[e]));
        h.v[e] = fromF<T>(v);
      }
      x[j][e] = v;
      ss += v * v;
    }
    if (add) res[c] = h.raw;
  }
  ss = blockSum(ss, scratch);
  const float inv = rsqrtf(ss / (float)p.hidden + p.eps);
  float amax = 0.f;
#pragma unroll
  for (int j = 0; j < CHUNKS; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    if (c >= nChunks) continue;
    C o;
#pragma unroll
    for (int e = 0; e < C::N; ++e) o.v[e] = fromF<T>(toF<T>(wc[j].v[e]) * roundTo<T>(x[j][e] * inv));
    if (!QUANT || p.out) out[c] = o.raw;
    if constexpr (QUANT) {  // x[j] now holds the output as rounded to T, for the encode below
#pragma unroll
      for (int e = 0; e < C::N; ++e) x[j][e] = toF<T>(o.v[e]);
      amax = absMaxChunk<T>(o.raw, amax);
    }
  }
  if constexpr (QUANT) {
    amax = blockMax(amax, scratch);
    const float scale = fp8ActScale(amax);
    if (threadIdx.x == 0) p.outScale[r] = scale;
    uint2* q = reinterpret_cast<uint2*>(static_cast<uint8_t*>(p.outQ) + (int64_t)r * p.hidden);
#pragma unroll
    for (int j = 0; j < CHUNKS; ++j) {
      const int c = threadIdx.x + j * blockDim.x;
      if (c < nChunks) q[c] = encodeE4m3x8(x[j], scale);
    }
  }
}

template <typename T, bool QUANT>
cudaError_t launchRmsnormAs(const kvsk_rmsnorm_params& p, cudaStream_t stream) {
  constexpr int n = 16 / sizeof(T);
  const bool aligned = ((reinterpret_cast<uintptr_t>(p.residual) | reinterpret_cast<uintptr_t>(p.add) |
                         reinterpret_cast<uintptr_t>(p.weight) | reinterpret_cast<uintptr_t>(p.out)) % 16) == 0;
  const int chunks = p.hidden / n;
  if (aligned && p.hidden % n == 0 && chunks >= 32) {
    const int threads = std::min(1024, (chunks + 31) / 32 * 32);
    const int per = (chunks + threads - 1) / threads;
    if (per == 1) return launch(rmsnormVecKernel<T, 1, QUANT>, p.rows, threads, 0, stream, p);
    if (per == 2) return launch(rmsnormVecKernel<T, 2, QUANT>, p.rows, threads, 0, stream, p);
    if (per <= kMaxChunks) return launch(rmsnormVecKernel<T, kMaxChunks, QUANT>, p.rows, threads, 0, stream, p);
  }
  const int threads = p.hidden >= 2048 ? 512 : p.hidden >= 512 ? 256 : 128;
  return launch(rmsnormKernel<T, QUANT>, p.rows, threads, 0, stream, p);
}

template <typename T>
cudaError_t launchRmsnorm(const kvsk_rmsnorm_params& p, cudaStream_t stream) {
  if (!p.outQ) {
    if (!p.out) return cudaErrorInvalidValue;
    return launchRmsnormAs<T, false>(p, stream);
  }
  if constexpr (sizeof(T) == 2) {
    if (p.hidden % 8 != 0 || !p.outScale || reinterpret_cast<uintptr_t>(p.outQ) % 8 != 0) return cudaErrorInvalidValue;
    return launchRmsnormAs<T, true>(p, stream);
  }
  return cudaErrorInvalidValue;  // e4m3 rows are for bf16/f16 activations
}

}  // namespace

}  // namespace kvsk

extern "C" cudaError_t kvsk_rmsnorm(const kvsk_rmsnorm_params* p, cudaStream_t stream) {
  if (p->rows <= 0) return cudaSuccess;
  KVSK_DTYPE_SWITCH(p->dtype, T, return kvsk::launchRmsnorm<T>(*p, stream));
  return cudaSuccess;
}
