// y = x · Wᵀ (+ bias) with float32 activations and float32/bfloat16/float16 weights widened on the fly, or
// int8 weights with per-token int8 activations (int8_linear.h).
// Batch invariance: every output element y[t, n] is reduced in the same fixed order (lane j of a vector
// accumulator takes k ≡ j mod lanes, in increasing k; a zero-padded tail; then a fixed horizontal sum),
// whatever T is and however rows and columns are tiled or split over threads.
#pragma once
#include <cstdint>
#include <initializer_list>

#include "../model_config.h"
#include "thread_pool.h"

namespace kvs {

struct Mat {
  DType dtype = DType::F32;    // F32, BF16, F16; or I8 with the three fields below
  const void* data = nullptr;  // [rows, cols] row-major
  int64_t rows = 0;            // out features
  int64_t cols = 0;            // in features
  const float* scale = nullptr;      // I8: [rows] per-output-row dequantization scale
  const int32_t* rowSum = nullptr;   // I8: [rows] Σ_k data[n, k] (corrects the +128 activation offset of VNNI)
  const float* actSmooth = nullptr;  // I8, optional: [cols] SmoothQuant multiplier of the input activation
};

// x [T, w.cols] row stride ldx; y [T, w.rows] row stride ldy; bias [w.rows] or nullptr.
void linear(ThreadPool& pool, const float* x, int64_t ldx, int64_t T, const Mat& w, const float* bias, float* y,
            int64_t ldy);

struct LinearOut {
  const Mat* w;
  const float* bias;  // [w->rows] or nullptr
  float* y;           // [T, w->rows] with row stride ldy
  int64_t ldy;
};

// Several projections of the same x (q/k/v, gate/up) in one fork-join: each output as linear() makes it.
// At most a handful of outputs (the work list holds 64 chunks). x is quantized once for all int8 outputs,
// which must then share one actSmooth.
void linearMulti(ThreadPool& pool, const float* x, int64_t ldx, int64_t T, std::initializer_list<LinearOut> outs);

}  // namespace kvs
