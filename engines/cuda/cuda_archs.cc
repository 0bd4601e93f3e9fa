// The compatibility rules of CUDA's binary (SASS) and PTX code, as NVIDIA's CUDA C++ Programming Guide states
// them, applied to the arch list a build was compiled for.
#include "cuda_archs.h"

#include <cctype>
#include <stdexcept>

namespace kvs::cuda {

namespace {

std::string smName(int number, char variant = 0) {
  std::string s = "sm_" + std::to_string(number);
  if (variant) s += variant;
  return s;
}

std::string cudaVersion(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

CudaArch parseOne(const std::string& entry) {
  size_t i = 0;
  while (i < entry.size() && std::isdigit(static_cast<unsigned char>(entry[i]))) ++i;
  if (i < 2 || i > 4) throw std::invalid_argument("\"" + entry + "\" is not a CUDA architecture (e.g. 80, 90a, 90-real)");
  CudaArch a;
  a.number = std::stoi(entry.substr(0, i));
  if (i < entry.size() && (entry[i] == 'a' || entry[i] == 'f')) a.variant = entry[i++];
  const std::string suffix = entry.substr(i);
  if (suffix == "-real") {
    a.ptx = false;
  } else if (suffix == "-virtual") {
    a.code = false;
  } else if (!suffix.empty()) {
    throw std::invalid_argument("\"" + entry + "\" is not a CUDA architecture (e.g. 80, 90a, 90-real)");
  }
  return a;
}

// Can code (SASS when `ptx` is false, PTX otherwise) built for `a` run on compute capability major.minor?
bool runs(const CudaArch& a, int major, int minor, bool ptx) {
  const int aMajor = a.number / 10, aMinor = a.number % 10;
  if (a.variant == 'a') return aMajor == major && aMinor == minor;
  if (a.variant == 'f' || !ptx) return aMajor == major && aMinor <= minor;
  return aMajor < major || (aMajor == major && aMinor <= minor);
}

}  // namespace

std::vector<CudaArch> parseCudaArchs(const std::string& list) {
  std::vector<CudaArch> archs;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find_first_of(",;", start);
    if (end == std::string::npos) end = list.size();
    if (end > start) archs.push_back(parseOne(list.substr(start, end - start)));
    start = end + 1;
  }
  return archs;
}

std::string describeCudaArchs(const std::vector<CudaArch>& archs) {
  std::string code, ptx;
  for (const CudaArch& a : archs) {
    if (a.code) code += (code.empty() ? "" : ", ") + smName(a.number, a.variant);
    if (a.ptx) ptx += (ptx.empty() ? "compute_" : ", compute_") + std::to_string(a.number) + (a.variant ? std::string(1, a.variant) : "");
  }
  if (code.empty()) return ptx.empty() ? "no architecture" : "PTX " + ptx + " only";
  return ptx.empty() ? code : code + " (+ PTX " + ptx + ")";
}

Coverage coverage(const std::vector<CudaArch>& archs, int major, int minor) {
  Coverage best = Coverage::None;
  for (const CudaArch& a : archs) {
    if (a.code && runs(a, major, minor, false)) return Coverage::Code;
    if (a.ptx && runs(a, major, minor, true)) best = Coverage::PtxJit;
  }
  return best;
}

ArchCheck checkCudaArchs(const std::vector<CudaArch>& archs, const GpuFacts& gpu) {
  ArchCheck out;
  const int number = gpu.major * 10 + gpu.minor;
  const std::string device = smName(number) + " (" + gpu.name + ")";
  if (gpu.major < 8) {
    out.error = "the GPU is " + device + "; kvserve's CUDA kernels need compute capability 8.0 or newer " +
                "(Ampere, Ada, Hopper and later): use --device cpu";
    return out;
  }
  const std::string built = "this build's CUDA kernels cover " + describeCudaArchs(archs);
  const std::string rebuild = "rebuild with KVSERVE_CUDA_ARCHS=" + std::to_string(number);
  switch (coverage(archs, gpu.major, gpu.minor)) {
    case Coverage::Code:
      break;
    case Coverage::PtxJit:
      // PTX from a newer toolkit than the driver knows cannot be JIT-compiled (cudaErrorUnsupportedPtxVersion).
      if (gpu.driverCuda > 0 && gpu.buildCuda > gpu.driverCuda) {
        out.error = built + "; the GPU is " + device + ", reached only through PTX, and the driver (CUDA " +
                    cudaVersion(gpu.driverCuda) + ") cannot compile PTX of CUDA " + cudaVersion(gpu.buildCuda) + ": " +
                    rebuild + " or update the driver";
      } else {
        out.note = built + "; the GPU is " + device + ": the driver JIT-compiles the PTX on first use (" + rebuild +
                   " for native code)";
      }
      break;
    case Coverage::None:
      out.error = built + "; the GPU is " + device + ": " + rebuild;
      break;
  }
  return out;
}

}  // namespace kvs::cuda
