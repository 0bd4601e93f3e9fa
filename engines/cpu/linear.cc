// Register-tiled GEMM for y = x · Wᵀ: a tile is R tokens × C output features, held in R·C vector
// accumulators over the whole K (never blocked over K: see the batch-invariance note in linear.h).
#include "linear.h"

#include <algorithm>
#include <stdexcept>

#include "int8_linear.h"
#include "simd.h"

namespace kvs {

namespace {

using simd::V;
constexpr int L = simd::kLanes;

template <DType DT>
inline V loadW(const void* w, int64_t i) {
  if constexpr (DT == DType::F32) return simd::load(static_cast<const float*>(w) + i);
  if constexpr (DT == DType::BF16) return simd::loadBf16(static_cast<const uint16_t*>(w) + i);
  if constexpr (DT == DType::F16) return simd::loadF16(static_cast<const uint16_t*>(w) + i);
}

template <DType DT>
inline float wAt(const void* w, int64_t i) { return loadAsFloat(w, static_cast<int>(DT), i); }

// y[r*ldy + c] = sum_k x[r*ldx + k] * w[(c*K + k)] (+ bias[c]) for r < R, c < C. `w` points at row n0.
// `prefetch`, when set, is the next tile's weights (C rows of K), pulled into cache alongside this sweep so
// that the next tile does not wait on memory.
template <int R, int C, DType DT>
void tile(const float* x, int64_t ldx, const void* w, int64_t K, const float* bias, float* y, int64_t ldy,
          const void* prefetch = nullptr) {
  V acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = simd::zero();
  const int64_t kMain = K - K % L;
  constexpr int64_t esz = DT == DType::F32 ? 4 : 2;
  for (int64_t k = 0; k < kMain; k += L) {
#if defined(KVS_SIMD_AVX512) || defined(KVS_SIMD_AVX2)
    if (prefetch && (k * esz) % 64 == 0)
      for (int c = 0; c < C; ++c)
        _mm_prefetch(static_cast<const char*>(prefetch) + (c * K + k) * esz, _MM_HINT_T0);
#endif
    V wv[C];
    for (int c = 0; c < C; ++c) {
      wv[c] = loadW<DT>(w, c * K + k);
#if defined(KVS_SIMD_AVX512) || defined(KVS_SIMD_AVX2)
      // Keep each weight vector in a register: otherwise GCC folds the float32 load into every one of
      // the R FMAs that use it, and the kernel becomes load-bound (R×C loads instead of R+C per step).
      asm("" : "+v"(wv[c]));
#endif
    }
    for (int r = 0; r < R; ++r) {
      V xv = simd::load(x + r * ldx + k);
      for (int c = 0; c < C; ++c) acc[r][c] = simd::fma(xv, wv[c], acc[r][c]);
    }
  }
  if (kMain < K) {  // the tail, zero-padded to a full vector: 0·0 leaves the other lanes unchanged
    alignas(64) float wt[C][L] = {};
    alignas(64) float xt[L] = {};
    for (int c = 0; c < C; ++c)
      for (int64_t k = kMain; k < K; ++k) wt[c][k - kMain] = wAt<DT>(w, c * K + k);
    for (int r = 0; r < R; ++r) {
      for (int64_t k = kMain; k < K; ++k) xt[k - kMain] = x[r * ldx + k];
      V xv = simd::load(xt);
      for (int c = 0; c < C; ++c) acc[r][c] = simd::fma(xv, simd::load(wt[c]), acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) y[r * ldy + c] = bias ? simd::sum(acc[r][c]) + bias[c] : simd::sum(acc[r][c]);
}

// A 4×6 tile holds 24 accumulators + 6 weight vectors + 1 activation vector in the 32 AVX-512 registers.
// The 6 weight rows of a tile stay in L1 while the tile sweeps the token block's x rows (kept in L2).
constexpr int kTileR = 4, kTileC = 6;
constexpr int64_t kBlockBytesX = 512 * 1024;  // x rows of one token block: about half of L2

template <int C, DType DT>
void rowsTail(const float* x, int64_t ldx, int64_t rows, const void* w, int64_t K, const float* bias, float* y,
              int64_t ldy, const void* prefetch = nullptr) {
  switch (rows) {
    case 1: tile<1, C, DT>(x, ldx, w, K, bias, y, ldy, prefetch); break;
    case 2: tile<2, C, DT>(x, ldx, w, K, bias, y, ldy, prefetch); break;
    case 3: tile<3, C, DT>(x, ldx, w, K, bias, y, ldy, prefetch); break;
    default: break;
  }
}

// Output features [n0, n1) for all T tokens.
template <DType DT>
void linearRange(const float* x, int64_t ldx, int64_t T, const Mat& w, const float* bias, float* y, int64_t ldy,
                 int64_t n0, int64_t n1) {
  const int64_t K = w.cols;
  const size_t esz = dtypeSize(DT);
  auto wRow = [&](int64_t n) { return static_cast<const uint8_t*>(w.data) + n * K * esz; };
  const int64_t blockT = std::max<int64_t>(kTileR, kBlockBytesX / (K * 4) / kTileR * kTileR);
  for (int64_t t0 = 0; t0 < T; t0 += blockT) {
    const int64_t t1 = std::min(T, t0 + blockT);
    int64_t n = n0;
    for (; n + kTileC <= n1; n += kTileC) {
      const float* b = bias ? bias + n : nullptr;
      // The first sweep over this tile's weights fetches the next tile's. (Fetching further ahead for
      // decode measured no better here.)
      const void* pf = n + 2 * kTileC <= n1 ? wRow(n + kTileC) : nullptr;
      int64_t t = t0;
      for (; t + kTileR <= t1; t += kTileR, pf = nullptr)
        tile<kTileR, kTileC, DT>(x + t * ldx, ldx, wRow(n), K, b, y + t * ldy + n, ldy, pf);
      rowsTail<kTileC, DT>(x + t * ldx, ldx, t1 - t, wRow(n), K, b, y + t * ldy + n, ldy, pf);
    }
    for (; n < n1; ++n) {
      const float* b = bias ? bias + n : nullptr;
      int64_t t = t0;
      for (; t + kTileR <= t1; t += kTileR) tile<kTileR, 1, DT>(x + t * ldx, ldx, wRow(n), K, b, y + t * ldy + n, ldy);
      rowsTail<1, DT>(x + t * ldx, ldx, t1 - t, wRow(n), K, b, y + t * ldy + n, ldy);
    }
  }
}

void linearRangeAny(const float* x, int64_t ldx, int64_t T, const QuantizedActs& xq, const LinearOut& o, int64_t n0,
                    int64_t n1) {
  switch (o.w->dtype) {
    case DType::F32: linearRange<DType::F32>(x, ldx, T, *o.w, o.bias, o.y, o.ldy, n0, n1); break;
    case DType::BF16: linearRange<DType::BF16>(x, ldx, T, *o.w, o.bias, o.y, o.ldy, n0, n1); break;
    case DType::F16: linearRange<DType::F16>(x, ldx, T, *o.w, o.bias, o.y, o.ldy, n0, n1); break;
    case DType::I8: int8LinearRange(xq, *o.w, o.bias, o.y, o.ldy, n0, n1); break;
    case DType::I32: break;  // never a matrix (cpu_weights.cc refuses one)
  }
}

// The calling thread's quantized activations, grown to the largest batch seen (the pool's workers read the
// caller's copy: it is captured by reference, never looked up on the worker).
thread_local QuantizedActs tActs;

}  // namespace

void linearMulti(ThreadPool& pool, const float* x, int64_t ldx, int64_t T, std::initializer_list<LinearOut> outs) {
  const Mat* quantized = nullptr;
  for (const LinearOut& o : outs) {
    if (o.w->dtype != DType::I8) continue;
    if (quantized && quantized->actSmooth != o.w->actSmooth)
      throw std::logic_error("linearMulti: int8 outputs of one input must share actSmooth");
    quantized = o.w;
  }
  QuantizedActs& xq = tActs;
  if (quantized) quantizeActs(pool, x, ldx, T, quantized->cols, quantized->actSmooth, xq);
  // Work items: (output, first row, end row). Below ~32k multiply-adds in all a fork-join costs more than
  // it saves; above, about four chunks per thread (multiples of the tile width) over all outputs, so a
  // descheduled thread's share is taken by the others.
  struct Item { const LinearOut* o; int64_t n0, n1; };
  constexpr int kMaxItems = 64;
  int64_t rows = 0, work = 0;
  for (const LinearOut& o : outs) { rows += o.w->rows; work += T * o.w->rows * o.w->cols; }
  int64_t grain = rows;
  // Chunks start on a tile of the float kernel and, with int8 outputs, on a packed block of 16 rows.
  const int64_t unit = quantized ? 48 : kTileC;
  if (work >= 32768) {
    grain = (rows + 4 * pool.size() - 1) / (4 * pool.size());
    grain = std::max<int64_t>(unit * (quantized ? 1 : 4), (grain + unit - 1) / unit * unit);
  }
  auto count = [&](int64_t g) { int64_t c = 0; for (const LinearOut& o : outs) c += (o.w->rows + g - 1) / g; return c; };
  while (count(grain) > kMaxItems) grain *= 2;  // stays a multiple of unit (grain = rows is one item per output)
  Item items[kMaxItems];
  int numItems = 0;
  for (const LinearOut& o : outs)
    for (int64_t n = 0; n < o.w->rows; n += grain) items[numItems++] = {&o, n, std::min(o.w->rows, n + grain)};
  pool.parallelFor(numItems, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) linearRangeAny(x, ldx, T, xq, *items[i].o, items[i].n0, items[i].n1);
  });
}

void linear(ThreadPool& pool, const float* x, int64_t ldx, int64_t T, const Mat& w, const float* bias, float* y,
            int64_t ldy) {
  linearMulti(pool, x, ldx, T, {LinearOut{&w, bias, y, ldy}});
}

}  // namespace kvs
