// Optional per-phase GPU timing of the forward pass (KVSERVE_CUDA_PROFILE=1): CUDA events around each
// operation, summed per phase over all steps, printed to stderr when the backend is destroyed. Off by
// default (then every call is a no-op); meant for benchmarks, never for tests.
#pragma once
#include <cuda_runtime_api.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace kvs::cuda {

class StepProfiler {
 public:
  enum Phase { Embed, Norm, GemmQkv, Rope, Attention, GemmO, GemmGateUp, SiluMul, GemmDown, LmHead, Sampling, kPhases };

  StepProfiler() : on_(std::getenv("KVSERVE_CUDA_PROFILE") != nullptr) {}
  ~StepProfiler() {
    if (!on_) return;
    static const char* names[kPhases] = {"embed", "rmsnorm", "gemm qkv", "rope+cache", "attention", "gemm o",
                                         "gemm gate/up", "silu*mul", "gemm down", "lm_head", "sampling"};
    for (int k = 0; k < 2; ++k) {
      if (steps_[k] == 0) continue;
      double total = 0;
      for (double t : ms_[k]) total += t;
      std::fprintf(stderr, "cuda profile, %s steps (%d), ms per step:", k ? "decode" : "prefill/mixed", steps_[k]);
      for (int p = 0; p < kPhases; ++p) std::fprintf(stderr, " %s %.3f |", names[p], ms_[k][p] / steps_[k]);
      std::fprintf(stderr, " total %.3f\n", total / steps_[k]);
    }
    for (auto& e : pool_) cudaEventDestroy(e);
  }
  bool on() const { return on_; }
  // Marks the start of a phase; the phase ends at the next mark or at end().
  void mark(Phase p, cudaStream_t s) {
    if (!on_) return;
    cudaEvent_t e = next();
    cudaEventRecord(e, s);
    marks_.push_back({p, e});
  }
  // Closes the last phase and accumulates this step (synchronizes); decode steps are summed apart.
  void end(cudaStream_t s, bool decode) {
    if (!on_ || marks_.empty()) return;
    cudaEvent_t e = next();
    cudaEventRecord(e, s);
    cudaEventSynchronize(e);
    for (size_t i = 0; i < marks_.size(); ++i) {
      float ms = 0;
      cudaEventElapsedTime(&ms, marks_[i].second, i + 1 < marks_.size() ? marks_[i + 1].second : e);
      ms_[decode][marks_[i].first] += ms;
    }
    marks_.clear();
    used_ = 0;
    ++steps_[decode];
  }

 private:
  cudaEvent_t next() {
    if (used_ == pool_.size()) {
      cudaEvent_t e;
      cudaEventCreate(&e);
      pool_.push_back(e);
    }
    return pool_[used_++];
  }
  bool on_;
  int steps_[2] = {0, 0};
  size_t used_ = 0;
  std::vector<cudaEvent_t> pool_;
  std::vector<std::pair<Phase, cudaEvent_t>> marks_;
  std::array<double, kPhases> ms_[2]{};
};

}  // namespace kvs::cuda
