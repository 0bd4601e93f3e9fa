// Test harness of kvserve_kernel_tests: device arrays, host dtype rounding, random inputs, a parallel-for
// for the naive CPU references, and the result table every suite reports into.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kvserve_kernels.h"

#define CK(expr)                                                                                  \
  do {                                                                                            \
    cudaError_t e_ = (expr);                                                                      \
    if (e_ != cudaSuccess)                                                                        \
      throw std::runtime_error(std::string(#expr) + ": " + cudaGetErrorString(e_) + " @" + __FILE__ + ":" + std::to_string(__LINE__)); \
  } while (0)

namespace kt {

inline const char* dtName(kvsk_dtype t) { return t == KVSK_F32 ? "f32" : t == KVSK_BF16 ? "bf16" : "f16"; }
inline size_t dtSize(kvsk_dtype t) { return t == KVSK_F32 ? 4 : 2; }

// Host value -> bits of dtype, and back; round(x) is what storing x in dtype keeps.
inline void store(kvsk_dtype t, void* base, size_t i, float x) {
  if (t == KVSK_F32) static_cast<float*>(base)[i] = x;
  else if (t == KVSK_BF16) static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(x);
  else static_cast<__half*>(base)[i] = __float2half_rn(x);
}
inline float load(kvsk_dtype t, const void* base, size_t i) {
  if (t == KVSK_F32) return static_cast<const float*>(base)[i];
  if (t == KVSK_BF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
  return __half2float(static_cast<const __half*>(base)[i]);
}
inline float round(kvsk_dtype t, float x) {
  uint32_t tmp;
  store(t, &tmp, 0, x);
  return load(t, &tmp, 0);
}

// OCP e4m3 (the fp8 KV cache), written from the format's definition rather than from cuda_fp8.h: bias 7,
// codes 0x00-0x7E finite (0x7E = 448), 0x7F NaN, sign in bit 7; e = 0 is subnormal (m * 2^-9).
inline double e4m3Value(uint8_t c) {
  const int e = (c >> 3) & 15, m = c & 7;
  if ((c & 0x7F) == 0x7F) return NAN;
  const double mag = e == 0 ? std::ldexp((double)m, -9) : std::ldexp(1.0 + m / 8.0, e - 7);
  return (c & 0x80) ? -mag : mag;
}
// Round to nearest, ties to the even code, saturated to +-448 (infinities too); NaN -> 0x7F.
inline uint8_t e4m3Encode(float x) {
  if (std::isnan(x)) return 0x7F;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const double a = std::fabs((double)x);
  if (a >= 448.0) return sign | 0x7E;
  int lo = 0;  // the largest code whose value is <= a
  while (lo < 0x7E && e4m3Value((uint8_t)(lo + 1)) <= a) ++lo;
  const double mid = (e4m3Value((uint8_t)lo) + e4m3Value((uint8_t)(lo + 1))) / 2;  // exact in double
  const int c = a < mid ? lo : a > mid ? lo + 1 : (lo & 1) ? lo + 1 : lo;
  return (uint8_t)(sign | c);
}

// A typed host buffer of n elements of dtype, with a device mirror.
struct Buf {
  kvsk_dtype t = KVSK_F32;
  size_t n = 0;
  std::vector<uint8_t> host;
  void* dev = nullptr;
  Buf() = default;
  Buf(kvsk_dtype t_, size_t n_) : t(t_), n(n_), host(n_ * dtSize(t_)) { CK(cudaMalloc(&dev, host.size() + 16)); }
  ~Buf() { if (dev) cudaFree(dev); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  float get(size_t i) const { return load(t, host.data(), i); }
  void set(size_t i, float x) { store(t, host.data(), i, x); }
  void up() { CK(cudaMemcpy(dev, host.data(), host.size(), cudaMemcpyHostToDevice)); }
  void down() { CK(cudaMemcpy(host.data(), dev, host.size(), cudaMemcpyDeviceToHost)); }
  void poison() { CK(cudaMemset(dev, 0xFF, host.size())); }  // all-ones bits: NaN in every float dtype
};

template <typename T>
struct DevVec {
  T* dev = nullptr;
  size_t n = 0;
  explicit DevVec(const std::vector<T>& v) : n(v.size()) {
    CK(cudaMalloc(&dev, (n ? n : 1) * sizeof(T)));
    if (n) CK(cudaMemcpy(dev, v.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  explicit DevVec(size_t count) : n(count) { CK(cudaMalloc(&dev, (n ? n : 1) * sizeof(T))); }
  ~DevVec() { cudaFree(dev); }
  DevVec(const DevVec&) = delete;
  std::vector<T> down() const {
    std::vector<T> v(n);
    if (n) CK(cudaMemcpy(v.data(), dev, n * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
};

inline void parallelFor(int n, const std::function<void(int)>& f) {
  const int nt = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  std::vector<std::thread> ts;
  for (int w = 0; w < nt; ++w)
    ts.emplace_back([&, w] { for (int i = w; i < n; i += nt) f(i); });
  for (auto& t : ts) t.join();
}

// Error of out against ref: worst of |out - ref| / (atol + rtol * |ref|) (<= 1 passes), NaN counts as fail.
struct ErrStat {
  double worst = 0, maxAbs = 0;
  size_t bad = 0, n = 0;
  void add(double out, double ref, double atol, double rtol) {
    ++n;
    const double d = std::fabs(out - ref);
    if (!(d == d)) { ++bad; worst = INFINITY; return; }
    maxAbs = std::max(maxAbs, d);
    const double r = d / (atol + rtol * std::fabs(ref));
    worst = std::max(worst, r);
    if (r > 1) ++bad;
  }
  bool ok() const { return bad == 0 && n > 0; }
};

struct Row {
  std::string suite, name;
  int cases;
  double maxAbs, worst;
  bool pass;
  std::string note;
};
std::vector<Row>& results();
inline void report(const std::string& suite, const std::string& name, int cases, const ErrStat& e, const std::string& note = "") {
  results().push_back({suite, name, cases, e.maxAbs, e.worst, e.ok(), note});
  if (!e.ok()) std::printf("FAIL %s / %s: %zu of %zu outside tolerance (max abs %.3g) %s\n", suite.c_str(), name.c_str(), e.bad, e.n, e.maxAbs, note.c_str());
}
inline void reportBool(const std::string& suite, const std::string& name, int cases, bool pass, const std::string& note) {
  results().push_back({suite, name, cases, 0, 0, pass, note});
  if (!pass) std::printf("FAIL %s / %s: %s\n", suite.c_str(), name.c_str(), note.c_str());
}

// Elements of a and b whose bytes differ (a length mismatch counts one), the first as "WHAT INDEX" into first.
template <typename T>
size_t countDiff(const std::vector<T>& a, const std::vector<T>& b, std::string* first, const char* what) {
  size_t bad = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0 && bad++ == 0) *first = std::string(what) + " " + std::to_string(i);
  return bad;
}

inline std::mt19937& rng() { static std::mt19937 g(20251125); return g; }
// Uniform in [lo, hi) as a pure function of (seed, i) (splitmix64): inputs filled in parallel, the same whatever
// the thread count. seed: one draw of rng() per case, so cases still differ.
inline float hashUni(uint64_t seed, uint64_t i, float lo, float hi) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return lo + (hi - lo) * (float)((double)(z >> 40) * (1.0 / 16777216.0));
}
inline float uni(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng()); }
inline int irand(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng()); }  // inclusive

}  // namespace kt
