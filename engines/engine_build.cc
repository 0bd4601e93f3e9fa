// buildEngine: checks the options, reads the model's config and maps its checkpoint, then hands both to the
// writer of the backend the engine is for.
#include "engine_build.h"

#include <stdexcept>

#include "file_system.h"
#include "int8_tensors.h"
#include "weights.h"

namespace kvs {

EngineBuildResult buildEngine(const EngineOptions& opts, const std::string& outDir, const QuantizationRequest& quant,
                              const BuildProgress& progress) {
  const std::string& q = quant.method;
  if (q != "none" && q != "int8" && q != "fp8")
    throw std::runtime_error("unknown quantization \"" + q + "\" (supported: none, int8, fp8)");
  if (q == "fp8" && opts.device != "cuda") throw std::runtime_error("--quantization fp8 is for --device cuda (on cpu: none or int8)");
  if (opts.kvCacheDtype == "fp8" && opts.device != "cuda")
    throw std::runtime_error("--kv-cache-dtype fp8 is for --device cuda (the CPU backend keeps the KV cache in float32)");
  if (opts.device == "cuda") {
#ifndef KVSERVE_WITH_CUDA
    throw std::runtime_error("device cuda: this build has no CUDA backend (it was built without nvcc and cuBLASLt, "
                             "or with KVSERVE_CUDA=OFF); rebuild where the CUDA toolkit is, or use --device cpu");
#endif
  } else if (opts.device != "cpu") throw std::runtime_error("unknown device \"" + opts.device + "\" (supported: cpu, cuda)");
  DType dt = DType::F32;
  if (opts.dtype != "auto" && !parseDType(opts.dtype, &dt))
    throw std::runtime_error("unsupported dtype \"" + opts.dtype + "\" (supported: auto, float32, bfloat16, float16)");
  // Dummy weights may be named by their config.json alone (configs/ presets), as at serve.
  const bool configFile = opts.dummyWeights && isFile(opts.model);
  if (!configFile && !isDir(opts.model)) throw std::runtime_error("model folder " + opts.model + " does not exist");
  if (!isDir(outDir)) throw std::runtime_error("engine output folder " + outDir + " does not exist");
  const std::string configPath = configFile ? opts.model : opts.model + "/config.json";
  if (!isFile(configPath)) throw std::runtime_error("no config.json in model folder " + opts.model);
  ModelConfig cfg;
  try {
    cfg = parseModelConfig(readFile(configPath));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(configPath + ": " + std::string(e.what()));
  }
  auto store = opts.dummyWeights ? makeDummyWeights(cfg, opts.dtype == "auto" ? cfg.dtype : dt)
                                 : loadSafetensors(opts.model, WeightMemory::Mmap);
  refuseIntegerTensors(*store, opts.model);
#ifdef KVSERVE_WITH_CUDA
  if (opts.device == "cuda") {
    EngineOptions o = opts;
    o.quantization = q;  // "fp8": the writer quantizes the layer matrices as a load would (cuda_weights.h)
    o.int8Request = quant;  // "int8": calibrated and quantized on the host as a load would (cuda_int8.h)
    return buildCudaEngine(cfg, *store, o, outDir, progress);
  }
#endif
  return buildCpuEngine(cfg, *store, opts, quant, outDir, progress);
}

}  // namespace kvs
