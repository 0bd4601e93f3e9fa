// GEMMs of the CUDA backend through cuBLASLt: Y[M, N] = X[M, K] * W[N, K]^T, row-major, fp32 accumulation.
// bf16/f16 operands use CUBLAS_COMPUTE_32F; float32 uses CUBLAS_COMPUTE_32F too (never TF32), so a float32
// checkpoint computes in true float32.
//
// Batch invariance: the algorithm is chosen ONCE per (N, K, dtype) — the heuristic's best for M = probeM
// with split-K forced off, that is also valid at M = 1 and M = maxM — and reused for every M. A row of Y then
// depends on its row of X only, never on how many other rows share the call (checked bitwise by the kernel
// tests). probeM trades prefill speed (large probe: large tiles) for decode speed (small probe: tiles that
// spread a skinny product over more SMs); see docs/cuda.md for the measurements.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <map>
#include <tuple>

#include "../model_config.h"

namespace kvs::cuda {

class GemmRunner {
 public:
  // maxM: the largest M any call will pass; probeM: the M the heuristic is asked about (0 = maxM).
  GemmRunner(cudaStream_t stream, int maxM, int probeM = 0, size_t workspaceBytes = 32u << 20);
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  // Plans (N, K, in -> out) now; run() plans lazily otherwise. Throws when cuBLASLt has no algorithm.
  void plan(int N, int K, DType in, DType out);
  // X: [M, K] in, W: [N, K] in, Y: [M, N] out. M in [1, maxM].
  void run(const void* X, const void* W, void* Y, int M, int N, int K, DType in, DType out);
  // Plain description of the chosen algorithm (benchmarks, logs).
  std::string describe(int N, int K, DType in, DType out);

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;  // b, d have their column count set per call
    cublasLtMatmulAlgo_t algo{};
  };
  using Key = std::tuple<int, int, int, int>;
  Plan& get(int N, int K, DType in, DType out);

  cudaStream_t stream_;
  int maxM_, probeM_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspaceBytes_;
  std::map<Key, Plan> plans_;
};

}  // namespace kvs::cuda
