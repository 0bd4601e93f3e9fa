// A look at the input of every linear layer as the CPU forward pass computes it, for calibration: the
// build runs the float model over sample text with an observer attached and gathers per-channel statistics
// of what each layer multiplies (cpu/calibration.h). Serving attaches none, and the forward pass is the same.
#pragma once
#include <cstdint>

namespace kvs {

// Which layers of a decoder layer read one input: q/k/v share the normed input, gate/up the post-attention
// normed input. LmHead is the final-normed hidden state of the sampled rows (layer = numLayers).
enum class LinearInput : int { Qkv = 0, O = 1, GateUp = 2, Down = 3, LmHead = 4 };
constexpr int kLinearInputsPerLayer = 4;

class LinearObserver {
 public:
  virtual ~LinearObserver() = default;
  // x: [T, K] row stride ldx, valid only during the call.
  virtual void observe(int layer, LinearInput input, const float* x, int64_t ldx, int64_t T, int64_t K) = 0;
};

}  // namespace kvs
