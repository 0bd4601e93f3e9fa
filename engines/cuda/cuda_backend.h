// The CUDA backend: one stream, weights in the compute dtype (cuda_weights.h), a paged KV cache sized from
// the free GPU memory, cuBLASLt GEMMs (gemm.h), our kernels (kernels/kvserve_kernels.h) and GPU sampling
// (gpu_sampler.h). A step uploads its inputs in one copy, runs the forward pass of all T tokens, and brings
// back only the sampled ids and requested logprobs.
#pragma once
#include <cuda_runtime_api.h>

#include <memory>
#include <vector>

#include "../backend.h"
#include "cuda_weights.h"
#include "device_buffer.h"
#include "gemm.h"
#include "gpu_sampler.h"

namespace kvs::cuda {

class CudaBackend final : public Backend {
 public:
  CudaBackend(const ModelConfig& cfg, std::unique_ptr<WeightStore> weights, const EngineOptions& opts);
  ~CudaBackend() override;
  BackendInfo info() const override { return info_; }
  void step(const StepBatch& batch, StepResult& out) override;

 private:
  void allocateActivations();
  void allocateKvCache();
  void uploadInputs(const StepBatch& b);
  void forward(const StepBatch& b);

  ModelConfig cfg_;
  EngineOptions opts_;
  DType dt_;
  BackendInfo info_;
  cudaStream_t stream_ = nullptr;
  int maxT_ = 0, maxS_ = 0, maxSplits_ = 1, partition_ = 512;
  int qkvRows_ = 0;  // (Hq + 2 Hkv) * D
  CudaWeights w_;
  std::unique_ptr<GemmRunner> gemm_;
  std::unique_ptr<GpuSampler> sampler_;

  // KV cache: [numLayers][2 (K, V)][numBlocks][blockSize][Hkv][D] in dt_.
  DeviceBuffer kv_;
  size_t kvPlaneElems_ = 0;
  DeviceBuffer invFreq_;  // [D/2] float32

  // Activations, row-major in dt_ unless noted.
  DeviceBuffer residual_;  // [maxT, H]
  DeviceBuffer normed_;    // [maxT, H]
  DeviceBuffer qkv_;       // [maxT, qkvRows]
  DeviceBuffer q_;         // [maxT, Hq, D]
  DeviceBuffer attn_;      // [maxT, Hq, D]
  DeviceBuffer proj_;      // [maxT, H]  o_proj and down_proj outputs (added to the residual by the next norm)
  DeviceBuffer gateUp_;    // [maxT, 2 I]
  DeviceBuffer act_;       // [maxT, I]
  DeviceBuffer final_;     // [maxS, H]  final-normed sampled rows
  DeviceBuffer logits_;    // [maxS, V]
  DeviceBuffer partOut_, partMax_, partSum_;  // split-KV partials, float32 [maxS, Hq, maxSplits, (D)]

  // One step's inputs: packed 4-byte words, one host-to-device copy.
  PinnedBuffer hostInputs_;
  DeviceBuffer inputs_;
  std::vector<int32_t> tileSeq_, tileQStart_, tileSlot_;
  struct Offsets { size_t tokens, positions, queryStart, contextLens, blockTables, slots, sampleIdx, tileSeq,
                   tileQ, tileSlot, copies; } off_{};
  int numTiles_ = 0, tokensPerTile_ = 0, numSplitSlots_ = 0, stepMaxSplits_ = 1, decode_ = 0;
};

}  // namespace kvs::cuda
