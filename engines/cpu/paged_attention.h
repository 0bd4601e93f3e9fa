// The paged KV cache of the CPU backend and causal attention over it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "../step.h"
#include "thread_pool.h"

namespace kvs {

// One pool per layer for K and one for V: [numLayers][numBlocks, blockSize, numKvHeads, headDim] float32.
// A token's slot is block * blockSize + offset, so its K row for layer l starts at
// k(l) + slot * numKvHeads * headDim. Memory is calloc'ed: pages are only touched once written.
class KvCache {
 public:
  KvCache(int numLayers, int numBlocks, int blockSize, int numKvHeads, int headDim);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  float* k(int layer) { return base_ + size_t(layer) * 2 * layerFloats_; }
  float* v(int layer) { return base_ + (size_t(layer) * 2 + 1) * layerFloats_; }
  int numBlocks() const { return numBlocks_; }
  int blockSize() const { return blockSize_; }
  size_t rowFloats() const { return rowFloats_; }          // numKvHeads * headDim
  size_t blockBytes() const;                               // one block over all layers, K and V

  // Copies block src to dst in every layer (copy-on-write before a step).
  void copyBlock(int src, int dst);
  // Writes T rows of k/v ([T, numKvHeads*headDim], row stride ld) of one layer to their slots; slot < 0 skips.
  void write(int layer, const float* k, const float* v, int64_t ld, int T, const int32_t* slotMapping);

 private:
  int numLayers_, numBlocks_, blockSize_;
  size_t rowFloats_, layerFloats_;
  float* base_ = nullptr;
};

struct AttentionShape {
  int numHeads, numKvHeads, headDim;
  float scale;  // 1/sqrt(headDim)
};

// out[t, h*D + d] = softmax_j(q[t,h]·K[j, h/G] * scale) · V[j, h/G] over j in [0, positions[t]] of the
// sequence owning token t (through its block table), G = numHeads/numKvHeads. q and out are
// [T, numHeads*headDim]; tokenSeq [T] gives each token's sequence. Work is split over (token, KV head);
// each head's sums run over its keys in order, so a row's result never depends on the rest of the batch.
// Throws when the CPU attention cannot run this shape (head_dim > 1024, more than 64 query heads per KV
// head): called when the backend is built, so a model is refused at load, not at its first step.
void checkAttentionShape(const AttentionShape& shape);

void pagedAttention(ThreadPool& pool, const AttentionShape& shape, const StepBatch& batch, const int32_t* tokenSeq,
                    KvCache& cache, int layer, const float* q, float* out);

}  // namespace kvs
