#include "paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "simd.h"

namespace kvs {

KvCache::KvCache(int numLayers, int numBlocks, int blockSize, int numKvHeads, int headDim)
    : numLayers_(numLayers), numBlocks_(numBlocks), blockSize_(blockSize),
      rowFloats_(size_t(numKvHeads) * headDim), layerFloats_(size_t(numBlocks) * blockSize * rowFloats_) {
  base_ = static_cast<float*>(std::calloc(size_t(numLayers) * 2 * layerFloats_, sizeof(float)));
  if (!base_) throw std::bad_alloc();
}

KvCache::~KvCache() { std::free(base_); }

size_t KvCache::blockBytes() const { return size_t(numLayers_) * 2 * blockSize_ * rowFloats_ * sizeof(float); }

void KvCache::copyBlock(int src, int dst) {
  const size_t n = size_t(blockSize_) * rowFloats_;
  for (int l = 0; l < numLayers_; ++l) {
    std::memcpy(k(l) + size_t(dst) * n, k(l) + size_t(src) * n, n * sizeof(float));
    std::memcpy(v(l) + size_t(dst) * n, v(l) + size_t(src) * n, n * sizeof(float));
  }
}

void KvCache::write(int layer, const float* kIn, const float* vIn, int64_t ld, int T, const int32_t* slotMapping) {
  float* K = k(layer);
  float* V = v(layer);
  for (int t = 0; t < T; ++t) {
    const int32_t slot = slotMapping[t];
    if (slot < 0) continue;
    std::memcpy(K + size_t(slot) * rowFloats_, kIn + t * ld, rowFloats_ * sizeof(float));
    std::memcpy(V + size_t(slot) * rowFloats_, vIn + t * ld, rowFloats_ * sizeof(float));
  }
}

namespace {

inline float dot(const float* a, const float* b, int n) {
  if (n % simd::kLanes == 0) {
    simd::V acc = simd::zero();
    for (int i = 0; i < n; i += simd::kLanes) acc = simd::fma(simd::load(a + i), simd::load(b + i), acc);
    return simd::sum(acc);
  }
  float s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// One query row against n keys. scores: scratch [n]. out: [D].
void attendOne(const AttentionShape& sh, const float* q, const float* K, const float* V, size_t rowFloats, int kvHead,
               const int32_t* blockTable, int blockSize, int n, float* scores, float* out) {
  const int D = sh.headDim;
  float m = -INFINITY;
  for (int j = 0; j < n; ++j) {
    const size_t slot = size_t(blockTable[j / blockSize]) * blockSize + j % blockSize;
    scores[j] = dot(q, K + slot * rowFloats + size_t(kvHead) * D, D) * sh.scale;
    m = std::max(m, scores[j]);
  }
  float sum = 0;
  for (int j = 0; j < n; ++j) {
    scores[j] = std::exp(scores[j] - m);
    sum += scores[j];
  }
  for (int d = 0; d < D; ++d) out[d] = 0;
  for (int j = 0; j < n; ++j) {
    const float p = scores[j] / sum;
    const size_t slot = size_t(blockTable[j / blockSize]) * blockSize + j % blockSize;
    const float* v = V + slot * rowFloats + size_t(kvHead) * D;
    for (int d = 0; d < D; ++d) out[d] += p * v[d];
  }
}

}  // namespace

void pagedAttention(ThreadPool& pool, const AttentionShape& sh, const StepBatch& b, const int32_t* tokenSeq,
                    KvCache& cache, int layer, const float* q, float* out) {
  const int T = b.numTokens, H = sh.numHeads, D = sh.headDim;
  const int group = sh.numHeads / sh.numKvHeads;
  const int64_t items = int64_t(T) * H;
  const float* K = cache.k(layer);
  const float* V = cache.v(layer);
  int maxCtx = 1;
  for (int s = 0; s < b.numSeqs; ++s) maxCtx = std::max(maxCtx, b.contextLens[s]);
  // Tiny batches run inline; otherwise about eight chunks per thread.
  const int64_t grain = items * maxCtx * D < 65536 ? items : std::max<int64_t>(1, items / (int64_t(pool.size()) * 8));
  pool.parallelFor(items, grain, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    if (scores.size() < size_t(maxCtx)) scores.resize(maxCtx);
    for (int64_t it = begin; it < end; ++it) {
      const int t = int(it / H), h = int(it % H);
      const int s = tokenSeq[t];
      const int n = std::min(b.positions[t] + 1, b.contextLens[s]);
      attendOne(sh, q + size_t(t) * H * D + size_t(h) * D, K, V, cache.rowFloats(), h / group,
                b.blockTables + size_t(s) * b.maxBlocksPerSeq, cache.blockSize(), n, scores.data(),
                out + size_t(t) * H * D + size_t(h) * D);
    }
  });
}

}  // namespace kvs
