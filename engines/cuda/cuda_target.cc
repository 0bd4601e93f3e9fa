// The CUDA target: the GPU, driver and libraries an engine built now records (manifest.json "target"), and
// the check of an engine's record against them at load (the rules are in cuda_target_match.cc).
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cctype>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "cuda_target_match.h"
#include "device_check.h"

#ifndef KVSERVE_CUDA_ARCHS
#error "KVSERVE_CUDA_ARCHS (the archs compiled in, e.g. \"80,86,89,90\") must be defined by the build"
#endif

namespace kvs::cuda {

namespace {

std::string cudaVersion(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// The kernel module's version, the first dotted number of /proc/driver/nvidia/version ("NVRM version: NVIDIA
// UNIX x86_64 Kernel Module  580.159.04  ..."); "" where the file cannot be read.
std::string kernelDriverVersion() {
  std::ifstream in("/proc/driver/nvidia/version");
  std::string line, word;
  if (!std::getline(in, line)) return "";
  std::istringstream words(line);
  while (words >> word) {
    bool digits = std::isdigit(static_cast<unsigned char>(word[0])) != 0, dot = false;
    for (char c : word) {
      dot = dot || c == '.';
      digits = digits && (std::isdigit(static_cast<unsigned char>(c)) || c == '.');
    }
    if (digits && dot) return word;
  }
  return "";
}

std::string cublasLtVersion() {
  int major = 0, minor = 0, patch = 0;
  cublasLtGetProperty(MAJOR_VERSION, &major);
  cublasLtGetProperty(MINOR_VERSION, &minor);
  cublasLtGetProperty(PATCH_LEVEL, &patch);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

EngineTarget describeDevice0() {
  checkCudaDevice(0);  // no driver, no GPU, or kernels that do not cover it: one line saying so
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess)
    throw std::runtime_error("device cuda: cannot read the properties of GPU 0");
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  EngineTarget t;
  t.device = "cuda";
  t.arch = "sm_" + std::to_string(prop.major * 10 + prop.minor);
  t.gpuName = prop.name;
  t.computeCapability = std::to_string(prop.major) + "." + std::to_string(prop.minor);
  t.smCount = prop.multiProcessorCount;
  t.driverVersion = kernelDriverVersion();
  t.cudaDriverVersion = cudaVersion(driver);
  t.cudaRuntimeVersion = cudaVersion(runtime);
  t.cublasLtVersion = cublasLtVersion();
  t.cudaArchs = KVSERVE_CUDA_ARCHS;
  return t;
}

class CudaTargetProvider : public TargetProvider {
 public:
  // Device 0 does not change under a running process: described once, on first success.
  EngineTarget describe() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!described_) {
      here_ = describeDevice0();
      described_ = true;
    }
    return here_;
  }

  std::string mismatch(const EngineTarget& built) const override { return cudaTargetMismatch(built, describe()); }

 private:
  mutable std::mutex mutex_;
  mutable bool described_ = false;
  mutable EngineTarget here_;
};

}  // namespace

}  // namespace kvs::cuda

namespace kvs {

const TargetProvider& cudaTargetProvider() {
  static const cuda::CudaTargetProvider provider;
  return provider;
}

}  // namespace kvs
