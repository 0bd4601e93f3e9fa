// Host-side sampling of one step's logits, shared by every backend that samples on the CPU.
// Per row, in this order (see step.h for the fields):
//   raw logits → logit bias → allowed-token mask (-inf outside it) → logprobs (log_softmax of the biased,
//   masked logits: the sampled token's, and the top-k; as OpenAI and vLLM report them, so a banned token
//   reads -inf) → repetition penalty (HF: positive / p, negative * p, over prompt+output tokens)
//   → frequency/presence penalties (OpenAI: -= freq*count + presence*[count>0], over output tokens)
//   → greedy argmax when temperature <= 1e-5 (ties to the lower id)
//   → else / temperature → top-k → top-p → min-p → one uniform draw u = uniform01(seed, seedStep).
#pragma once
#include <cstdint>
#include <vector>

#include "step.h"

namespace kvs {

// The counter-based generator: splitmix64 over (seed, step); 53-bit uniform in [0, 1).
// Depends on nothing but its arguments, so seeded sampling is reproducible and batch-independent.
double uniform01(uint32_t seed, int32_t step);

// Per-thread working memory, reused across rows (sized to the vocabulary on first use).
struct SamplerScratch {
  std::vector<float> logits;     // [vocab] processed logits
  std::vector<int32_t> counts;   // [vocab] output-token counts; all zero between rows
  std::vector<uint8_t> seen;     // [vocab] repetition-penalty marks; all zero between rows
  std::vector<int32_t> order;    // candidate ids
  std::vector<double> probs;     // [vocab] unnormalised probabilities
  std::vector<float> biased;     // [vocab] raw + bias, the logprobs' source (rows with a bias only)
};

// Sizes out.tokens/logprobs/topIds/topValues for R rows and sets out.topLogprobs = max numLogprobs (>= 0).
void prepareSampleResult(const SamplingBatch& s, int numRows, StepResult& out);

// Samples row r from its raw logits [vocab] into out (prepared by prepareSampleResult). Thread-safe for
// distinct rows with distinct scratch. A row whose raw logits hold a NaN or +inf, or no finite value, is not
// sampled: out.rowFaults[r] = kRowNonFiniteLogits.
void sampleRow(const SamplingBatch& s, int r, const float* rawLogits, int vocab, SamplerScratch& scratch,
               StepResult& out);

// prepareSampleResult + sampleRow for every row, on the calling thread. logits: [R, vocab].
void sampleBatch(const SamplingBatch& s, int numRows, const float* logits, int vocab, StepResult& out);

}  // namespace kvs
