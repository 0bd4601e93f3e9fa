#include "batch_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

namespace kvs {

namespace {

[[noreturn]] void failWhole(const char* field, int64_t i, const std::string& what) {
  throw BatchError("invalid batch: " + std::string(field) + "[" + std::to_string(i) + "] " + what, {});
}

std::string num(int64_t v) { return std::to_string(v); }

// A float as the client would recognise it: %g keeps 1e-45 and 0 readable.
std::string flt(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", double(v));
  return buf;
}

// The first fault found for each sequence; later ones for the same sequence are dropped.
class Faults {
 public:
  explicit Faults(int numSeqs) : seen_(size_t(numSeqs), false) {}
  void add(int seq, const std::string& message) {
    if (seen_[size_t(seq)]) return;
    seen_[size_t(seq)] = true;
    list_.push_back({seq, message});
  }
  void add(int seq, const char* field, int64_t i, const std::string& what) {
    add(seq, std::string(field) + "[" + num(i) + "] " + what);
  }
  void throwIfAny() {
    if (list_.empty()) return;
    std::sort(list_.begin(), list_.end(), [](const SeqFault& a, const SeqFault& b) { return a.seq < b.seq; });
    std::string what = "invalid batch:";
    for (const SeqFault& f : list_) what += " sequence " + num(f.seq) + ": " + f.message + ";";
    what.pop_back();
    throw BatchError(what, std::move(list_));
  }

