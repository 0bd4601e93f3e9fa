// One step on the GPU: inputs up in one copy, block copies, the Llama-family forward pass over all T new
// tokens, the final norm and lm_head for the R sampled rows only, then sampling (gpu_sampler.cc).
//
//   residual = embed(tokens)                                   [T, H]
//   per layer:  x = rmsnorm(residual (+= proj))                 [T, H]
//               qkv = x Wqkv^T                                  [T, (Hq + 2 Hkv) D]
//               q, cache <- rope(bias/qk-norm(qkv))             [T, Hq, D], K/V at slotMapping
//                 (with EngineOptions::gemvFuse, where the qkv GEMM is the GEMV: one kernel, qkv unwritten;
//                 gemvFuseFp8, where an fp8 qkv runs the FP8 GEMV's version 2: the same)
//               attn = paged_attention(q, cache)                [T, Hq, D]
//               proj = attn Wo^T                                [T, H]
//               x = rmsnorm(residual += proj)
//               proj = silu(x Wgate^T) * (x Wup^T) Wdown^T      [T, H]
//                 (gemvFuse / gemvFuseFp8, where gate/up is the GEMV: SiLU-and-mul in its epilogue, [T, 2I] unwritten)
//   h = rmsnorm(residual += proj)[sampleIndices]                [R, H]
//   logits = h Wlm^T                                            [R, V]
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "cuda_engine_layout.h"
#include "kvserve_kernels.h"

