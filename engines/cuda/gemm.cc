#include "gemm.h"

#include <cstdint>
#include <string>

#include "cuda_check.h"

namespace kvs::cuda {

namespace {

cudaDataType_t cudaType(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
  }
  return CUDA_R_32F;
}

void setCols(cublasLtMatrixLayout_t l, int cols) {
  const uint64_t c = static_cast<uint64_t>(cols);
  KVS_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_COLS, &c, sizeof(c)));
}

}  // namespace

GemmRunner::GemmRunner(cudaStream_t stream, int maxM, int probeM, size_t workspaceBytes)
    : stream_(stream), maxM_(maxM < 1 ? 1 : maxM), probeM_(probeM >= 1 && probeM <= maxM_ ? probeM : maxM_),
      workspaceBytes_(workspaceBytes) {
  KVS_CUBLAS_CHECK(cublasLtCreate(&handle_));
  KVS_CUDA_CHECK(cudaMalloc(&workspace_, workspaceBytes_));
}

GemmRunner::~GemmRunner() {
  for (auto& [k, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.d);
    cublasLtMatmulDescDestroy(p.desc);
  }
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

void GemmRunner::plan(int N, int K, DType in, DType out) { get(N, K, in, out); }

GemmRunner::Plan& GemmRunner::get(int N, int K, DType in, DType out) {
  const Key key{N, K, static_cast<int>(in), static_cast<int>(out)};
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan p;
  // Column-major view: Y^T [N, M] = W [K, N]^T * X^T [K, M]; W row-major [N, K] is column-major [K, N].
  KVS_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
  KVS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)));
  KVS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)));
  KVS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, cudaType(in), K, N, K));
  KVS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, cudaType(in), K, maxM_, K));
  KVS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, cudaType(out), N, maxM_, N));

  cublasLtMatmulPreference_t pref;
  KVS_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  KVS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                        &workspaceBytes_, sizeof(workspaceBytes_)));
  // Candidates: the heuristic's list at probeM first, then at other M. The first one that, with split-K
  // forced off, is valid both at maxM and at M = 1 is kept.
  bool found = false;
  for (int probeM : {probeM_, maxM_, 256, 64, 16, 1}) {
    if (found || probeM > maxM_) continue;
    setCols(p.b, probeM);
    setCols(p.d, probeM);
    cublasLtMatmulHeuristicResult_t results[16];
    int count = 0;
    if (cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.d, p.d, pref, 16, results, &count) !=
        CUBLAS_STATUS_SUCCESS)
      continue;
    for (int i = 0; i < count && !found; ++i) {
      cublasLtMatmulAlgo_t algo = results[i].algo;
      const int32_t one = 1;
      const uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
      cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one, sizeof(one));
      cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &none, sizeof(none));
      int32_t splitk = 0;
      size_t w = 0;
      cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof(splitk), &w);
      bool ok = splitk <= 1;
      for (int m : {maxM_, 1}) {
        setCols(p.b, m);
        setCols(p.d, m);
        cublasLtMatmulHeuristicResult_t check;
        ok = ok && cublasLtMatmulAlgoCheck(handle_, p.desc, p.a, p.b, p.d, p.d, &algo, &check) == CUBLAS_STATUS_SUCCESS &&
             check.workspaceSize <= workspaceBytes_;
      }
      if (ok) { p.algo = algo; found = true; }
    }
  }
  cublasLtMatmulPreferenceDestroy(pref);
  if (!found)
    throw std::runtime_error("cuBLASLt has no batch-invariant algorithm for a " + std::to_string(N) + "x" +
                             std::to_string(K) + " " + dtypeName(in) + " GEMM");
  return plans_.emplace(key, p).first->second;
}

void GemmRunner::run(const void* X, const void* W, void* Y, int M, int N, int K, DType in, DType out) {
  if (M <= 0) return;
  if (M > maxM_) throw std::runtime_error("GEMM with M=" + std::to_string(M) + " > planned maximum " + std::to_string(maxM_));
  Plan& p = get(N, K, in, out);
  setCols(p.b, M);
  setCols(p.d, M);
  const float alpha = 1.f, beta = 0.f;
  KVS_CUBLAS_CHECK(cublasLtMatmul(handle_, p.desc, &alpha, W, p.a, X, p.b, &beta, Y, p.d, Y, p.d, &p.algo,
                                  workspace_, workspaceBytes_, stream_));
}

std::string GemmRunner::describe(int N, int K, DType in, DType out) {
  Plan& p = get(N, K, in, out);
  int32_t id = 0, tile = 0, stages = 0, splitk = 0;
  size_t w = 0;
  cublasLtMatmulAlgoConfigGetAttribute(&p.algo, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof(id), &w);
  cublasLtMatmulAlgoConfigGetAttribute(&p.algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof(tile), &w);
  cublasLtMatmulAlgoConfigGetAttribute(&p.algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof(stages), &w);
  cublasLtMatmulAlgoConfigGetAttribute(&p.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof(splitk), &w);
  return "algo " + std::to_string(id) + " tile " + std::to_string(tile) + " stages " + std::to_string(stages) +
         " splitK " + std::to_string(splitk);
}

}  // namespace kvs::cuda
