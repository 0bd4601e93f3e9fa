// What an engine is built for and what the running build and machine offer: the "target" of an engine's
// manifest, and the check of one against the other at load. A backend that bakes hardware-specific choices
// into an engine (the CUDA backend: the GPU architecture, tuned GEMM algorithms per weight shape and M range)
// implements TargetProvider; the CPU one reports the instruction-set features the addon was compiled to use.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kvs {

// The engine folder format this build writes and reads (manifest.json "formatVersion"). 2: int8 matrices
// with their companions (int8_tensors.h) beside the float ones, and quantization.method "int8".
constexpr int kEngineFormatVersion = 2;

struct EngineTarget {
  std::string device;                      // "cpu" | "cuda"
  std::string arch;                        // "x86_64" | "aarch64"; cuda: "sm_90"
  std::vector<std::string> features;       // what an engine built here needs: the compiled-in ISA features (cuda: none)
  std::vector<std::string> hostFeatures;   // what this machine has, of the features kvserve knows
  // cuda only (engines/cuda/cuda_target.cc); empty or 0 elsewhere.
  std::string gpuName;                     // "NVIDIA H200"
  std::string computeCapability;           // "9.0"
  int smCount = 0;
  std::string driverVersion;               // the NVIDIA kernel driver, "580.159.04"; "" where it cannot be read
  std::string cudaDriverVersion;           // the newest CUDA that driver runs, "13.0"
  std::string cudaRuntimeVersion;          // the CUDA runtime this addon was built with, "13.0"
  std::string cublasLtVersion;             // "13.1.0"
  std::string cudaArchs;                   // the archs this addon's kernels were compiled for, "90" (informative)
};

// One tuned GEMM choice: for weight `weight` ([n, k]) and batch rows M in [mMin, mMax], algorithm `algo`.
struct TunedGemm {
  std::string weight;
  int n = 0, k = 0, mMin = 0, mMax = 0;
  std::string algo;    // what the backend restores; cuda: cuBLASLt's cublasLtMatmulAlgo_t as 128 hex digits
  // cuda (engines/cuda/model_gemms.cc): which kernel, and what it is for people
  std::string kernel;                          // "cublasLt" | "gemv" | "gemv_even" | "gemv_fp8" | "gemv_int8" | "cublasLt_int8"
  int rowsPerCta = 0;                          // gemv: rows of W per CTA
  int algoId = 0, tile = 0, stages = 0, splitK = 0;  // cublasLt: read from the algorithm
  int64_t workspace = 0;                       // cublasLt: workspace bytes it needs
};

class TargetProvider {
 public:
  virtual ~TargetProvider() = default;
  // The target written into a new engine's manifest.
  virtual EngineTarget describe() const = 0;
  // Empty when an engine built for `built` runs here; else what is missing, naming both sides
  // ("built for x86_64 avx512f,avx512vnni; this CPU has avx2,fma").
  virtual std::string mismatch(const EngineTarget& built) const = 0;
  // The tuned algorithms a build records (the CPU has none: its GEMM has one code path per ISA).
  virtual std::vector<TunedGemm> tunedGemms() const { return {}; }
};

const TargetProvider& cpuTargetProvider();
const TargetProvider& cudaTargetProvider();  // engines/cuda/cuda_target.cc, in builds with the CUDA backend only

// The provider of `device` in this build, or nullptr (an unknown device, or cuda in a build without it).
const TargetProvider* targetProviderFor(const std::string& device);

}  // namespace kvs
