// Whether an engine built for one CUDA target runs on another. What an engine's contents depend on decides:
// the GPU architecture (its kernels and cuBLASLt algorithms are per compute capability), the GPU model (the
// algorithms were timed on it: another model with the same architecture has other SM counts and memory
// speeds), the NVIDIA driver's major version, and cuBLASLt's major.minor (an algorithm's opaque bytes are
// only meaningful to the version that made them). SM count, CUDA runtime and the compiled archs are recorded
// but not compared. Plain C++, no CUDA headers: the CPU test suite checks it on its own.
#pragma once
#include <string>

#include "../engine_target.h"

namespace kvs::cuda {

// "" when an engine built for `built` runs on `here`; else one phrase naming both sides, starting with
// "built" (the caller says "engine DIR was " before it and the rebuild command after it).
std::string cudaTargetMismatch(const EngineTarget& built, const EngineTarget& here);

// The compared parts, also what the engine cache keys CUDA engines by.
std::string majorOf(const std::string& version);       // "580" of "580.159.04", "13" of "13.0"
std::string majorMinorOf(const std::string& version);  // "13.1" of "13.1.0"
// "580" (the kernel driver's major), or "cuda 13" (the driver's CUDA major) where the driver version is unknown.
std::string driverKey(const EngineTarget& t);

}  // namespace kvs::cuda
