// `kvserve build`, the native half: prepare a model the way its backend holds it after loading and write
// that final layout into a folder (model.safetensors), so a later load maps it and uses it in
// place. The TypeScript side owns the rest of the engine folder: the manifest, hashes, tokenizer files, and
// the temporary folder that is renamed into place once everything is written.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "backend.h"
#include "engine_target.h"
#include "quantization.h"

namespace kvs {

struct BuiltTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  size_t bytes = 0;
};

struct EngineBuildResult {
  EngineTarget target;
  std::vector<TunedGemm> tunedGemms;
  std::vector<BuiltTensor> tensors;  // in file order
  DType dtype = DType::F32;          // of the float matrices
  size_t weightBytes = 0;
  double prepareSeconds = 0;         // reading and converting the checkpoint
  double writeSeconds = 0;           // writing model.safetensors
  double tuneSeconds = 0;            // timing GEMM algorithms (cuda; 0 for the cpu)
  std::string quantization = "none";      // "none" | "int8" | "fp8" (cuda)
  std::vector<LayerQuantReport> layers;  // int8: every linear layer, in model order
  CalibrationSummary calibration;        // int8
  std::string int8Kernel;                // int8: the code path the engine's int8 GEMM was compiled to
};

using BuildProgress = std::function<void(const std::string& stage, double fraction)>;

// Writes outDir/model.safetensors (outDir must exist; the caller copies config.json and the tokenizer). Uses opts.model, device,
// dtype, numThreads, and dummyWeights with seed (random weights of the config's shape, for benchmarks).
// Throws std::runtime_error with a message meant for the user.
EngineBuildResult buildEngine(const EngineOptions& opts, const std::string& outDir, const QuantizationRequest& quant = {},
                              const BuildProgress& progress = {});

// The CPU backend's writer (engines/cpu/cpu_engine_writer.cc): stages prepare, [calibrate, quantize,] write.
EngineBuildResult buildCpuEngine(const ModelConfig& cfg, const WeightStore& store, const EngineOptions& opts,
                                 const QuantizationRequest& quant, const std::string& outDir,
                                 const BuildProgress& progress);
// The CUDA backend's writer (engines/cuda/cuda_engine_writer.cc), in builds with the CUDA backend only; opts
// carries the quantization (and for int8 its request: EngineOptions::int8Request).
EngineBuildResult buildCudaEngine(const ModelConfig& cfg, const WeightStore& store, const EngineOptions& opts,
                                  const std::string& outDir, const BuildProgress& progress);

}  // namespace kvs
