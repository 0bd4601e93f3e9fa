// The CPU backend's view of the model: matrices stay where they are (mmapped checkpoint) in their stored
// dtype unless another dtype was asked for, in which case they are converted once into owned memory and the
// checkpoint mapping can be released (never two copies). Vectors (norms, biases) are widened to float32.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "../weights.h"
#include "linear.h"

namespace kvs {

struct CpuLayer {
  Mat q, k, v, o, gate, up, down;
  std::vector<float> inputNorm, postNorm;   // [hidden]
  std::vector<float> qBias, kBias, vBias;   // [q dim], [kv dim], [kv dim]; empty without attention bias
  std::vector<float> qNorm, kNorm;          // [headDim]; empty without qk-norm
};

struct CpuModel {
  Mat embed;                    // [vocab, hidden]
  Mat lmHead;                   // [vocab, hidden]; same memory as embed when tied
  std::vector<float> finalNorm; // [hidden]
  std::vector<CpuLayer> layers;
  DType dtype = DType::F32;     // dtype of the float matrices (the embedding, and layers kept in float)
  bool quantized = false;       // some matrix is int8
  size_t bytes = 0;             // matrices + vectors as held
  bool usesStore = false;       // some matrix still points into the WeightStore's memory
  std::vector<std::unique_ptr<uint8_t[]>> owned;
};

// target: the dtype to hold matrices in; `keepStored` = "auto" (keep each matrix's stored dtype).
// Dummy stores (no data) get deterministic random values from `seed`: matrices and biases
// uniform(-0.05, 0.05), norm weights 1. onTensor (may be empty) gets each tensor's bytes once it is ready.
CpuModel prepareCpuModel(const ModelConfig& cfg, const WeightStore& store, DType target, bool keepStored,
                         uint64_t seed, ThreadPool& pool, const std::function<void(size_t)>& onTensor = {});

}  // namespace kvs
