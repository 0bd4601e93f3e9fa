#include "int8_model.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "calibration.h"

namespace kvs {

namespace {

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The request's search options over the layout's.
void applyRequest(const QuantizationRequest& q, QuantizeOptions& o) {
  if (!q.alphas.empty()) o.alphas = q.alphas;
  if (!q.observers.empty()) {
    o.observers.clear();
    for (const std::string& name : q.observers) {
      if (name == "absmax") o.observers.push_back(Observer::AbsMax);
      else if (name == "percentile") o.observers.push_back(Observer::Percentile);
      else throw std::runtime_error("unknown calibration observer \"" + name + "\" (supported: absmax, percentile)");
    }
  }
  o.tryUnsmoothed = q.tryUnsmoothed;
  o.percentile = q.percentile;
  o.maxLayerError = q.maxLayerError;
  o.keepFloat = q.keepFloat;
}

}  // namespace

QuantizedCpuModel quantizeModelInt8(const ModelConfig& cfg, const CpuModel& m, const QuantizationRequest& quant,
                                    QuantizeOptions qo, int numThreads, ThreadPool& pool,
                                    const std::function<void(const std::string&, double)>& progress,
                                    CalibrationSummary* summary) {
  auto report = [&](const char* stage, double f) { if (progress) progress(stage, f); };
  const std::vector<std::string> known = quantizableLayers(cfg);
  for (const std::string& name : quant.keepFloat)
    if (std::find(known.begin(), known.end(), name) == known.end())
      throw std::runtime_error("--keep-precision: the model has no linear layer " + name);
  if (quant.calibration.empty()) throw std::runtime_error("int8 quantization needs calibration samples");
  const auto tc = std::chrono::steady_clock::now();
  report("calibrate", 0);
  const CalibrationStats stats = calibrate(cfg, m, quant.calibration, numThreads, size_t(256) << 20,
                                           [&](double f) { report("calibrate", f); });
  report("calibrate", 1);
  summary->seconds = secondsSince(tc);
  const auto tq = std::chrono::steady_clock::now();
  applyRequest(quant, qo);
  // Each candidate smoothing costs evalRows × (all linear weights) multiply-adds: a small model is measured
  // on up to 2048 calibration tokens, a large one on 256.
  const int64_t H = cfg.hiddenSize, I = cfg.intermediateSize, Q = int64_t(cfg.numHeads) * cfg.headDim;
  const int64_t params = int64_t(cfg.numLayers) * (2 * H * Q + 2 * H * int64_t(cfg.numKvHeads) * cfg.headDim + 3 * H * I) +
                         int64_t(cfg.vocabSize) * H;
  qo.evalRows = int(std::clamp<int64_t>((int64_t(1) << 31) / std::max<int64_t>(1, params), 256, 2048));
  report("quantize", 0);
  QuantizedCpuModel qm = quantizeSmoothQuant(cfg, m, stats, qo, pool, [&](double f) { report("quantize", f); });
  report("quantize", 1);
  summary->searchSeconds = secondsSince(tq);
  summary->samples = stats.samples;
  summary->tokens = stats.tokens;
  summary->keptTokens = stats.inputs.back().keptRows;
  summary->evalTokens = std::min<int64_t>(summary->keptTokens, qo.evalRows);
  return qm;
}

}  // namespace kvs
