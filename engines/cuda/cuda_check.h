// Error checks for the CUDA backend: every CUDA / cuBLASLt status becomes a std::runtime_error naming the
// call and the file:line, so a failure reaches JS as a rejected Promise with a readable message.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace kvs::cuda {

[[noreturn]] inline void throwCuda(cudaError_t e, const char* what, const char* file, int line) {
  throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
                           ") in " + what + " at " + file + ":" + std::to_string(line));
}
[[noreturn]] inline void throwCublas(cublasStatus_t s, const char* what, const char* file, int line) {
  throw std::runtime_error(std::string("cuBLASLt error ") + std::to_string(static_cast<int>(s)) + " in " + what +
                           " at " + file + ":" + std::to_string(line));
}

}  // namespace kvs::cuda

#define KVS_CUDA_CHECK(expr)                                                        \
  do {                                                                              \
    cudaError_t kvs_e_ = (expr);                                                    \
    if (kvs_e_ != cudaSuccess) ::kvs::cuda::throwCuda(kvs_e_, #expr, __FILE__, __LINE__); \
  } while (0)

#define KVS_CUBLAS_CHECK(expr)                                                      \
  do {                                                                              \
    cublasStatus_t kvs_s_ = (expr);                                                 \
    if (kvs_s_ != CUBLAS_STATUS_SUCCESS) ::kvs::cuda::throwCublas(kvs_s_, #expr, __FILE__, __LINE__); \
  } while (0)
