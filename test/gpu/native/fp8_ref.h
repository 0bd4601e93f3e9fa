// Plain CPU references of the FP8 (E4M3, "e4m3fn") scheme of kvserve_kernels.h, written from the format's
// definition (bias 7, 3 mantissa bits, subnormals below 2^-6, largest finite 448, no infinities) rather than
// from the kernels; fp8_quant_test.cu checks the encoder against cuda_fp8.h's own host conversion too.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness.h"

namespace kt {

// e4m3Encode (round to nearest, ties to even, saturating to +-448): harness.h, shared with the fp8 KV
// cache tests.

inline double e4m3Decode(uint8_t b) {
  const int E = (b >> 3) & 15, m = b & 7;
  const double v = E == 0 ? std::ldexp(m, -9) : std::ldexp(8 + m, E - 10);
  return (b & 0x80) ? -v : v;
}

// kvsk_quantize_rows_fp8 of one row: returns xScale, fills q.
inline float quantizeRowRef(const float* x, int k, uint8_t* q) {
  float amax = 0.f;
  for (int i = 0; i < k; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float s = std::max(amax / 448.0f, KVSK_FP8_MIN_ACT_SCALE);
  for (int i = 0; i < k; ++i) q[i] = e4m3Encode(x[i] / s);
  return s;
}

// kvsk_quantize_weight_fp8 of one row: returns wScale, fills q.
inline float quantizeWeightRowRef(const float* w, int k, uint8_t* q) {
  float amax = 0.f;
  for (int i = 0; i < k; ++i) amax = std::max(amax, std::fabs(w[i]));
  float s = amax / 448.0f;
  if (!(s >= FLT_MIN)) s = amax > 0.f ? FLT_MIN : 1.f;
  for (int i = 0; i < k; ++i) q[i] = e4m3Encode(w[i] / s);
  return s;
}

// Random e4m3 bytes, never NaN; subnormalOnly: codes of exponent 0 (zeros and subnormals) only.
inline std::vector<uint8_t> randomE4m3(size_t n, bool subnormalOnly) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) {
    int c = irand(0, subnormalOnly ? 15 : 253);  // 254 finite codes: 0x00..0x7e, 0x80..0xfe
    if (subnormalOnly) c = (c & 7) | (c & 8 ? 0x80 : 0);
    else if (c >= 127) c = c - 127 + 0x80;
    b = static_cast<uint8_t>(c);
  }
  return v;
}

}  // namespace kt
