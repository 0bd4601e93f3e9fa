#include "int8_tensors.h"

#include <stdexcept>

namespace kvs {

namespace {

const Tensor* companion(const WeightStore& store, const std::string& name, DType dtype, int64_t n, bool required) {
  const Tensor* t = store.find(name);
  if (!t) {
    if (required) throw std::runtime_error("missing tensor " + name + " (an int8 matrix needs it)");
    return nullptr;
  }
  if (t->dtype != dtype)
    throw std::runtime_error("tensor " + name + " is " + dtypeName(t->dtype) + ", expected " + dtypeName(dtype));
  if (t->shape != std::vector<int64_t>{n})
    throw std::runtime_error("tensor " + name + " has shape " + shapeString(t->shape) + ", expected [" + std::to_string(n) + "]");
  return t;
}

}  // namespace

std::string moduleOf(const std::string& weightName) {
  const std::string suffix = ".weight";
  if (weightName.size() > suffix.size() && weightName.compare(weightName.size() - suffix.size(), suffix.size(), suffix) == 0)
    return weightName.substr(0, weightName.size() - suffix.size());
  return weightName;
}

Int8Companions int8Companions(const WeightStore& store, const Tensor& w, int64_t N, int64_t K) {
  if (w.shape != packedInt8Shape(N, K))
    throw std::runtime_error("int8 tensor " + w.name + " has shape " + shapeString(w.shape) + ", expected " +
                             shapeString(packedInt8Shape(N, K)) + " (the packed layout of [" + std::to_string(N) + ", " +
                             std::to_string(K) + "])");
  const std::string m = moduleOf(w.name);
  Int8Companions c;
  c.scale = companion(store, m + ".weight_scale", DType::F32, N, true);
  c.rowSum = companion(store, m + ".weight_sum", DType::I32, N, true);
  c.actSmooth = companion(store, m + ".act_smooth", DType::F32, K, false);
  return c;
}

void refuseIntegerTensors(const WeightStore& store, const std::string& dir) {
  for (const auto& [name, t] : store.all())
    if (!isFloatDType(t.dtype))
      throw std::runtime_error("tensor " + name + " in " + dir + " is " + dtypeName(t.dtype) + ": a model folder holds float " +
                               "weights (a quantized engine made by kvserve build is loaded with --engine " + dir + ")");
}

void checkInt8Tensors(const WeightStore& store) {
  for (const auto& [name, t] : store.all()) {
    if (t.dtype != DType::I8) continue;
    if (t.shape.size() != 4 || t.shape[2] != 16 || t.shape[3] != 4)
      throw std::runtime_error("int8 tensor " + name + " has shape " + shapeString(t.shape) + ", expected the packed [N/16, K/4, 16, 4]");
    const std::string m = moduleOf(name);
    const Tensor* scale = store.find(m + ".weight_scale");
    const Tensor* smooth = store.find(m + ".act_smooth");
    if (!scale || scale->shape.size() != 1 || packedInt8Blocks(scale->shape[0]) != t.shape[0])
      throw std::runtime_error("int8 tensor " + name + " needs " + m + ".weight_scale of " + std::to_string(t.shape[0] * 16 - 15) +
                               " .. " + std::to_string(t.shape[0] * 16) + " rows");
    const int64_t N = scale->shape[0], G = t.shape[1];
    const int64_t K = smooth && smooth->shape.size() == 1 ? smooth->shape[0] : G * 4;
    int8Companions(store, t, N, K);
    if (!t.data) continue;  // dummy
    // In storage order, one block of 16 rows at a time: a sequential pass over the bytes.
    const auto* q = static_cast<const int8_t*>(t.data);
    const auto* sums = static_cast<const int32_t*>(store.find(m + ".weight_sum")->data);
    for (int64_t b = 0; b < t.shape[0]; ++b) {
      int32_t s[16] = {};
      const int8_t* block = q + b * G * 64;
      for (int64_t g = 0; g < G; ++g)
        for (int i = 0; i < 64; ++i) s[i / 4] += block[g * 64 + i];
      for (int i = 0; i < 16; ++i) {
        const int64_t n = b * 16 + i;
        if (n < N ? s[i] == sums[n] : s[i] == 0) continue;
        if (n >= N) throw std::runtime_error("tensor " + name + " has non-zero padding in row " + std::to_string(n));
        throw std::runtime_error("tensor " + name + " row " + std::to_string(n) + " sums to " + std::to_string(s[i]) +
                                 ", but " + m + ".weight_sum says " + std::to_string(sums[n]) + " (its bytes were changed)");
      }
    }
  }
}

}  // namespace kvs
