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
// An int8 layout (--quantization int8, SmoothQuant W8A8) holds each layer matrix the calibration made int8
// as I8 [N, K] row-major with its float32 scale per output row (the name as above), and o_proj / down_proj
// whose smoothing could not be folded into a norm also their input's multiplier, as the CPU engines name it:
//   model.layers.N.self_attn.o_proj.act_smooth      [Hq D]   x * act_smooth is what is quantized
// The others stay in the compute dtype (the norms carry the folded smoothing). Which matrix is which is the
// build's choice per layer (CudaQuant::formats), read back from an engine's dtypes (cudaQuantOf).
// Plain C++, no CUDA headers: the CPU test suite checks it on its own.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "../model_config.h"
#include "../weights.h"

namespace kvs::cuda {

enum class CudaTensor {
  Embed, LmHead, FinalNorm, InputNorm, Qkv, QkvBias, QNorm, KNorm, O, PostNorm, GateUp, Down,
  QkvScale, OScale, GateUpScale, DownScale,  // fp8 and int8 layouts
  OSmooth, DownSmooth                        // int8 layouts: the input's SmoothQuant multiplier
};

// The four matrices of a decoder layer, in layout order.
enum class LayerMatrix { Qkv = 0, O = 1, GateUp = 2, Down = 3 };

// How one layer matrix is held: in the compute dtype, fp8 E4M3 with a scale per row, int8 with a scale per
// row, or int8 with the scale and the input's multiplier (o_proj and down_proj only: the others' smoothing
// is folded into the norm before them).
enum class MatrixFormat : uint8_t { Compute, Fp8, Int8, Int8Smoothed };

// The quantization of a layout.
struct CudaQuant {
  std::string method = "none";  // "none" | "fp8" | "int8"
  std::vector<std::array<MatrixFormat, 4>> formats;  // int8: per layer, by LayerMatrix (none, fp8: from the shapes)
  static CudaQuant fp8() { return {"fp8", {}}; }
  MatrixFormat format(int layer, LayerMatrix m, int64_t cols) const;
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
// Whether a layer matrix of [rows, cols] may be int8 in an int8 layout: the int8 GEMV reads 16-byte rows and
// cuBLASLt's IMMA kernels want N and K multiples of 4.
inline bool cudaInt8Matrix(int64_t rows, int64_t cols) { return cols % 16 == 0 && rows % 4 == 0; }

// The layout in `compute`, quantized as q says.
std::vector<CudaTensorSpec> cudaTensorSpecs(const ModelConfig& cfg, DType compute, const CudaQuant& q = {});

// The quantization an engine's tensors hold for `method` ("int8": each layer matrix's format from its dtype
// and whether its act_smooth is there).
CudaQuant cudaQuantOf(const ModelConfig& cfg, const WeightStore& store, const std::string& method);

// An engine's weights against cfg: every tensor of cudaTensorSpecs present with its shape and dtype, and
// no other. Throws std::runtime_error naming the first tensor that is not.
void checkCudaEngineTensors(const ModelConfig& cfg, const WeightStore& store, DType compute, const CudaQuant& q = {});

}  // namespace kvs::cuda
