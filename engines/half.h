// Scalar conversions between float32 and the two 16-bit formats of checkpoints. Rounding is
// round-to-nearest-even, as torch's .to(bfloat16 / float16) does; widening is exact.
#pragma once
#include <cstdint>
#include <cstring>

namespace kvs {

inline float bitsToFloat(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t floatToBits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float bf16ToFloat(uint16_t h) { return bitsToFloat(uint32_t(h) << 16); }

inline uint16_t floatToBf16(float f) {
  uint32_t u = floatToBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float f16ToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return bitsToFloat(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp == 0) {
    if (man == 0) return bitsToFloat(sign);
    // subnormal: value = man * 2^-24, exact in float32
    float v = float(man) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return bitsToFloat(sign | ((exp + 112) << 23) | (man << 13));
}

inline uint16_t floatToF16(float f) {
  uint32_t u = floatToBits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);           // nan
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);          // rounds to >= 65520: inf
  if (a < 0x38800000u) {                                          // below the smallest normal 2^-14
    // subnormal (or zero): round a * 2^24 to an integer, nearest even
    float v = bitsToFloat(a) * 16777216.0f;  // exact scaling by a power of two
    uint32_t m = uint32_t(v);
    float rem = v - float(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return uint16_t(sign | m);
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - (112u << 23);
  return uint16_t(sign | (r >> 13));
}

// Widens element i of a tensor of dtype `dt` (0 = F32, 1 = BF16, 2 = F16 as in DType).
inline float loadAsFloat(const void* data, int dt, int64_t i) {
  if (dt == 0) return static_cast<const float*>(data)[i];
  uint16_t h = static_cast<const uint16_t*>(data)[i];
  return dt == 1 ? bf16ToFloat(h) : f16ToFloat(h);
}

}  // namespace kvs
