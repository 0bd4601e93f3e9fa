// What an engine is built for and what the running build and machine offer: the "target" of an engine's
// manifest, and the check of one against the other at load. A backend that bakes hardware-specific choices
// into an engine (the CUDA backend: the GPU architecture, tuned GEMM algorithms per weight shape and M range)
// implements TargetProvider; the CPU one reports the instruction-set features the addon was compiled to use.
#pragma once
#include <string>
#include <vector>

namespace kvs {

// The engine folder format this build writes and reads (manifest.json "formatVersion"). 2: int8 matrices
// with their companions (int8_tensors.h) beside the float ones, and quantization.method "int8".
constexpr int kEngineFormatVersion = 2;

struct EngineTarget {
  std::string device;                      // "cpu"
  std::string arch;                        // "x86_64" | "aarch64"
  std::vector<std::string> features;       // what an engine built here needs: the compiled-in ISA features
  std::vector<std::string> hostFeatures;   // what this machine has, of the features kvserve knows
};

// One tuned GEMM choice: for weight `weight` ([n, k]) and batch rows M in [mMin, mMax], algorithm `algo`.
struct TunedGemm {
  std::string weight;
  int n = 0, k = 0, mMin = 0, mMax = 0;
  std::string algo;
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

}  // namespace kvs
