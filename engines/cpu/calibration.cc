// The calibration run: samples packed into prefill steps of at most kStepTokens tokens, every token sampled
// so the lm_head sees every position too, over a KV cache just large enough for one step.
#include "calibration.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "cpu_backend.h"

namespace kvs {

namespace {

constexpr int kStepTokens = 512;   // tokens per step, and the longest sample
constexpr int kStepSeqs = 64;      // sequences per step
constexpr int kBlockSize = 16;

class StatsObserver : public LinearObserver {
 public:
  explicit StatsObserver(CalibrationStats& s) : s_(s) {}

  void observe(int layer, LinearInput in, const float* x, int64_t ldx, int64_t T, int64_t K) override {
    InputStats& st = s_.at(layer, in);
    if (st.K == 0) {
      st.K = K;
      st.absMax.assign(size_t(K), 0.0f);
    }
    for (int64_t t = 0; t < T; ++t) {
      const float* row = x + t * ldx;
      for (int64_t k = 0; k < K; ++k) st.absMax[size_t(k)] = std::max(st.absMax[size_t(k)], std::fabs(row[k]));
      if ((st.tokens + t) % s_.stride == 0) {
        st.kept.insert(st.kept.end(), row, row + K);
        ++st.keptRows;
      }
    }
    st.tokens += T;
  }

 private:
  CalibrationStats& s_;
};

// One step's protocol arrays: sequences [s0, s1) of `samples`, each a whole prompt, every token sampled.
struct CalibrationStep {
  std::vector<int32_t> tokens, positions, queryStart{0}, contextLens, blockTables, slots, sampleIdx;
  std::vector<float> temperature, topP, minP, presence, frequency, repetition;
  std::vector<int32_t> topK, seedSteps, numLogprobs;
  std::vector<uint32_t> seeds;
  StepBatch batch;

  CalibrationStep(const std::vector<std::vector<int32_t>>& samples, size_t s0, size_t s1, int maxBlocks) {
    int nextBlock = 0;
    for (size_t s = s0; s < s1; ++s) {
      const std::vector<int32_t>& ids = samples[s];
      const int first = nextBlock;
      nextBlock += int((ids.size() + kBlockSize - 1) / kBlockSize);
      for (size_t p = 0; p < ids.size(); ++p) {
        tokens.push_back(ids[p]);
        positions.push_back(int32_t(p));
        slots.push_back(int32_t((first + int(p) / kBlockSize) * kBlockSize + int(p) % kBlockSize));
      }
      queryStart.push_back(int32_t(tokens.size()));
      contextLens.push_back(int32_t(ids.size()));
      for (int j = 0; j < maxBlocks; ++j) blockTables.push_back(std::min(first + j, nextBlock - 1));
    }
    const size_t T = tokens.size();
    for (size_t t = 0; t < T; ++t) sampleIdx.push_back(int32_t(t));
    temperature.assign(T, 0.0f); topP.assign(T, 1.0f); minP.assign(T, 0.0f);
    presence.assign(T, 0.0f); frequency.assign(T, 0.0f); repetition.assign(T, 1.0f);
    topK.assign(T, 0); seedSteps.assign(T, 0); numLogprobs.assign(T, -1); seeds.assign(T, 0);
    batch.numTokens = int(T);
    batch.numSeqs = int(s1 - s0);
    batch.numSamples = int(T);
    batch.maxBlocksPerSeq = maxBlocks;
    batch.tokenIds = tokens.data();
    batch.positions = positions.data();
    batch.queryStart = queryStart.data();
    batch.contextLens = contextLens.data();
    batch.blockTables = blockTables.data();
    batch.slotMapping = slots.data();
    batch.sampleIndices = sampleIdx.data();
    SamplingBatch& sb = batch.sampling;
    sb.temperature = temperature.data(); sb.topP = topP.data(); sb.topK = topK.data(); sb.minP = minP.data();
    sb.presencePenalty = presence.data(); sb.frequencyPenalty = frequency.data();
    sb.repetitionPenalty = repetition.data(); sb.seeds = seeds.data(); sb.seedSteps = seedSteps.data();
    sb.numLogprobs = numLogprobs.data();
  }
};

}  // namespace

CalibrationStats calibrate(const ModelConfig& cfg, const CpuModel& model, const std::vector<std::vector<int32_t>>& samplesIn,
                           int numThreads, size_t keepBytes, const std::function<void(double)>& progress) {
  const int maxLen = std::min(kStepTokens, cfg.maxPositions);
  std::vector<std::vector<int32_t>> samples;
  for (const auto& s : samplesIn) {
    for (int32_t id : s)
      if (id < 0 || id >= cfg.vocabSize)
        throw std::runtime_error("calibration token id " + std::to_string(id) + " is outside the vocabulary (" +
                                 std::to_string(cfg.vocabSize) + " ids)");
    if (!s.empty()) samples.emplace_back(s.begin(), s.begin() + std::min<size_t>(s.size(), size_t(maxLen)));
  }

  CalibrationStats st;
  st.numLayers = cfg.numLayers;
  st.samples = int64_t(samples.size());
  for (const auto& s : samples) st.tokens += int64_t(s.size());
  st.inputs.resize(size_t(cfg.numLayers) * kLinearInputsPerLayer + 1);
  const int64_t H = cfg.hiddenSize, Q = int64_t(cfg.numHeads) * cfg.headDim, I = cfg.intermediateSize;
  const int64_t floatsPerToken = int64_t(cfg.numLayers) * (H + Q + H + I) + H;
  const int64_t keepRows = std::max<int64_t>(1, int64_t(keepBytes / sizeof(float)) / floatsPerToken);
  st.stride = std::max<int64_t>(1, (st.tokens + keepRows - 1) / keepRows);

  EngineOptions o;
  o.numThreads = numThreads;
  o.blockSize = kBlockSize;
  o.maxModelLen = maxLen;
  o.numKvBlocks = kStepTokens / kBlockSize + kStepSeqs;  // whole blocks for one step's sequences
  o.maxNumSeqs = kStepSeqs;
  o.maxNumBatchedTokens = kStepTokens;
  ModelConfig c = cfg;
  c.maxPositions = maxLen;
  StatsObserver observer(st);
  auto backend = makeCpuBackendOver(c, model, o, &observer);
  const int maxBlocks = (maxLen + kBlockSize - 1) / kBlockSize;
  int64_t done = 0;
  StepResult out;
  for (size_t s0 = 0; s0 < samples.size();) {
    size_t s1 = s0;
    size_t T = 0;
    while (s1 < samples.size() && s1 - s0 < size_t(kStepSeqs) && T + samples[s1].size() <= size_t(kStepTokens))
      T += samples[s1++].size();
    CalibrationStep step(samples, s0, s1, maxBlocks);
    backend->step(step.batch, out);
    done += int64_t(T);
    if (progress) progress(double(done) / double(std::max<int64_t>(1, st.tokens)));
    s0 = s1;
  }
  return st;
}

}  // namespace kvs
