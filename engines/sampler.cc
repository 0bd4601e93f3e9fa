#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "splitmix.h"

namespace kvs {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Ranking used everywhere: larger value first, then the lower id.
struct ByValueDesc {
  const float* v;
  bool operator()(int32_t a, int32_t b) const { return v[a] > v[b] || (v[a] == v[b] && a < b); }
};

void writeLogprobs(const SamplingBatch& s, int r, const float* raw, int vocab, SamplerScratch& sc, StepResult& out,
                   double* lseOut) {
  float m = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < vocab; ++i) m = std::max(m, raw[i]);
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(double(raw[i]) - double(m));
  *lseOut = double(m) + std::log(sum);
  const int k = std::min(s.numLogprobs[r], vocab);
  if (k <= 0) return;
  auto& order = sc.order;
  order.resize(vocab);
  for (int i = 0; i < vocab; ++i) order[i] = i;
  std::partial_sort(order.begin(), order.begin() + k, order.end(), ByValueDesc{raw});
  const int K = out.topLogprobs;
  for (int j = 0; j < k; ++j) {
    out.topIds[size_t(r) * K + j] = order[j];
    out.topValues[size_t(r) * K + j] = float(double(raw[order[j]]) - *lseOut);
  }
}

// Logit bias (the request's logit_bias and the server's masks: min_tokens, allowed_token_ids, bad_words).
void applyBias(const SamplingBatch& s, int r, int vocab, SamplerScratch& sc) {
  if (!s.biasStart) return;
  float* l = sc.logits.data();
  for (int32_t i = s.biasStart[r]; i < s.biasStart[r + 1]; ++i) {
    int32_t t = s.biasTokens[i];
    if (t >= 0 && t < vocab) l[t] += s.biasValues[i];
  }
}

// The row's allowed-token bitmask (step.h): every id whose bit is clear becomes -inf. Returns whether the row
// has one.
bool applyMask(const SamplingBatch& s, int r, int vocab, SamplerScratch& sc) {
  if (!s.maskRow || s.maskRow[r] < 0) return false;
  const uint32_t* m = s.masks + int64_t(s.maskRow[r]) * ((vocab + 31) / 32);
  float* l = sc.logits.data();
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < vocab; ++i)
    if (!((m[i >> 5] >> (i & 31)) & 1u)) l[i] = kNegInf;
  return true;
}

void applyPenalties(const SamplingBatch& s, int r, int vocab, SamplerScratch& sc) {
  float* l = sc.logits.data();
  if (!s.historyStart) return;
  const int32_t h0 = s.historyStart[r], h1 = s.historyStart[r + 1];
  const int32_t out0 = h0 + (s.historyOutputStart ? s.historyOutputStart[r] : 0);
  const float rep = s.repetitionPenalty ? s.repetitionPenalty[r] : 1.0f;
  if (rep != 1.0f && rep > 0) {
    for (int32_t i = h0; i < h1; ++i) {
      int32_t t = s.historyTokens[i];
      if (t < 0 || t >= vocab || sc.seen[t]) continue;
      sc.seen[t] = 1;
      l[t] = l[t] > 0 ? l[t] / rep : l[t] * rep;
    }
    for (int32_t i = h0; i < h1; ++i) {
      int32_t t = s.historyTokens[i];
      if (t >= 0 && t < vocab) sc.seen[t] = 0;
    }
  }
  const float freq = s.frequencyPenalty ? s.frequencyPenalty[r] : 0.0f;
  const float pres = s.presencePenalty ? s.presencePenalty[r] : 0.0f;
  if (freq != 0.0f || pres != 0.0f) {
    for (int32_t i = out0; i < h1; ++i) {
      int32_t t = s.historyTokens[i];
      if (t >= 0 && t < vocab) ++sc.counts[t];
    }
    for (int32_t i = out0; i < h1; ++i) {
      int32_t t = s.historyTokens[i];
      if (t < 0 || t >= vocab || sc.counts[t] == 0) continue;
      l[t] -= freq * float(sc.counts[t]) + pres;
      sc.counts[t] = 0;  // each distinct token once; also leaves counts all zero for the next row
    }
  }
}

int32_t argmax(const float* l, int vocab) {
  int32_t best = 0;
  for (int i = 1; i < vocab; ++i)
    if (l[i] > l[best] || std::isnan(l[best])) best = i;
  return best;
}

