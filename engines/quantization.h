// What `kvserve build --quantization` asks of a backend's writer, and what the writer reports back for the
// manifest: one entry per linear layer (int8 or kept in float, and why) and a summary of the calibration.
// Plain data shared by the build entry point and the CPU writer; the method itself is cpu/smoothquant.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kvs {

struct QuantizationRequest {
  std::string method = "none";                     // "none" | "int8" | "fp8"
  std::vector<std::vector<int32_t>> calibration;   // token ids of each calibration sample (BOS included)
  std::vector<float> alphas;                       // SmoothQuant α grid (empty: the default grid)
  std::vector<std::string> observers;              // "absmax", "percentile" (empty: both)
  bool tryUnsmoothed = true;                       // also consider no smoothing
  float percentile = 99.9f;
  float maxLayerError = 0.1f;                      // relative output error bound of the per-layer fallback
  std::vector<std::string> keepFloat;              // module names kept in float
};

struct LayerQuantReport {
  std::string name;            // module name: model.layers.0.self_attn.q_proj, lm_head
  bool int8 = false;
  std::string keptBecause;     // why it stays float ("" when int8)
  std::string smoothing;       // "norm" (folded into the norm before it) | "act" (act_smooth) | "none"
  std::string observer;        // "absmax" | "percentile" | "" (no smoothing)
  float alpha = 0;             // when observer is set
  float error = 0;             // relative output error in int8 at the chosen smoothing, on calibration inputs
  float errorUnsmoothed = 0;   // the same without smoothing
  float weightScaleMin = 0, weightScaleMax = 0;
  float smoothMin = 1, smoothMax = 1;
  float actMaxMin = 0, actMaxMax = 0;  // the input's per-channel abs-max over the calibration tokens
};

struct CalibrationSummary {
  int64_t samples = 0, tokens = 0;
  int64_t keptTokens = 0;      // tokens whose inputs were kept (percentiles, errors)
  int64_t evalTokens = 0;      // of those, the ones each error is measured on
  double seconds = 0;          // the calibration run
  double searchSeconds = 0;    // choosing the smoothing and quantizing
};

}  // namespace kvs
