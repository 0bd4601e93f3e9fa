// W8A8 linear layers: y = x · Wᵀ with W held as int8 with one float scale per output row, and x quantized
// per token on the fly (dynamic, symmetric, to [-127, 127]):
//   sx[t] = max_k |x[t,k] · m[k]| / 127,   qx[t,k] = round(x[t,k] · m[k] / sx[t])
//   y[t,n] = float(Σ_k qx[t,k] · qw[n,k]) · (sx[t] · sw[n]) (+ bias[n])
// where m is the matrix's SmoothQuant multiplier (Mat::actSmooth, for layers with no norm before them to
// fold it into) or 1. Each row's quantization depends on that row only and integer sums are exact, so a
// row's result does not depend on the rest of the batch, nor on the tiling, nor on the ISA (int8_dot.h).
#pragma once
#include <cstdint>
#include <vector>

#include "../int8_tensors.h"
#include "linear.h"

namespace kvs {

struct QuantizedActs {
  std::vector<uint8_t> q;    // [T, ld]: q + int8::kActOffset, each row padded with the byte of q = 0
  std::vector<float> scale;  // [T] sx
  int64_t T = 0, K = 0, ld = 0;
};

// x [T, K] with row stride ldx; mul [K] or nullptr.
void quantizeActs(ThreadPool& pool, const float* x, int64_t ldx, int64_t T, int64_t K, const float* mul,
                  QuantizedActs& out);

// Output features [n0, n1) of all xq.T rows into y (row stride ldy). w.dtype must be I8 (packed, see
// int8_tensors.h) and n0 a multiple of 16.
void int8LinearRange(const QuantizedActs& xq, const Mat& w, const float* bias, float* y, int64_t ldy, int64_t n0,
                     int64_t n1);

// Symmetric per-row quantization of a float32 matrix [rows, cols]: scale[n] = max_k |w[n,k]| / 127,
// q = round(w / scale) (ties to even), rowSum[n] = Σ_k q[n,k]. An all-zero row gets scale 0 and q 0.
// q is row-major [rows, cols].
void quantizeWeightRows(ThreadPool& pool, const float* w, int64_t rows, int64_t cols, int8_t* q, float* scale,
                        int32_t* rowSum);

// Row-major q [rows, cols] into the packed layout of int8_tensors.h (packedInt8Bytes(rows, cols) bytes,
// zero padded).
void packInt8Rows(const int8_t* q, int64_t rows, int64_t cols, int8_t* packed);

}  // namespace kvs
