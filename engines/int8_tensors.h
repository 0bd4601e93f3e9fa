// How an int8 (W8A8) matrix lies in an engine's safetensors: NAME.weight is I8 [rows, cols] beside
//   NAME.weight_scale  F32 [rows]  per-output-row dequantization scale (w ≈ q · scale)
//   NAME.weight_sum    I32 [rows]  Σ_k q[n, k]: what the VNNI kernel's +128 activation offset adds, taken
//                                  back out; also a checksum of the row, checked at load
//   NAME.act_smooth    F32 [cols]  optional: SmoothQuant multiplier of the input activation, for layers
//                                  whose smoothing could not be folded into a norm (o_proj, down_proj)
// (NAME is the module: model.layers.3.mlp.down_proj, lm_head.)
#pragma once
#include <string>

#include "weights.h"

namespace kvs {

struct Int8Companions {
  const Tensor* scale = nullptr;
  const Tensor* rowSum = nullptr;
  const Tensor* actSmooth = nullptr;  // nullptr when the matrix has none
};

// "model.layers.0.mlp.up_proj.weight" → "model.layers.0.mlp.up_proj"
std::string moduleOf(const std::string& weightName);

// The companions of the I8 matrix `w`, each checked for dtype and shape; throws naming the tensor.
Int8Companions int8Companions(const WeightStore& store, const Tensor& w);

// Every I8 tensor of the store: 2-D, its companions present and well-formed, and each row summing to its
// weight_sum (one pass over the int8 bytes, the integrity check of a mapped engine). Throws on the first
// problem, naming the tensor (and row).
void checkInt8Tensors(const WeightStore& store);

}  // namespace kvs
