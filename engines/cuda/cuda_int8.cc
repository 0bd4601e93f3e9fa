#include "cuda_int8.h"

#include <cstring>
#include <map>
#include <stdexcept>

#include "../cpu/cpu_weights.h"
#include "../cpu/int8_model.h"
#include "../cpu/thread_pool.h"
#include "../half.h"
#include "../int8_tensors.h"

namespace kvs::cuda {

namespace {

// Tensors in owned host memory, written once by the conversion below.
class HostStore : public WeightStore {
 public:
  void* add(const CudaTensorSpec& s) {
    buffers_.push_back(std::make_unique<uint8_t[]>(s.bytes()));
    Tensor t;
    t.name = s.name;
    t.dtype = s.dtype;
    t.shape = s.shape;
    t.data = buffers_.back().get();
    t.nbytes = s.bytes();
    tensors_.emplace(s.name, t);
    return buffers_.back().get();
  }

 private:
  std::vector<std::unique_ptr<uint8_t[]>> buffers_;
};

void putFloats(const std::vector<const std::vector<float>*>& parts, DType dt, void* dst) {
  size_t i = 0;
  for (const std::vector<float>* v : parts)
    for (float x : *v) {
      if (dt == DType::BF16) static_cast<uint16_t*>(dst)[i] = floatToBf16(x);
      else static_cast<uint16_t*>(dst)[i] = floatToF16(x);
      ++i;
    }
}

// The matrices of a fused layout matrix, one after another: int8 rows unpacked from the CPU's packed layout
// (int8_tensors.h), or the float rows as they are.
void putMatrix(const std::vector<const Mat*>& parts, const CudaTensorSpec& s, void* dst) {
  auto* out = static_cast<uint8_t*>(dst);
  for (const Mat* m : parts) {
    if (m->dtype != s.dtype)
      throw std::runtime_error("int8 for cuda: " + s.name + " mixes " + dtypeName(m->dtype) + " and " + dtypeName(s.dtype) +
                               " parts (the fused groups were not decided together)");
    const size_t rowBytes = size_t(m->cols) * dtypeSize(m->dtype);
    if (m->dtype != DType::I8) {
      std::memcpy(out, m->data, size_t(m->rows) * rowBytes);
    } else {
      const auto* q = static_cast<const int8_t*>(m->data);
      const int64_t G = packedInt8Groups(m->cols);
      for (int64_t n = 0; n < m->rows; ++n)
        for (int64_t k = 0; k < m->cols; ++k) out[n * m->cols + k] = uint8_t(q[packedInt8Index(n, k, G)]);
    }
    out += size_t(m->rows) * rowBytes;
  }
}

void putScales(const std::vector<const Mat*>& parts, void* dst) {
  auto* out = static_cast<float*>(dst);
  for (const Mat* m : parts) out = std::copy(m->scale, m->scale + m->rows, out);
}

MatrixFormat formatOf(const Mat& m) {
  return m.dtype != DType::I8 ? MatrixFormat::Compute : m.actSmooth ? MatrixFormat::Int8Smoothed : MatrixFormat::Int8;
}

}  // namespace

QuantizeOptions cudaInt8Constraints(const ModelConfig& cfg) {
  QuantizeOptions o;
  o.fusedGroups = true;
  o.keepFloatBecause["lm_head"] = "the CUDA int8 layout keeps lm_head in the compute dtype (as its fp8 layout does)";
  const int64_t H = cfg.hiddenSize, I = cfg.intermediateSize, D = cfg.headDim;
  const int64_t qkv = (int64_t(cfg.numHeads) + 2 * cfg.numKvHeads) * D;
  auto check = [&](int layer, std::vector<const char*> members, int64_t rows, int64_t cols) {
    if (cudaInt8Matrix(rows, cols)) return;
    const std::string why = cols % 16 != 0
                                ? "its rows are " + std::to_string(cols) + " elements, not a multiple of 16 (the int8 GEMV reads 16-byte rows)"
                                : "its CUDA matrix has " + std::to_string(rows) + " rows, not a multiple of 4 (cuBLASLt's int8 kernels)";
    for (const char* m : members) o.keepFloatBecause["model.layers." + std::to_string(layer) + "." + m] = why;
  };
  for (int l = 0; l < cfg.numLayers; ++l) {
    check(l, {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, qkv, H);
    check(l, {"self_attn.o_proj"}, H, int64_t(cfg.numHeads) * D);
    check(l, {"mlp.gate_proj", "mlp.up_proj"}, 2 * I, H);
    check(l, {"mlp.down_proj"}, H, I);
  }
  return o;
}

CudaInt8Model quantizeInt8ForCuda(const ModelConfig& cfg, const WeightStore& checkpoint, DType compute,
                                  const QuantizationRequest& request, int numThreads, uint64_t seed,
                                  const std::function<void(size_t)>& onTensor,
                                  const std::function<void(const std::string&, double)>& progress) {
  if (compute != DType::BF16 && compute != DType::F16)
    throw std::runtime_error("--quantization int8 computes in bfloat16 or float16, not float32: pass --dtype bfloat16");
  ThreadPool pool(numThreads);
  const CpuModel f = prepareCpuModel(cfg, checkpoint, compute, false, seed, pool, onTensor);
  CudaInt8Model out;
  const QuantizedCpuModel qm =
      quantizeModelInt8(cfg, f, request, cudaInt8Constraints(cfg), numThreads, pool, progress, &out.calibration);
  out.layers = qm.layers;
  const CpuModel& m = qm.model;
  out.quant.method = "int8";
  for (const CpuLayer& L : m.layers) out.quant.formats.push_back({formatOf(L.q), formatOf(L.o), formatOf(L.gate), formatOf(L.down)});

  auto store = std::make_unique<HostStore>();
  for (const CudaTensorSpec& s : cudaTensorSpecs(cfg, compute, out.quant)) {
    void* dst = store->add(s);
    const CpuLayer* L = s.layer >= 0 ? &m.layers[size_t(s.layer)] : nullptr;
    switch (s.kind) {
      case CudaTensor::Embed: putMatrix({&m.embed}, s, dst); break;
      case CudaTensor::LmHead: putMatrix({&m.lmHead}, s, dst); break;
      case CudaTensor::FinalNorm: putFloats({&m.finalNorm}, compute, dst); break;
      case CudaTensor::InputNorm: putFloats({&L->inputNorm}, compute, dst); break;
      case CudaTensor::PostNorm: putFloats({&L->postNorm}, compute, dst); break;
      case CudaTensor::QkvBias: putFloats({&L->qBias, &L->kBias, &L->vBias}, compute, dst); break;
      case CudaTensor::QNorm: putFloats({&L->qNorm}, compute, dst); break;
      case CudaTensor::KNorm: putFloats({&L->kNorm}, compute, dst); break;
      case CudaTensor::Qkv: putMatrix({&L->q, &L->k, &L->v}, s, dst); break;
      case CudaTensor::O: putMatrix({&L->o}, s, dst); break;
      case CudaTensor::GateUp: putMatrix({&L->gate, &L->up}, s, dst); break;
      case CudaTensor::Down: putMatrix({&L->down}, s, dst); break;
      case CudaTensor::QkvScale: putScales({&L->q, &L->k, &L->v}, dst); break;
      case CudaTensor::OScale: putScales({&L->o}, dst); break;
      case CudaTensor::GateUpScale: putScales({&L->gate, &L->up}, dst); break;
      case CudaTensor::DownScale: putScales({&L->down}, dst); break;
      case CudaTensor::OSmooth: std::memcpy(dst, L->o.actSmooth, s.bytes()); break;
      case CudaTensor::DownSmooth: std::memcpy(dst, L->down.actSmooth, s.bytes()); break;
    }
  }
  out.store = std::move(store);
  return out;
}

}  // namespace kvs::cuda
