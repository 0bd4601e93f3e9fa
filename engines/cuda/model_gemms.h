// The GEMMs of the forward pass (cuda_forward.cc) as GemmRunner plans them: five weight shapes, each timed on
// one real weight (layer 0's; every layer shares the shape), for M up to the largest it is called with. A
// build records the plans as the manifest's tunedGemms; a load from the engine restores them instead of
// timing again, and times again (saying why) any shape whose record it cannot use. An int8 layout may keep a
// matrix in float in some layers (the calibration's per-layer fallback): such a weight has a float shape and
// an int8 shape, each timed on its first layer that has it, recorded apart by kernel (the int8 plan's are
// "gemv_int8" and "cublasLt_int8").
#pragma once
#include <string>
#include <vector>

#include "../engine_target.h"
#include "cuda_weights.h"
#include "gemm.h"

namespace kvs::cuda {

// How a shape's GEMM runs: GemmRunner::plan / run, planFp8 / runFp8, or planInt8 / runInt8.
enum class GemmKind { Float, Fp8, Int8 };

struct ModelGemm {
  std::string weight;  // "qkv_proj" | "o_proj" | "gate_up_proj" | "down_proj" | "lm_head"
  int n = 0, k = 0;
  const void* w = nullptr;  // the weight it is timed on (null: no layers, untimed)
  int maxM = 0;             // maxNumBatchedTokens; lm_head: maxNumSeqs (it sees the sampled rows only)
  GemmKind kind = GemmKind::Float;  // lm_head is always Float
  const float* scale = nullptr;     // fp8, int8: its scale per row
};

std::vector<ModelGemm> modelGemms(const ModelConfig& cfg, const CudaWeights& w, int maxT, int maxS);

struct GemmPlanning {
  int imported = 0;                   // shapes restored from `tuned`
  int planned = 0;                    // shapes planned here: timed (fast mode) or the heuristic's pick (--batch-invariant)
  std::vector<std::string> retimed;   // per shape that `tuned` was given for but could not serve: which and why
};

// Plans every shape on `gemm` in the compute dtype dt: from `tuned` (null: none) where the runner accepts
// its record of the shape, else by timing. Fast mode only imports; --batch-invariant plans its own.
GemmPlanning planModelGemms(GemmRunner& gemm, const std::vector<ModelGemm>& shapes, DType dt,
                            const std::vector<TunedGemm>* tuned);

// The plans of every shape as manifest entries, ascending in M per shape.
std::vector<TunedGemm> exportModelGemms(GemmRunner& gemm, const std::vector<ModelGemm>& shapes, DType dt);

// cuBLASLt's opaque algorithm as 128 lowercase hex digits (8 words, each most significant digit first), and back
// (false for anything else).
std::string algoHex(const std::array<uint64_t, 8>& algo);
bool parseAlgoHex(const std::string& hex, std::array<uint64_t, 8>* algo);

}  // namespace kvs::cuda
