// Calibration: the float model run over sample text through the CPU forward pass (a LinearObserver on every
// linear layer's input), gathering what int8 quantization needs to know about the activations: each input
// channel's abs-max over every token, and the inputs of an evenly spaced subset of tokens, kept for
// percentile observers and for measuring a quantization choice's output error (smoothquant.h).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "cpu_weights.h"
#include "linear_observer.h"

namespace kvs {

struct InputStats {
  int64_t K = 0;
  int64_t tokens = 0;          // observed
  std::vector<float> absMax;   // [K] max |x[., k]| over every observed token
  std::vector<float> kept;     // [keptRows, K] the inputs of every stride-th observed token
  int64_t keptRows = 0;
};

struct CalibrationStats {
  int numLayers = 0;
  int64_t samples = 0, tokens = 0, stride = 1;
  // Layer l's input `in` at l * kLinearInputsPerLayer + in; the lm_head's input last.
  std::vector<InputStats> inputs;
  InputStats& at(int layer, LinearInput in) {
    return in == LinearInput::LmHead ? inputs.back() : inputs[size_t(layer) * kLinearInputsPerLayer + int(in)];
  }
  const InputStats& at(int layer, LinearInput in) const { return const_cast<CalibrationStats*>(this)->at(layer, in); }
};

// samples: token ids, one sequence each (the caller adds BOS and cuts each to the context). Keeps at most
// about keepBytes of inputs in all. progress(fraction) after each step.
CalibrationStats calibrate(const ModelConfig& cfg, const CpuModel& model, const std::vector<std::vector<int32_t>>& samples,
                           int numThreads, size_t keepBytes, const std::function<void(double)>& progress);

}  // namespace kvs
