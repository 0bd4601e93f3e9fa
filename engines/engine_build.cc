// buildEngine: checks the options, reads the model's config and maps its checkpoint, then hands both to the
// writer of the backend the engine is for.
#include "engine_build.h"

#include <stdexcept>

#include "file_system.h"

namespace kvs {

EngineBuildResult buildEngine(const EngineOptions& opts, const std::string& outDir, const BuildProgress& progress) {
  if (opts.device == "cuda") {
#ifndef KVSERVE_WITH_CUDA
    throw std::runtime_error("device cuda: this build has no CUDA backend (it was built without nvcc and cuBLASLt, "
                             "or with KVSERVE_CUDA=OFF); rebuild where the CUDA toolkit is, or use --device cpu");
#endif
  } else if (opts.device != "cpu") throw std::runtime_error("unknown device \"" + opts.device + "\" (supported: cpu, cuda)");
  DType dt = DType::F32;
  if (opts.dtype != "auto" && !parseDType(opts.dtype, &dt))
    throw std::runtime_error("unsupported dtype \"" + opts.dtype + "\" (supported: auto, float32, bfloat16, float16)");
  if (!isDir(opts.model)) throw std::runtime_error("model folder " + opts.model + " does not exist");
  if (!isDir(outDir)) throw std::runtime_error("engine output folder " + outDir + " does not exist");
  const std::string configPath = opts.model + "/config.json";
  if (!isFile(configPath)) throw std::runtime_error("no config.json in model folder " + opts.model);
  ModelConfig cfg;
  try {
    cfg = parseModelConfig(readFile(configPath));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(configPath + ": " + std::string(e.what()));
  }
  // Dummy weights (benchmarks of a CUDA engine's load): the backend fills them as a dummy load would.
  if (opts.dummyWeights && opts.device != "cuda") throw std::runtime_error("dummy weights are built for --device cuda only");
  auto store = opts.dummyWeights ? makeDummyWeights(cfg, opts.dtype == "auto" ? cfg.dtype : dt)
                                 : loadSafetensors(opts.model, WeightMemory::Mmap);
#ifdef KVSERVE_WITH_CUDA
  if (opts.device == "cuda") return buildCudaEngine(cfg, *store, opts, outDir, progress);
#endif
  return buildCpuEngine(cfg, *store, opts, outDir, progress);
}

}  // namespace kvs
