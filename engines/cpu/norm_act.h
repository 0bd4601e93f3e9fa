// Row-wise RMSNorm and the SwiGLU activation, with transformers' float32 rounding steps:
//   LlamaRMSNorm: var = mean(x²); h = x * rsqrt(var + eps); y = weight * h
//   LlamaMLP:     act = silu(gate) * up, silu(x) = x / (1 + exp(-x))
#pragma once
#include <cmath>
#include <cstdint>

namespace kvs {

// y[i] = w[i] * (x[i] * (1/sqrt(mean(x²) + eps))) for one row of n; x and y may alias.
// The sum of squares is taken in double: rows are independent, so this is batch invariant.
inline void rmsNormRow(const float* x, const float* w, int n, float eps, float* y) {
  double ss = 0;
  for (int i = 0; i < n; ++i) ss += double(x[i]) * double(x[i]);
  const float var = float(ss / n);
  const float inv = 1.0f / std::sqrt(var + eps);
  for (int i = 0; i < n; ++i) y[i] = w[i] * (x[i] * inv);
}

// gate[i] = silu(gate[i]) * up[i]
inline void siluMulRow(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

}  // namespace kvs
