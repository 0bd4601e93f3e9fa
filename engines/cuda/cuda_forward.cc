// One step on the GPU: inputs up in one copy, block copies, the Llama-family forward pass over all T new
// tokens, the final norm and lm_head for the R sampled rows only, then sampling (gpu_sampler.cc).
//
//   residual = embed(tokens)                                   [T, H]
//   per layer:  x = rmsnorm(residual (+= proj))                 [T, H]
//               qkv = x Wqkv^T                                  [T, (Hq + 2 Hkv) D]
//               q, cache <- rope(bias/qk-norm(qkv))             [T, Hq, D], K/V at slotMapping
//               attn = paged_attention(q, cache)                [T, Hq, D]
//               proj = attn Wo^T                                [T, H]
//               x = rmsnorm(residual += proj)
//               proj = silu(x Wgate^T) * (x Wup^T) Wdown^T      [T, H]
//   h = rmsnorm(residual += proj)[sampleIndices]                [R, H]
//   logits = h Wlm^T                                            [R, V]
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "kvserve_kernels.h"

namespace kvs::cuda {

void CudaBackend::uploadInputs(const StepBatch& b) {
  const int T = b.numTokens, S = b.numSeqs, R = b.numSamples;
  tileSeq_.resize(std::max(T, 1));
  tileQStart_.resize(std::max(T, 1));
  tileSlot_.resize(std::max(T, 1));
  kvsk_attention_plan_info plan{};
  const int rc = kvsk_attention_plan(b.queryStart, b.contextLens, S, cfg_.numHeads, cfg_.numKvHeads, cfg_.headDim,
                                     partition_, tileSeq_.data(), tileQStart_.data(), tileSlot_.data(), T, &plan);
  if (rc != 0) throw std::runtime_error("attention planning failed (" + std::to_string(rc) + ")");
  if (plan.maxSplits > maxSplits_ || plan.numSplitSlots > maxS_)
    throw std::runtime_error("context longer than maxModelLen reached the attention kernel");
  numTiles_ = plan.numTiles;
  tokensPerTile_ = plan.tokensPerTile;
  numSplitSlots_ = plan.numSplitSlots;
  stepMaxSplits_ = plan.maxSplits;
  decode_ = plan.decode;

  // Every array is 4-byte words; each starts on a 16-byte boundary.
  size_t words = 0;
  auto reserve = [&](size_t n) { const size_t o = words; words += (n + 3) / 4 * 4; return o; };
  const size_t tableWords = static_cast<size_t>(S) * b.maxBlocksPerSeq;
  off_.tokens = reserve(T);
  off_.positions = reserve(T);
  off_.queryStart = reserve(S + 1);
  off_.contextLens = reserve(S);
  off_.blockTables = reserve(tableWords);
  off_.slots = reserve(T);
  off_.sampleIdx = reserve(R);
  off_.tileSeq = reserve(numTiles_);
  off_.tileQ = reserve(numTiles_);
  off_.tileSlot = reserve(numTiles_);
  off_.copies = reserve(2 * static_cast<size_t>(b.numBlockCopies));
  hostInputs_.resize(words * 4);
  inputs_.resize(words * 4);
  int32_t* h = hostInputs_.get<int32_t>();
  auto copy = [&](size_t at, const int32_t* src, size_t n) { if (n) std::memcpy(h + at, src, n * 4); };
  copy(off_.tokens, b.tokenIds, T);
  copy(off_.positions, b.positions, T);
  copy(off_.queryStart, b.queryStart, S + 1);
  copy(off_.contextLens, b.contextLens, S);
  copy(off_.blockTables, b.blockTables, tableWords);
  copy(off_.slots, b.slotMapping, T);
  copy(off_.sampleIdx, b.sampleIndices, R);
  copy(off_.tileSeq, tileSeq_.data(), numTiles_);
  copy(off_.tileQ, tileQStart_.data(), numTiles_);
  copy(off_.tileSlot, tileSlot_.data(), numTiles_);
  copy(off_.copies, b.blockCopies, 2 * static_cast<size_t>(b.numBlockCopies));
  KVS_CUDA_CHECK(cudaMemcpyAsync(inputs_.get(), h, words * 4, cudaMemcpyHostToDevice, stream_));
}

void CudaBackend::step(const StepBatch& b, StepResult& out) {
  const int T = b.numTokens, S = b.numSeqs, R = b.numSamples;
  if (T > maxT_) throw std::runtime_error("step has " + std::to_string(T) + " tokens > maxNumBatchedTokens " + std::to_string(maxT_));
  if (S > maxS_ || R > maxS_) throw std::runtime_error("step has more sequences or samples than maxNumSeqs " + std::to_string(maxS_));
  if (T <= 0 || S <= 0) {
    out = StepResult{};
    return;
  }
  uploadInputs(b);
  forward(b);
  if (R == 0) {
    KVS_CUDA_CHECK(cudaStreamSynchronize(stream_));
    out = StepResult{};
    return;
  }
  sampler_->sample(b.sampling, R, logits_.get(), dt_, b.returnLogits, out);
}

void CudaBackend::forward(const StepBatch& b) {
  const int T = b.numTokens, R = b.numSamples;
  const int H = cfg_.hiddenSize, I = cfg_.intermediateSize, V = cfg_.vocabSize;
  const int Hq = cfg_.numHeads, Hkv = cfg_.numKvHeads, D = cfg_.headDim;
  const kvsk_dtype dt = static_cast<kvsk_dtype>(dt_);
  const size_t es = dtypeSize(dt_);
  const int32_t* in = inputs_.get<int32_t>();
  char* kv = kv_.get<char>();
  const size_t planeBytes = kvPlaneElems_ * es;

  if (b.numBlockCopies > 0) {
    kvsk_block_copy_params c{kv, in + off_.copies, b.numBlockCopies, 2 * cfg_.numLayers,
                             static_cast<int64_t>(kvPlaneElems_),
                             static_cast<int64_t>(opts_.blockSize) * Hkv * D, dt};
    KVS_CUDA_CHECK(kvsk_block_copy(&c, stream_));
  }
  kvsk_embedding_params e{w_.embed, in + off_.tokens, residual_.get(), T, H, V, dt};
  KVS_CUDA_CHECK(kvsk_embedding(&e, stream_));

  const float eps = static_cast<float>(cfg_.rmsNormEps);
  for (int l = 0; l < cfg_.numLayers; ++l) {
    const CudaLayerWeights& L = w_.layers[l];
    void* kCache = kv + (2 * static_cast<size_t>(l)) * planeBytes;
    void* vCache = kv + (2 * static_cast<size_t>(l) + 1) * planeBytes;

    kvsk_rmsnorm_params n1{l == 0 ? nullptr : proj_.get(), residual_.get(), nullptr, L.inputNorm, normed_.get(), T, H, eps, dt};
    KVS_CUDA_CHECK(kvsk_rmsnorm(&n1, stream_));
    gemm_->run(normed_.get(), L.qkv, qkv_.get(), T, qkvRows_, H, dt_, dt_);

    kvsk_rope_cache_params rp{qkv_.get(), q_.get(), kCache, vCache, in + off_.positions, in + off_.slots,
                              invFreq_.get<float>(), L.qkvBias, L.qNorm, L.kNorm, eps, T, Hq, Hkv, D, dt};
    KVS_CUDA_CHECK(kvsk_rope_cache(&rp, stream_));

    kvsk_attention_params ap{};
    ap.q = q_.get(); ap.kCache = kCache; ap.vCache = vCache; ap.out = attn_.get();
    ap.blockTables = in + off_.blockTables; ap.queryStart = in + off_.queryStart; ap.contextLens = in + off_.contextLens;
    ap.tileSeq = in + off_.tileSeq; ap.tileQStart = in + off_.tileQ; ap.tileSplitSlot = in + off_.tileSlot;
    ap.partialOut = partOut_.get<float>(); ap.partialMax = partMax_.get<float>(); ap.partialSum = partSum_.get<float>();
    ap.numTiles = numTiles_; ap.tokensPerTile = tokensPerTile_; ap.numSplitSlots = numSplitSlots_;
    ap.maxSplits = stepMaxSplits_; ap.partitionSize = partition_;
    ap.numHeads = Hq; ap.numKvHeads = Hkv; ap.headDim = D; ap.blockSize = opts_.blockSize;
    ap.maxBlocksPerSeq = b.maxBlocksPerSeq; ap.scale = 1.f / std::sqrt(static_cast<float>(D)); ap.dtype = dt;
    KVS_CUDA_CHECK(kvsk_attention(&ap, decode_, stream_));
    gemm_->run(attn_.get(), L.o, proj_.get(), T, H, Hq * D, dt_, dt_);

    kvsk_rmsnorm_params n2{proj_.get(), residual_.get(), nullptr, L.postNorm, normed_.get(), T, H, eps, dt};
    KVS_CUDA_CHECK(kvsk_rmsnorm(&n2, stream_));
    gemm_->run(normed_.get(), L.gateUp, gateUp_.get(), T, 2 * I, H, dt_, dt_);
    kvsk_silu_mul_params sm{gateUp_.get(), act_.get(), T, I, dt};
    KVS_CUDA_CHECK(kvsk_silu_mul(&sm, stream_));
    gemm_->run(act_.get(), L.down, proj_.get(), T, H, I, dt_, dt_);
  }
  if (R == 0) return;
  kvsk_rmsnorm_params nf{cfg_.numLayers > 0 ? proj_.get() : nullptr, residual_.get(), in + off_.sampleIdx,
                         w_.finalNorm, final_.get(), R, H, eps, dt};
  KVS_CUDA_CHECK(kvsk_rmsnorm(&nf, stream_));
  gemm_->run(final_.get(), w_.lmHead, logits_.get(), R, V, H, dt_, dt_);
}

}  // namespace kvs::cuda