namespace kvs::cuda {

CudaBackend::Layout CudaBackend::layoutFor(const StepShape& sh, int numCopies) {
  Layout l{};
  size_t words = 0;
  auto reserve = [&](size_t n) { const size_t o = words; words += (n + 3) / 4 * 4; return o; };
  l.tokens = reserve(sh.T);
  l.positions = reserve(sh.T);
  l.queryStart = reserve(sh.S + 1);
  l.contextLens = reserve(sh.S);
  l.blockTables = reserve(static_cast<size_t>(sh.S) * sh.maxBlocks);
  l.slots = reserve(sh.T);
  l.sampleIdx = reserve(sh.R);
  l.tileSeq = reserve(sh.numTiles);
  l.tileQ = reserve(sh.numTiles);
  l.tileSlot = reserve(sh.numTiles);
  l.copies = reserve(2 * static_cast<size_t>(numCopies));
  l.words = words;
  return l;
}

void CudaBackend::packInputs(const StepBatch& b, const StepShape& sh, const Layout& lay, int32_t* dst) {
  const int T = b.numTokens, S = b.numSeqs, R = b.numSamples;
  hostInputs_.resize(lay.words * 4);
  int32_t* h = hostInputs_.get<int32_t>();
  auto copy = [&](size_t at, const int32_t* src, size_t n) { if (n) std::memcpy(h + at, src, n * 4); };
  copy(lay.tokens, b.tokenIds, T);
  copy(lay.positions, b.positions, T);
  copy(lay.queryStart, b.queryStart, S + 1);
  copy(lay.contextLens, b.contextLens, S);
  copy(lay.slots, b.slotMapping, T);
  copy(lay.sampleIdx, b.sampleIndices, R);
  copy(lay.tileSeq, tileSeq_.data(), sh.numTiles);
  copy(lay.tileQ, tileQStart_.data(), sh.numTiles);
  copy(lay.tileSlot, tileSlot_.data(), sh.numTiles);
  copy(lay.copies, b.blockCopies, 2 * static_cast<size_t>(b.numBlockCopies));
  if (sh.maxBlocks == b.maxBlocksPerSeq) {
    copy(lay.blockTables, b.blockTables, static_cast<size_t>(S) * b.maxBlocksPerSeq);
  } else {  // re-pad rows to the fixed width of graphed steps (the kernel reads only the blocks it needs)
    for (int s = 0; s < S; ++s) {
      copy(lay.blockTables + static_cast<size_t>(s) * sh.maxBlocks, b.blockTables + static_cast<size_t>(s) * b.maxBlocksPerSeq, b.maxBlocksPerSeq);
      std::fill(h + lay.blockTables + static_cast<size_t>(s) * sh.maxBlocks + b.maxBlocksPerSeq,
                h + lay.blockTables + static_cast<size_t>(s + 1) * sh.maxBlocks, 0);
    }
  }
  // Padding sequences of a graphed step: one token at position 0 that writes no cache (slot -1) and attends
  // to key 0 of block 0 only; their rows are computed and ignored (every kernel keeps rows independent).
  for (int s = S; s < sh.S; ++s) {
    h[lay.tokens + s] = 0;
    h[lay.positions + s] = 0;
    h[lay.slots + s] = -1;
    h[lay.queryStart + s + 1] = s + 1;
    h[lay.contextLens + s] = 1;
    std::fill(h + lay.blockTables + static_cast<size_t>(s) * sh.maxBlocks,
              h + lay.blockTables + static_cast<size_t>(s + 1) * sh.maxBlocks, 0);
  }
  for (int r = R; r < sh.R; ++r) h[lay.sampleIdx + r] = r;
  KVS_CUDA_CHECK(cudaMemcpyAsync(dst, h, lay.words * 4, cudaMemcpyHostToDevice, stream_));
}

void CudaBackend::step(const StepBatch& b, StepResult& out) {
  const int T = b.numTokens, S = b.numSeqs, R = b.numSamples;
  if (T > maxT_) throw std::runtime_error("step has " + std::to_string(T) + " tokens > maxNumBatchedTokens " + std::to_string(maxT_));
  if (S > maxS_ || R > maxS_) throw std::runtime_error("step has more sequences or samples than maxNumSeqs " + std::to_string(maxS_));
  if (T <= 0 || S <= 0) {
    // The scheduler never sends copy-on-write copies without tokens; refuse rather than drop them silently.
    if (b.numBlockCopies > 0) throw std::runtime_error("cuda: block copies in a step without tokens are not supported");
    out = StepResult{};
    return;
  }
  tileSeq_.resize(T);
  tileQStart_.resize(T);
  tileSlot_.resize(T);
  kvsk_attention_plan_info plan{};
  const int partition = stepPartition(b);
  const int rc = kvsk_attention_plan(b.queryStart, b.contextLens, S, cfg_.numHeads, cfg_.numKvHeads, cfg_.headDim,
                                     static_cast<kvsk_dtype>(dt_), partition, attnPrefill_, tileSeq_.data(),
                                     tileQStart_.data(), tileSlot_.data(), T, &plan);
  if (rc != 0) throw std::runtime_error("attention planning failed (" + std::to_string(rc) + ")");
  if (plan.maxSplits > maxSplits_ || plan.numSplitSlots > maxS_)
    throw std::runtime_error("a context longer than maxModelLen reached the attention kernel");
  StepShape sh{T, S, R, b.maxBlocksPerSeq, plan.numTiles, plan.tokensPerTile, plan.numSplitSlots, plan.maxSplits, plan.decode,
               partition, plan.prefill};
  if (stepStart_) KVS_CUDA_CHECK(cudaEventRecord(stepStart_, stream_));

  if (!stepGraphed(b, sh)) {
    const Layout lay = layoutFor(sh, b.numBlockCopies);
    inputs_.resize(lay.words * 4);
    packInputs(b, sh, lay, inputs_.get<int32_t>());
    blockCopies(inputs_.get<int32_t>(), lay, b.numBlockCopies);
    forward(sh, inputs_.get<int32_t>(), lay);
  }
  if (R == 0) {
    prof_.end(stream_, sh.decode != 0);
    if (stepDone_) KVS_CUDA_CHECK(cudaEventRecord(stepDone_, stream_));
    KVS_CUDA_CHECK(cudaStreamSynchronize(stream_));
    out = StepResult{};
    out.deviceMs = deviceMs();
    return;
  }
  prof_.mark(StepProfiler::Sampling, stream_);
  sampler_->sample(b.sampling, R, logits_.get(), dt_, b.returnLogits, out, stepDone_);
  prof_.end(stream_, sh.decode != 0);
  out.deviceMs = deviceMs();
}

double CudaBackend::deviceMs() const {
  float ms = 0;
  if (!stepStart_ || cudaEventElapsedTime(&ms, stepStart_, stepDone_) != cudaSuccess) return -1;
  return ms;
}

int CudaBackend::decodeVersionFor(const StepShape& sh) const {
  if (attnDecode_ != 0) return attnDecode_;
  return sh.decode && (sh.S == 1 || (v2MinSeqs_ > 0 && sh.S >= v2MinSeqs_)) ? 2 : 1;
}

// v2 on several sequences runs a 2-stage ring (kvserve_kernel_bench attn-decode, run 16: in PDL chains batch 256 x
// 512 at 90% of copy bandwidth against 83% on 4 stages and v1's 80%, batch 8 x 512 34% against 23% on 4); one
// sequence the device's deepest ring (4 stages on the H200: 20% against 16% on 2 at batch 1 x 4096). The same bits.
int CudaBackend::decodeStagesFor(const StepShape& sh) const {
  return sh.decode && sh.S > 1 ? 2 : 0;
}

int CudaBackend::stepPartition(const StepBatch& b) const {
  if (opts_.batchInvariant || attnTargetCtas_ <= 0) return partition_;
  // One decode sequence on auto's v2: half the partition where the plan's partitions stay within maxSplits_ (the
  // partial buffers' width): 64-key partitions at batch 1 took the Llama-3-8B step from 4.90 to 4.76 ms (GPU run
  // 15, context 512), where v1 alone gained nothing from them.
  if (attnDecode_ == 0 && b.numSeqs == 1 && b.queryStart[1] - b.queryStart[0] == 1 && partition_ / 2 >= 64 &&
      b.contextLens[0] <= static_cast<int64_t>(partition_ / 2) * maxSplits_)
    return partition_ / 2;
  const int maxLen = maxSplits_ * partition_;
  int p = partition_;
  for (; p < maxLen; p *= 2) {
    int64_t ctas = 0;
    for (int s = 0; s < b.numSeqs; ++s)
      if (b.queryStart[s + 1] - b.queryStart[s] == 1) ctas += (b.contextLens[s] + p - 1) / p;
    if (ctas * cfg_.numKvHeads <= static_cast<int64_t>(attnTargetCtas_)) break;
  }
  return p;
}

void CudaBackend::blockCopies(const int32_t* in, const Layout& lay, int numCopies) {
  if (numCopies <= 0) return;
  kvsk_block_copy_params c{kv_.get(), in + lay.copies, numCopies, 2 * cfg_.numLayers,
                           static_cast<int64_t>(kvPlaneElems_),
                           static_cast<int64_t>(opts_.blockSize) * cfg_.numKvHeads * cfg_.headDim,
                           static_cast<kvsk_dtype>(dt_), kvKind()};
  KVS_CUDA_CHECK(kvsk_block_copy(&c, stream_));
}

void CudaBackend::kvAbsMax(const int32_t* slots, int n, std::vector<float>& out) {
  const int planes = 2 * cfg_.numLayers;
  out.assign(planes, 0.f);
  if (n <= 0) return;
  observedSlots_.resize(static_cast<size_t>(n) * sizeof(int32_t));
  observedMax_.resize(planes * sizeof(float));
  KVS_CUDA_CHECK(cudaMemcpyAsync(observedSlots_.get(), slots, static_cast<size_t>(n) * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, stream_));
  KVS_CUDA_CHECK(cudaMemsetAsync(observedMax_.get(), 0, planes * sizeof(float), stream_));
  kvsk_kv_absmax_params p{kv_.get(), planes, static_cast<int64_t>(kvPlaneElems_), cfg_.numKvHeads * cfg_.headDim,
                          observedSlots_.get<int32_t>(), n, static_cast<kvsk_dtype>(dt_), kvKind(),
                          observedMax_.get<float>()};
  KVS_CUDA_CHECK(kvsk_kv_absmax(&p, stream_));
  KVS_CUDA_CHECK(cudaMemcpyAsync(out.data(), observedMax_.get(), planes * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  KVS_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (kvFp8_)  // the kernel decodes the e4m3 codes; what the attention reads is that times the layer's scale
    for (int l = 0; l < cfg_.numLayers; ++l) {
      out[2 * l] *= kScale_[l];
      out[2 * l + 1] *= vScale_[l];
    }
}

void CudaBackend::forward(const StepShape& sh, const int32_t* in, const Layout& lay) {
  const int T = sh.T, R = sh.R;
  const int H = cfg_.hiddenSize, I = cfg_.intermediateSize, V = cfg_.vocabSize;
  const int Hq = cfg_.numHeads, Hkv = cfg_.numKvHeads, D = cfg_.headDim;
  const kvsk_dtype dt = static_cast<kvsk_dtype>(dt_);

  prof_.mark(StepProfiler::Embed, stream_);
  kvsk_embedding_params e{w_.embed, in + lay.tokens, residual_.get(), T, H, V, dt};
  KVS_CUDA_CHECK(kvsk_embedding(&e, stream_));

  const float eps = static_cast<float>(cfg_.rmsNormEps);
  // Whether each fused producer writes e4m3 rows (xq_) for its GEMM instead of bf16/f16 ones: per step, by M
  // (fusesInput; every layer's matrix of a kind has the same shape, so the same plan). Nothing else reads
  // normed_ or act_ (the residual stream is residual_, the final norm writes final_), so the producer writes
  // one or the other, never both. A graphed decode step captures its bucket's choice, which every replay of
  // that bucket shares. o_proj's and down_proj's inputs (attention's and SiLU·mul's outputs; kvserve_kernels.h
  // says why SiLU·mul does not quantize its own) the runner quantizes in a pass of its own.
  const bool qQkv = fusesInput(qkvRows_, H, T), qGateUp = fusesInput(2 * I, H, T);
  float* xqScale = xqScale_.get<float>();
  for (int l = 0; l < cfg_.numLayers; ++l) {
    const CudaLayerWeights& L = w_.layers[l];

    prof_.mark(StepProfiler::Norm, stream_);
    kvsk_rmsnorm_params n1{l == 0 ? nullptr : proj_.get(), residual_.get(), nullptr, L.inputNorm,
                           qQkv ? nullptr : normed_.get(), T, H, eps, dt,
                           qQkv ? xq_.get() : nullptr, qQkv ? xqScale : nullptr};
    if (!(ablate_ & kAblateNorm)) KVS_CUDA_CHECK(kvsk_rmsnorm(&n1, stream_));
    prof_.mark(StepProfiler::GemmQkv, stream_);
    const kvsk_rope_cache_params rp = ropeParams(l, T, in + lay.positions, in + lay.slots);  // also this layer's cache
    kvsk_gemv_params gq;
    kvsk_gemv_fp8_params gq8;
    if (ablate_ & kAblateGemm) {
      // KVSERVE_ABLATE=gemm (timing only): no projection, nor the RoPE + cache write fused into it
    } else if (!qQkv && fusedGemv(normed_.get(), L.qkv, L.qkvScale, T, qkvRows_, H, &gq) &&
        kvsk_gemv_rope_cache_supported(&gq, &rp)) {
      KVS_CUDA_CHECK(kvsk_gemv_rope_cache(&gq, &rp, stream_));
    } else if (!qQkv && fusedGemvFp8(normed_.get(), L.qkv, L.qkvScale, T, qkvRows_, H, &gq8) &&
               kvsk_gemv_fp8_rope_cache_supported(&gq8, &rp)) {
      KVS_CUDA_CHECK(kvsk_gemv_fp8_rope_cache(&gq8, &rp, stream_));
    } else {
      linear(normed_.get(), qQkv, L.qkv, L.qkvScale, nullptr, qkv_.get(), T, qkvRows_, H);
      prof_.mark(StepProfiler::Rope, stream_);
      KVS_CUDA_CHECK(kvsk_rope_cache(&rp, stream_));
    }

    prof_.mark(StepProfiler::Attention, stream_);
    kvsk_attention_params ap{};
    ap.q = q_.get(); ap.kCache = rp.kCache; ap.vCache = rp.vCache; ap.out = attn_.get();
    ap.blockTables = in + lay.blockTables; ap.queryStart = in + lay.queryStart; ap.contextLens = in + lay.contextLens;
    ap.tileSeq = in + lay.tileSeq; ap.tileQStart = in + lay.tileQ; ap.tileSplitSlot = in + lay.tileSlot;
    ap.partialOut = partOut_.get<float>(); ap.partialMax = partMax_.get<float>(); ap.partialSum = partSum_.get<float>();
    ap.numTiles = sh.numTiles; ap.tokensPerTile = sh.tokensPerTile; ap.numSplitSlots = sh.numSplitSlots;
    ap.maxSplits = sh.maxSplits; ap.partitionSize = sh.partition;
    ap.numHeads = Hq; ap.numKvHeads = Hkv; ap.headDim = D; ap.blockSize = opts_.blockSize;
    ap.maxBlocksPerSeq = sh.maxBlocks; ap.scale = 1.f / std::sqrt(static_cast<float>(D)); ap.dtype = dt;
    ap.cacheDtype = kvKind(); ap.kScale = rp.kScale; ap.vScale = rp.vScale; ap.prefill = sh.prefill;
    ap.decodeVersion = decodeVersionFor(sh); ap.decodeStages = decodeStagesFor(sh);
    ap.splitCounters = splitCounters_.get<unsigned>();
    if (!(ablate_ & kAblateAttn)) KVS_CUDA_CHECK(kvsk_attention(&ap, sh.decode, stream_));
    prof_.mark(StepProfiler::GemmO, stream_);
    if (!(ablate_ & kAblateGemm)) linear(attn_.get(), false, L.o, L.oScale, L.oSmooth, proj_.get(), T, H, Hq * D, true);

    prof_.mark(StepProfiler::Norm, stream_);
    kvsk_rmsnorm_params n2{proj_.get(), residual_.get(), nullptr, L.postNorm, qGateUp ? nullptr : normed_.get(), T, H, eps, dt,
                           qGateUp ? xq_.get() : nullptr, qGateUp ? xqScale : nullptr};
    if (!(ablate_ & kAblateNorm)) KVS_CUDA_CHECK(kvsk_rmsnorm(&n2, stream_));
    prof_.mark(StepProfiler::GemmGateUp, stream_);
    const kvsk_silu_mul_params sm{gateUp_.get(), act_.get(), T, I, dt};
    kvsk_gemv_params gg;
    kvsk_gemv_fp8_params gg8;
    if (ablate_ & kAblateGemm) {
      // KVSERVE_ABLATE=gemm: no gate/up projection, nor the SiLU·mul fused into it
    } else if (!qGateUp && fusedGemv(normed_.get(), L.gateUp, L.gateUpScale, T, 2 * I, H, &gg) &&
        kvsk_gemv_silu_mul_supported(&gg, &sm)) {
      KVS_CUDA_CHECK(kvsk_gemv_silu_mul(&gg, &sm, stream_));
    } else if (!qGateUp && fusedGemvFp8(normed_.get(), L.gateUp, L.gateUpScale, T, 2 * I, H, &gg8) &&
               kvsk_gemv_fp8_silu_mul_supported(&gg8, &sm)) {
      KVS_CUDA_CHECK(kvsk_gemv_fp8_silu_mul(&gg8, &sm, stream_));
    } else {
      linear(normed_.get(), qGateUp, L.gateUp, L.gateUpScale, nullptr, gateUp_.get(), T, 2 * I, H);
      prof_.mark(StepProfiler::SiluMul, stream_);
      KVS_CUDA_CHECK(kvsk_silu_mul(&sm, stream_));
    }
    prof_.mark(StepProfiler::GemmDown, stream_);
    if (!(ablate_ & kAblateGemm)) linear(act_.get(), false, L.down, L.downScale, L.downSmooth, proj_.get(), T, H, I, true);
  }
  if (R == 0) return;
  prof_.mark(StepProfiler::Norm, stream_);
  kvsk_rmsnorm_params nf{cfg_.numLayers > 0 ? proj_.get() : nullptr, residual_.get(), in + lay.sampleIdx,
                         w_.finalNorm, final_.get(), R, H, eps, dt, nullptr, nullptr};
  KVS_CUDA_CHECK(kvsk_rmsnorm(&nf, stream_));
  prof_.mark(StepProfiler::LmHead, stream_);
  gemm_->run(final_.get(), w_.lmHead, logits_.get(), R, V, H, dt_, dt_);
}

void CudaBackend::linear(const void* x, bool quantized, const void* W, const float* scale, const float* smooth, void* y,
                         int M, int N, int K, bool gemvInv) {
  if (quantized) gemm_->runFp8(xq_.get(), xqScale_.get<float>(), W, scale, y, M, N, K, dt_);
  else if (!scale) gemm_->run(x, W, y, M, N, K, dt_, dt_, gemvInv);
  else if (int8_) gemm_->runInt8(x, smooth, W, scale, y, M, N, K, dt_);  // an int8 matrix (cuda_engine_layout.h)
  else gemm_->runFp8(x, W, scale, y, M, N, K, dt_);                    // an fp8 matrix
}

kvsk_rope_cache_params CudaBackend::ropeParams(int l, int T, const int32_t* positions, const int32_t* slots) {
  const CudaLayerWeights& L = w_.layers[l];
  char* kv = kv_.get<char>();
  const size_t planeBytes = kvPlaneElems_ * kvElemBytes();
  return kvsk_rope_cache_params{qkv_.get(), q_.get(), kv + 2 * static_cast<size_t>(l) * planeBytes,
                                kv + (2 * static_cast<size_t>(l) + 1) * planeBytes, positions, slots,
                                invFreq_.get<float>(), L.qkvBias, L.qNorm, L.kNorm, static_cast<float>(cfg_.rmsNormEps),
                                T, cfg_.numHeads, cfg_.numKvHeads, cfg_.headDim, static_cast<kvsk_dtype>(dt_), kvKind(),
                                kvFp8_ ? kScale_[l] : 1.f, kvFp8_ ? vScale_[l] : 1.f, ropeVector_ ? 1 : 0};
}

bool CudaBackend::fusedGemv(const void* x, const void* W, const float* scale, int M, int N, int K, kvsk_gemv_params* g) {
  if (!opts_.gemvFuse || scale) return false;  // fp8 matrices: fusedGemvFp8
  const int rows = gemm_->gemvRows(M, N, K, dt_, dt_);
  *g = kvsk_gemv_params{x, W, nullptr, M, N, K, static_cast<kvsk_dtype>(dt_), rows, gemm_->gemvTrigger()};
  return rows > 0;
}

bool CudaBackend::fusedGemvFp8(const void* x, const void* W, const float* scale, int M, int N, int K,
                               kvsk_gemv_fp8_params* g) {
  if (!gemvFuseFp8_ || !scale) return false;  // gemvFuseFp8_ implies fp8 matrices (never int8 ones)
  const int rows = gemm_->fp8GemvV2Rows(M, N, K, dt_);
  *g = kvsk_gemv_fp8_params{x, W, scale, nullptr, M, N, K, static_cast<kvsk_dtype>(dt_), rows, 2,
                            gemm_->fp8GemvTrigger()};
  return rows > 0;
}

std::string CudaBackend::describeGemvFusion() {
  if (cfg_.numLayers == 0) return "";
  const CudaLayerWeights& L = w_.layers[0];
  const int H = cfg_.hiddenSize, I = cfg_.intermediateSize;
  std::string s;
  kvsk_gemv_params g;
  kvsk_gemv_fp8_params g8;
  const kvsk_rope_cache_params rp = ropeParams(0, 1, nullptr, nullptr);
  if ((fusedGemv(normed_.get(), L.qkv, L.qkvScale, 1, qkvRows_, H, &g) && kvsk_gemv_rope_cache_supported(&g, &rp)) ||
      (fusedGemvFp8(normed_.get(), L.qkv, L.qkvScale, 1, qkvRows_, H, &g8) &&
       kvsk_gemv_fp8_rope_cache_supported(&g8, &rp)))
    s = "rope+cache";
  const kvsk_silu_mul_params sm{gateUp_.get(), act_.get(), 1, I, static_cast<kvsk_dtype>(dt_)};
  if ((fusedGemv(normed_.get(), L.gateUp, L.gateUpScale, 1, 2 * I, H, &g) && kvsk_gemv_silu_mul_supported(&g, &sm)) ||
      (fusedGemvFp8(normed_.get(), L.gateUp, L.gateUpScale, 1, 2 * I, H, &g8) &&
       kvsk_gemv_fp8_silu_mul_supported(&g8, &sm)))
    s += s.empty() ? "silu*mul" : ",silu*mul";
  return s;
}

bool CudaBackend::fusesInput(int N, int K, int M) const {
  return fp8Fuse_ && cudaFp8Matrix(K) && !gemm_->fp8UsesGemv(N, K, dt_, M);
}

}  // namespace kvs::cuda
