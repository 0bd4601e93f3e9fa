// Range checks of a StepBatch against the loaded model and KV pool, run before every step so that a bad
// batch becomes a clear error instead of an out-of-bounds access. The lengths of the arrays themselves are
// checked where they are known (the N-API shim); this checks the values.
#pragma once
#include "step.h"

namespace kvs {

struct BatchLimits {
  int vocabSize = 0;
  int maxModelLen = 0;
  int numBlocks = 0;
  int blockSize = 0;
};

// Throws std::runtime_error naming the field, the index and the bad value.
void checkStepBatch(const StepBatch& b, const BatchLimits& lim);

}  // namespace kvs
