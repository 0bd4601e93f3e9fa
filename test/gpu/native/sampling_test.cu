// GPU sampling (engines/cuda/gpu_sampler + kernels/sampling*.cu) against the CPU sampler of
// engines/sampler.cc, which someone else wrote from the same specification. Rows mix greedy, temperature,
// top-k, top-p, min-p, repetition/frequency/presence penalties, logit bias, allowed-token bitmasks (structured
// outputs: some rows masked, some to a handful of ids) and logprobs (of the biased, masked logits), with
// planted ties.
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
  std::vector<int32_t> topK, seedSteps, nlp, hs, ho, ht, bs, bt, maskRow;
  std::vector<uint32_t> seeds, masks;
};

// Logprobs agree within tolerance, or are the same infinity (a masked id among the top-K of a row that allows
// fewer than K ids reads -inf on both).
void addLogprob(ErrStat& lp, float gpu, float cpu) {
  if (std::isinf(gpu) && gpu == cpu) lp.add(0, 0, 1e-4, 1e-5);
  else lp.add(gpu, cpu, 1e-4, 1e-5);
}

void samplingCase(kvsk_dtype dt, int R, int V, bool penalties, bool masked, int& mismatches, int& rows, ErrStat& lp,
                  bool& idsOk, int& maskViolations) {
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
    // Masks on two rows of three: a dense one (about 30% allowed, the planted top ids banned on some), or a
    // handful of ids, as a grammar allows inside a JSON literal.
    const int words = (V + 31) / 32;
    if (masked && r % 3 != 2) {
      P.maskRow.push_back((int32_t)(P.masks.size() / words));
      std::vector<uint32_t> m(words, 0u);
      if (r % 3 == 0) {
        for (int t = 0; t < V; ++t)
          if (uni(0, 1) < 0.3f) m[t >> 5] |= 1u << (t & 31);
        if (r % 2) m[11 >> 5] &= ~(1u << 11);
      } else {
        for (int j = 0; j < 3; ++j) { const int t = irand(0, V - 1); m[t >> 5] |= 1u << (t & 31); }
      }
      P.masks.insert(P.masks.end(), m.begin(), m.end());
    } else {
      P.maskRow.push_back(-1);
    }
  }
  kvs::SamplingBatch s;
  s.temperature = P.temp.data(); s.topP = P.topP.data(); s.topK = P.topK.data(); s.minP = P.minP.data();
  s.presencePenalty = P.pres.data(); s.frequencyPenalty = P.freq.data(); s.repetitionPenalty = P.rep.data();
  s.seeds = P.seeds.data(); s.seedSteps = P.seedSteps.data(); s.numLogprobs = P.nlp.data();
  if (penalties) {
    s.historyStart = P.hs.data(); s.historyOutputStart = P.ho.data(); s.historyTokens = P.ht.data();
    s.biasStart = P.bs.data(); s.biasTokens = P.bt.data(); s.biasValues = P.biasV.data();
  }
  if (masked) { s.maskRow = P.maskRow.data(); s.masks = P.masks.data(); s.maskWords = (int64_t)P.masks.size(); }
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
    if (P.nlp[r] >= 0) addLogprob(lp, gpu.logprobs[r], cpu.logprobs[r]);
    const int mr = masked ? P.maskRow[r] : -1, t = gpu.tokens[r];
    if (mr >= 0 && !((P.masks[(size_t)mr * ((V + 31) / 32) + (t >> 5)] >> (t & 31)) & 1u)) ++maskViolations;
  }
  for (size_t i = 0; i < raw.size(); ++i) idsOk = idsOk && gpu.logits[i] == raw[i];
  idsOk = idsOk && gpu.topLogprobs == cpu.topLogprobs && gpu.topIds == cpu.topIds;
  for (size_t i = 0; i < cpu.topValues.size(); ++i)
    if (!std::isnan(cpu.topValues[i])) addLogprob(lp, gpu.topValues[i], cpu.topValues[i]);
}

}  // namespace

void samplingTests() {
  for (kvsk_dtype dt : {KVSK_F32, KVSK_BF16})
    for (auto [R, V] : std::vector<std::pair<int, int>>{{64, 512}, {256, 32000}, {16, 151936}})
      for (auto [pen, masked] : std::vector<std::pair<bool, bool>>{{false, false}, {true, false}, {false, true}, {true, true}}) {
        int mism = 0, rows = 0, outside = 0;
        ErrStat lp;
        bool ids = true;
        samplingCase(dt, R, V, pen, masked, mism, rows, lp, ids, outside);
        const std::string name = std::string(dtName(dt)) + " R" + std::to_string(R) + " V" + std::to_string(V) +
                                 (pen ? " +penalties/bias" : "") + (masked ? " +masks" : "");
        if (masked)
          reportBool("sampling", name + " tokens inside their masks", rows, outside == 0, std::to_string(outside) + " outside");
        reportBool("sampling", name + " tokens == CPU sampler", rows, mism == 0, std::to_string(mism) + " of " + std::to_string(rows) + " differ");
        reportBool("sampling", name + " top-logprob ids, raw logits", rows, ids, ids ? "identical" : "differ");
        report("sampling", name + " logprobs", rows, lp);
      }
}

}  // namespace kt
