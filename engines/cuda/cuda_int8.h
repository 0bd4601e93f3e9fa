// --quantization int8 for the CUDA backend (SmoothQuant W8A8), on the host: the checkpoint prepared as the CPU
// backend holds it in the compute dtype, calibrated and searched by the very code a CPU int8 build runs
// (cpu/int8_model.h), under the CUDA int8 layout's constraints, then rewritten in that layout
// (cuda_engine_layout.h): q/k/v and gate/up fused (so they are int8 together or float together), int8 rows
// unpacked to plain row-major, norms (with the smoothing folded in) and biases in the compute dtype, lm_head
// kept in the compute dtype. The result is a store of exactly an int8 engine's tensors: the build writes it,
// a load uploads it as it uploads an engine (uploadEngineWeights).
// Plain C++, no CUDA headers: the CPU test suite runs it on its own (test/native/cuda_int8_cases.cc).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../cpu/smoothquant.h"
#include "../quantization.h"
#include "cuda_engine_layout.h"

namespace kvs::cuda {

struct CudaInt8Model {
  std::unique_ptr<WeightStore> store;      // the layout's tensors, in owned host memory
  CudaQuant quant;                         // which layer matrices are int8 (cudaQuantOf(store) says the same)
  std::vector<LayerQuantReport> layers;    // every linear layer, in model order (the CPU build's report)
  CalibrationSummary calibration;
};

// What the CUDA int8 layout asks of the search: fused groups, and float for lm_head and for every matrix
// cudaInt8Matrix refuses (by its fused shape), each with the reason the report gives.
QuantizeOptions cudaInt8Constraints(const ModelConfig& cfg);

// compute: bfloat16 or float16. onTensor (may be empty) gets each checkpoint tensor's bytes as it is prepared;
// progress(stage, fraction) the stages "calibrate" and "quantize". Throws std::runtime_error with a message
// meant for the user.
CudaInt8Model quantizeInt8ForCuda(const ModelConfig& cfg, const WeightStore& checkpoint, DType compute,
                                  const QuantizationRequest& request, int numThreads, uint64_t seed,
                                  const std::function<void(size_t)>& onTensor,
                                  const std::function<void(const std::string&, double)>& progress);

// The kernels an int8 engine's layer matrices run on, for the manifest and people.
inline const char* cudaInt8Kernel() {
  return "cuda: gemv_int8 (mma.sync s8, M <= 16) or cuBLASLt IMMA + dequant, per tuned M range";
}

}  // namespace kvs::cuda
