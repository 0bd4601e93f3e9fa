#include "gpu_sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "cuda_check.h"
#include "kvserve_kernels.h"

namespace kvs::cuda {

namespace {

// Appends n 4-byte values (or `fill` when src is null) to the word list; returns their word offset.
template <typename T>
size_t put(std::vector<uint32_t>& w, const T* src, size_t n, T fill) {
  static_assert(sizeof(T) == 4, "parameters are 4-byte words");
  const size_t off = w.size();
  w.resize(off + n);
  for (size_t i = 0; i < n; ++i) {
    const T v = src ? src[i] : fill;
    std::memcpy(&w[off + i], &v, 4);
  }
  return off;
}

}  // namespace

GpuSampler::GpuSampler(int maxRows, int vocab, cudaStream_t stream)
    : maxRows_(maxRows), vocab_(vocab), stream_(stream) {
  const size_t cells = static_cast<size_t>(maxRows) * vocab;
  raw_.resize(cells * 4);
  work_.resize(cells * 4);
  counts_.resize(cells * 4);
  sortedKeys_.resize(cells * 4);
  sortedIds_.resize(cells * 4);
  idsScratch_.resize(cells * 4);
  rowStats_.resize(static_cast<size_t>(maxRows) * 2 * 4);
  segments_.resize(static_cast<size_t>(maxRows) * 2 * 4);
  const size_t tempBytes = kvsk_sample_sort_temp_bytes(maxRows, vocab);
  sortTemp_.resize(tempBytes);
  KVS_CUDA_CHECK(cudaMemsetAsync(counts_.get(), 0, cells * 4, stream_));  // the kernels keep it zero
  scratchBytes_ = cells * 4 * 6 + tempBytes;
}

void GpuSampler::sample(const SamplingBatch& s, int R, const void* logits, DType dtype, bool returnLogits,
                        StepResult& out, cudaEvent_t done) {
  if (R > maxRows_) throw std::runtime_error("sampling " + std::to_string(R) + " rows > maxNumSeqs " + std::to_string(maxRows_));
  const int V = vocab_;
  int K = 0;
  for (int r = 0; r < R; ++r) K = std::max(K, s.numLogprobs ? std::min(s.numLogprobs[r], V) : -1);

  // Rows that need ranking (the sort): sampled, with top-k or top-p.
  std::vector<int32_t> sortRows;
  for (int r = 0; r < R; ++r) {
    const bool greedy = s.temperature[r] <= 1e-5f;
    const int k = s.topK ? s.topK[r] : 0;
    const float p = s.topP ? s.topP[r] : 1.f;
    if (!greedy && ((k > 0 && k < V) || p < 1.f)) sortRows.push_back(r);
  }

  auto& w = words_;
  w.clear();
  const size_t oTemp = put<float>(w, s.temperature, R, 0.f);
  const size_t oTopP = put<float>(w, s.topP, R, 1.f);
  const size_t oTopK = put<int32_t>(w, s.topK, R, 0);
  const size_t oMinP = put<float>(w, s.minP, R, 0.f);
  const size_t oPres = put<float>(w, s.presencePenalty, R, 0.f);
  const size_t oFreq = put<float>(w, s.frequencyPenalty, R, 0.f);
  const size_t oRep = put<float>(w, s.repetitionPenalty, R, 1.f);
  const size_t oSeed = put<uint32_t>(w, s.seeds, R, 0u);
  const size_t oStep = put<int32_t>(w, s.seedSteps, R, 0);
  const size_t oNlp = put<int32_t>(w, s.numLogprobs, R, -1);
  const size_t oSort = put<int32_t>(w, sortRows.data(), sortRows.size(), 0);
  size_t oHs = 0, oHo = 0, oHt = 0, oBs = 0, oBt = 0, oBv = 0;
  if (s.historyStart) {
    oHs = put<int32_t>(w, s.historyStart, R + 1, 0);
    oHo = put<int32_t>(w, s.historyOutputStart, R, 0);
    oHt = put<int32_t>(w, s.historyTokens, s.historyStart[R], 0);
  }
  if (s.biasStart) {
    oBs = put<int32_t>(w, s.biasStart, R + 1, 0);
    oBt = put<int32_t>(w, s.biasTokens, s.biasStart[R], 0);
    oBv = put<float>(w, s.biasValues, s.biasStart[R], 0.f);
  }
  size_t oMr = 0, oMk = 0;
  if (s.maskRow) {  // only the rows that have a mask send one: M rows of ceil(V / 32) words
    oMr = put<int32_t>(w, s.maskRow, R, -1);
    oMk = put<uint32_t>(w, s.masks, static_cast<size_t>(s.maskWords), 0u);
  }
  const size_t bytes = w.size() * 4;
  hostParams_.resize(bytes);
  params_.resize(bytes);
  std::memcpy(hostParams_.get(), w.data(), bytes);
  KVS_CUDA_CHECK(cudaMemcpyAsync(params_.get(), hostParams_.get(), bytes, cudaMemcpyHostToDevice, stream_));

  const size_t resultWords = static_cast<size_t>(R) * (2 + 2 * K);
  results_.resize(resultWords * 4);
  hostResults_.resize(resultWords * 4);
  auto* P = params_.get<uint32_t>();
  auto* Q = results_.get<uint32_t>();

  kvsk_sample_params p{};
  p.logits = logits;
  p.dtype = static_cast<kvsk_dtype>(dtype);
  p.rows = R;
  p.vocab = V;
  p.raw = raw_.get<float>();
  p.work = work_.get<float>();
  p.rawLse = rowStats_.get<float>();
  p.rowLse = rowStats_.get<float>() + maxRows_;
  p.counts = counts_.get<int32_t>();
  p.temperature = reinterpret_cast<const float*>(P + oTemp);
  p.topP = reinterpret_cast<const float*>(P + oTopP);
  p.topK = reinterpret_cast<const int32_t*>(P + oTopK);
  p.minP = reinterpret_cast<const float*>(P + oMinP);
  p.presencePenalty = reinterpret_cast<const float*>(P + oPres);
  p.frequencyPenalty = reinterpret_cast<const float*>(P + oFreq);
  p.repetitionPenalty = reinterpret_cast<const float*>(P + oRep);
  p.seeds = P + oSeed;
  p.seedSteps = reinterpret_cast<const int32_t*>(P + oStep);
  p.numLogprobs = reinterpret_cast<const int32_t*>(P + oNlp);
  if (s.historyStart) {
    p.historyStart = reinterpret_cast<const int32_t*>(P + oHs);
    p.historyOutputStart = reinterpret_cast<const int32_t*>(P + oHo);
    p.historyTokens = reinterpret_cast<const int32_t*>(P + oHt);
  }
  if (s.biasStart) {
    p.biasStart = reinterpret_cast<const int32_t*>(P + oBs);
    p.biasTokens = reinterpret_cast<const int32_t*>(P + oBt);
    p.biasValues = reinterpret_cast<const float*>(P + oBv);
  }
  if (s.maskRow) {
    p.maskRow = reinterpret_cast<const int32_t*>(P + oMr);
    p.masks = P + oMk;
  }
  p.sortedKeys = sortedKeys_.get<float>();
  p.sortedIds = sortedIds_.get<int32_t>();
  p.idsScratch = idsScratch_.get<int32_t>();
  p.sortRows = reinterpret_cast<const int32_t*>(P + oSort);
  p.numSortRows = static_cast<int>(sortRows.size());
  p.segBegin = segments_.get<int32_t>();
  p.segEnd = segments_.get<int32_t>() + maxRows_;
  p.sortTemp = sortTemp_.get();
  p.sortTempBytes = sortTemp_.bytes();
  p.tokens = reinterpret_cast<int32_t*>(Q);
  p.logprobs = reinterpret_cast<float*>(Q + R);
  p.topLogprobs = K;
  p.topIds = reinterpret_cast<int32_t*>(Q + 2 * R);
  p.topValues = reinterpret_cast<float*>(Q + 2 * R + static_cast<size_t>(R) * K);

  KVS_CUDA_CHECK(kvsk_sample_prepare(&p, stream_));
  KVS_CUDA_CHECK(kvsk_sample_sort(&p, stream_));
  KVS_CUDA_CHECK(kvsk_sample_finish(&p, stream_));
  KVS_CUDA_CHECK(cudaMemcpyAsync(hostResults_.get(), Q, resultWords * 4, cudaMemcpyDeviceToHost, stream_));
  if (returnLogits) {
    out.logits.resize(static_cast<size_t>(R) * V);
    KVS_CUDA_CHECK(cudaMemcpyAsync(out.logits.data(), p.raw, out.logits.size() * 4, cudaMemcpyDeviceToHost, stream_));
  } else {
    out.logits.clear();
  }
  if (done) KVS_CUDA_CHECK(cudaEventRecord(done, stream_));
  KVS_CUDA_CHECK(cudaStreamSynchronize(stream_));

  const uint32_t* h = hostResults_.get<uint32_t>();
  out.tokens.assign(reinterpret_cast<const int32_t*>(h), reinterpret_cast<const int32_t*>(h) + R);
  out.rowFaults.assign(R, kRowOk);
  for (int r = 0; r < R; ++r)  // finishKernel marks a row whose logits are not finite with token -1
    if (out.tokens[r] < 0) { out.rowFaults[r] = kRowNonFiniteLogits; out.tokens[r] = 0; }
  out.logprobs.assign(reinterpret_cast<const float*>(h + R), reinterpret_cast<const float*>(h + 2 * R));
  out.topLogprobs = K;
  const size_t nk = static_cast<size_t>(R) * K;
  out.topIds.assign(reinterpret_cast<const int32_t*>(h + 2 * R), reinterpret_cast<const int32_t*>(h + 2 * R) + nk);
  out.topValues.assign(reinterpret_cast<const float*>(h + 2 * R + nk), reinterpret_cast<const float*>(h + 2 * R + 2 * nk));
}

}  // namespace kvs::cuda
