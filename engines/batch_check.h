// Range checks of a StepBatch against the loaded model and KV pool, run before every step so that a bad
// batch becomes a clear error instead of an out-of-bounds access. The lengths of the arrays themselves are
// checked where they are known (the N-API shim); this checks the values.
//
// A bad value that belongs to one sequence (its tokens, positions, context, blocks, or its sampled row's
// parameters) is pinned on that sequence, so the caller can fail that request alone and run the step again
// without it; only a batch whose layout is broken (sizes, queryStart, sampleIndices, blockCopies) fails whole.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "step.h"

namespace kvs {

struct BatchLimits {
  int vocabSize = 0;
  int maxModelLen = 0;
  int numBlocks = 0;
  int blockSize = 0;
};

// One sequence that cannot run as given. For sampling parameters the message names the API field
// ("top_p"), since that is what the request's client sees; for layout values it names the batch array.
struct SeqFault {
  int seq;              // index into the step's sequences [0, S)
  std::string message;
};

class BatchError : public std::runtime_error {
 public:
  BatchError(const std::string& what, std::vector<SeqFault> faults) : std::runtime_error(what), faults(std::move(faults)) {}
  // Empty when the batch as a whole is malformed; else one entry per sequence at fault (the first bad value
  // found for it), every other sequence passed.
  std::vector<SeqFault> faults;
};

// Throws BatchError ("invalid batch: ...", naming the field, the index and the bad value).
void checkStepBatch(const StepBatch& b, const BatchLimits& lim);

}  // namespace kvs
