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

#if defined(KVS_SIMD_AVX512)
// r[j] = the sum of the 16 lanes of v[j], for 16 vectors at once (a transpose-reduce). Every input is
// summed by the same tree — pairs (e, e+2) within each 128-bit quarter, then the two pairs, then
// quarters (0+1) and (2+3), then the halves — so r[j] depends on v[j] alone.
inline __m512 sum16(const __m512* v) {
  __m512 t[8], u[4];
  for (int i = 0; i < 8; ++i)
    t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[2 * i]), b = _mm512_castps_pd(t[2 * i + 1]);
    u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  const __m512 x01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 x23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(x01, x23, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(x01, x23, _MM_SHUFFLE(3, 1, 3, 1)));
}
#endif

// scores[g * stride + j] = (q_g · k_j) * scale for the G heads and the n keys of one KV head.
// The dot product of one (head, key) is always the same sequence of operations: lanes over the head dim
// accumulated in order, then one fixed reduction tree (sum16 on AVX-512, simd::sum otherwise).
template <int kD>
void qkScores(const AttentionShape& sh, int G, const float* q, const float* Kh, size_t rowFloats,
              const int32_t* blockTable, int blockSize, int n, float* scores, size_t stride) {
  const int D = kD ? kD : sh.headDim;
  constexpr int L = simd::kLanes;
  if (D % L != 0 || D > 256) {  // plain loops
    forEachToken(Kh, rowFloats, blockTable, blockSize, n, [&](int j, const float* k) {
      for (int g = 0; g < G; ++g) {
        const float* qg = q + size_t(g) * D;
        float dot = 0;
        for (int i = 0; i < D; ++i) dot += qg[i] * k[i];
        scores[size_t(g) * stride + j] = dot * sh.scale;
      }
    });
    return;
  }
#if defined(KVS_SIMD_AVX512)
  // 16 keys at a time: each K row is loaded once for the whole group, 16 dot products reduce together.
  const float* rows[16];
  int cnt = 0, first = 0;
  auto flush = [&] {
    for (int g = 0; g < G; ++g) {
      const float* qg = q + size_t(g) * D;
      __m512 acc[16];
      for (int r = 0; r < 16; ++r) {
        acc[r] = _mm512_setzero_ps();
        if (r < cnt)
          for (int i = 0; i < D; i += L) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(qg + i), _mm512_loadu_ps(rows[r] + i), acc[r]);
      }
      const __m512 sc = _mm512_mul_ps(sum16(acc), _mm512_set1_ps(sh.scale));
      _mm512_mask_storeu_ps(scores + size_t(g) * stride + first, __mmask16((1u << cnt) - 1), sc);
    }
  };
  forEachToken(Kh, rowFloats, blockTable, blockSize, n, [&](int j, const float* k) {
    if (cnt == 0) first = j;
    rows[cnt++] = k;
    if (cnt == 16) { flush(); cnt = 0; }
  });
  if (cnt) flush();
#else
  forEachToken(Kh, rowFloats, blockTable, blockSize, n, [&](int j, const float* k) {
    for (int g = 0; g < G; ++g) {
      const float* qg = q + size_t(g) * D;
      simd::V acc = simd::zero();
      for (int i = 0; i < D; i += L) acc = simd::fma(simd::load(qg + i), simd::load(k + i), acc);
      scores[size_t(g) * stride + j] = simd::sum(acc) * sh.scale;
    }
  });
#endif
}

