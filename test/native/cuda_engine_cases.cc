// Runs the plain-C++ parts of the CUDA engine format on their own (they need no GPU), for
// test/native/cuda-engine.test.ts:
//   cuda_engine_cases target   stdin: one {"built": TARGET, "here": TARGET} per line (manifest.json's target
//                              fields); prints per line the mismatch as a JSON string ("" when it runs)
//   cuda_engine_cases layout|layout-fp8 CONFIG_JSON [drop|shape|dtype|extra NAME]
//                              prints the CUDA layout of the config in bfloat16 (layout-fp8: its fp8 layout),
//                              "NAME [d0, d1] DTYPE" per line, then "check: MESSAGE" for checkCudaEngineTensors
//                              over a store of exactly that layout with one change applied ("check: " alone
//                              when it passes)
#include <iostream>
#include <stdexcept>
#include <string>

#include "engines/cuda/cuda_engine_layout.h"
#include "engines/cuda/cuda_target_match.h"
#include "engines/file_system.h"
#include "engines/json.h"

using namespace kvs;

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

EngineTarget target(const Json* j) {
  auto text = [&](const char* k) { const Json* v = j ? j->find(k) : nullptr; return v && v->isString() ? v->asString() : ""; };
  EngineTarget t;
  t.device = text("device");
  t.arch = text("arch");
  t.gpuName = text("gpuName");
  t.computeCapability = text("computeCapability");
  t.driverVersion = text("driverVersion");
  t.cudaDriverVersion = text("cudaDriverVersion");
  t.cublasLtVersion = text("cublasLtVersion");
  return t;
}

// A store of the layout's tensors (no data: only names, shapes and dtypes are checked).
class LayoutStore : public WeightStore {
 public:
  LayoutStore(const std::vector<cuda::CudaTensorSpec>& specs, const std::string& change, const std::string& name) {
    for (const cuda::CudaTensorSpec& s : specs) {
      Tensor t;
      t.name = s.name;
      t.dtype = s.dtype;
      t.shape = s.shape;
      if (s.name == name && change == "drop") continue;
      if (s.name == name && change == "shape") t.shape[0] += 1;
      if (s.name == name && change == "dtype") t.dtype = DType::F32;
      tensors_.emplace(t.name, t);
    }
    if (change == "extra") {
      Tensor t;
      t.name = name;
      t.shape = {1};
      tensors_.emplace(name, t);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "target") {
    std::string line;
    while (std::getline(std::cin, line)) {
      const Json j = Json::parse(line);
      const EngineTarget built = target(j.find("built")), here = target(j.find("here"));
      std::cout << quoted(cuda::cudaTargetMismatch(built, here)) << " " << quoted(cuda::driverKey(built)) << "\n";
    }
    return 0;
  }
  if ((mode == "layout" || mode == "layout-fp8") && argc >= 3) {
    const ModelConfig cfg = parseModelConfig(readFile(argv[2]));
    const cuda::CudaQuant quant = mode == "layout-fp8" ? cuda::CudaQuant::fp8() : cuda::CudaQuant{};
    const std::vector<cuda::CudaTensorSpec> specs = cuda::cudaTensorSpecs(cfg, DType::BF16, quant);
    for (const cuda::CudaTensorSpec& s : specs) {
      std::cout << s.name << " [";
      for (size_t i = 0; i < s.shape.size(); ++i) std::cout << (i ? ", " : "") << s.shape[i];
      std::cout << "] " << dtypeName(s.dtype) << "\n";
    }
    const LayoutStore store(specs, argc > 4 ? argv[3] : "", argc > 4 ? argv[4] : "");
    std::string message;
    try {
      cuda::checkCudaEngineTensors(cfg, store, DType::BF16, quant);
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    std::cout << "check: " << message << "\n";
    return 0;
  }
  std::cerr << "usage: cuda_engine_cases target | layout|layout-fp8 CONFIG_JSON [drop|shape|dtype|extra NAME]\n";
  return 2;
}
