#include "quant_error.h"

#include <cmath>

#include "int8_linear.h"

namespace kvs {

std::vector<float> OutputError::reference(const Mat& w) const {
  std::vector<float> y(size_t(n_ * w.rows));
  linear(pool_, x_.data(), K_, n_, w, nullptr, y.data(), w.rows);
  return y;
}

void OutputError::trial(const std::vector<float>& w, int64_t R, const std::vector<float>& ref,
                        const std::vector<float>& s, Int8Trial& t) const {
  std::vector<float> ws = w;
  std::vector<float> inv;
  if (!s.empty()) {
    for (int64_t r = 0; r < R; ++r)
      for (int64_t k = 0; k < K_; ++k) ws[size_t(r * K_ + k)] *= s[size_t(k)];
    inv.resize(size_t(K_));
    for (int64_t k = 0; k < K_; ++k) inv[size_t(k)] = 1.0f / s[size_t(k)];
  }
  std::vector<int8_t> rowMajor(ws.size());
  t.scale.resize(size_t(R));
  t.sum.resize(size_t(R));
  quantizeWeightRows(pool_, ws.data(), R, K_, rowMajor.data(), t.scale.data(), t.sum.data());
  t.q.resize(packedInt8Bytes(R, K_));
  packInt8Rows(rowMajor.data(), R, K_, t.q.data());
  Mat qm;
  qm.dtype = DType::I8;
  qm.data = t.q.data();
  qm.rows = R;
  qm.cols = K_;
  qm.scale = t.scale.data();
  qm.rowSum = t.sum.data();
  qm.actSmooth = inv.empty() ? nullptr : inv.data();
  std::vector<float> y(size_t(n_ * R));
  linear(pool_, x_.data(), K_, n_, qm, nullptr, y.data(), R);
  double num = 0, den = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double d = double(y[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  t.error = den > 0 ? float(std::sqrt(num / den)) : (num > 0 ? 1.0f : 0.0f);
}

}  // namespace kvs
