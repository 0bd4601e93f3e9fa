// INT8 (W8A8) linear layers, the two element-wise halves around the integer product (kvserve_kernels.h states
// the scheme): activations quantized per row at run time, with the layer's SmoothQuant multiplier applied on
// the way; and the dequantization of cuBLASLt's int32 product into bf16/f16.
//
// The quantizer gives one CTA to a row: the row's absmax is a block-wide max, so a row's scale and bytes
// depend on that row alone. Every step is exactly rounded (two float multiplies, IEEE division, round half
// to even), the CPU backend's quantizeActs formula (engines/cpu/int8_linear.cc), so the kernel tests compare
// bytes and scales bit for bit with a plain CPU reference.
#include "quant_rows.cuh"

namespace kvsk {

namespace {

constexpr int kThreads = 256;
// 16-byte chunks (8 elements) of its row that each thread keeps in registers between the absmax and the
// encode (quant_rows.cuh): rows up to kThreads * 8 * kCached = 16384 elements are read from memory once.
constexpr int kCached = 8;

template <typename T>
__device__ __forceinline__ float elem(const uint4& v, int i) {
  return toF<T>(reinterpret_cast<const T*>(&v)[i]);
}

// The multiplier of chunk c (8 elements at k = 8c); 1 without one (x * 1 is x exactly).
struct Mul8 {
  float m[8];
  __device__ __forceinline__ Mul8(const float* mul, int c) {
    if (!mul) {
#pragma unroll
      for (int i = 0; i < 8; ++i) m[i] = 1.f;
      return;
    }
    const float4 a = __ldg(reinterpret_cast<const float4*>(mul) + 2 * c), b = __ldg(reinterpret_cast<const float4*>(mul) + 2 * c + 1);
    m[0] = a.x; m[1] = a.y; m[2] = a.z; m[3] = a.w; m[4] = b.x; m[5] = b.y; m[6] = b.z; m[7] = b.w;
  }
};

template <typename T>
__device__ __forceinline__ float absMax8(const uint4& v, const Mul8& mul, float m) {
#pragma unroll
  for (int i = 0; i < 8; ++i) m = fmaxf(m, fabsf(__fmul_rn(elem<T>(v, i), mul.m[i])));
  return m;
}

__device__ __forceinline__ uint32_t q8(float v, float inv) {
  const int r = __float2int_rn(__fmul_rn(v, inv));  // round half to even, as nearbyint on the CPU
  return static_cast<uint32_t>(min(127, max(-127, r))) & 0xFFu;
}

// The 8 elements of v (times the multiplier) as 8 int8 bytes in element order.
template <typename T>
__device__ __forceinline__ uint2 encode8(const uint4& v, const Mul8& mul, float inv) {
  uint32_t w[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    w[h] = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) w[h] |= q8(__fmul_rn(elem<T>(v, 4 * h + i), mul.m[4 * h + i]), inv) << (8 * i);
  }
  return make_uint2(w[0], w[1]);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) quantizeRowsKernel(kvsk_quantize_rows_int8_params p) {
  __shared__ float scratch[32];
  const int tid = threadIdx.x, chunks = p.k / 8;
  const uint4* x = reinterpret_cast<const uint4*>(static_cast<const T*>(p.x) + (size_t)blockIdx.x * p.k);
  uint2* q = reinterpret_cast<uint2*>(static_cast<int8_t*>(p.xq) + (size_t)blockIdx.x * p.k);
  pdlWait();  // x is the previous kernel's output
  pdlTrigger();
  uint4 v[kCached];
  // Past the row there is no multiplier to read: those (zero) chunks are left out of the max.
  const float amax = cachedRowAbsMax<kThreads>(x, chunks, v, scratch, [&](const uint4& e, int c, float m) {
    return c < chunks ? absMax8<T>(e, Mul8(p.mul, c), m) : m;
  });
  // The floor keeps 127 / a finite (a row of zeros gets a tiny scale and zero bytes, never NaN).
  const float a = fmaxf(amax, KVSK_INT8_MIN_ABSMAX);
  const float inv = __fdiv_rn(127.f, a);
  if (tid == 0) p.xScale[blockIdx.x] = __fdiv_rn(a, 127.f);
  encodeCachedRow<kThreads>(x, q, chunks, v, [&](const uint4& e, int c) { return encode8<T>(e, Mul8(p.mul, c), inv); });
}

// x rounded to T, as its 16 bits.
template <typename T> __device__ __forceinline__ uint32_t bits(float x);
template <> __device__ __forceinline__ uint32_t bits<__nv_bfloat16>(float x) { return __bfloat16_as_ushort(__float2bfloat16_rn(x)); }
template <> __device__ __forceinline__ uint32_t bits<__half>(float x) { return __half_as_ushort(__float2half_rn(x)); }

// y = T(float(acc) * (xScale[m] * wScale[n])), four columns per thread (N % 4 == 0), grid-stride.
template <typename T>
__global__ void __launch_bounds__(kThreads) dequantKernel(kvsk_dequant_int8_params p) {
  pdlWait();  // acc is the previous kernel's output (cuBLASLt's, launched without PDL: then a no-op)
  pdlTrigger();
  const int quads = p.n / 4;
  const size_t total = (size_t)p.m * quads;
  for (size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x; i < total; i += (size_t)gridDim.x * kThreads) {
    const int m = static_cast<int>(i / quads), n = static_cast<int>(i % quads) * 4;
    const int4 a = reinterpret_cast<const int4*>(p.acc)[i];
    const float4 ws = *reinterpret_cast<const float4*>(p.wScale + n);
    const float xs = p.xScale[m];
    const uint32_t lo = bits<T>(__fmul_rn(__int2float_rn(a.x), __fmul_rn(xs, ws.x))) |
                        bits<T>(__fmul_rn(__int2float_rn(a.y), __fmul_rn(xs, ws.y))) << 16;
    const uint32_t hi = bits<T>(__fmul_rn(__int2float_rn(a.z), __fmul_rn(xs, ws.z))) |
                        bits<T>(__fmul_rn(__int2float_rn(a.w), __fmul_rn(xs, ws.w))) << 16;
    *reinterpret_cast<uint2*>(static_cast<T*>(p.y) + (size_t)m * p.n + n) = make_uint2(lo, hi);
  }
}

}  // namespace

}  // namespace kvsk

