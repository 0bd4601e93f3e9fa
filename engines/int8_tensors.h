// How an int8 (W8A8) matrix of N output rows and K input channels lies in an engine's safetensors:
//   NAME.weight        I8  [⌈N/16⌉, ⌈K/4⌉, 16, 4]  packed for the kernels (cpu/int8_dot.h): block b holds
//                          rows 16b .. 16b+15; within it, group g holds channels 4g .. 4g+3 of each of the 16
//                          rows in turn. Byte (n, k) is at ((n/16)·⌈K/4⌉ + k/4)·64 + (n%16)·4 + k%4;
//                          padding rows and channels are 0
//   NAME.weight_scale  F32 [N]  per-output-row dequantization scale (w ≈ q · scale)
//   NAME.weight_sum    I32 [N]  Σ_k q[n, k]: what the VNNI kernel's +128 activation offset adds, taken back
//                               out; also a checksum of the row, checked at load
//   NAME.act_smooth    F32 [K]  optional: SmoothQuant multiplier of the input activation, for layers whose
//                               smoothing could not be folded into a norm (o_proj, down_proj)
// (NAME is the module: model.layers.3.mlp.down_proj, lm_head.) The packing is the same for every ISA.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "weights.h"

namespace kvs {

inline int64_t packedInt8Groups(int64_t K) { return (K + 3) / 4; }
inline int64_t packedInt8Blocks(int64_t N) { return (N + 15) / 16; }
inline size_t packedInt8Bytes(int64_t N, int64_t K) { return size_t(packedInt8Blocks(N) * packedInt8Groups(K) * 64); }
inline int64_t packedInt8Index(int64_t n, int64_t k, int64_t groups) {
  return ((n / 16) * groups + k / 4) * 64 + (n % 16) * 4 + k % 4;
}
inline std::vector<int64_t> packedInt8Shape(int64_t N, int64_t K) { return {packedInt8Blocks(N), packedInt8Groups(K), 16, 4}; }

struct Int8Companions {
  const Tensor* scale = nullptr;
  const Tensor* rowSum = nullptr;
  const Tensor* actSmooth = nullptr;  // nullptr when the matrix has none
};

// "model.layers.0.mlp.up_proj.weight" → "model.layers.0.mlp.up_proj"
std::string moduleOf(const std::string& weightName);

// The companions of the I8 matrix `w` of logical shape [N, K], each checked for dtype and shape, and w's
// packed shape; throws naming the tensor.
Int8Companions int8Companions(const WeightStore& store, const Tensor& w, int64_t N, int64_t K);

// A model folder (not an engine) holding integer tensors: they are the layout of kvserve's own int8 engines,
// not a checkpoint format. Throws naming the tensor and the folder.
void refuseIntegerTensors(const WeightStore& store, const std::string& dir);

// Every I8 tensor of the store: its companions present and well-formed, and each row summing to its
// weight_sum (one pass over the int8 bytes: the integrity check of a mapped engine). Throws on the first
// problem, naming the tensor (and row).
void checkInt8Tensors(const WeightStore& store);

}  // namespace kvs
