// The step protocol of docs/architecture.md as C++ views. Every pointer borrows memory owned by the caller
// (the JS typed arrays) for the duration of one step; nothing here is retained after step() returns.
#pragma once
#include <cstdint>
#include <vector>

namespace kvs {

// Per sampled row r in [0, R). Penalty history and logit bias are ragged arrays with offsets.
struct SamplingBatch {
  const float* temperature = nullptr;        // [R]  <= 1e-5 means greedy (argmax, ties to the lower id)
  const float* topP = nullptr;               // [R]  1 = off
  const int32_t* topK = nullptr;             // [R]  <= 0 = off
  const float* minP = nullptr;               // [R]  0 = off
  const float* presencePenalty = nullptr;    // [R]  0 = off; over output tokens (OpenAI semantics)
  const float* frequencyPenalty = nullptr;   // [R]  0 = off; over output tokens
  const float* repetitionPenalty = nullptr;  // [R]  1 = off; over prompt and output tokens (HF semantics)
  const uint32_t* seeds = nullptr;           // [R]  per-request seed
  const int32_t* seedSteps = nullptr;        // [R]  index of the token being sampled in its request's output;
                                             //      (seed, step) alone picks the random draw, so a seeded
                                             //      request samples the same whatever else is in the batch
  const int32_t* numLogprobs = nullptr;      // [R]  -1 none; 0 the sampled token's logprob; k also top-k
  // History for penalties: row r's tokens are historyTokens[historyStart[r] .. historyStart[r+1]);
  // the output part starts at historyStart[r] + historyOutputStart[r]. Null when no row has penalties.
  const int32_t* historyStart = nullptr;       // [R+1]
  const int32_t* historyOutputStart = nullptr; // [R]
  const int32_t* historyTokens = nullptr;
  // Additive logit bias (OpenAI logit_bias, min_tokens' EOS masking as -inf): row r's entries are
  // [biasStart[r], biasStart[r+1]). Null when no row has any.
  const int32_t* biasStart = nullptr;        // [R+1]
  const int32_t* biasTokens = nullptr;
  const float* biasValues = nullptr;
  // Allowed-token bitmasks (structured outputs' grammar, allowed_token_ids): row r may sample token t only
  // when bit (t & 31) of masks[maskRow[r] * W + (t >> 5)] is set, W = ceil(vocab / 32); maskRow[r] < 0 = no
  // mask. Masked ids become -inf together with the logit bias, so logprobs see a mask as they see the bias.
  // Only rows that have a mask send one. Null when no row has any.
  const int32_t* maskRow = nullptr;          // [R]
  const uint32_t* masks = nullptr;           // [M, W]
  int64_t maskWords = 0;                     // M * W
};

struct StepBatch {
  int numTokens = 0;        // T: new tokens this step (prefill chunks + one per decoding sequence)
  int numSeqs = 0;          // S
  int numSamples = 0;       // R
  int maxBlocksPerSeq = 0;  // row stride of blockTables
  const int32_t* tokenIds = nullptr;     // [T]
  const int32_t* positions = nullptr;    // [T]   absolute positions
  const int32_t* queryStart = nullptr;   // [S+1] cu_seqlens of new tokens; seq s owns [queryStart[s], queryStart[s+1])
  const int32_t* contextLens = nullptr;  // [S]   KV length of seq s after this step (cached + new)
  const int32_t* blockTables = nullptr;  // [S, maxBlocksPerSeq] physical block ids, padded with -1 or 0
  const int32_t* slotMapping = nullptr;  // [T]   block * blockSize + offset for each new token; < 0 = skip write
  const int32_t* sampleIndices = nullptr;// [R]   indices into [0, T) of the tokens whose logits are sampled
  SamplingBatch sampling;
  const int32_t* blockCopies = nullptr;  // [2*C] (src, dst) pairs copied before the step
  int numBlockCopies = 0;                // C
  bool returnLogits = false;             // also return the raw logits [R, vocab] (tests, fixtures)
  // Also return, per layer, the abs-max of K and of V over the cache slots this step wrote (slotMapping >= 0),
  // read back from the cache after the step (Backend::kvAbsMax): the calibration of an fp8 KV cache.
  bool observeKvAbsMax = false;
};

struct StepResult {
  std::vector<int32_t> tokens;       // [R] sampled ids
  std::vector<float> logprobs;       // [R] log-softmax of the raw logits at the sampled id (NaN when not asked)
  int topLogprobs = 0;               // K = max numLogprobs over the rows (0 when none asked)
  std::vector<int32_t> topIds;       // [R, K] descending by logprob; rows asking fewer than K padded with -1
  std::vector<float> topValues;      // [R, K]
  std::vector<float> logits;         // [R, vocab] when returnLogits
  std::vector<float> kvAbsMax;       // [numLayers, 2] (K, V) when observeKvAbsMax
  // [R] why row r could not be sampled, kRowOk when it was. A faulted row's token is meaningless: the caller
  // ends that request with an error, and the other rows of the step stand.
  std::vector<int32_t> rowFaults;
  // The step's span on the device in ms, from the upload of its inputs to the copy of its results back (CUDA
  // events; KVSERVE_CUDA_DEVICE_TIME=1 only): what the host adds around it is the rest of the step's time.
  // Negative when not measured.
  double deviceMs = -1;
};

enum RowFault : int32_t {
  kRowOk = 0,
  kRowNonFiniteLogits = 1,  // a logit is NaN or +inf, or none is finite: nothing meaningful to sample
};

}  // namespace kvs
