// GemmRunner's FP8 linear layers (gemm.h states the scheme): per fast-mode M bucket, the FP8 GEMV on X as it is,
// or X quantized per row into the runner's scratch (or by its producer: the runFp8 overload on Xq) and
// cuBLASLt's FP8 matmul with outer-vector scales. A cuBLASLt candidate is timed together with the
// quantization pass, so the GEMV and cuBLASLt compete on what a call costs without a fused producer; the plan
// is the same whichever way X arrives, so a fused and an unfused forward pass run the same algorithms.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cuda_check.h"
#include "gemm.h"
#include "kvserve_kernels.h"

namespace kvs::cuda {

namespace {

cudaDataType_t ioType(DType io) { return io == DType::F16 ? CUDA_R_16F : CUDA_R_16BF; }

}  // namespace

int fp8GemvVersionFromEnv() {
  const char* v = std::getenv("KVSERVE_GEMV_FP8");
  if (!v || !*v || std::string(v) == "v2") return 2;
  if (std::string(v) == "v1") return 1;
  throw std::runtime_error(std::string("KVSERVE_GEMV_FP8 must be v1 or v2, not \"") + v + "\"");
}

void GemmRunner::requireFast(const char* what) const {
  if (mode_ != GemmMode::Fast)
    throw std::runtime_error(std::string(what) + ": FP8 linear layers are not offered with --batch-invariant yet "
                             "(the FP8 GEMV and cuBLASLt's FP8 kernels do not share one sum order across M)");
}

bool GemmRunner::fp8GemvApplies(int M, int N, int K, DType io) const {
  return mode_ == GemmMode::Fast && kvsk_gemv_fp8_supported(M, N, K, static_cast<kvsk_dtype>(io));
}

void GemmRunner::reserveFp8Scratch(int M, int K) {
  fp8X_.resize(static_cast<size_t>(M) * K);
  fp8Scale_.resize(static_cast<size_t>(M) * sizeof(float));
}

void GemmRunner::setFp8Scales(Plan& p, const float* wScale, const float* xScale) {
  const void* a = wScale ? static_cast<const void*>(wScale) : fp8Scale_.get();  // null: a stand-in for queries
  const void* b = xScale ? static_cast<const void*>(xScale) : fp8Scale_.get();
  KVS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a, sizeof(a)));
  KVS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b, sizeof(b)));
}

GemmRunner::Plan GemmRunner::makePlanFp8(int N, int K, DType io) {
  // As makePlan: D^T [N, M] = W8 [K, N]^T * xq^T [K, M]; A's outer vector runs along N (cuBLAS's m: wScale), B's
  // along M (cuBLAS's n: xScale).
  Plan p = makePlan(N, K, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_8F_E4M3, ioType(io));
  try {
    const cublasLtMatmulMatrixScale_t outer = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    KVS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &outer, sizeof(outer)));
    KVS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &outer, sizeof(outer)));
  } catch (...) {
    destroyPlan(p);
    throw;
  }
  return p;
}

GemmRunner::Plan& GemmRunner::getFp8(int N, int K, DType io, const void* W8, const float* wScale, int maxM) {
  requireFast("FP8 GEMM");
  if (io != DType::BF16 && io != DType::F16)
    throw std::runtime_error(std::string("FP8 GEMM: activations must be bfloat16 or float16, not ") + dtypeName(io));
  if (K < 16 || K % 16 != 0) throw std::runtime_error("FP8 GEMM: K = " + std::to_string(K) + " is not a multiple of 16");
  const Fp8Key key{N, K, static_cast<int>(io)};
  auto it = fp8Plans_.find(key);
  if (it != fp8Plans_.end()) return it->second;
  const int limit = maxM > 0 ? std::min(maxM, maxM_) : maxM_;
  Plan p = makePlanFp8(N, K, io);
  try {
    planFastFp8(p, N, K, io, W8, wScale, limit);
  } catch (const std::exception& e) {
    destroyPlan(p);
    throw std::runtime_error("cuBLASLt has no FP8 (e4m3, outer-vector scales) algorithm for a " + std::to_string(N) + "x" +
                             std::to_string(K) + " " + dtypeName(io) + " GEMM (" + e.what() +
                             "; it needs cuBLAS 12.9+ on sm_90 and 16-byte aligned dimensions)");
  }
  return fp8Plans_.emplace(key, p).first->second;
}

void GemmRunner::planFp8(int N, int K, DType io, const void* W8, const float* wScale, int maxM) {
  getFp8(N, K, io, W8, wScale, maxM);
}

void GemmRunner::quantizeFp8(const void* X, int M, int K, DType io) {
  kvsk_quantize_rows_fp8_params q{X, fp8X_.get(), fp8Scale_.get<float>(), M, K, static_cast<kvsk_dtype>(io)};
  KVS_CUDA_CHECK(kvsk_quantize_rows_fp8(&q, stream_));
}

cublasStatus_t GemmRunner::matmulFp8(Plan& p, const cublasLtMatmulAlgo_t& algo, const void* Xq, const float* xScale,
                                     const void* W8, const float* wScale, void* Y, int M) {
  // Per call: one plan serves every layer of the shape, each with its own wScale, and X's scales come from the
  // scratch or from the caller.
  setFp8Scales(p, wScale, xScale);
  setCols(p.b, M);
  setCols(p.d, M);
  const float alpha = 1.f, beta = 0.f;
  return cublasLtMatmul(handle_, p.desc, &alpha, W8, p.a, Xq, p.b, &beta, Y, p.d, Y, p.d, &algo, workspace_,
                        workspaceBytes_, stream_);
}

