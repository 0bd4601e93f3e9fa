#include "cuda_target_match.h"

namespace kvs::cuda {

namespace {

std::string orUnknown(const std::string& s, const char* what) { return s.empty() ? std::string("no ") + what + " recorded" : s; }

// "sm_90 (NVIDIA H200, compute capability 9.0)"
std::string gpu(const EngineTarget& t) {
  return orUnknown(t.arch, "architecture") + " (" + orUnknown(t.gpuName, "GPU name") + ", " +
         (t.computeCapability.empty() ? "no compute capability recorded" : "compute capability " + t.computeCapability) + ")";
}

std::string driver(const EngineTarget& t) {
  if (!t.driverVersion.empty()) return "NVIDIA driver " + t.driverVersion;
  return "an NVIDIA driver for CUDA " + orUnknown(t.cudaDriverVersion, "version");
}

}  // namespace

std::string majorOf(const std::string& version) { return version.substr(0, version.find('.')); }

std::string majorMinorOf(const std::string& version) {
  const size_t first = version.find('.');
  if (first == std::string::npos) return version;
  return version.substr(0, version.find('.', first + 1));
}

std::string driverKey(const EngineTarget& t) {
  return t.driverVersion.empty() ? "cuda " + majorOf(t.cudaDriverVersion) : majorOf(t.driverVersion);
}

std::string cudaTargetMismatch(const EngineTarget& built, const EngineTarget& here) {
  if (built.device != here.device) return "built for device " + built.device + "; this engine runs on " + here.device;
  if (built.arch != here.arch || built.computeCapability != here.computeCapability)
    return "built for " + gpu(built) + "; this GPU is " + gpu(here);
  if (built.gpuName != here.gpuName)
    return "built for the " + orUnknown(built.gpuName, "GPU name") + " (its GEMM algorithms were timed on that GPU model); this GPU is the " +
           here.gpuName;
  // Both sides name the same kind of version, or the comparison falls back to the driver's CUDA major.
  const bool kernelDriver = !built.driverVersion.empty() && !here.driverVersion.empty();
  const bool sameDriver = kernelDriver ? majorOf(built.driverVersion) == majorOf(here.driverVersion)
                                       : majorOf(built.cudaDriverVersion) == majorOf(here.cudaDriverVersion);
  if (!sameDriver)
    return "built with " + driver(built) + "; this machine runs " + driver(here) + " (another major version)";
  if (majorMinorOf(built.cublasLtVersion) != majorMinorOf(here.cublasLtVersion))
    return "built with cuBLASLt " + orUnknown(built.cublasLtVersion, "version") +
           " (its tuned GEMM algorithms are valid for cuBLASLt " + majorMinorOf(built.cublasLtVersion) +
           " only); this build has cuBLASLt " + here.cublasLtVersion;
  return "";
}

}  // namespace kvs::cuda
