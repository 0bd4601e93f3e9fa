#include "paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
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

// Calls fn(j, row) for the n first tokens of a sequence, walking its block table block by block
// (row = the token's K or V row in the pool, at `base`).
template <typename F>
inline void forEachToken(const float* base, size_t rowFloats, const int32_t* blockTable, int blockSize, int n, F&& fn) {
  for (int j = 0, blk = 0; j < n; ++blk) {
    const float* row = base + size_t(blockTable[blk]) * blockSize * rowFloats;
    const int end = std::min(n, j + blockSize);
    for (; j < end; ++j, row += rowFloats) fn(j, row);
  }
}

// One query row against n keys: softmax(q·k * scale) then the probability-weighted sum of V, with the
// probabilities normalised first (as transformers does). scores: scratch [n]; out: [D].
// kD is the head dim as a compile-time constant (so small heads live in registers), or 0 for any.
template <int kD>
void attendOne(const AttentionShape& sh, const float* q, const float* K, const float* V, size_t rowFloats, int kvHead,
               const int32_t* blockTable, int blockSize, int n, float* scores, float* out) {
  const int D = kD ? kD : sh.headDim;
  constexpr int L = simd::kLanes;
  const bool vec = D % L == 0;  // whole vectors: SIMD over the head dim; else plain loops
  const size_t headOff = size_t(kvHead) * D;
  float m = -INFINITY;
  forEachToken(K + headOff, rowFloats, blockTable, blockSize, n, [&](int j, const float* k) {
    float dot;
    if (vec) {
      simd::V acc = simd::zero();
      for (int i = 0; i < D; i += L) acc = simd::fma(simd::load(q + i), simd::load(k + i), acc);
      dot = simd::sum(acc);
    } else {
      dot = 0;
      for (int i = 0; i < D; ++i) dot += q[i] * k[i];
    }
    scores[j] = dot * sh.scale;
    m = std::max(m, scores[j]);
  });
  float sum = 0;
  for (int j = 0; j < n; ++j) {
    scores[j] = std::exp(scores[j] - m);
    sum += scores[j];
  }
  if (vec && D <= 256) {
    simd::V acc[256 / L];
    for (int i = 0; i < D / L; ++i) acc[i] = simd::zero();
    forEachToken(V + headOff, rowFloats, blockTable, blockSize, n, [&](int j, const float* v) {
      const simd::V p = simd::set1(scores[j] / sum);
      for (int i = 0; i < D / L; ++i) acc[i] = simd::fma(p, simd::load(v + i * L), acc[i]);
    });
    for (int i = 0; i < D / L; ++i) simd::store(out + i * L, acc[i]);
  } else {
    float acc[kD ? kD : 1024];  // headDim <= 1024 is checked by the caller for kD == 0
    for (int d = 0; d < D; ++d) acc[d] = 0;
    forEachToken(V + headOff, rowFloats, blockTable, blockSize, n, [&](int j, const float* v) {
      const float p = scores[j] / sum;
      for (int d = 0; d < D; ++d) acc[d] += p * v[d];
    });
    for (int d = 0; d < D; ++d) out[d] = acc[d];
  }
}

using AttendFn = void (*)(const AttentionShape&, const float*, const float*, const float*, size_t, int, const int32_t*,
                          int, int, float*, float*);

AttendFn attendFor(int headDim) {
  switch (headDim) {
    case 8: return &attendOne<8>;
    case 16: return &attendOne<16>;
    case 32: return &attendOne<32>;
    case 64: return &attendOne<64>;
    case 80: return &attendOne<80>;
    case 96: return &attendOne<96>;
    case 128: return &attendOne<128>;
    case 256: return &attendOne<256>;
    default: return &attendOne<0>;
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
  if (D > 1024) throw std::runtime_error("head_dim above 1024 is not supported by the CPU attention");
  const AttendFn attend = attendFor(D);
  int maxCtx = 1;
  for (int s = 0; s < b.numSeqs; ++s) maxCtx = std::max(maxCtx, b.contextLens[s]);
  // Tiny batches run inline; otherwise about eight chunks per thread.
  const int64_t grain = items * maxCtx * D < 16384 ? items : std::max<int64_t>(1, items / (int64_t(pool.size()) * 8));
  pool.parallelFor(items, grain, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    if (scores.size() < size_t(maxCtx)) scores.resize(maxCtx);
    for (int64_t it = begin; it < end; ++it) {
      const int t = int(it / H), h = int(it % H);
      const int s = tokenSeq[t];
      const int n = std::min(b.positions[t] + 1, b.contextLens[s]);
      attend(sh, q + size_t(t) * H * D + size_t(h) * D, K, V, cache.rowFloats(), h / group,
                b.blockTables + size_t(s) * b.maxBlocksPerSeq, cache.blockSize(), n, scores.data(),
                out + size_t(t) * H * D + size_t(h) * D);
    }
  });
}

}  // namespace kvs
