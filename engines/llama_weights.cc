// The Llama-family tensor names of Hugging Face checkpoints: binding a store to ModelWeights (with every
// shape checked) and the list of names/shapes that dummy weights are made of.
#include <functional>
#include <stdexcept>

#include "int8_tensors.h"
#include "weights.h"

namespace kvs {

namespace {

// Calls emit(name, shape, required) for every tensor a Llama-family checkpoint of `cfg` holds.
void forEachLlamaTensor(const ModelConfig& c,
                        const std::function<void(const std::string&, std::vector<int64_t>, bool)>& emit) {
  const int64_t h = c.hiddenSize, q = int64_t(c.numHeads) * c.headDim, kv = int64_t(c.numKvHeads) * c.headDim;
  emit("model.embed_tokens.weight", {c.vocabSize, h}, true);
  for (int l = 0; l < c.numLayers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    emit(p + "input_layernorm.weight", {h}, true);
    emit(p + "self_attn.q_proj.weight", {q, h}, true);
    emit(p + "self_attn.k_proj.weight", {kv, h}, true);
    emit(p + "self_attn.v_proj.weight", {kv, h}, true);
    if (c.attentionBias) {
      emit(p + "self_attn.q_proj.bias", {q}, true);
      emit(p + "self_attn.k_proj.bias", {kv}, true);
      emit(p + "self_attn.v_proj.bias", {kv}, true);
    }
    if (c.qkNorm) {
      emit(p + "self_attn.q_norm.weight", {c.headDim}, true);
      emit(p + "self_attn.k_norm.weight", {c.headDim}, true);
    }
    emit(p + "self_attn.o_proj.weight", {h, q}, true);
    emit(p + "post_attention_layernorm.weight", {h}, true);
    emit(p + "mlp.gate_proj.weight", {c.intermediateSize, h}, true);
    emit(p + "mlp.up_proj.weight", {c.intermediateSize, h}, true);
    emit(p + "mlp.down_proj.weight", {h, c.intermediateSize}, true);
  }
  emit("model.norm.weight", {h}, true);
  // Tied checkpoints usually lack lm_head; when one has it anyway it must still have the right shape.
  emit("lm_head.weight", {c.vocabSize, h}, !c.tieWordEmbeddings);
}

class DummyWeightStore : public WeightStore {
 public:
  DummyWeightStore(const ModelConfig& cfg, DType dtype) {
    dummy_ = true;
    forEachLlamaTensor(cfg, [&](const std::string& name, std::vector<int64_t> shape, bool required) {
      if (!required) return;  // tied: no lm_head
      Tensor t;
      t.name = name;
      t.dtype = dtype;
      t.shape = std::move(shape);
      t.nbytes = static_cast<size_t>(t.numel()) * dtypeSize(dtype);
      tensors_.emplace(name, std::move(t));
    });
  }
};

}  // namespace

std::unique_ptr<WeightStore> makeDummyWeights(const ModelConfig& cfg, DType dtype) {
  return std::make_unique<DummyWeightStore>(cfg, dtype);
}

ModelWeights bindLlamaWeights(const ModelConfig& cfg, const WeightStore& store) {
  std::map<std::string, const Tensor*> found;
  forEachLlamaTensor(cfg, [&](const std::string& name, std::vector<int64_t> shape, bool required) {
    const Tensor* t = store.find(name);
    if (!t) {
      if (required) throw std::runtime_error("missing tensor " + name + " in checkpoint (expected shape " + shapeString(shape) + ")");
      return;
    }
    // An int8 matrix of an engine is stored packed (int8_tensors.h).
    const bool packed = t->dtype == DType::I8 && shape.size() == 2;
    const std::vector<int64_t> want = packed ? packedInt8Shape(shape[0], shape[1]) : shape;
    if (t->shape != want)
      throw std::runtime_error("tensor " + name + " has shape " + shapeString(t->shape) + ", expected " + shapeString(want) +
                               (packed ? " (int8 packed from " + shapeString(shape) + ")" : "") + " from config.json");
    found[name] = t;
  });
  auto at = [&](const std::string& name) -> const Tensor* {
    auto it = found.find(name);
    return it == found.end() ? nullptr : it->second;
  };
  ModelWeights w;
  w.embed = at("model.embed_tokens.weight");
  w.finalNorm = at("model.norm.weight");
  w.lmHead = cfg.tieWordEmbeddings ? w.embed : at("lm_head.weight");
  for (int l = 0; l < cfg.numLayers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights L{};
    L.inputNorm = at(p + "input_layernorm.weight");
    L.q = at(p + "self_attn.q_proj.weight");
    L.k = at(p + "self_attn.k_proj.weight");
    L.v = at(p + "self_attn.v_proj.weight");
    L.qBias = at(p + "self_attn.q_proj.bias");
    L.kBias = at(p + "self_attn.k_proj.bias");
    L.vBias = at(p + "self_attn.v_proj.bias");
    L.qNorm = at(p + "self_attn.q_norm.weight");
    L.kNorm = at(p + "self_attn.k_norm.weight");
    L.o = at(p + "self_attn.o_proj.weight");
    L.postNorm = at(p + "post_attention_layernorm.weight");
    L.gate = at(p + "mlp.gate_proj.weight");
    L.up = at(p + "mlp.up_proj.weight");
    L.down = at(p + "mlp.down_proj.weight");
    w.layers.push_back(L);
  }
  return w;
}

}  // namespace kvs
