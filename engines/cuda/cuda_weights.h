// The model's weights on the GPU, in the compute dtype, with q/k/v and gate/up fused (cuda_engine_layout.h
// lists every tensor):
//   qkv    [(Hq + 2 Hkv) * D, H]   rows of q_proj, then k_proj, then v_proj
//   gateUp [2 I, H]                rows of gate_proj, then up_proj
// From a checkpoint, real weights are uploaded tensor by tensor from the mmapped files and fused on the way
// (converted on the device when the checkpoint dtype differs); dummy weights are generated on the device
// (uniform +-0.05 for matrices and biases, 1 for norms), so an 8B dummy model loads in seconds. From an
// engine (kvserve build --device cuda), every tensor is already in this layout and dtype: one copy each.
// All of it lives in one allocation, each tensor 256-byte aligned.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "cuda_engine_layout.h"
#include "device_buffer.h"
#include "../model_config.h"
#include "../weights.h"

namespace kvs::cuda {

struct CudaLayerWeights {
  const void* inputNorm = nullptr;  // [H]
  const void* qkv = nullptr;        // [(Hq + 2 Hkv) D, H]
  const void* qkvBias = nullptr;    // [(Hq + 2 Hkv) D] or null (qwen2)
  const void* qNorm = nullptr;      // [D] or null (qwen3)
  const void* kNorm = nullptr;      // [D] or null
  const void* o = nullptr;          // [H, Hq D]
  const void* postNorm = nullptr;   // [H]
  const void* gateUp = nullptr;     // [2 I, H]
  const void* down = nullptr;       // [H, I]
};

// One tensor of the layout and where it lives in the allocation.
struct CudaTensorRegion {
  CudaTensorSpec spec;
  void* data = nullptr;
  size_t bytes = 0;  // spec.numel() * dtype size
};

struct CudaWeights {
  DeviceBuffer storage;
  DType dtype = DType::F32;
  const void* embed = nullptr;      // [V, H]
  const void* finalNorm = nullptr;  // [H]
  const void* lmHead = nullptr;     // [V, H]; == embed when tied
  std::vector<CudaLayerWeights> layers;
  std::vector<CudaTensorRegion> tensors;  // cudaTensorSpecs(cfg) order
  size_t bytes = 0;
};

// The allocation for cfg in `compute`, every pointer set, contents undefined.
CudaWeights allocateWeights(const ModelConfig& cfg, DType compute);

// Uploads (or generates, when store.dummy()) every tensor bindLlamaWeights resolves; onTensor (may be
// empty) gets each tensor's bytes as its copy is queued.
CudaWeights uploadWeights(const ModelConfig& cfg, const WeightStore& store, DType compute, uint64_t seed,
                          cudaStream_t stream, const std::function<void(size_t)>& onTensor = {});

// Uploads an engine's tensors (checkCudaEngineTensors already passed), each one copy from the mapping to its
// region through pinned staging buffers filled by several threads (host_upload.h); onBytes gets progress.
CudaWeights uploadEngineWeights(const ModelConfig& cfg, const WeightStore& store, DType compute,
                                const std::function<void(size_t)>& onBytes = {});

}  // namespace kvs::cuda