extern "C" cudaError_t kvsk_quantize_rows_int8(const kvsk_quantize_rows_int8_params* p, cudaStream_t stream) {
  if (p->m < 0 || p->k < 8 || p->k % 8 != 0) return cudaErrorInvalidValue;
  if ((reinterpret_cast<uintptr_t>(p->x) | reinterpret_cast<uintptr_t>(p->mul)) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(p->xq) % 8 != 0)
    return cudaErrorInvalidValue;
  if (p->m == 0) return cudaSuccess;
  const dim3 grid(p->m), block(kvsk::kThreads);
  if (p->dtype == KVSK_BF16) return kvsk::launch(kvsk::quantizeRowsKernel<__nv_bfloat16>, grid, block, 0, stream, *p);
  if (p->dtype == KVSK_F16) return kvsk::launch(kvsk::quantizeRowsKernel<__half>, grid, block, 0, stream, *p);
  return cudaErrorNotSupported;
}

extern "C" cudaError_t kvsk_dequant_int8(const kvsk_dequant_int8_params* p, cudaStream_t stream) {
  if (p->m < 0 || p->n < 4 || p->n % 4 != 0) return cudaErrorInvalidValue;
  if ((reinterpret_cast<uintptr_t>(p->acc) | reinterpret_cast<uintptr_t>(p->wScale)) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(p->y) % 8 != 0)
    return cudaErrorInvalidValue;
  if (p->m == 0) return cudaSuccess;
  const size_t blocks = ((size_t)p->m * (p->n / 4) + kvsk::kThreads - 1) / kvsk::kThreads;
  const dim3 grid(static_cast<unsigned>(blocks < (1u << 20) ? blocks : (1u << 20))), block(kvsk::kThreads);
  if (p->dtype == KVSK_BF16) return kvsk::launch(kvsk::dequantKernel<__nv_bfloat16>, grid, block, 0, stream, *p);
  if (p->dtype == KVSK_F16) return kvsk::launch(kvsk::dequantKernel<__half>, grid, block, 0, stream, *p);
  return cudaErrorNotSupported;
}
