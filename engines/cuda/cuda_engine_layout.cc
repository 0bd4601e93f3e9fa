#include "cuda_engine_layout.h"

#include <set>
#include <stdexcept>

namespace kvs::cuda {

int64_t CudaTensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

MatrixFormat CudaQuant::format(int layer, LayerMatrix m, int64_t cols) const {
  if (method == "fp8") return cudaFp8Matrix(cols) ? MatrixFormat::Fp8 : MatrixFormat::Compute;
  if (method == "int8" && layer >= 0 && static_cast<size_t>(layer) < formats.size()) return formats[layer][static_cast<int>(m)];
  return MatrixFormat::Compute;
}

std::vector<CudaTensorSpec> cudaTensorSpecs(const ModelConfig& c, DType compute, const CudaQuant& q) {
  const int64_t H = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize, D = c.headDim;
  const int64_t qd = int64_t(c.numHeads) * D, qkv = (int64_t(c.numHeads) + 2 * int64_t(c.numKvHeads)) * D;
  std::vector<CudaTensorSpec> out;
  auto add = [&](std::string name, CudaTensor kind, int layer, std::vector<int64_t> shape) {
    out.push_back({std::move(name), kind, layer, std::move(shape), compute});
  };
  // A layer matrix: in the compute dtype, or fp8 / int8 with its scale per row (and the input's multiplier).
  auto matrix = [&](const std::string& name, LayerMatrix m, CudaTensor kind, CudaTensor scale, int layer, int64_t rows,
                    int64_t cols) {
    add(name + ".weight", kind, layer, {rows, cols});
    const MatrixFormat f = q.format(layer, m, cols);
    if (f == MatrixFormat::Compute) return;
    out.back().dtype = f == MatrixFormat::Fp8 ? DType::F8E4M3 : DType::I8;
    add(name + ".weight_scale", scale, layer, {rows});
    out.back().dtype = DType::F32;
    if (f != MatrixFormat::Int8Smoothed) return;
    add(name + ".act_smooth", m == LayerMatrix::O ? CudaTensor::OSmooth : CudaTensor::DownSmooth, layer, {cols});
    out.back().dtype = DType::F32;
  };
  add("model.embed_tokens.weight", CudaTensor::Embed, -1, {V, H});
  if (!c.tieWordEmbeddings) add("lm_head.weight", CudaTensor::LmHead, -1, {V, H});
  add("model.norm.weight", CudaTensor::FinalNorm, -1, {H});
  for (int l = 0; l < c.numLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", CudaTensor::InputNorm, l, {H});
    matrix(p + "self_attn.qkv_proj", LayerMatrix::Qkv, CudaTensor::Qkv, CudaTensor::QkvScale, l, qkv, H);
    if (c.attentionBias) add(p + "self_attn.qkv_proj.bias", CudaTensor::QkvBias, l, {qkv});
    if (c.qkNorm) {
      add(p + "self_attn.q_norm.weight", CudaTensor::QNorm, l, {D});
      add(p + "self_attn.k_norm.weight", CudaTensor::KNorm, l, {D});
    }
    matrix(p + "self_attn.o_proj", LayerMatrix::O, CudaTensor::O, CudaTensor::OScale, l, H, qd);
    add(p + "post_attention_layernorm.weight", CudaTensor::PostNorm, l, {H});
    matrix(p + "mlp.gate_up_proj", LayerMatrix::GateUp, CudaTensor::GateUp, CudaTensor::GateUpScale, l, 2 * I, H);
    matrix(p + "mlp.down_proj", LayerMatrix::Down, CudaTensor::Down, CudaTensor::DownScale, l, H, I);
  }
  return out;
}

CudaQuant cudaQuantOf(const ModelConfig& cfg, const WeightStore& store, const std::string& method) {
  CudaQuant q{method, {}};
  if (method != "int8") return q;
  const char* names[4] = {"self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"};
  for (int l = 0; l < cfg.numLayers; ++l) {
    std::array<MatrixFormat, 4> f{};
    for (int m = 0; m < 4; ++m) {
      const std::string name = "model.layers." + std::to_string(l) + "." + names[m];
      const Tensor* w = store.find(name + ".weight");
      const bool smoothable = m == static_cast<int>(LayerMatrix::O) || m == static_cast<int>(LayerMatrix::Down);
      f[m] = !w || w->dtype != DType::I8                        ? MatrixFormat::Compute
             : smoothable && store.find(name + ".act_smooth") ? MatrixFormat::Int8Smoothed
                                                              : MatrixFormat::Int8;
    }
    q.formats.push_back(f);
  }
  return q;
}

void checkCudaEngineTensors(const ModelConfig& cfg, const WeightStore& store, DType compute, const CudaQuant& q) {
  std::set<std::string> expected;
  const std::string how = q.method == "none" ? "" : " " + q.method;
  for (const CudaTensorSpec& s : cudaTensorSpecs(cfg, compute, q)) {
    expected.insert(s.name);
    const Tensor* t = store.find(s.name);
    if (!t) throw std::runtime_error("missing tensor " + s.name + " (expected shape " + shapeString(s.shape) + ")");
    if (t->shape != s.shape)
      throw std::runtime_error("tensor " + s.name + " has shape " + shapeString(t->shape) + ", expected " + shapeString(s.shape) +
                               " from config.json");
    if (t->dtype != s.dtype)
      throw std::runtime_error("tensor " + s.name + " is " + dtypeName(t->dtype) + ", the manifest's " + dtypeName(compute) +
                               how + " layout has it in " + dtypeName(s.dtype));
  }
  for (const auto& [name, t] : store.all())
    if (!expected.count(name))
      throw std::runtime_error("tensor " + name + " is not part of the CUDA layout of this config.json (an engine built for another model?)");
}

}  // namespace kvs::cuda
