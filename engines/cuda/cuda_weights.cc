#include "cuda_weights.h"

#include <algorithm>
#include <functional>
#include <string>

#include "cuda_check.h"
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

CudaWeights uploadWeights(const ModelConfig& cfg, const WeightStore& store, DType compute, uint64_t seed,
                          cudaStream_t stream, const std::function<void(size_t)>& onTensor) {
  const ModelWeights mw = bindLlamaWeights(cfg, store);
  const size_t es = dtypeSize(compute);
  // Layout pass: byte offsets of every destination region.
  size_t total = 0;
  auto region = [&](int64_t elems) { const size_t off = total; total += alignUp(static_cast<size_t>(elems) * es); return off; };
  struct LayerOffsets { size_t inNorm, qkv, bias, qn, kn, o, postNorm, gateUp, down; };
  const size_t embedOff = region(mw.embed->numel());
  const bool tied = mw.lmHead == mw.embed;
  const size_t headOff = tied ? embedOff : region(mw.lmHead->numel());
  const size_t finalOff = region(mw.finalNorm->numel());
  std::vector<LayerOffsets> lo(mw.layers.size());
  for (size_t i = 0; i < mw.layers.size(); ++i) {
    const LayerWeights& L = mw.layers[i];
    LayerOffsets& o = lo[i];
    o.inNorm = region(L.inputNorm->numel());
    o.qkv = region(L.q->numel() + L.k->numel() + L.v->numel());
    o.bias = L.qBias ? region(L.qBias->numel() + L.kBias->numel() + L.vBias->numel()) : 0;
    o.qn = L.qNorm ? region(L.qNorm->numel()) : 0;
    o.kn = L.kNorm ? region(L.kNorm->numel()) : 0;
    o.o = region(L.o->numel());
    o.postNorm = region(L.postNorm->numel());
    o.gateUp = region(L.gate->numel() + L.up->numel());
    o.down = region(L.down->numel());
  }

  CudaWeights w;
  w.dtype = compute;
  w.storage.resize(total);
  w.bytes = total;
  char* base = w.storage.get<char>();
  Uploader up(compute, store.dummy(), seed, stream, onTensor);
  up.put(*mw.embed, base + embedOff, 0);
  if (!tied) up.put(*mw.lmHead, base + headOff, 0);
  up.put(*mw.finalNorm, base + finalOff, 0);
  w.embed = base + embedOff;
  w.lmHead = base + headOff;
  w.finalNorm = base + finalOff;
  for (size_t i = 0; i < mw.layers.size(); ++i) {
    const LayerWeights& L = mw.layers[i];
    const LayerOffsets& o = lo[i];
    CudaLayerWeights d;
    up.put(*L.inputNorm, base + o.inNorm, 0);
    int64_t at = up.put(*L.q, base + o.qkv, 0);
    at += up.put(*L.k, base + o.qkv, at);
    up.put(*L.v, base + o.qkv, at);
    if (L.qBias) {
      at = up.put(*L.qBias, base + o.bias, 0);
      at += up.put(*L.kBias, base + o.bias, at);
      up.put(*L.vBias, base + o.bias, at);
      d.qkvBias = base + o.bias;
    }
    if (L.qNorm) { up.put(*L.qNorm, base + o.qn, 0); d.qNorm = base + o.qn; }
    if (L.kNorm) { up.put(*L.kNorm, base + o.kn, 0); d.kNorm = base + o.kn; }
    up.put(*L.o, base + o.o, 0);
    up.put(*L.postNorm, base + o.postNorm, 0);
    at = up.put(*L.gate, base + o.gateUp, 0);
    up.put(*L.up, base + o.gateUp, at);
    up.put(*L.down, base + o.down, 0);
    d.inputNorm = base + o.inNorm;
    d.qkv = base + o.qkv;
    d.o = base + o.o;
    d.postNorm = base + o.postNorm;
    d.gateUp = base + o.gateUp;
    d.down = base + o.down;
    w.layers.push_back(d);
  }
  KVS_CUDA_CHECK(cudaStreamSynchronize(stream));
  return w;
}

}  // namespace kvs::cuda
