// The model's weights on the GPU, in the compute dtype, with q/k/v and gate/up fused (cuda_engine_layout.h
// lists every tensor):
//   qkv    [(Hq + 2 Hkv) * D, H]   rows of q_proj, then k_proj, then v_proj
//   gateUp [2 I, H]                rows of gate_proj, then up_proj
// From a checkpoint, real weights are uploaded tensor by tensor from the mmapped files and fused on the way
// (converted on the device when the checkpoint dtype differs); dummy weights are generated on the device
// (uniform +-0.05 for matrices and biases, 1 for norms), so an 8B dummy model loads in seconds. From an
// engine (kvserve build --device cuda), every tensor is already in this layout and dtype: one copy each.
// All of it lives in one allocation, each tensor 256-byte aligned.
// fp8 (--quantization fp8): the four layer matrices are fp8 E4M3 with a float32 scale per output row; from
// a checkpoint they are uploaded in the compute dtype first and quantized on the device (the compute-dtype
// copy is freed before the KV cache is sized); an fp8 engine holds them quantized already.
// int8 (--quantization int8): the layer matrices the SmoothQuant calibration made int8, each with a float32
// scale per output row (and o_proj / down_proj possibly with their input's multiplier); made on the host from
// a checkpoint (cuda_int8.h) and uploaded as an engine's tensors are.
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
  // fp8 and int8 layouts: the scale per output row of each matrix above (W ≈ q * scale[row]); null for a
  // matrix in the compute dtype.
  const float* qkvScale = nullptr;
  const float* oScale = nullptr;
  const float* gateUpScale = nullptr;
  const float* downScale = nullptr;
  // int8 layouts: the SmoothQuant multiplier of o_proj's and down_proj's input ([Hq D], [I]), or null.
  const float* oSmooth = nullptr;
  const float* downSmooth = nullptr;
};

// One tensor of the layout and where it lives in the allocation.
struct CudaTensorRegion {
  CudaTensorSpec spec;
  void* data = nullptr;
  size_t bytes = 0;  // spec.bytes()
};

struct CudaWeights {
  DeviceBuffer storage;
  DType dtype = DType::F32;         // the compute dtype: activations, norms, embedding, lm_head
  CudaQuant quant;                  // how the layer matrices are held (fp8, int8: CudaLayerWeights' scales set)
  const void* embed = nullptr;      // [V, H]
  const void* finalNorm = nullptr;  // [H]
  const void* lmHead = nullptr;     // [V, H]; == embed when tied
  std::vector<CudaLayerWeights> layers;
  std::vector<CudaTensorRegion> tensors;  // cudaTensorSpecs(cfg) order
  size_t bytes = 0;
};

// The allocation for cfg in `compute`, quantized as q says, every pointer set, contents undefined.
CudaWeights allocateWeights(const ModelConfig& cfg, DType compute, const CudaQuant& q = {});

// Uploads (or generates, when store.dummy()) every tensor bindLlamaWeights resolves; onTensor (may be
// empty) gets each tensor's bytes as its copy is queued. fp8: then quantizes the layer matrices on the device.
CudaWeights uploadWeights(const ModelConfig& cfg, const WeightStore& store, DType compute, uint64_t seed,
                          cudaStream_t stream, const std::function<void(size_t)>& onTensor = {}, bool fp8 = false);

// The fp8 layout of w (in the compute dtype): every layer matrix quantized per output row (absmax / 448,
// round to nearest even, kernels/quant_fp8.cu), every other tensor copied. w is left as it was.
CudaWeights quantizeWeightsFp8(const ModelConfig& cfg, const CudaWeights& w, cudaStream_t stream);

// Uploads an engine's tensors (checkCudaEngineTensors already passed), each one copy from the mapping to its
// region through pinned staging buffers filled by several threads (host_upload.h); onBytes gets progress.
// The store may also be the host-side int8 layout of a checkpoint (quantizeInt8ForCuda).
CudaWeights uploadEngineWeights(const ModelConfig& cfg, const WeightStore& store, DType compute,
                                const std::function<void(size_t)>& onBytes = {}, const CudaQuant& q = {});

}  // namespace kvs::cuda