// As planFast: per bucket (lo, hi], the FP8 GEMV where it serves both ends (16, 32 or 64 rows per CTA, the
// same sums) and the heuristic's top cuBLASLt candidates at M = hi that also pass cublasLtMatmulAlgoCheck at
// lo + 1; with W8 and wScale given, each is timed on them with random X (cuBLASLt: quantization included), the
// fastest kept; without, the GEMV wins where it serves, else the heuristic's first pick.
void GemmRunner::planFastFp8(Plan& p, int N, int K, DType io, const void* W8, const float* wScale, int maxM) {
  const kvsk_dtype kio = static_cast<kvsk_dtype>(io);
  reserveFp8Scratch(maxM, K);
  setFp8Scales(p, wScale);  // the queries below see a descriptor as complete as a call's
  FastCandidates c;
  c.in = c.out = io;
  c.gemvRows = {16, 32, 64};
  c.gemvServes = [&](int M) { return fp8GemvApplies(M, N, K, io); };
  c.gemv = [&](int M, int rows, const void* x, void* y) {
    kvsk_gemv_fp8_params g{x, W8, wScale, y, M, N, K, kio, rows, fp8GemvVersion_, fp8GemvTrigger_};
    KVS_CUDA_CHECK(kvsk_gemv_fp8(&g, stream_));
  };
  c.matmul = [&](int M, const cublasLtMatmulAlgo_t& algo, const void* x, void* y) {
    quantizeFp8(x, M, K, io);
    return matmulFp8(p, algo, fp8X_.get(), fp8Scale_.get<float>(), W8, wScale, y, M) == CUBLAS_STATUS_SUCCESS;
  };
  planBuckets(p, N, K, maxM, W8 && wScale, c);
}

void GemmRunner::runFp8(const void* X, const void* W8, const float* wScale, void* Y, int M, int N, int K, DType io) {
  if (M <= 0) return;
  requireFast("FP8 GEMM");
  if (M > maxM_) throw std::runtime_error("FP8 GEMM with M=" + std::to_string(M) + " > planned maximum " + std::to_string(maxM_));
  if ((reinterpret_cast<uintptr_t>(X) | reinterpret_cast<uintptr_t>(W8) | reinterpret_cast<uintptr_t>(wScale) |
       reinterpret_cast<uintptr_t>(Y)) % 16 != 0)
    throw std::runtime_error("FP8 GEMM: X, W8, wScale and Y must be 16-byte aligned");
  Plan& p = getFp8(N, K, io, nullptr, nullptr, 0);
  const Bucket& b = bucketFor(p, M);
  if (b.gemv) {
    kvsk_gemv_fp8_params g{X, W8, wScale, Y, M, N, K, static_cast<kvsk_dtype>(io), b.gemvRows, fp8GemvVersion_,
                           fp8GemvTrigger_};
    KVS_CUDA_CHECK(kvsk_gemv_fp8(&g, stream_));
    return;
  }
  quantizeFp8(X, M, K, io);
  KVS_CUBLAS_CHECK(matmulFp8(p, b.algo, fp8X_.get(), fp8Scale_.get<float>(), W8, wScale, Y, M));
}

void GemmRunner::runFp8(const void* Xq, const float* xScale, const void* W8, const float* wScale, void* Y, int M, int N,
                        int K, DType io) {
  if (M <= 0) return;
  requireFast("FP8 GEMM");
  if (M > maxM_) throw std::runtime_error("FP8 GEMM with M=" + std::to_string(M) + " > planned maximum " + std::to_string(maxM_));
  if ((reinterpret_cast<uintptr_t>(Xq) | reinterpret_cast<uintptr_t>(xScale) | reinterpret_cast<uintptr_t>(W8) |
       reinterpret_cast<uintptr_t>(wScale) | reinterpret_cast<uintptr_t>(Y)) % 16 != 0)
    throw std::runtime_error("FP8 GEMM: Xq, xScale, W8, wScale and Y must be 16-byte aligned");
  Plan& p = getFp8(N, K, io, nullptr, nullptr, 0);
  const Bucket& b = bucketFor(p, M);
  if (b.gemv)
    throw std::runtime_error("FP8 GEMM on quantized X at M=" + std::to_string(M) + ": the plan of " + std::to_string(N) + "x" +
                             std::to_string(K) + " runs the FP8 GEMV there, which reads X unquantized (ask fp8UsesGemv first)");
  KVS_CUBLAS_CHECK(matmulFp8(p, b.algo, Xq, xScale, W8, wScale, Y, M));
}

bool GemmRunner::fp8UsesGemv(int N, int K, DType io, int M) { return bucketFor(getFp8(N, K, io, nullptr, nullptr, 0), M).gemv; }

int GemmRunner::fp8GemvV2Rows(int M, int N, int K, DType io) {
  if (fp8GemvVersion_ != 2 || M <= 0 || M > maxM_) return 0;
  const Bucket& b = bucketFor(getFp8(N, K, io, nullptr, nullptr, 0), M);
  return b.gemv ? b.gemvRows : 0;
}

std::string GemmRunner::describeFp8(int N, int K, DType io) {
  const std::string s = describeBuckets(getFp8(N, K, io, nullptr, nullptr, 0));
  return fp8GemvVersion_ == 1 ? s : s + " (gemv_fp8 v" + std::to_string(fp8GemvVersion_) + ")";
}

}  // namespace kvs::cuda
