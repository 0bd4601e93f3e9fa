// checkCudaDevice: the CUDA runtime's view of the driver and the GPU, against the archs this build compiled
// (KVSERVE_CUDA_ARCHS, defined by cmake/cuda.cmake).
#include "device_check.h"

#include <cuda_runtime_api.h>

#include <cstdio>
#include <stdexcept>
#include <string>

#include "cuda_archs.h"

#ifndef KVSERVE_CUDA_ARCHS
#error "KVSERVE_CUDA_ARCHS (the archs compiled in, e.g. \"80,86,89,90\") must be defined by the build"
#endif

namespace kvs::cuda {

namespace {

std::string version(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

}  // namespace

void checkCudaDevice(int ordinal) {
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);  // 0 when no NVIDIA driver is installed
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  cudaGetLastError();  // the failure above must not stick to the next CUDA call
  if (e == cudaErrorInsufficientDriver || (e != cudaSuccess && driver == 0)) {
    if (driver == 0) throw std::runtime_error("device cuda: no NVIDIA driver found (libcuda.so); install one, or use --device cpu");
    throw std::runtime_error("device cuda: the NVIDIA driver runs CUDA up to " + version(driver) + ", this build is CUDA " +
                             version(runtime) + ": update the driver, or rebuild with a CUDA " + version(driver) + " toolkit");
  }
  if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0))
    throw std::runtime_error("device cuda requested but no CUDA GPU is visible (in a container: docker run --gpus all)");
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("device cuda: CUDA cannot list the GPUs: ") + cudaGetErrorName(e) + " (" +
                             cudaGetErrorString(e) + ")");
  if (ordinal < 0 || ordinal >= count)
    throw std::runtime_error("device cuda:" + std::to_string(ordinal) + " does not exist (" + std::to_string(count) + " visible)");

  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, ordinal) != cudaSuccess)
    throw std::runtime_error("device cuda: cannot read the properties of GPU " + std::to_string(ordinal));
  GpuFacts gpu;
  gpu.major = prop.major;
  gpu.minor = prop.minor;
  gpu.name = prop.name;
  gpu.driverCuda = driver;
  gpu.buildCuda = runtime;
  const ArchCheck check = checkCudaArchs(parseCudaArchs(KVSERVE_CUDA_ARCHS), gpu);
  if (!check.error.empty()) throw std::runtime_error(check.error);
  if (!check.note.empty()) std::fprintf(stderr, "kvserve: %s\n", check.note.c_str());
}

}  // namespace kvs::cuda
