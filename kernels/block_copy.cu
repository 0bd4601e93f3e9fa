// Copy-on-write block copies across every layer's K and V plane in one launch: grid (pair, plane).
#include "common.cuh"

namespace kvsk {

template <typename T>
__global__ void blockCopyKernel(kvsk_block_copy_params p) {
  const int pair = blockIdx.x, plane = blockIdx.y;
  const int64_t src = p.pairs[2 * pair], dst = p.pairs[2 * pair + 1];
  T* base = static_cast<T*>(p.cache) + plane * p.planeElems;
  const T* s = base + src * p.blockElems;
  T* d = base + dst * p.blockElems;
  for (int64_t i = threadIdx.x; i < p.blockElems; i += blockDim.x) d[i] = s[i];
}

}  // namespace kvsk

extern "C" cudaError_t kvsk_block_copy(const kvsk_block_copy_params* p, cudaStream_t stream) {
  if (p->numPairs <= 0) return cudaSuccess;
  dim3 grid(p->numPairs, p->numPlanes);
  if (p->cacheDtype == KVSK_KV_FP8_E4M3) {
    // Bytes, moved 16 at a time when whole blocks allow (every shape the backend makes: D % 16 == 0).
    kvsk_block_copy_params q = *p;
    if (p->blockElems % 16 == 0 && p->planeElems % 16 == 0 && reinterpret_cast<uintptr_t>(p->cache) % 16 == 0) {
      q.blockElems /= 16;
      q.planeElems /= 16;
      kvsk::blockCopyKernel<uint4><<<grid, 256, 0, stream>>>(q);
    } else {
      kvsk::blockCopyKernel<uint8_t><<<grid, 256, 0, stream>>>(q);
    }
    return cudaGetLastError();
  }
  if (p->cacheDtype != KVSK_KV_SAME) return cudaErrorInvalidValue;
  KVSK_DTYPE_SWITCH(p->dtype, T, kvsk::blockCopyKernel<T><<<grid, 256, 0, stream>>>(*p));
  return cudaGetLastError();
}
