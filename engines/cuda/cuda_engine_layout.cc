#include "cuda_engine_layout.h"

#include <set>
#include <stdexcept>

namespace kvs::cuda {

int64_t CudaTensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<CudaTensorSpec> cudaTensorSpecs(const ModelConfig& c) {
  const int64_t H = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize, D = c.headDim;
  const int64_t q = int64_t(c.numHeads) * D, qkv = (int64_t(c.numHeads) + 2 * int64_t(c.numKvHeads)) * D;
  std::vector<CudaTensorSpec> out;
  auto add = [&](std::string name, CudaTensor kind, int layer, std::vector<int64_t> shape) {
    out.push_back({std::move(name), kind, layer, std::move(shape)});
  };
  add("model.embed_tokens.weight", CudaTensor::Embed, -1, {V, H});
  if (!c.tieWordEmbeddings) add("lm_head.weight", CudaTensor::LmHead, -1, {V, H});
  add("model.norm.weight", CudaTensor::FinalNorm, -1, {H});
  for (int l = 0; l < c.numLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", CudaTensor::InputNorm, l, {H});
    add(p + "self_attn.qkv_proj.weight", CudaTensor::Qkv, l, {qkv, H});
    if (c.attentionBias) add(p + "self_attn.qkv_proj.bias", CudaTensor::QkvBias, l, {qkv});
    if (c.qkNorm) {
      add(p + "self_attn.q_norm.weight", CudaTensor::QNorm, l, {D});
      add(p + "self_attn.k_norm.weight", CudaTensor::KNorm, l, {D});
    }
    add(p + "self_attn.o_proj.weight", CudaTensor::O, l, {H, q});
    add(p + "post_attention_layernorm.weight", CudaTensor::PostNorm, l, {H});
    add(p + "mlp.gate_up_proj.weight", CudaTensor::GateUp, l, {2 * I, H});
    add(p + "mlp.down_proj.weight", CudaTensor::Down, l, {H, I});
  }
  return out;
}

void checkCudaEngineTensors(const ModelConfig& cfg, const WeightStore& store, DType dtype) {
  std::set<std::string> expected;
  for (const CudaTensorSpec& s : cudaTensorSpecs(cfg)) {
    expected.insert(s.name);
    const Tensor* t = store.find(s.name);
    if (!t) throw std::runtime_error("missing tensor " + s.name + " (expected shape " + shapeString(s.shape) + ")");
    if (t->shape != s.shape)
      throw std::runtime_error("tensor " + s.name + " has shape " + shapeString(t->shape) + ", expected " + shapeString(s.shape) +
                               " from config.json");
    if (t->dtype != dtype)
      throw std::runtime_error("tensor " + s.name + " is " + dtypeName(t->dtype) + ", the manifest says " + dtypeName(dtype));
  }
  for (const auto& [name, t] : store.all())
    if (!expected.count(name))
      throw std::runtime_error("tensor " + name + " is not part of the CUDA layout of this config.json (an engine built for another model?)");
}

}  // namespace kvs::cuda
