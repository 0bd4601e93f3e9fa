// Rotary position embedding as transformers computes it (modeling_rope_utils.py), in float32 throughout,
// so that cos/sin match the reference bit for bit wherever libm's cosf/sinf do.
#pragma once
#include <vector>

#include "model_config.h"

namespace kvs {

// inv_freq[i] for i in [0, headDim/2): _compute_default/linear/llama3_parameters, float32 semantics.
std::vector<float> ropeInvFreq(const RopeConfig& rope, int headDim);

// cos/sin of (float)position * invFreq[i] (one float32 product, as HF's matmul with K=1):
// cosOut/sinOut are [headDim/2].
void ropeCosSin(const std::vector<float>& invFreq, int position, float* cosOut, float* sinOut);

// Applies HF's rotate_half convention in place to x [headDim]: pairs (i, i + headDim/2).
//   x[i]      = x[i] * cos[i] - x[i+half] * sin[i]
//   x[i+half] = x[i+half] * cos[i] + x[i] * sin[i]
void ropeApply(float* x, int headDim, const float* cos, const float* sin);

}  // namespace kvs
