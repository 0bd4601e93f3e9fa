// The timing of GEMM candidates at load (GemmRunner::planBuckets, the bucket loop of every fast-mode plan): CUDA
// events on the runner's stream around a launch, the best of three runs after the caller's warm-up.
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <stdexcept>

#include "cuda_check.h"

namespace kvs::cuda {

// The best of three timed runs (after the caller's warm-up), in ms, with CUDA events on one stream.
class BestOfThree {
 public:
  explicit BestOfThree(cudaStream_t stream) : stream_(stream) {
    KVS_CUDA_CHECK(cudaEventCreate(&e0_));
    if (cudaEventCreate(&e1_) != cudaSuccess) {
      cudaEventDestroy(e0_);
      throw std::runtime_error("cudaEventCreate failed");
    }
  }
  ~BestOfThree() {
    cudaEventDestroy(e0_);
    cudaEventDestroy(e1_);
  }
  BestOfThree(const BestOfThree&) = delete;
  BestOfThree& operator=(const BestOfThree&) = delete;
  template <typename F>
  float operator()(const F& launch) {
    float best = 1e30f;
    for (int rep = 0; rep < 3; ++rep) {
      KVS_CUDA_CHECK(cudaEventRecord(e0_, stream_));
      launch();
      KVS_CUDA_CHECK(cudaEventRecord(e1_, stream_));
      KVS_CUDA_CHECK(cudaEventSynchronize(e1_));
      float t = 0;
      KVS_CUDA_CHECK(cudaEventElapsedTime(&t, e0_, e1_));
      best = std::min(best, t);
    }
    return best;
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t e0_ = nullptr, e1_ = nullptr;
};

}  // namespace kvs::cuda