// The G query heads of one KV head (GQA group) for one token, against its n keys: per head,
// softmax(q·k * scale) with the probabilities normalised first (as transformers does), then the
// probability-weighted sum of V. Each K and V row is read once for the whole group, and V is consumed
// block by block (a block stays in L1 while every head of the group uses it); each head's sums still
// run over the keys in order, so the result is that of one head alone.
// q, out: [G, D] (the group's heads are adjacent); scores: scratch [G, n rounded up to whole vectors].
// kD is the head dim as a compile-time constant (so a head's accumulators live in registers), or 0.
template <int kD>
void attendGroup(const AttentionShape& sh, int G, const float* q, const float* K, const float* V, size_t rowFloats,
                 int kvHead, const int32_t* blockTable, int blockSize, int n, float* scores, float* out) {
  const int D = kD ? kD : sh.headDim;
  constexpr int L = simd::kLanes;
  const bool vec = D % L == 0 && D <= 256;  // whole vectors: SIMD over the head dim; else plain loops
  const size_t headOff = size_t(kvHead) * D;
  const int nPad = (n + L - 1) / L * L;
  qkScores<kD>(sh, G, q, K + headOff, rowFloats, blockTable, blockSize, n, scores, nPad);
  float m[64];
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    for (int j = 0; j < n; ++j) m[g] = std::max(m[g], scores[size_t(g) * nPad + j]);
  }
  // Rows of `scores` are nPad apart; the padding holds -inf, whose exp is 0, so whole vectors can be used.
  for (int g = 0; g < G; ++g) {
    float* sg = scores + size_t(g) * nPad;
    for (int j = n; j < nPad; ++j) sg[j] = -INFINITY;
    const simd::V mg = simd::set1(m[g]);
    simd::V acc = simd::zero();
    for (int j = 0; j < nPad; j += L) {
      const simd::V e = simd::expNonPositive(simd::sub(simd::load(sg + j), mg));
      simd::store(sg + j, e);
      acc = simd::add(acc, e);
    }
    const simd::V sum = simd::set1(simd::sum(acc));
    for (int j = 0; j < nPad; j += L) simd::store(sg + j, simd::div(simd::load(sg + j), sum));
    for (int d = 0; d < D; ++d) out[size_t(g) * D + d] = 0;
  }
  const float* Vh = V + headOff;
  for (int j0 = 0, blk = 0; j0 < n; j0 += blockSize, ++blk) {
    const float* rows = Vh + size_t(blockTable[blk]) * blockSize * rowFloats;
    const int cnt = std::min(blockSize, n - j0);
    for (int g = 0; g < G; ++g) {
      const float* p = scores + size_t(g) * nPad + j0;
      float* og = out + size_t(g) * D;
      if (vec) {
        simd::V acc[256 / L];
        for (int i = 0; i < D / L; ++i) acc[i] = simd::load(og + i * L);
        for (int j = 0; j < cnt; ++j) {
          const simd::V pj = simd::set1(p[j]);
          const float* v = rows + size_t(j) * rowFloats;
          for (int i = 0; i < D / L; ++i) acc[i] = simd::fma(pj, simd::load(v + i * L), acc[i]);
        }
        for (int i = 0; i < D / L; ++i) simd::store(og + i * L, acc[i]);
      } else {
        float acc[kD ? kD : 1024];  // headDim <= 1024 is checked by the caller
        for (int d = 0; d < D; ++d) acc[d] = og[d];
        for (int j = 0; j < cnt; ++j) {
          const float* v = rows + size_t(j) * rowFloats;
          for (int d = 0; d < D; ++d) acc[d] += p[j] * v[d];
        }
        for (int d = 0; d < D; ++d) og[d] = acc[d];
      }
    }
  }
}

using AttendFn = void (*)(const AttentionShape&, int, const float*, const float*, const float*, size_t, int,
                          const int32_t*, int, int, float*, float*);

AttendFn attendFor(int headDim) {
  switch (headDim) {
    case 8: return &attendGroup<8>;
    case 16: return &attendGroup<16>;
    case 32: return &attendGroup<32>;
    case 64: return &attendGroup<64>;
    case 80: return &attendGroup<80>;
    case 96: return &attendGroup<96>;
    case 128: return &attendGroup<128>;
    case 256: return &attendGroup<256>;
    default: return &attendGroup<0>;
  }
}

}  // namespace

void checkAttentionShape(const AttentionShape& sh) {
  if (sh.headDim > 1024) throw std::runtime_error("head_dim above 1024 is not supported by the CPU attention");
  if (sh.numHeads / sh.numKvHeads > 64)
    throw std::runtime_error("more than 64 query heads per KV head is not supported by the CPU attention");
}

void pagedAttention(ThreadPool& pool, const AttentionShape& sh, const StepBatch& b, const int32_t* tokenSeq,
                    KvCache& cache, int layer, const float* q, float* out) {
  const int T = b.numTokens, H = sh.numHeads, KVH = sh.numKvHeads, D = sh.headDim;
  const int G = H / KVH;
  checkAttentionShape(sh);  // also at load; kept here because the stack buffers below rely on it
  const int64_t items = int64_t(T) * KVH;  // (token, KV head): one GQA group each
  const float* K = cache.k(layer);
  const float* V = cache.v(layer);
  const AttendFn attend = attendFor(D);
  int maxCtx = 1;
  for (int s = 0; s < b.numSeqs; ++s) maxCtx = std::max(maxCtx, b.contextLens[s]);
  // Tiny batches run inline; otherwise about eight chunks per thread.
  const int64_t grain = items * G * maxCtx * D < 16384 ? items : std::max<int64_t>(1, items / (int64_t(pool.size()) * 8));
  pool.parallelFor(items, grain, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    const size_t need = size_t(G) * (maxCtx + simd::kLanes);
    if (scores.size() < need) scores.resize(need);
    for (int64_t it = begin; it < end; ++it) {
      const int t = int(it / KVH), kvh = int(it % KVH);
      const int s = tokenSeq[t];
      const int n = std::min(b.positions[t] + 1, b.contextLens[s]);
      const size_t off = size_t(t) * H * D + size_t(kvh) * G * D;
      attend(sh, G, q + off, K, V, cache.rowFloats(), kvh, b.blockTables + size_t(s) * b.maxBlocksPerSeq,
             cache.blockSize(), n, scores.data(), out + off);
    }
  });
}

}  // namespace kvs
