#include "cuda_weights.h"

#include <algorithm>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>

#include "cuda_check.h"
#include "host_upload.h"
#include "kvserve_kernels.h"

namespace kvs::cuda {

namespace {

constexpr size_t kAlign = 256;
size_t alignUp(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// Writes source tensors into a destination region, one after another (the fused layouts).
class Uploader {
 public:
  Uploader(DType compute, bool dummy, uint64_t seed, cudaStream_t stream, const std::function<void(size_t)>& onTensor)
      : compute_(compute), dummy_(dummy), seed_(seed), stream_(stream), onTensor_(onTensor) {}

  // Copies (or fills) `t` into dst at element offset `at`; returns the element count written.
  int64_t put(const Tensor& t, char* dst, int64_t at) {
    if (onTensor_) onTensor_(t.nbytes);  // loading progress, as the tensor's copy is queued
    const int64_t n = t.numel();
    void* d = dst + at * dtypeSize(compute_);
    if (dummy_ || t.data == nullptr) {
      const bool isNorm = t.name.find("norm") != std::string::npos;
      kvsk_fill_params f{d, static_cast<kvsk_dtype>(compute_), n, seed_ + 0x9E3779B97F4A7C15ull * (++count_),
                         isNorm ? 0.f : 0.05f, isNorm ? 1.f : 0.f};
      KVS_CUDA_CHECK(kvsk_fill(&f, stream_));
      return n;
    }
    if (t.dtype == compute_) {
      KVS_CUDA_CHECK(cudaMemcpyAsync(d, t.data, t.nbytes, cudaMemcpyHostToDevice, stream_));
      return n;
    }
    // Through a staging buffer in the checkpoint's dtype, converted on the device. The pageable copy
    // returns once the source is consumed; stream order keeps the staging buffer safe for the next one.
    staging_.resize(t.nbytes);
    KVS_CUDA_CHECK(cudaMemcpyAsync(staging_.get(), t.data, t.nbytes, cudaMemcpyHostToDevice, stream_));
    kvsk_convert_params c{staging_.get(), static_cast<kvsk_dtype>(t.dtype), d, static_cast<kvsk_dtype>(compute_), n};
    KVS_CUDA_CHECK(kvsk_convert(&c, stream_));
    return n;
  }

 private:
  DType compute_;
  bool dummy_;
  uint64_t seed_;
  cudaStream_t stream_;
  uint64_t count_ = 0;
  DeviceBuffer staging_;
  const std::function<void(size_t)>& onTensor_;
};

}  // namespace

CudaWeights allocateWeights(const ModelConfig& cfg, DType compute, const CudaQuant& q) {
  CudaWeights w;
  w.dtype = compute;
  w.quant = q;
  std::vector<size_t> offsets;
  for (CudaTensorSpec& spec : cudaTensorSpecs(cfg, compute, q)) {
    const size_t bytes = spec.bytes();
    offsets.push_back(w.bytes);
    w.bytes += alignUp(bytes);
    w.tensors.push_back({std::move(spec), nullptr, bytes});
  }
  w.storage.resize(w.bytes);
  char* base = w.storage.get<char>();
  w.layers.resize(static_cast<size_t>(cfg.numLayers));
  for (size_t i = 0; i < w.tensors.size(); ++i) {
    CudaTensorRegion& r = w.tensors[i];
    r.data = base + offsets[i];
    CudaLayerWeights* L = r.spec.layer >= 0 ? &w.layers[static_cast<size_t>(r.spec.layer)] : nullptr;
    switch (r.spec.kind) {
      case CudaTensor::Embed: w.embed = r.data; break;
      case CudaTensor::LmHead: w.lmHead = r.data; break;
      case CudaTensor::FinalNorm: w.finalNorm = r.data; break;
      case CudaTensor::InputNorm: L->inputNorm = r.data; break;
      case CudaTensor::Qkv: L->qkv = r.data; break;
      case CudaTensor::QkvBias: L->qkvBias = r.data; break;
      case CudaTensor::QNorm: L->qNorm = r.data; break;
      case CudaTensor::KNorm: L->kNorm = r.data; break;
      case CudaTensor::O: L->o = r.data; break;
      case CudaTensor::PostNorm: L->postNorm = r.data; break;
      case CudaTensor::GateUp: L->gateUp = r.data; break;
      case CudaTensor::Down: L->down = r.data; break;
      case CudaTensor::QkvScale: L->qkvScale = static_cast<const float*>(r.data); break;
      case CudaTensor::OScale: L->oScale = static_cast<const float*>(r.data); break;
      case CudaTensor::GateUpScale: L->gateUpScale = static_cast<const float*>(r.data); break;
      case CudaTensor::DownScale: L->downScale = static_cast<const float*>(r.data); break;
      case CudaTensor::OSmooth: L->oSmooth = static_cast<const float*>(r.data); break;
      case CudaTensor::DownSmooth: L->downSmooth = static_cast<const float*>(r.data); break;
    }
  }
  if (cfg.tieWordEmbeddings) w.lmHead = w.embed;
  return w;
}

CudaWeights uploadWeights(const ModelConfig& cfg, const WeightStore& store, DType compute, uint64_t seed,
                          cudaStream_t stream, const std::function<void(size_t)>& onTensor, bool fp8) {
  const ModelWeights mw = bindLlamaWeights(cfg, store);
  CudaWeights w = allocateWeights(cfg, compute);
  auto dst = [](const void* p) { return static_cast<char*>(const_cast<void*>(p)); };
  // The order of the puts is the dummy fill's seed order: keep it.
  Uploader up(compute, store.dummy(), seed, stream, onTensor);
  up.put(*mw.embed, dst(w.embed), 0);
  if (mw.lmHead != mw.embed) up.put(*mw.lmHead, dst(w.lmHead), 0);
  up.put(*mw.finalNorm, dst(w.finalNorm), 0);
  for (size_t i = 0; i < mw.layers.size(); ++i) {
    const LayerWeights& L = mw.layers[i];
    const CudaLayerWeights& d = w.layers[i];
    up.put(*L.inputNorm, dst(d.inputNorm), 0);
    int64_t at = up.put(*L.q, dst(d.qkv), 0);
    at += up.put(*L.k, dst(d.qkv), at);
    up.put(*L.v, dst(d.qkv), at);
    if (L.qBias) {
      at = up.put(*L.qBias, dst(d.qkvBias), 0);
      at += up.put(*L.kBias, dst(d.qkvBias), at);
      up.put(*L.vBias, dst(d.qkvBias), at);
    }
    if (L.qNorm) up.put(*L.qNorm, dst(d.qNorm), 0);
    if (L.kNorm) up.put(*L.kNorm, dst(d.kNorm), 0);
    up.put(*L.o, dst(d.o), 0);
    up.put(*L.postNorm, dst(d.postNorm), 0);
    at = up.put(*L.gate, dst(d.gateUp), 0);
    up.put(*L.up, dst(d.gateUp), at);
    up.put(*L.down, dst(d.down), 0);
  }
  KVS_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (!fp8) return w;
  return quantizeWeightsFp8(cfg, w, stream);  // w (the compute-dtype copy) is freed on return
}

CudaWeights quantizeWeightsFp8(const ModelConfig& cfg, const CudaWeights& w, cudaStream_t stream) {
  CudaWeights q = allocateWeights(cfg, w.dtype, CudaQuant::fp8());
  std::map<std::string, const CudaTensorRegion*> from;
  for (const CudaTensorRegion& r : w.tensors) from[r.spec.name] = &r;
  for (const CudaTensorRegion& r : q.tensors) {
    const CudaTensor k = r.spec.kind;
    if (k == CudaTensor::QkvScale || k == CudaTensor::OScale || k == CudaTensor::GateUpScale || k == CudaTensor::DownScale)
      continue;  // written with its matrix
    const CudaTensorRegion& src = *from.at(r.spec.name);
    if (r.spec.dtype != DType::F8E4M3) {
      KVS_CUDA_CHECK(cudaMemcpyAsync(r.data, src.data, r.bytes, cudaMemcpyDeviceToDevice, stream));
      continue;
    }
    const CudaTensorRegion& scale = *(&r + 1);  // the layout puts each matrix's scale right after it
    kvsk_quantize_weight_fp8_params p{};
    p.w = src.data;
    p.w8 = r.data;
    p.wScale = static_cast<float*>(scale.data);
    p.n = static_cast<int>(r.spec.shape[0]);
    p.k = static_cast<int>(r.spec.shape[1]);
    p.dtype = static_cast<kvsk_dtype>(w.dtype);
    KVS_CUDA_CHECK(kvsk_quantize_weight_fp8(&p, stream));
  }
  KVS_CUDA_CHECK(cudaStreamSynchronize(stream));
  return q;
}

CudaWeights uploadEngineWeights(const ModelConfig& cfg, const WeightStore& store, DType compute,
                                const std::function<void(size_t)>& onBytes, const CudaQuant& q) {
  CudaWeights w = allocateWeights(cfg, compute, q);
  std::vector<HostToDevice> copies;
  for (const CudaTensorRegion& r : w.tensors) {
    const Tensor& t = store.get(r.spec.name);
    if (t.dtype != r.spec.dtype || t.nbytes != r.bytes)
      throw std::runtime_error("tensor " + r.spec.name + " is not " + std::to_string(r.bytes) + " bytes of " + dtypeName(r.spec.dtype));
    copies.push_back({t.data, r.data, r.bytes});
  }
  uploadStaged(copies, onBytes);
  return w;
}

}  // namespace kvs::cuda
