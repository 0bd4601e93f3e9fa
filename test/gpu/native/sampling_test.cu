// GPU sampling (engines/cuda/gpu_sampler + kernels/sampling*.cu) against the CPU sampler of
// engines/sampler.cc, which someone else wrote from the same specification. Rows mix greedy, temperature,
// top-k, top-p, min-p, repetition/frequency/presence penalties, logit bias and logprobs, with planted ties.
// Tokens must be identical (the draw u is bit-identical; the only difference is the summation order of
// probabilities in double, which can flip a draw only when u lands within ~1e-15 of a boundary);
// logprobs within 1e-4 absolute; top-logprob ids identical.
#include <algorithm>

#include "gpu_sampler.h"
#include "harness.h"
#include "sampler.h"

namespace kt {

namespace {

struct Params {
  std::vector<float> temp, topP, minP, pres, freq, rep, biasV;
  std::vector<int32_t> topK, seedSteps, nlp, hs, ho, ht, bs, bt;
  std::vector<uint32_t> seeds;
};

void samplingCase(kvsk_dtype dt, int R, int V, bool penalties, int& mismatches, int& rows, ErrStat& lp, bool& idsOk) {
  Buf logits(dt, (size_t)R * V);
  for (size_t i = 0; i < logits.n; ++i) logits.set(i, uni(-4, 4) + (i % 97 == 0 ? 6.f : 0.f));
  for (int r = 0; r < R; ++r) {  // planted ties at the top
    logits.set((size_t)r * V + 11, 12.f);
    logits.set((size_t)r * V + 7, 12.f);
  }
  logits.up();
  std::vector<float> raw(logits.n);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = logits.get(i);
  Params P;
  P.hs.push_back(0); P.bs.push_back(0);
  for (int r = 0; r < R; ++r) {
    const int kind = r % 8;
    P.temp.push_back(kind == 0 ? 0.f : uni(0.3f, 1.5f));
    P.topK.push_back(kind == 2 || kind == 5 ? irand(1, 50) : 0);
    P.topP.push_back(kind == 3 || kind == 5 ? uni(0.2f, 0.95f) : 1.f);
    P.minP.push_back(kind == 4 || kind == 6 ? uni(0.01f, 0.3f) : 0.f);
    P.seeds.push_back((uint32_t)irand(0, 1 << 30));
    P.seedSteps.push_back(irand(0, 100));
    P.nlp.push_back(r % 3 == 0 ? -1 : r % 3 == 1 ? 0 : irand(1, 8));
    P.rep.push_back(penalties && r % 2 ? uni(1.05f, 1.5f) : 1.f);
    P.freq.push_back(penalties && r % 3 ? uni(-0.5f, 1.f) : 0.f);
    P.pres.push_back(penalties && r % 4 ? uni(-0.5f, 1.f) : 0.f);
    const int hl = penalties ? irand(0, 300) : 0;
    for (int j = 0; j < hl; ++j) P.ht.push_back(j % 5 == 0 ? 11 : irand(0, V - 1));
    P.ho.push_back(hl / 2);
    P.hs.push_back((int32_t)P.ht.size());
    const int bl = penalties ? irand(0, 4) : 0;
    for (int j = 0; j < bl; ++j) { P.bt.push_back((j * 13 + r) % V); P.biasV.push_back(j == 0 ? -INFINITY : uni(-5, 5)); }
    P.bs.push_back((int32_t)P.bt.size());
  }
  kvs::SamplingBatch s;
  s.temperature = P.temp.data(); s.topP = P.topP.data(); s.topK = P.topK.data(); s.minP = P.minP.data();
  s.presencePenalty = P.pres.data(); s.frequencyPenalty = P.freq.data(); s.repetitionPenalty = P.rep.data();
  s.seeds = P.seeds.data(); s.seedSteps = P.seedSteps.data(); s.numLogprobs = P.nlp.data();
  if (penalties) {
    s.historyStart = P.hs.data(); s.historyOutputStart = P.ho.data(); s.historyTokens = P.ht.data();
    s.biasStart = P.bs.data(); s.biasTokens = P.bt.data(); s.biasValues = P.biasV.data();
  }
  kvs::StepResult cpu, gpu;
  kvs::sampleBatch(s, R, raw.data(), V, cpu);
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  {
    kvs::cuda::GpuSampler sampler(R, V, stream);
    sampler.sample(s, R, logits.dev, static_cast<kvs::DType>(dt), true, gpu);
    sampler.sample(s, R, logits.dev, static_cast<kvs::DType>(dt), true, gpu);  // counts scratch left clean
  }
  CK(cudaStreamDestroy(stream));
  for (int r = 0; r < R; ++r) {
    ++rows;
    if (gpu.tokens[r] != cpu.tokens[r]) {
      ++mismatches;
      std::printf("  sampling row %d (T=%.3f k=%d p=%.3f minp=%.3f): gpu %d cpu %d\n", r, P.temp[r], P.topK[r], P.topP[r], P.minP[r], gpu.tokens[r], cpu.tokens[r]);
    }
    if (P.nlp[r] >= 0) lp.add(gpu.logprobs[r], cpu.logprobs[r], 1e-4, 1e-5);
  }
  for (size_t i = 0; i < raw.size(); ++i) idsOk = idsOk && gpu.logits[i] == raw[i];
  idsOk = idsOk && gpu.topLogprobs == cpu.topLogprobs && gpu.topIds == cpu.topIds;
  for (size_t i = 0; i < cpu.topValues.size(); ++i)
    if (!std::isnan(cpu.topValues[i])) lp.add(gpu.topValues[i], cpu.topValues[i], 1e-4, 1e-5);
}

}  // namespace

void samplingTests() {
  for (kvsk_dtype dt : {KVSK_F32, KVSK_BF16})
    for (auto [R, V] : std::vector<std::pair<int, int>>{{64, 512}, {256, 32000}, {16, 151936}})
      for (bool pen : {false, true}) {
        int mism = 0, rows = 0;
        ErrStat lp;
        bool ids = true;
        samplingCase(dt, R, V, pen, mism, rows, lp, ids);
        const std::string name = std::string(dtName(dt)) + " R" + std::to_string(R) + " V" + std::to_string(V) + (pen ? " +penalties/bias" : "");
        reportBool("sampling", name + " tokens == CPU sampler", rows, mism == 0, std::to_string(mism) + " of " + std::to_string(rows) + " differ");
        reportBool("sampling", name + " top-logprob ids, raw logits", rows, ids, ids ? "identical" : "differ");
        report("sampling", name + " logprobs", rows, lp);
      }
}

}  // namespace kt
