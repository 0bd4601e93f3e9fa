// FP8 (E4M3) quantization of the FP8 linear layers (kvserve_kernels.h states the scheme): activations per row
// at run time, before cuBLASLt's FP8 GEMM; weights per output row at load.
//
// Both kernels give one CTA to a row: the row's absmax is a block-wide max, so a row's scale and bytes depend
// on that row alone. Every step is exactly rounded (IEEE division, cvt.rn.satfinite), so the kernel tests can
// compare bytes and scales bit for bit with a plain CPU encoder. The activation arithmetic is quant_fp8.cuh's,
// shared with the producer that quantizes its own output (rmsnorm.cu).
#include <cfloat>

#include "quant_fp8.cuh"
#include "quant_rows.cuh"

namespace kvsk {

namespace {

constexpr int kThreads = 256;
// 16-byte chunks (8 elements) of its row that each thread of the activation kernel keeps in registers between
// the absmax and the encode (quant_rows.cuh): rows up to kThreads * 8 * kCached = 16384 elements are read once.
constexpr int kCached = 8;

template <typename T>
__global__ void __launch_bounds__(kThreads) quantizeRowsKernel(kvsk_quantize_rows_fp8_params p) {
  __shared__ float scratch[32];
  const int tid = threadIdx.x, chunks = p.k / 8;
  const uint4* x = reinterpret_cast<const uint4*>(static_cast<const T*>(p.x) + (size_t)blockIdx.x * p.k);
  uint2* q = reinterpret_cast<uint2*>(static_cast<uint8_t*>(p.xq) + (size_t)blockIdx.x * p.k);
  pdlWait();  // x is the previous kernel's output
  pdlTrigger();
  uint4 v[kCached];
  const float amax = cachedRowAbsMax<kThreads>(x, chunks, v, scratch,
                                               [](const uint4& c, int, float m) { return absMaxChunk<T>(c, m); });
  const float scale = fp8ActScale(amax);
  if (tid == 0) p.xScale[blockIdx.x] = scale;
  encodeCachedRow<kThreads>(x, q, chunks, v, [&](const uint4& c, int) { return encodeE4m3Chunk<T>(c, scale); });
}

// Load time only: a plain strided walk over the row, twice (the second pass finds the row in L2).
template <typename T>
__global__ void __launch_bounds__(kThreads) quantizeWeightKernel(kvsk_quantize_weight_fp8_params p) {
  __shared__ float scratch[32];
  const T* w = static_cast<const T*>(p.w) + (size_t)blockIdx.x * p.k;
  uint8_t* q = static_cast<uint8_t*>(p.w8) + (size_t)blockIdx.x * p.k;
  float amax = 0.f;
  for (int i = threadIdx.x; i < p.k; i += kThreads) amax = fmaxf(amax, fabsf(toF<T>(w[i])));
  amax = blockMax(amax, scratch);
  float s = __fdiv_rn(amax, KVSK_FP8_E4M3_MAX);
  if (!(s >= FLT_MIN)) s = amax > 0.f ? FLT_MIN : 1.f;  // tiny rows keep a normal scale; zero rows get 1
  if (threadIdx.x == 0) p.wScale[blockIdx.x] = s;
  for (int i = threadIdx.x; i < p.k; i += kThreads)
    q[i] = __nv_cvt_float_to_fp8(__fdiv_rn(toF<T>(w[i]), s), __NV_SATFINITE, __NV_E4M3);
}

}  // namespace

}  // namespace kvsk

extern "C" cudaError_t kvsk_quantize_rows_fp8(const kvsk_quantize_rows_fp8_params* p, cudaStream_t stream) {
  if (p->m < 0 || p->k < 8 || p->k % 8 != 0) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(p->x) % 16 != 0 || reinterpret_cast<uintptr_t>(p->xq) % 8 != 0) return cudaErrorInvalidValue;
  if (p->m == 0) return cudaSuccess;
  const dim3 grid(p->m), block(kvsk::kThreads);
  if (p->dtype == KVSK_BF16) return kvsk::launch(kvsk::quantizeRowsKernel<__nv_bfloat16>, grid, block, 0, stream, *p);
  if (p->dtype == KVSK_F16) return kvsk::launch(kvsk::quantizeRowsKernel<__half>, grid, block, 0, stream, *p);
  return cudaErrorNotSupported;
}

extern "C" cudaError_t kvsk_quantize_weight_fp8(const kvsk_quantize_weight_fp8_params* p, cudaStream_t stream) {
  if (p->n < 0 || p->k < 1) return cudaErrorInvalidValue;
  if (p->n == 0) return cudaSuccess;
  KVSK_DTYPE_SWITCH(p->dtype, T, kvsk::quantizeWeightKernel<T><<<p->n, kvsk::kThreads, 0, stream>>>(*p));
  return cudaGetLastError();
}
