// The model's shape and numerics, read from a Hugging Face config.json. Plain data, no behaviour.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kvs {

// F32, BF16, F16: what weights are computed in. I8, I32 and F8E4M3 are storage only: the int8 matrices of a
// quantized CPU engine and their per-row sums (engines/int8_tensors.h), the fp8 (E4M3) matrices of a CUDA
// fp8 engine; no model computes "in" them.
enum class DType : int { F32 = 0, BF16 = 1, F16 = 2, I8 = 3, I32 = 4, F8E4M3 = 5 };

const char* dtypeName(DType t);            // "float32" | "bfloat16" | "float16" | "int8" | "int32" | "float8_e4m3fn"
size_t dtypeSize(DType t);                 // 4 | 2 | 2 | 1 | 4 | 1
const char* safetensorsDTypeName(DType t); // F32 | BF16 | F16 | I8 | I32 | F8_E4M3
bool isFloatDType(DType t);                // F32, BF16, F16
// The compute dtypes only (--dtype, torch_dtype): float32, bfloat16, float16 and HF spellings F32, BF16, F16.
bool parseDType(const std::string& s, DType* out);
// A safetensors header's dtype: F32, BF16, F16, I8, I32, F8_E4M3.
bool parseTensorDType(const std::string& s, DType* out);

enum class RopeKind : int { Default = 0, Linear = 1, Llama3 = 2 };

struct RopeConfig {
  RopeKind kind = RopeKind::Default;
  double theta = 10000.0;
  double factor = 1.0;              // linear and llama3
  double lowFreqFactor = 1.0;       // llama3
  double highFreqFactor = 4.0;      // llama3
  int originalMaxPositions = 8192;  // llama3: original_max_position_embeddings
};

struct ModelConfig {
  std::string architecture;  // e.g. "LlamaForCausalLM"
  std::string modelType;     // "llama" | "mistral" | "qwen2" | "qwen3"
  int hiddenSize = 0;
  int intermediateSize = 0;
  int numLayers = 0;
  int numHeads = 0;
  int numKvHeads = 0;        // num_key_value_heads, defaults to numHeads
  int headDim = 0;           // explicit head_dim, else hiddenSize / numHeads
  int vocabSize = 0;
  int maxPositions = 0;      // max_position_embeddings
  double rmsNormEps = 1e-6;
  RopeConfig rope;
  bool tieWordEmbeddings = false;
  bool attentionBias = false;  // q/k/v projections carry a bias (qwen2, or llama attention_bias)
  bool qkNorm = false;         // per-head RMSNorm on q and k before RoPE (qwen3)
  int slidingWindow = 0;       // 0 = none; non-zero is rejected at load (not supported yet)
  DType dtype = DType::F32;    // torch_dtype / dtype of the checkpoint
  int bosTokenId = -1;
  std::vector<int> eosTokenIds;
};

// Parses config.json text. Throws std::runtime_error with a message naming the bad field.
ModelConfig parseModelConfig(const std::string& jsonText);

}  // namespace kvs
