// The CPU backend over a model prepared elsewhere: what the engine build uses to run the float model it is
// about to quantize, with an observer on every linear layer's input (calibration.h). makeCpuBackend
// (backend.h) is the serving entry point; both run the same forward pass.
#pragma once
#include <memory>

#include "../backend.h"
#include "cpu_weights.h"
#include "linear_observer.h"

namespace kvs {

// `model` must outlive the backend; observer may be null.
std::unique_ptr<Backend> makeCpuBackendOver(const ModelConfig& cfg, const CpuModel& model, const EngineOptions& opts,
                                            LinearObserver* observer);

}  // namespace kvs
