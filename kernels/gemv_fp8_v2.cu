// The FP8 GEMV's version 2 as kvsk_gemv_fp8 runs it (gemv_fp8_v2.cuh: the kernel): the sums times wScale, rounded
// to the dtype, into y. And the device limits every version 2 launch asks for, plain or fused.
#include <map>
#include <mutex>
#include <tuple>

#include "gemv_fp8_v2.cuh"

namespace kvsk {
namespace fp8v2 {

namespace {

// y[m, n] = dtype(sum * wScale[n]) for rows n < N in slot n.
template <typename T>
struct YStore {
  kvsk_gemv_fp8_params gemv;
  __host__ __device__ int numTiles() const { return (gemv.n + 15) / 16; }
  __device__ __forceinline__ int row(int slot) const { return min(slot, gemv.n - 1); }
  __device__ __forceinline__ bool live(int slot) const { return slot < gemv.n; }
  __device__ __forceinline__ void store(int slot, int m, float lo, float hi) const {
    T* y = static_cast<T*>(gemv.y) + (size_t)m * gemv.n;
    if (m < gemv.m && slot < gemv.n) y[slot] = fromF<T>(lo * __ldg(gemv.wScale + slot));
    if (m < gemv.m && slot + 8 < gemv.n) y[slot + 8] = fromF<T>(hi * __ldg(gemv.wScale + slot + 8));
  }
};

std::mutex limitsMutex;

}  // namespace

bool deviceLimits(DeviceLimits* out) {
  static std::map<int, DeviceLimits> cache;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  std::lock_guard<std::mutex> lock(limitsMutex);
  auto it = cache.find(dev);
  if (it == cache.end()) {
    DeviceLimits d;
    if (cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&d.smemPerCta, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess)
      return false;
    it = cache.emplace(dev, d).first;
  }
  *out = it->second;
  return true;
}

int ctasPerSm(const void* kernel, int threads, size_t smem) {
  static std::map<std::tuple<const void*, size_t, int>, int> cache;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  std::lock_guard<std::mutex> lock(limitsMutex);
  const auto key = std::make_tuple(kernel, smem, dev);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  int n = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, threads, smem) != cudaSuccess) return 0;
  return cache[key] = n;
}

}  // namespace fp8v2

// Called by kvsk_gemv_fp8 (gemv_fp8.cu) for version 2, after its checks.
cudaError_t gemvFp8V2(const kvsk_gemv_fp8_params& p, cudaStream_t stream) {
  using namespace fp8v2;
  if (p.dtype == KVSK_BF16) return launchFor<__nv_bfloat16>(YStore<__nv_bfloat16>{p}, stream);
  return launchFor<__half>(YStore<__half>{p}, stream);
}

}  // namespace kvsk
