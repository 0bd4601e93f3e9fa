// SmoothQuant W8A8 for the CPU backend: from a float model and its calibration statistics to a model whose
// linear layers are int8 (per-output-row symmetric weight scales, per-token dynamic activation scales).
//
// Smoothing moves activation outliers into the weights: for layers that read one input, per input channel j
//   s_j = max|X_j|^α / max|W_j|^(1-α)      (max|W_j| over all the layers that read X)
// and X·Wᵀ = (X / s)·(W·diag(s))ᵀ. Where a RMSNorm produces X (q/k/v: input_layernorm; gate/up:
// post_attention_layernorm; lm_head: the final norm), 1/s is folded into the norm's weight and costs nothing.
// o_proj and down_proj have no norm before them; they get an explicit per-channel multiplier 1/s
// (Mat::actSmooth) applied while their input is quantized, which is one multiply per element of a pass that
// is made anyway.
//
// The choice per layer group: max|X_j| from the abs-max or a percentile observer, α from a small grid, or no
// smoothing at all, whichever gives the smallest relative output error ‖Y_int8 − Y_float‖ / ‖Y_float‖ of the
// group's layers on the kept calibration inputs, computed with the engine's own int8 kernels. A layer whose
// error at that choice exceeds the bound stays in float (its weights smoothed when its group's norm is), as
// does every layer the caller names. A backend whose layout fuses a group's matrices into one (the CUDA
// backend: q/k/v, gate/up) asks for fused groups: then the members become int8 together or stay float
// together, unsmoothed.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "../quantization.h"
#include "calibration.h"

namespace kvs {

enum class Observer : int { AbsMax = 0, Percentile = 1 };

struct QuantizeOptions {
  std::vector<float> alphas{0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};  // migration strengths searched
  std::vector<Observer> observers{Observer::AbsMax, Observer::Percentile};
  bool tryUnsmoothed = true;          // also a candidate: s = 1
  float percentile = 99.9f;           // of |x_j| over the kept tokens, for Observer::Percentile
  float maxLayerError = 0.1f;         // a layer above this relative output error stays in float
  std::vector<std::string> keepFloat; // module names (model.layers.0.mlp.down_proj, lm_head) kept in float
  int evalRows = 256;                 // kept calibration tokens the error is measured on, at most
  // The target layout's constraints: modules it cannot hold in int8, with the reason the report gives; and
  // whether a group's members are int8 together or not at all.
  std::map<std::string, std::string> keepFloatBecause;
  bool fusedGroups = false;
};

struct QuantizedCpuModel {
  CpuModel model;  // borrows the float model's embedding and the float layers it leaves as they were
  std::vector<LayerQuantReport> layers;
};

// progress(fraction) after each layer group.
QuantizedCpuModel quantizeSmoothQuant(const ModelConfig& cfg, const CpuModel& floatModel, const CalibrationStats& stats,
                                      const QuantizeOptions& o, ThreadPool& pool,
                                      const std::function<void(double)>& progress);

// The module names quantizeSmoothQuant considers, in model order.
std::vector<std::string> quantizableLayers(const ModelConfig& cfg);

}  // namespace kvs
