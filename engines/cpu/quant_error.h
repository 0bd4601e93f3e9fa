// The output error of one int8 candidate for one linear layer, measured the way the engine will compute it:
// the weights (times the smoothing factors s) quantized per row and packed, the kept calibration inputs
// (times 1/s) quantized per token, the product through the engine's own int8 kernels, compared with the
// float product: ‖Y_int8 − Y_float‖ / ‖Y_float‖.
#pragma once
#include <cstdint>
#include <vector>

#include "linear.h"

namespace kvs {

// One candidate's int8 weights (kept, so the winner need not be quantized again) and its error.
struct Int8Trial {
  std::vector<int8_t> q;  // packed (int8_tensors.h)
  std::vector<float> scale;
  std::vector<int32_t> sum;
  float error = 0;
};

class OutputError {
 public:
  // x: [rows, K] calibration inputs; must outlive this.
  OutputError(ThreadPool& pool, const std::vector<float>& x, int64_t rows, int64_t K)
      : pool_(pool), x_(x), n_(rows), K_(K) {}

  // x · wᵀ with the float matrix as the engine holds it: [rows, w.rows].
  std::vector<float> reference(const Mat& w) const;

  // w: float32 [R, K]; ref: reference(w); s: [K] smoothing factors, empty for none.
  void trial(const std::vector<float>& w, int64_t R, const std::vector<float>& ref, const std::vector<float>& s,
             Int8Trial& t) const;

 private:
  ThreadPool& pool_;
  const std::vector<float>& x_;
  int64_t n_, K_;
};

}  // namespace kvs
