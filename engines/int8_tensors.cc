#include "int8_tensors.h"

#include <stdexcept>

namespace kvs {

namespace {

std::string shapeStr(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

const Tensor* companion(const WeightStore& store, const std::string& name, DType dtype, int64_t n, bool required) {
  const Tensor* t = store.find(name);
  if (!t) {
    if (required) throw std::runtime_error("missing tensor " + name + " (an int8 matrix needs it)");
    return nullptr;
  }
  if (t->dtype != dtype)
    throw std::runtime_error("tensor " + name + " is " + dtypeName(t->dtype) + ", expected " + dtypeName(dtype));
  if (t->shape != std::vector<int64_t>{n})
    throw std::runtime_error("tensor " + name + " has shape " + shapeStr(t->shape) + ", expected [" + std::to_string(n) + "]");
  return t;
}

}  // namespace

std::string moduleOf(const std::string& weightName) {
  const std::string suffix = ".weight";
  if (weightName.size() > suffix.size() && weightName.compare(weightName.size() - suffix.size(), suffix.size(), suffix) == 0)
    return weightName.substr(0, weightName.size() - suffix.size());
  return weightName;
}

Int8Companions int8Companions(const WeightStore& store, const Tensor& w) {
  if (w.shape.size() != 2) throw std::runtime_error("int8 tensor " + w.name + " is not a matrix (shape " + shapeStr(w.shape) + ")");
  const std::string m = moduleOf(w.name);
  Int8Companions c;
  c.scale = companion(store, m + ".weight_scale", DType::F32, w.shape[0], true);
  c.rowSum = companion(store, m + ".weight_sum", DType::I32, w.shape[0], true);
  c.actSmooth = companion(store, m + ".act_smooth", DType::F32, w.shape[1], false);
  return c;
}

void checkInt8Tensors(const WeightStore& store) {
  for (const auto& [name, t] : store.all()) {
    if (t.dtype != DType::I8) continue;
    const Int8Companions c = int8Companions(store, t);
    if (!t.data) continue;  // dummy
    const auto* q = static_cast<const int8_t*>(t.data);
    const auto* sums = static_cast<const int32_t*>(c.rowSum->data);
    const int64_t rows = t.shape[0], cols = t.shape[1];
    for (int64_t n = 0; n < rows; ++n) {
      int32_t s = 0;
      for (int64_t k = 0; k < cols; ++k) s += q[n * cols + k];
      if (s != sums[n])
        throw std::runtime_error("tensor " + name + " row " + std::to_string(n) + " sums to " + std::to_string(s) + ", but " +
                                 c.rowSum->name + " says " + std::to_string(sums[n]) + " (its bytes were changed)");
    }
  }
}

}  // namespace kvs