 private:
  std::vector<bool> seen_;
  std::vector<SeqFault> list_;
};

// Layout: sizes and queryStart. After this, every token belongs to exactly one sequence.
void checkLayout(const StepBatch& b) {
  if (b.numTokens < 0 || b.numSeqs < 0 || b.numSamples < 0) throw BatchError("invalid batch: negative size", {});
  if (b.numSeqs > 0 && b.maxBlocksPerSeq <= 0) throw BatchError("invalid batch: maxBlocksPerSeq must be positive", {});
  if (b.queryStart[0] != 0) failWhole("queryStart", 0, "must be 0, found " + num(b.queryStart[0]));
  if (b.queryStart[b.numSeqs] != b.numTokens)
    failWhole("queryStart", b.numSeqs, "must equal the number of tokens " + num(b.numTokens) + ", found " + num(b.queryStart[b.numSeqs]));
  for (int s = 0; s < b.numSeqs; ++s)
    if (b.queryStart[s + 1] < b.queryStart[s]) failWhole("queryStart", s + 1, "decreases");
  for (int r = 0; r < b.numSamples; ++r)
    if (b.sampleIndices[r] < 0 || b.sampleIndices[r] >= b.numTokens)
      failWhole("sampleIndices", r, "= " + num(b.sampleIndices[r]) + " is outside [0, " + num(b.numTokens) + ")");
}

// The sequence that token t belongs to (queryStart is checked to be a partition of [0, T)).
int seqOfToken(const StepBatch& b, int32_t t) {
  const int32_t* qs = b.queryStart;
  return int(std::upper_bound(qs, qs + b.numSeqs + 1, t) - qs) - 1;
}

void checkSequences(const StepBatch& b, const BatchLimits& lim, Faults& faults) {
  const int64_t numSlots = int64_t(lim.numBlocks) * lim.blockSize;
  for (int s = 0; s < b.numSeqs; ++s) {
    const int32_t q0 = b.queryStart[s], q1 = b.queryStart[s + 1];
    const int32_t ctx = b.contextLens[s];
    if (ctx < q1 - q0 || ctx < 1 || ctx > lim.maxModelLen) {
      faults.add(s, "contextLens", s, "= " + num(ctx) + " is outside [max(1, new tokens), maxModelLen " + num(lim.maxModelLen) + "]");
      continue;
    }
    if (int64_t(ctx) > int64_t(b.maxBlocksPerSeq) * lim.blockSize) {
      faults.add(s, "contextLens", s, "= " + num(ctx) + " needs more than maxBlocksPerSeq " + num(b.maxBlocksPerSeq) + " blocks");
      continue;
    }
    const int used = (ctx + lim.blockSize - 1) / lim.blockSize;
    for (int j = 0; j < used; ++j) {
      const int64_t at = int64_t(s) * b.maxBlocksPerSeq + j;
      const int32_t blk = b.blockTables[at];
      if (blk < 0 || blk >= lim.numBlocks) faults.add(s, "blockTables", at, "= " + num(blk) + " is not a block id (numKvBlocks " + num(lim.numBlocks) + ")");
    }
    for (int32_t t = q0; t < q1; ++t) {
      if (b.positions[t] < 0 || b.positions[t] >= ctx)
        faults.add(s, "positions", t, "= " + num(b.positions[t]) + " is outside its sequence's context [0, " + num(ctx) + ")");
      if (b.tokenIds[t] < 0 || b.tokenIds[t] >= lim.vocabSize)
        faults.add(s, "tokenIds", t, "= " + num(b.tokenIds[t]) + " is outside the vocabulary [0, " + num(lim.vocabSize) + ")");
      if (b.slotMapping[t] >= numSlots) faults.add(s, "slotMapping", t, "= " + num(b.slotMapping[t]) + " is beyond the KV pool");
    }
  }
}

// Sampling parameters are named as the API names them: a request's client can act on "top_p".
void checkSampling(const StepBatch& b, const BatchLimits& lim, Faults& faults) {
  const SamplingBatch& s = b.sampling;
  for (int r = 0; r < b.numSamples; ++r) {
    const int seq = seqOfToken(b, b.sampleIndices[r]);
    auto bad = [&](const char* field, float v, const char* range) {
      faults.add(seq, std::string(field) + " = " + flt(v) + " (as the engine's 32-bit float) is outside " + range);
    };
    if (!(s.temperature[r] >= 0) || !std::isfinite(s.temperature[r])) bad("temperature", s.temperature[r], "[0, inf)");
    if (!(s.topP[r] > 0 && s.topP[r] <= 1)) bad("top_p", s.topP[r], "(0, 1]");
    if (!(s.minP[r] >= 0 && s.minP[r] <= 1)) bad("min_p", s.minP[r], "[0, 1]");
    if (!(s.repetitionPenalty[r] > 0) || !std::isfinite(s.repetitionPenalty[r])) bad("repetition_penalty", s.repetitionPenalty[r], "(0, inf)");
    if (!std::isfinite(s.presencePenalty[r])) bad("presence_penalty", s.presencePenalty[r], "the finite numbers");
    if (!std::isfinite(s.frequencyPenalty[r])) bad("frequency_penalty", s.frequencyPenalty[r], "the finite numbers");
    if (s.numLogprobs[r] < -1 || s.numLogprobs[r] > lim.vocabSize)
      faults.add(seq, "logprobs = " + num(s.numLogprobs[r]) + " is outside [0, " + num(lim.vocabSize) + "]");
    if (s.maskRow && s.maskRow[r] >= int64_t(s.maskWords / ((lim.vocabSize + 31) / 32)))
      faults.add(seq, "maskRow", r, "= " + num(s.maskRow[r]) + " is beyond the masks sent");
  }
}

// Masks are whole rows of ceil(vocab / 32) words; a batch whose mask array is not is broken as a whole.
void checkMasks(const StepBatch& b, const BatchLimits& lim) {
  const SamplingBatch& s = b.sampling;
  if (!s.maskRow) return;
  const int64_t words = (lim.vocabSize + 31) / 32;
  if (s.maskWords % words != 0)
    throw BatchError("invalid batch: masks has " + num(s.maskWords) + " words, not a multiple of ceil(vocab / 32) = " + num(words), {});
}

}  // namespace

void checkStepBatch(const StepBatch& b, const BatchLimits& lim) {
  checkLayout(b);
  for (int c = 0; c < 2 * b.numBlockCopies; ++c)
    if (b.blockCopies[c] < 0 || b.blockCopies[c] >= lim.numBlocks)
      failWhole("blockCopies", c, "= " + num(b.blockCopies[c]) + " is not a block id");
  checkMasks(b, lim);
  Faults faults(b.numSeqs);
  checkSequences(b, lim, faults);
  checkSampling(b, lim, faults);
  faults.throwIfAny();
}

}  // namespace kvs
