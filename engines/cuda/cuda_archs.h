// Which GPUs a build's CUDA kernels run on. cmake/cuda.cmake passes the list it compiled for (CMake's
// CUDA_ARCHITECTURES syntax, comma separated: "80,86,89,90", "90a", "80-real,90-virtual"); at start-up it is
// compared with the device, so a GPU the build does not cover gets one line naming both sides instead of
// "no kernel image is available for execution on the device" from the first kernel launch.
// Plain C++, no CUDA headers: the CPU test suite compiles and checks it on its own.
#pragma once
#include <string>
#include <vector>

namespace kvs::cuda {

struct CudaArch {
  int number = 0;    // major * 10 + minor: 90 for sm_90 / compute_90, 120 for sm_120
  char variant = 0;  // 0; 'a' arch-specific (sm_90a: 9.0 only); 'f' family-specific (sm_100f: 10.x, x >= 0)
  bool code = true;  // SASS (sm_NN) embedded: "90" and "90-real"
  bool ptx = true;   // PTX (compute_NN) embedded, JIT-compiled by the driver for newer GPUs: "90", "90-virtual"
};

// Parses "80,90a,100-real" (';' separates too). Throws std::invalid_argument on an entry that is not an arch.
std::vector<CudaArch> parseCudaArchs(const std::string& list);

// "sm_80, sm_90 (+ PTX compute_90)": what a build holds, for messages.
std::string describeCudaArchs(const std::vector<CudaArch>& archs);

// How a GPU of compute capability major.minor runs these archs, by CUDA's compatibility rules: SASS runs on
// the same major with the same or a higher minor (arch-specific SASS only on its own); PTX JIT-compiles
// for any GPU at least as new (arch-specific PTX only for its own, family PTX within its major).
enum class Coverage { Code, PtxJit, None };
Coverage coverage(const std::vector<CudaArch>& archs, int major, int minor);

struct GpuFacts {
  int major = 0, minor = 0;  // compute capability
  std::string name;          // "NVIDIA H100 80GB HBM3"
  int driverCuda = 0;        // cudaDriverGetVersion: the newest CUDA the driver runs, 12040 = 12.4
  int buildCuda = 0;         // cudaRuntimeGetVersion of this build, 13000 = 13.0 (the PTX's version too)
};

struct ArchCheck {
  std::string error;  // non-empty: the build cannot run on this GPU; one line, with what to do
  std::string note;   // non-empty: it runs, but through the PTX JIT (slower first start); one line
};
ArchCheck checkCudaArchs(const std::vector<CudaArch>& archs, const GpuFacts& gpu);

}  // namespace kvs::cuda
