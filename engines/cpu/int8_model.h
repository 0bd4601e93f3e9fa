// `--quantization int8` from a float CpuModel to an int8 one, as every int8 build and load runs it: the
// request checked, the model calibrated on the request's samples (calibration.h), the smoothing searched and
// the matrices quantized (smoothquant.h). The CPU engine writer uses the result as it is; the CUDA backend
// turns it into its own layout (engines/cuda/cuda_int8.h), with the constraints of that layout passed in.
#pragma once
#include <functional>
#include <string>

#include "../quantization.h"
#include "smoothquant.h"

namespace kvs {

// layout: the target's constraints (QuantizeOptions::fusedGroups, keepFloatBecause); the request's fields
// are filled in. progress(stage, fraction) for the stages "calibrate" and "quantize". summary gets the
// calibration's counts and timings. Throws std::runtime_error with a message meant for the user.
QuantizedCpuModel quantizeModelInt8(const ModelConfig& cfg, const CpuModel& floatModel, const QuantizationRequest& quant,
                                    QuantizeOptions layout, int numThreads, ThreadPool& pool,
                                    const std::function<void(const std::string&, double)>& progress,
                                    CalibrationSummary* summary);

}  // namespace kvs
