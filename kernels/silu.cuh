// SiLU-and-mul of one element, shared by the SiLU-and-mul kernels (silu_mul.cu) and the gate/up GEMVs' fused
// epilogues (gemv_epilogue.cuh), so that all of them round alike bit for bit.
#pragma once
#include "common.cuh"

namespace kvsk {

// transformers' act_fn(gate) * up in dtype T: dtype(silu(gate)) * up, rounded to T.
template <typename T>
__device__ __forceinline__ T siluMul(T gate, T up) {
  const float g = toF<T>(gate);
  const float act = roundTo<T>(g / (1.f + expf(-g)));
  return fromF<T>(act * toF<T>(up));
}

}  // namespace kvsk
