#include "cpu_weights.h"

#include <cstring>
#include <stdexcept>

#include "../half.h"
#include "../int8_tensors.h"
#include "../splitmix.h"

namespace kvs {

namespace {

// uniform(-0.05, 0.05) from a counter: element i of the tensor whose stream is `key`.
inline float dummyValue(uint64_t key, uint64_t i) {
  return float(double(splitmix64(key ^ splitmix64(i)) >> 11) * 0x1.0p-53 * 0.1 - 0.05);
}

uint64_t nameKey(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a of the name keeps each tensor's values independent of the others
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return splitmix64(seed ^ h);
}

void storeAs(DType dt, void* dst, int64_t i, float v) {
  switch (dt) {
    case DType::F32: static_cast<float*>(dst)[i] = v; break;
    case DType::BF16: static_cast<uint16_t*>(dst)[i] = floatToBf16(v); break;
    case DType::F16: static_cast<uint16_t*>(dst)[i] = floatToF16(v); break;
    case DType::I8: case DType::I32: break;  // never a conversion target (parseDType gives floats only)
  }
}

class Preparer {
 public:
  Preparer(const WeightStore& store, DType target, bool keepStored, uint64_t seed, ThreadPool& pool, CpuModel& m,
           const std::function<void(size_t)>& onTensor)
      : store_(store), target_(target), keep_(keepStored), seed_(seed), pool_(pool), m_(m), onTensor_(onTensor) {}

  // rows, cols: the logical shape (an int8 tensor is stored packed).
  Mat matrix(const Tensor* t, int64_t rows, int64_t cols) {
    Mat w;
    w.rows = rows;
    w.cols = cols;
    if (t->dtype == DType::I8) return int8Matrix(*t, w);
    if (!isFloatDType(t->dtype))
      throw std::runtime_error("tensor " + t->name + " is " + dtypeName(t->dtype) + "; a matrix is float or int8");
    if (t->data && (keep_ || t->dtype == target_)) {  // borrow the mapping as it is
      w.dtype = t->dtype;
      w.data = t->data;
      m_.usesStore = true;
      m_.bytes += t->nbytes;
      ready(*t);
      return w;
    }
    w.dtype = keep_ ? t->dtype : target_;
    const int64_t n = t->numel();
    auto buf = std::make_unique<uint8_t[]>(size_t(n) * dtypeSize(w.dtype));
    void* dst = buf.get();
    const uint64_t key = nameKey(seed_, t->name);
    pool_.parallelFor(n, 1 << 16, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i)
        storeAs(w.dtype, dst, i, t->data ? loadAsFloat(t->data, int(t->dtype), i) : dummyValue(key, uint64_t(i)));
    });
    w.data = dst;
    m_.bytes += size_t(n) * dtypeSize(w.dtype);
    m_.owned.push_back(std::move(buf));
    ready(*t);
    return w;
  }

  // isNorm: dummy value 1 (an RMSNorm weight), else uniform like a matrix.
  std::vector<float> vec(const Tensor* t, bool isNorm) {
    if (!t) return {};
    if (t->data && !isFloatDType(t->dtype))
      throw std::runtime_error("tensor " + t->name + " is " + dtypeName(t->dtype) + "; a norm or bias is float");
    std::vector<float> v(size_t(t->numel()));
    const uint64_t key = nameKey(seed_, t->name);
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = t->data ? loadAsFloat(t->data, int(t->dtype), int64_t(i)) : (isNorm ? 1.0f : dummyValue(key, i));
    m_.bytes += v.size() * sizeof(float);
    ready(*t);
    return v;
  }

 private:
  // An int8 matrix and its companions (int8_tensors.h) are used where they lie: no conversion.
  Mat int8Matrix(const Tensor& t, Mat& w) {
    const Int8Companions c = int8Companions(store_, t, w.rows, w.cols);
    w.dtype = DType::I8;
    w.data = t.data;
    w.scale = static_cast<const float*>(c.scale->data);
    w.rowSum = static_cast<const int32_t*>(c.rowSum->data);
    w.actSmooth = c.actSmooth ? static_cast<const float*>(c.actSmooth->data) : nullptr;
    m_.usesStore = true;
    m_.quantized = true;
    m_.bytes += t.nbytes + c.scale->nbytes + c.rowSum->nbytes + (c.actSmooth ? c.actSmooth->nbytes : 0);
    ready(t);
    return w;
  }

  void ready(const Tensor& t) {
    if (onTensor_) onTensor_(t.nbytes);
  }

  const WeightStore& store_;
  DType target_;
  bool keep_;
  uint64_t seed_;
  ThreadPool& pool_;
  CpuModel& m_;
  const std::function<void(size_t)>& onTensor_;
};

}  // namespace

CpuModel prepareCpuModel(const ModelConfig& cfg, const WeightStore& store, DType target, bool keepStored,
                         uint64_t seed, ThreadPool& pool, const std::function<void(size_t)>& onTensor) {
  ModelWeights w = bindLlamaWeights(cfg, store);
  CpuModel m;
  Preparer p(store, target, keepStored, seed, pool, m, onTensor);
  const int64_t H = cfg.hiddenSize, Q = int64_t(cfg.numHeads) * cfg.headDim, KV = int64_t(cfg.numKvHeads) * cfg.headDim;
  const int64_t I = cfg.intermediateSize, V = cfg.vocabSize;
  m.embed = p.matrix(w.embed, V, H);
  if (m.embed.dtype == DType::I8) throw std::runtime_error("tensor " + w.embed->name + " is int8; embeddings stay float");
  m.dtype = m.embed.dtype;
  // A quantized engine of a tied model holds its int8 head apart from the float embedding it looks rows up in.
  const Tensor* head = store.find("lm_head.weight");
  if (w.lmHead == w.embed && head && head->dtype == DType::I8) m.lmHead = p.matrix(head, V, H);
  else m.lmHead = w.lmHead == w.embed ? m.embed : p.matrix(w.lmHead, V, H);
  m.finalNorm = p.vec(w.finalNorm, true);
  for (const LayerWeights& L : w.layers) {
    CpuLayer c;
    c.inputNorm = p.vec(L.inputNorm, true);
    c.q = p.matrix(L.q, Q, H);
    c.k = p.matrix(L.k, KV, H);
    c.v = p.matrix(L.v, KV, H);
    c.qBias = p.vec(L.qBias, false);
    c.kBias = p.vec(L.kBias, false);
    c.vBias = p.vec(L.vBias, false);
    c.qNorm = p.vec(L.qNorm, true);
    c.kNorm = p.vec(L.kNorm, true);
    c.o = p.matrix(L.o, H, Q);
    c.postNorm = p.vec(L.postNorm, true);
    c.gate = p.matrix(L.gate, I, H);
    c.up = p.matrix(L.up, I, H);
    c.down = p.matrix(L.down, H, I);
    m.layers.push_back(std::move(c));
  }
  return m;
}

}  // namespace kvs
