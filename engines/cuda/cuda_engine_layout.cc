#include "cuda_engine_layout.h"

#include <set>
#include <stdexcept>

namespace kvs::cuda {

int64_t CudaTensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<CudaTensorSpec> cudaTensorSpecs(const ModelConfig& c, DType compute, bool fp8) {
  const int64_t H = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize, D = c.headDim;
  const int64_t q = int64_t(c.numHeads) * D, qkv = (int64_t(c.numHeads) + 2 * int64_t(c.numKvHeads)) * D;
  std::vector<CudaTensorSpec> out;
  auto add = [&](std::string name, CudaTensor kind, int layer, std::vector<int64_t> shape) {
    out.push_back({std::move(name), kind, layer, std::move(shape), compute});
  };
  // A layer matrix: fp8 with its scale per row, or in the compute dtype.
  auto matrix = [&](const std::string& name, CudaTensor kind, CudaTensor scale, int layer, int64_t rows, int64_t cols) {
    add(name + ".weight", kind, layer, {rows, cols});
    if (!fp8 || !cudaFp8Matrix(cols)) return;
    out.back().dtype = DType::F8E4M3;
    add(name + ".weight_scale", scale, layer, {rows});
    out.back().dtype = DType::F32;
  };
  add("model.embed_tokens.weight", CudaTensor::Embed, -1, {V, H});
  if (!c.tieWordEmbeddings) add("lm_head.weight", CudaTensor::LmHead, -1, {V, H});
  add("model.norm.weight", CudaTensor::FinalNorm, -1, {H});
  for (int l = 0; l < c.numLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", CudaTensor::InputNorm, l, {H});
    matrix(p + "self_attn.qkv_proj", CudaTensor::Qkv, CudaTensor::QkvScale, l, qkv, H);
    if (c.attentionBias) add(p + "self_attn.qkv_proj.bias", CudaTensor::QkvBias, l, {qkv});
    if (c.qkNorm) {
      add(p + "self_attn.q_norm.weight", CudaTensor::QNorm, l, {D});
      add(p + "self_attn.k_norm.weight", CudaTensor::KNorm, l, {D});
    }
    matrix(p + "self_attn.o_proj", CudaTensor::O, CudaTensor::OScale, l, H, q);
    add(p + "post_attention_layernorm.weight", CudaTensor::PostNorm, l, {H});
    matrix(p + "mlp.gate_up_proj", CudaTensor::GateUp, CudaTensor::GateUpScale, l, 2 * I, H);
    matrix(p + "mlp.down_proj", CudaTensor::Down, CudaTensor::DownScale, l, H, I);
  }
  return out;
}

void checkCudaEngineTensors(const ModelConfig& cfg, const WeightStore& store, DType compute, bool fp8) {
  std::set<std::string> expected;
  for (const CudaTensorSpec& s : cudaTensorSpecs(cfg, compute, fp8)) {
    expected.insert(s.name);
    const Tensor* t = store.find(s.name);
    if (!t) throw std::runtime_error("missing tensor " + s.name + " (expected shape " + shapeString(s.shape) + ")");
    if (t->shape != s.shape)
      throw std::runtime_error("tensor " + s.name + " has shape " + shapeString(t->shape) + ", expected " + shapeString(s.shape) +
                               " from config.json");
    if (t->dtype != s.dtype)
      throw std::runtime_error("tensor " + s.name + " is " + dtypeName(t->dtype) + ", the manifest's " + dtypeName(compute) +
                               (fp8 ? " fp8" : "") + " layout has it in " + dtypeName(s.dtype));
  }
  for (const auto& [name, t] : store.all())
    if (!expected.count(name))
      throw std::runtime_error("tensor " + name + " is not part of the CUDA layout of this config.json (an engine built for another model?)");
}

}  // namespace kvs::cuda
