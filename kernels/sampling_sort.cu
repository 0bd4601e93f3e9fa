// Stage 2 of sampling: the non-greedy rows sorted descending with CUB's segmented radix sort (stable, so
// equal logits keep the lower id first). Double buffers keep the scratch small: keys move between work and
// sortedKeys, ids between idsScratch and sortedIds, and the pointers are left on the ones holding the result.
#include <cub/device/device_segmented_radix_sort.cuh>

#include "common.cuh"

namespace kvsk {

// Segment i is row sortRows[i]; its ids are rewritten 0..V-1 each call (the sort permutes them).
__global__ void sortSetupKernel(kvsk_sample_params p) {
  const int i = blockIdx.x, row = p.sortRows[i];
  if (threadIdx.x == 0) { p.segBegin[i] = row * p.vocab; p.segEnd[i] = row * p.vocab + p.vocab; }
  int32_t* ids = p.idsScratch + (int64_t)row * p.vocab;
  for (int j = threadIdx.x; j < p.vocab; j += blockDim.x) ids[j] = j;
}

}  // namespace kvsk

extern "C" size_t kvsk_sample_sort_temp_bytes(int maxRows, int vocab) {
  cub::DoubleBuffer<float> keys(nullptr, nullptr);
  cub::DoubleBuffer<int32_t> vals(nullptr, nullptr);
  size_t bytes = 0;
  cub::DeviceSegmentedRadixSort::SortPairsDescending(nullptr, bytes, keys, vals, (int64_t)maxRows * vocab, maxRows,
                                                     (const int32_t*)nullptr, (const int32_t*)nullptr);
  return bytes;
}

extern "C" cudaError_t kvsk_sample_sort(kvsk_sample_params* p, cudaStream_t stream) {
  if (p->numSortRows <= 0) return cudaSuccess;
  kvsk::sortSetupKernel<<<p->numSortRows, 256, 0, stream>>>(*p);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  cub::DoubleBuffer<float> keys(p->work, p->sortedKeys);
  cub::DoubleBuffer<int32_t> vals(p->idsScratch, p->sortedIds);
  size_t bytes = p->sortTempBytes;
  e = cub::DeviceSegmentedRadixSort::SortPairsDescending(p->sortTemp, bytes, keys, vals,
                                                         (int64_t)p->rows * p->vocab, p->numSortRows,
                                                         p->segBegin, p->segEnd, 0, 32, stream);
  if (e != cudaSuccess) return e;
  p->sortedKeys = keys.Current();
  p->sortedIds = vals.Current();
  return cudaGetLastError();
}
