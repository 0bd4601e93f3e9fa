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

// Round to nearest, ties to even, saturating to +-448; NaN -> 0x7f.
inline uint8_t e4m3Encode(float x) {
  if (std::isnan(x)) return 0x7f;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const double a = std::fabs(static_cast<double>(x));
  if (a >= 448.0) return sign | 0x7e;  // (448, 464] rounds to 448; beyond: saturation
  if (a == 0.0) return sign;
  int e = 0;
  std::frexp(a, &e);           // a in [2^(e-1), 2^e)
  const int E = std::max(e - 1, -6);  // below 2^-6: subnormals, spaced 2^-9 like the binade [2^-6, 2^-5)
  const double r = std::nearbyint(std::ldexp(a, 3 - E));  // exact scaling, then ties to even: [0, 16]
  // Normal: ((E + 7) << 3) | mantissa with r = 8 + mantissa; r = 16 carries into the next binade, and for
  // E = -6 the code of a subnormal is r itself: one formula.
  const int code = ((E + 7) << 3) + static_cast<int>(r) - 8;
  return sign | static_cast<uint8_t>(std::min(code, 0x7e));
}

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