// Temperature, top-k, top-p, min-p and the draw. Candidates are kept in a canonical order (by id when
// nothing needs ranking, else by value descending with ties to the lower id) so the draw is deterministic.
int32_t sampleFiltered(const SamplingBatch& s, int r, int vocab, SamplerScratch& sc) {
  float* l = sc.logits.data();
  const float temp = s.temperature[r];
  for (int i = 0; i < vocab; ++i) l[i] = l[i] / temp;
  const int32_t best = argmax(l, vocab);
  const float m = l[best];
  if (!std::isfinite(m)) return best;
  auto& probs = sc.probs;
  for (int i = 0; i < vocab; ++i) probs[i] = std::exp(double(l[i]) - double(m));

  const int topK = s.topK ? s.topK[r] : 0;
  const float topP = s.topP ? s.topP[r] : 1.0f;
  const float minP = s.minP ? s.minP[r] : 0.0f;
  auto& order = sc.order;
  order.resize(vocab);
  for (int i = 0; i < vocab; ++i) order[i] = i;
  size_t n = vocab;
  if (topK > 0 && topK < vocab) {
    std::partial_sort(order.begin(), order.begin() + topK, order.end(), ByValueDesc{l});
    n = topK;
  }
  if (topP < 1.0f) {
    double total = 0;
    for (size_t j = 0; j < n; ++j) total += probs[order[j]];
    // The nucleus is the shortest prefix of the ranking holding topP of the mass. Rank only as many
    // candidates as needed (64, then 8x more...): the first `ranked` of a partial sort are exactly those
    // of a full sort, so the result is the same, without sorting a 150k vocabulary for every row.
    size_t ranked = n == size_t(vocab) ? 0 : n;  // after top-k the first n are already ranked
    size_t keep = n;
    for (size_t want = std::min<size_t>(n, 64);; want = std::min(n, want * 8)) {
      if (ranked < want) {
        std::partial_sort(order.begin(), order.begin() + want, order.begin() + n, ByValueDesc{l});
        ranked = want;
      }
      double cum = 0;
      size_t j = 0;
      for (; j < ranked; ++j) {
        cum += probs[order[j]];
        if (cum >= double(topP) * total) break;
      }
      if (j < ranked) { keep = j + 1; break; }
      if (ranked == n) break;
    }
    n = keep;
  }
  if (minP > 0.0f) {  // probs[best] == 1 is the largest probability, which every filter keeps
    size_t w = 0;
    for (size_t j = 0; j < n; ++j)
      if (probs[order[j]] >= double(minP)) order[w++] = order[j];
    n = w;
  }
  double total = 0;
  for (size_t j = 0; j < n; ++j) total += probs[order[j]];
  const double target = uniform01(s.seeds[r], s.seedSteps[r]) * total;
  double cum = 0;
  for (size_t j = 0; j < n; ++j) {
    cum += probs[order[j]];
    if (cum > target) return order[j];
  }
  return n ? order[n - 1] : best;
}

}  // namespace

double uniform01(uint32_t seed, int32_t step) {
  uint64_t h = splitmix64(splitmix64(seed) ^ (uint64_t(uint32_t(step)) * 0xD1B54A32D192ED03ull));
  return double(h >> 11) * 0x1.0p-53;
}

void prepareSampleResult(const SamplingBatch& s, int numRows, StepResult& out) {
  int K = 0;
  for (int r = 0; r < numRows; ++r) K = std::max(K, s.numLogprobs ? s.numLogprobs[r] : -1);
  out.topLogprobs = K;
  out.tokens.assign(numRows, 0);
  out.logprobs.assign(numRows, kNaN);
  out.topIds.assign(size_t(numRows) * K, -1);
  out.topValues.assign(size_t(numRows) * K, kNaN);
  out.rowFaults.assign(numRows, kRowOk);
}

void sampleRow(const SamplingBatch& s, int r, const float* raw, int vocab, SamplerScratch& sc, StepResult& out) {
  if (sc.logits.size() != size_t(vocab)) {
    sc.logits.assign(vocab, 0);
    sc.counts.assign(vocab, 0);
    sc.seen.assign(vocab, 0);
    sc.probs.assign(vocab, 0);
  }
  // The copy also checks the row: a NaN or +inf logit, or no finite one, means the model's numbers broke
  // down for this sequence (overflow, a bad weight); sampling from them would be garbage text.
  float* l = sc.logits.data();
  bool broken = false;
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < vocab; ++i) {
    const float x = raw[i];
    l[i] = x;
    broken |= (x != x) | (x == std::numeric_limits<float>::infinity());
    mx = x > mx ? x : mx;
  }
  if (broken || mx == -std::numeric_limits<float>::infinity()) {
    out.rowFaults[r] = kRowNonFiniteLogits;
    return;
  }
  const bool wantLogprobs = s.numLogprobs && s.numLogprobs[r] >= 0;
  // Logprobs are those of the biased and masked logits, as OpenAI and vLLM report them (a banned token reads
  // -inf), before penalties and temperature. The copy is kept: the later stages rewrite sc.logits in place.
  bool biased = s.biasStart && s.biasStart[r + 1] > s.biasStart[r];
  applyBias(s, r, vocab, sc);
  biased |= applyMask(s, r, vocab, sc);
  const float* lp = raw;
  double lse = 0;
  if (wantLogprobs) {
    if (biased) {
      sc.biased.assign(l, l + vocab);
      lp = sc.biased.data();
    }
    writeLogprobs(s, r, lp, vocab, sc, out, &lse);
  }
  applyPenalties(s, r, vocab, sc);
  const bool greedy = s.temperature[r] <= 1e-5f;
  const int32_t token = greedy ? argmax(sc.logits.data(), vocab) : sampleFiltered(s, r, vocab, sc);
  out.tokens[r] = token;
  if (wantLogprobs) out.logprobs[r] = float(double(lp[token]) - lse);
}

void sampleBatch(const SamplingBatch& s, int numRows, const float* logits, int vocab, StepResult& out) {
  prepareSampleResult(s, numRows, out);
  SamplerScratch scratch;
  for (int r = 0; r < numRows; ++r) sampleRow(s, r, logits + size_t(r) * vocab, vocab, scratch, out);
}

}  // namespace kvs
