// Reading an engine folder's manifest.json at load, and checking it against what this build and this machine
// support before a weight is mapped: the format version, the target (device, architecture, ISA features).
// Every refusal is one line naming both sides and the command that rebuilds the engine.
#pragma once
#include <string>
#include <vector>

#include "engine_target.h"
#include "model_config.h"

namespace kvs {

struct EngineManifestView {
  DType dtype = DType::F32;   // weights.dtype: what the float matrices are stored (and computed) in
  std::string weightsFile;    // weights.file, relative to the folder
  std::vector<TunedGemm> tunedGemms;  // tunedGemms: what the build timed (cuda), for the load to restore
  std::string quantization = "none";  // quantization.method: "none" | "int8" (cpu: int8_tensors.h; cuda: cuda_engine_layout.h) | "fp8" (cuda)
  // kvCache (kvserve build --kv-cache-dtype fp8, src/build/kv-calibration.ts): the KV cache the engine runs by
  // default, with one calibrated scale per layer for K and for V, each checked to be positive and finite here
  // (their count is Engine::load's to check, against the model's layers). "" = none: the compute dtype.
  std::string kvCacheDtype;           // "" | "fp8_e4m3"
  std::vector<float> kvScalesK, kvScalesV;
  std::string rebuild;                // "rebuild with kvserve build … --out DIR", for the refusals that come later
};

// Throws std::runtime_error("engine DIR ...") when the manifest is missing, malformed, or made for another
// format or target.
EngineManifestView checkEngineManifest(const std::string& dir, const std::string& device);

}  // namespace kvs
