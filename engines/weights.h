// Checkpoint tensors: a name → view map over mmapped safetensors files (or their private copy), or dummy tensors
// whose contents a backend fills with random values itself (so an 8B dummy model is made on the device).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model_config.h"

namespace kvs {

// "[2, 3]": a tensor shape as error messages print it.
std::string shapeString(const std::vector<int64_t>& shape);

struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // row-major, as stored; a Linear weight is [outFeatures, inFeatures]
  const void* data = nullptr;  // nullptr for dummy tensors
  size_t nbytes = 0;
  int64_t numel() const;
};

class WeightStore {
 public:
  virtual ~WeightStore() = default;
  const Tensor* find(const std::string& name) const;
  const Tensor& get(const std::string& name) const;  // throws "missing tensor NAME in checkpoint"
  bool dummy() const { return dummy_; }
  size_t totalBytes() const;
  const std::map<std::string, Tensor>& all() const { return tensors_; }

 protected:
  std::map<std::string, Tensor> tensors_;
  bool dummy_ = false;
};

// Where checkpoint bytes live. Mmap: the file's pages, shared with the page cache and never copied, but a
// file truncated under the running engine kills it (with a clear message, mapped_files.h). Private: read
// once into anonymous memory, immune to what happens to the file, at the cost of that memory.
enum class WeightMemory { Mmap, Private };

// Opens model.safetensors or the shards listed in model.safetensors.index.json, mmapped read-only (or read,
// see WeightMemory); that takes no time to speak of for mmap, so loading progress is counted where a backend
// prepares each tensor. onProgress(bytesDone, bytesTotal), if given, is called as files are opened (or read).
std::unique_ptr<WeightStore> loadSafetensors(const std::string& modelDir, WeightMemory memory = WeightMemory::Mmap,
                                             void (*onProgress)(void*, size_t, size_t) = nullptr,
                                             void* progressCtx = nullptr);

// Tensors with the right names, shapes and dtype for `cfg`, and no data.
std::unique_ptr<WeightStore> makeDummyWeights(const ModelConfig& cfg, DType dtype);

// The Llama-family tensors of one layer; optional ones are nullptr when the checkpoint has none.
struct LayerWeights {
  const Tensor* inputNorm;          // [hidden]
  const Tensor* q;                  // [numHeads*headDim, hidden]
  const Tensor* k;                  // [numKvHeads*headDim, hidden]
  const Tensor* v;                  // [numKvHeads*headDim, hidden]
  const Tensor* qBias = nullptr;    // [numHeads*headDim]     qwen2
  const Tensor* kBias = nullptr;    // [numKvHeads*headDim]
  const Tensor* vBias = nullptr;    // [numKvHeads*headDim]
  const Tensor* qNorm = nullptr;    // [headDim]              qwen3
  const Tensor* kNorm = nullptr;    // [headDim]
  const Tensor* o;                  // [hidden, numHeads*headDim]
  const Tensor* postNorm;           // [hidden]  post_attention_layernorm
  const Tensor* gate;               // [intermediate, hidden]
  const Tensor* up;                 // [intermediate, hidden]
  const Tensor* down;               // [hidden, intermediate]
};

struct ModelWeights {
  const Tensor* embed;              // [vocab, hidden]
  std::vector<LayerWeights> layers;
  const Tensor* finalNorm;          // [hidden]
  const Tensor* lmHead;             // [vocab, hidden]; == embed when embeddings are tied
};

// Resolves HF names (model.layers.N.self_attn.q_proj.weight, ...) and checks every shape against cfg.
// Throws with the tensor name and the expected vs found shape on any mismatch.
ModelWeights bindLlamaWeights(const ModelConfig& cfg, const WeightStore& store);

}  // namespace kvs
