// GemmRunner's int8 linear layers (gemm.h states the scheme): X quantized per row into the runner's scratch
// (with the layer's SmoothQuant multiplier), then per M bucket the int8 GEMV, or cuBLASLt's IMMA matmul into
// int32 and its dequantization. Candidates are timed on what a call costs past the common quantization: the
// GEMV against matmul plus dequantization.
#include <algorithm>
#include <cstdint>
#include <string>

#include "cuda_check.h"
#include "gemm.h"
#include "kvserve_kernels.h"

namespace kvs::cuda {

bool GemmRunner::int8GemvApplies(int M, int N, int K, DType io) const {
  return kvsk_gemv_int8_supported(M, N, K, static_cast<kvsk_dtype>(io));
}

void GemmRunner::reserveInt8Scratch(int M, int N, int K) {
  int8X_.resize(static_cast<size_t>(M) * K);
  int8Scale_.resize(static_cast<size_t>(M) * sizeof(float));
  int8Acc_.resize(static_cast<size_t>(M) * N * sizeof(int32_t));
}

GemmRunner::Plan GemmRunner::makePlanInt8(int N, int K) {
  // As makePlan: acc^T [N, M] = W8 [K, N]^T * xq^T [K, M], all int8 in, int32 out.
  return makePlan(N, K, CUBLAS_COMPUTE_32I, CUDA_R_32I, CUDA_R_8I, CUDA_R_32I);
}

GemmRunner::Plan& GemmRunner::getInt8(int N, int K, DType io, const void* W8, const float* wScale, int maxM) {
  if (io != DType::BF16 && io != DType::F16)
    throw std::runtime_error(std::string("int8 GEMM: activations must be bfloat16 or float16, not ") + dtypeName(io));
  if (K < 16 || K % 16 != 0) throw std::runtime_error("int8 GEMM: K = " + std::to_string(K) + " is not a multiple of 16");
  if (N % 4 != 0) throw std::runtime_error("int8 GEMM: N = " + std::to_string(N) + " is not a multiple of 4");
  const Fp8Key key{N, K, static_cast<int>(io)};
  auto it = int8Plans_.find(key);
  if (it != int8Plans_.end()) return it->second;
  const int limit = maxM > 0 ? std::min(maxM, maxM_) : maxM_;
  Plan p = makePlanInt8(N, K);
  try {
    planFastInt8(p, N, K, io, W8, wScale, limit);
  } catch (const std::exception& e) {
    destroyPlan(p);
    throw std::runtime_error("cuBLASLt has no int8 (IMMA, int32 output) algorithm for a " + std::to_string(N) + "x" +
                             std::to_string(K) + " GEMM (" + e.what() + "; it needs compute capability 8.0+)");
  }
  return int8Plans_.emplace(key, p).first->second;
}

void GemmRunner::planInt8(int N, int K, DType io, const void* W8, const float* wScale, int maxM) {
  getInt8(N, K, io, W8, wScale, maxM);
}

void GemmRunner::quantizeInt8(const void* X, const float* actSmooth, int M, int K, DType io) {
  kvsk_quantize_rows_int8_params q{X, actSmooth, int8X_.get(), int8Scale_.get<float>(), M, K, static_cast<kvsk_dtype>(io)};
  KVS_CUDA_CHECK(kvsk_quantize_rows_int8(&q, stream_));
}

cublasStatus_t GemmRunner::productInt8(Plan& p, const Bucket& b, const void* W8, const float* wScale, void* Y, int M, int N,
                                       int K, DType io) {
  const kvsk_dtype kio = static_cast<kvsk_dtype>(io);
  if (b.gemv) {
    kvsk_gemv_int8_params g{int8X_.get(), int8Scale_.get<float>(), W8, wScale, Y, M, N, K, kio, b.gemvRows};
    KVS_CUDA_CHECK(kvsk_gemv_int8(&g, stream_));
    return CUBLAS_STATUS_SUCCESS;
  }
  setCols(p.b, M);
  setCols(p.d, M);
  const int32_t alpha = 1, beta = 0;
  const cublasStatus_t st = cublasLtMatmul(handle_, p.desc, &alpha, W8, p.a, int8X_.get(), p.b, &beta, int8Acc_.get(), p.d,
                                           int8Acc_.get(), p.d, &b.algo, workspace_, workspaceBytes_, stream_);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  kvsk_dequant_int8_params d{int8Acc_.get<int32_t>(), int8Scale_.get<float>(), wScale, Y, M, N, kio};
  KVS_CUDA_CHECK(kvsk_dequant_int8(&d, stream_));
  return CUBLAS_STATUS_SUCCESS;
}

// As planFastFp8: per bucket (lo, hi], the int8 GEMV where it serves both ends (16, 32 or 64 rows per CTA, the
// same bits) and the heuristic's top cuBLASLt candidates at M = hi that also pass cublasLtMatmulAlgoCheck at
// lo + 1; with W8 and wScale given, each is timed on them (on random X quantized once), the fastest kept;
// without, the GEMV wins where it serves, else the heuristic's first pick.
void GemmRunner::planFastInt8(Plan& p, int N, int K, DType io, const void* W8, const float* wScale, int maxM) {
  reserveInt8Scratch(maxM, N, K);
  FastCandidates c;
  c.in = c.out = io;
  c.gemvRows = {16, 32, 64};
  c.gemvServes = [&](int M) { return int8GemvApplies(M, N, K, io); };
  c.prepare = [&](const void* x) { quantizeInt8(x, nullptr, maxM, K, io); };  // the candidates read the scratch
  c.gemv = [&](int M, int rows, const void*, void* y) {
    productInt8(p, Bucket{M, true, {}, 0, rows}, W8, wScale, y, M, N, K, io);
  };
  c.matmul = [&](int M, const cublasLtMatmulAlgo_t& algo, const void*, void* y) {
    return productInt8(p, Bucket{M, false, algo, 0, 0}, W8, wScale, y, M, N, K, io) == CUBLAS_STATUS_SUCCESS;
  };
  planBuckets(p, N, K, maxM, W8 && wScale, c);
}

void GemmRunner::runInt8(const void* X, const float* actSmooth, const void* W8, const float* wScale, void* Y, int M, int N,
                         int K, DType io) {
  if (M <= 0) return;
  if (M > maxM_) throw std::runtime_error("int8 GEMM with M=" + std::to_string(M) + " > planned maximum " + std::to_string(maxM_));
  if ((reinterpret_cast<uintptr_t>(X) | reinterpret_cast<uintptr_t>(actSmooth) | reinterpret_cast<uintptr_t>(W8) |
       reinterpret_cast<uintptr_t>(wScale) | reinterpret_cast<uintptr_t>(Y)) % 16 != 0)
    throw std::runtime_error("int8 GEMM: X, actSmooth, W8, wScale and Y must be 16-byte aligned");
  Plan& p = getInt8(N, K, io, nullptr, nullptr, 0);
  quantizeInt8(X, actSmooth, M, K, io);
  KVS_CUBLAS_CHECK(productInt8(p, bucketFor(p, M), W8, wScale, Y, M, N, K, io));
}

bool GemmRunner::int8UsesGemv(int N, int K, DType io, int M) { return bucketFor(getInt8(N, K, io, nullptr, nullptr, 0), M).gemv; }

std::string GemmRunner::describeInt8(int N, int K, DType io) { return describeBuckets(getInt8(N, K, io, nullptr, nullptr, 0)); }

}  // namespace kvs::cuda
