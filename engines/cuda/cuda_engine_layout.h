// The CUDA backend's weight layout as one list: every tensor CudaWeights holds (cuda_weights.h), its name in
// an engine's model.safetensors, its shape, in the order of the device allocation and of the engine file.
//   model.embed_tokens.weight                   [V, H]
//   lm_head.weight                              [V, H]   only when not tied to the embedding
//   model.norm.weight                           [H]
//   model.layers.N.input_layernorm.weight       [H]
//   model.layers.N.self_attn.qkv_proj.weight    [(Hq + 2 Hkv) D, H]   rows of q_proj, then k_proj, then v_proj
//   model.layers.N.self_attn.qkv_proj.bias      [(Hq + 2 Hkv) D]      qwen2 (attention_bias)
//   model.layers.N.self_attn.q_norm.weight      [D]                   qwen3
//   model.layers.N.self_attn.k_norm.weight      [D]                   qwen3
//   model.layers.N.self_attn.o_proj.weight      [H, Hq D]
//   model.layers.N.post_attention_layernorm.weight [H]
//   model.layers.N.mlp.gate_up_proj.weight      [2 I, H]              rows of gate_proj, then up_proj
//   model.layers.N.mlp.down_proj.weight         [H, I]
// Everything, norms and biases too, is in the compute dtype. The fused names are vLLM's. An fp8 layout
// (--quantization fp8) holds the four layer matrices (qkv_proj, o_proj, gate_up_proj, down_proj) as
// F8_E4M3, each followed by its float32 scale per output row, as vLLM names it:
//   model.layers.N.self_attn.qkv_proj.weight_scale   [(Hq + 2 Hkv) D]   W ≈ fp8 weight * scale[row]
// A matrix whose rows are not a multiple of 16 elements (stories260K's down_proj, K = 172) stays in the
// compute dtype, without a scale: FP8 GEMMs read 16-byte rows (cudaFp8Matrix).
// Plain C++, no CUDA headers: the CPU test suite checks it on its own.
#pragma once
#include <string>
#include <vector>

#include "../model_config.h"
#include "../weights.h"

namespace kvs::cuda {

enum class CudaTensor {
  Embed, LmHead, FinalNorm, InputNorm, Qkv, QkvBias, QNorm, KNorm, O, PostNorm, GateUp, Down,
  QkvScale, OScale, GateUpScale, DownScale  // fp8 layouts only
};

struct CudaTensorSpec {
  std::string name;
  CudaTensor kind;
  int layer = -1;              // -1 for the tensors outside the layers
  std::vector<int64_t> shape;
  DType dtype = DType::F32;    // the compute dtype; F8E4M3 for an fp8 layout's matrices, F32 for their scales
  int64_t numel() const;
  size_t bytes() const { return static_cast<size_t>(numel()) * dtypeSize(dtype); }
};

// Whether a layer matrix of `cols` columns (K) is fp8 in an fp8 layout.
inline bool cudaFp8Matrix(int64_t cols) { return cols % 16 == 0; }

// The layout in `compute`; fp8: the layer matrices as F8_E4M3 with their scales.
std::vector<CudaTensorSpec> cudaTensorSpecs(const ModelConfig& cfg, DType compute, bool fp8 = false);

// An engine's weights against cfg: every tensor of cudaTensorSpecs present with its shape and dtype, and
// no other. Throws std::runtime_error naming the first tensor that is not.
void checkCudaEngineTensors(const ModelConfig& cfg, const WeightStore& store, DType compute, bool fp8 = false);

}  // namespace kvs::cuda
