// The random inputs of the standalone case programs (int8_linear_cases.cc, cuda_int8_cases.cc): xorshift64* from
// one fixed seed, so that a program draws the same inputs on every machine and with every compiler.
#pragma once
#include <cstdint>

namespace kvs_cases {

inline uint64_t rng = 0x9e3779b97f4a7c15ull;

// The next value, in [-1, 1).
inline float uniform() {
  rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
  return float(double((rng * 2685821657736338717ull) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

}  // namespace kvs_cases
