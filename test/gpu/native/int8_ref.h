// Plain CPU references of the INT8 (W8A8) scheme of kvserve_kernels.h, written from its definition: the
// per-row quantizer (x times the multiplier, absmax with the 2^-100 floor, 127 / a, round half to even,
// clamp to +-127), exact integer sums in int64, and the epilogue dtype(float(sum) * (xScale * wScale)).
// Every float operation is one IEEE operation as written, so the kernels must match these bit for bit.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "harness.h"

namespace kt {

// kvsk_quantize_rows_int8 of one row (mul may be null): returns xScale, fills q.
inline float quantizeRowInt8Ref(const float* x, const float* mul, int k, int8_t* q) {
  float amax = 0.f;
  for (int i = 0; i < k; ++i) amax = std::fmax(amax, std::fabs(mul ? x[i] * mul[i] : x[i]));
  const float a = std::fmax(amax, KVSK_INT8_MIN_ABSMAX);
  const float inv = 127.f / a;
  for (int i = 0; i < k; ++i) {
    const float r = std::nearbyint((mul ? x[i] * mul[i] : x[i]) * inv);
    q[i] = static_cast<int8_t>(std::fmax(-127.f, std::fmin(127.f, r)));
  }
  return a / 127.f;
}

// The 16-bit pattern of x rounded to bf16/f16. Through memcpy: storing a __nv_bfloat16 into a uint32_t and
// reading the uint32_t back is undefined (strict aliasing), and g++ -O3 kept the uint32_t's earlier value, 0.
inline uint32_t outBits(kvsk_dtype dt, float x) {
  uint16_t b = 0;
  if (dt == KVSK_BF16) {
    const __nv_bfloat16 h = __float2bfloat16_rn(x);
    std::memcpy(&b, &h, 2);
  } else {
    const __half h = __float2half_rn(x);
    std::memcpy(&b, &h, 2);
  }
  return b;
}

// "got 0x.... want 0x....": the two 16-bit patterns of a bitwise mismatch, for the case's note.
inline std::string bitsNote(uint32_t got, uint32_t want) {
  char b[48];
  std::snprintf(b, sizeof b, "got 0x%04x want 0x%04x", got, want);
  return b;
}

// The epilogue of one output element, as a float (the caller rounds it to the output dtype).
inline float dequantInt8Ref(int64_t acc, float xScale, float wScale) {
  return static_cast<float>(static_cast<int32_t>(acc)) * (xScale * wScale);
}

// Random int8 codes in [-127, 127]; extremes: every code +-127 (the largest sums).
inline std::vector<int8_t> randomInt8(size_t n, bool extremes = false) {
  std::vector<int8_t> v(n);
  for (auto& b : v) b = static_cast<int8_t>(extremes ? (irand(0, 1) ? 127 : -127) : irand(-127, 127));
  return v;
}

// y[r][n] = the exact int64 sum of xq row r times w8 row n (rows given by index).
inline std::vector<std::vector<int64_t>> int8Sums(const std::vector<int8_t>& xq, const std::vector<int>& rows,
                                                  const std::vector<int8_t>& w8, int N, int K) {
  std::vector<std::vector<int64_t>> out(rows.size(), std::vector<int64_t>(N));
  parallelFor(N, [&](int n) {
    const int8_t* w = &w8[(size_t)n * K];
    for (size_t i = 0; i < rows.size(); ++i) {
      const int8_t* x = &xq[(size_t)rows[i] * K];
      int64_t acc = 0;
      for (int k = 0; k < K; ++k) acc += int64_t(x[k]) * int64_t(w[k]);
      out[i][n] = acc;
    }
  });
  return out;
}

}  // namespace kt
