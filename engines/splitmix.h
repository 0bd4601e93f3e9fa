// splitmix64: the counter-based mixer behind the sampler's (seed, step) draw and the dummy-weight fill.
// kernels/sampling.cu and kernels/weights_init.cu carry device copies (kernels include no engine headers);
// the GPU sampler test checks the device draw equals engines/sampler.cc's.
#pragma once
#include <cstdint>

namespace kvs {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace kvs
