#include "batch_check.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace kvs {

namespace {

[[noreturn]] void fail(const char* field, int64_t i, const std::string& what) {
  throw std::runtime_error("invalid batch: " + std::string(field) + "[" + std::to_string(i) + "] " + what);
}

std::string num(int64_t v) { return std::to_string(v); }

}  // namespace

void checkStepBatch(const StepBatch& b, const BatchLimits& lim) {
  if (b.numTokens < 0 || b.numSeqs < 0 || b.numSamples < 0) throw std::runtime_error("invalid batch: negative size");
  if (b.numSeqs > 0 && b.maxBlocksPerSeq <= 0) throw std::runtime_error("invalid batch: maxBlocksPerSeq must be positive");
  if (b.queryStart[0] != 0) fail("queryStart", 0, "must be 0, found " + num(b.queryStart[0]));
  if (b.queryStart[b.numSeqs] != b.numTokens)
    fail("queryStart", b.numSeqs, "must equal the number of tokens " + num(b.numTokens) + ", found " + num(b.queryStart[b.numSeqs]));
  const int64_t numSlots = int64_t(lim.numBlocks) * lim.blockSize;
  for (int s = 0; s < b.numSeqs; ++s) {
    const int32_t q0 = b.queryStart[s], q1 = b.queryStart[s + 1];
    if (q1 < q0) fail("queryStart", s + 1, "decreases");
    const int32_t ctx = b.contextLens[s];
    if (ctx < q1 - q0 || ctx < 1 || ctx > lim.maxModelLen)
      fail("contextLens", s, "= " + num(ctx) + " is outside [max(1, new tokens), maxModelLen " + num(lim.maxModelLen) + "]");
    if (int64_t(ctx) > int64_t(b.maxBlocksPerSeq) * lim.blockSize)
      fail("contextLens", s, "= " + num(ctx) + " needs more than maxBlocksPerSeq " + num(b.maxBlocksPerSeq) + " blocks");
    const int used = (ctx + lim.blockSize - 1) / lim.blockSize;
    for (int j = 0; j < used; ++j) {
      const int32_t blk = b.blockTables[int64_t(s) * b.maxBlocksPerSeq + j];
      if (blk < 0 || blk >= lim.numBlocks)
        fail("blockTables", int64_t(s) * b.maxBlocksPerSeq + j, "= " + num(blk) + " is not a block id (numKvBlocks " + num(lim.numBlocks) + ")");
    }
    for (int32_t t = q0; t < q1; ++t)
      if (b.positions[t] < 0 || b.positions[t] >= ctx)
        fail("positions", t, "= " + num(b.positions[t]) + " is outside its sequence's context [0, " + num(ctx) + ")");
  }
  for (int t = 0; t < b.numTokens; ++t) {
    if (b.tokenIds[t] < 0 || b.tokenIds[t] >= lim.vocabSize)
      fail("tokenIds", t, "= " + num(b.tokenIds[t]) + " is outside the vocabulary [0, " + num(lim.vocabSize) + ")");
    if (b.slotMapping[t] >= numSlots) fail("slotMapping", t, "= " + num(b.slotMapping[t]) + " is beyond the KV pool");
  }
  const SamplingBatch& s = b.sampling;
  for (int r = 0; r < b.numSamples; ++r) {
    if (b.sampleIndices[r] < 0 || b.sampleIndices[r] >= b.numTokens)
      fail("sampleIndices", r, "= " + num(b.sampleIndices[r]) + " is outside [0, " + num(b.numTokens) + ")");
    if (!(s.temperature[r] >= 0) || !std::isfinite(s.temperature[r])) fail("temperature", r, "must be a finite number >= 0");
    if (!(s.topP[r] > 0 && s.topP[r] <= 1)) fail("topP", r, "must be in (0, 1]");
    if (!(s.minP[r] >= 0 && s.minP[r] <= 1)) fail("minP", r, "must be in [0, 1]");
    if (!(s.repetitionPenalty[r] > 0) || !std::isfinite(s.repetitionPenalty[r])) fail("repetitionPenalty", r, "must be > 0");
    if (!std::isfinite(s.presencePenalty[r])) fail("presencePenalty", r, "must be finite");
    if (!std::isfinite(s.frequencyPenalty[r])) fail("frequencyPenalty", r, "must be finite");
    if (s.numLogprobs[r] < -1 || s.numLogprobs[r] > lim.vocabSize) fail("numLogprobs", r, "must be in [-1, vocab]");
  }
  for (int c = 0; c < 2 * b.numBlockCopies; ++c)
    if (b.blockCopies[c] < 0 || b.blockCopies[c] >= lim.numBlocks)
      fail("blockCopies", c, "= " + num(b.blockCopies[c]) + " is not a block id");
}

}  // namespace kvs
