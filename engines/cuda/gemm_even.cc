// GemmRunner's even GEMV (kernels/gemv_even.cu, on unless KVSERVE_GEMV_EVEN=0; gemm.h states where it enters the
// plans): the switch, the kernel's workspace and its launch. The grid is one wave of the kernel's CTAs on this
// device (kvsk_gemv_even_ctas), a function of N and K alone, so every M bucket of a shape runs the same pieces and
// a row's bits do not depend on M.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "../env_flag.h"
#include "cuda_check.h"
#include "gemm.h"
#include "kvserve_kernels.h"

namespace kvs::cuda {

bool gemvEvenFromEnv() { return envFlag("KVSERVE_GEMV_EVEN", true); }

int GemmRunner::gemvEvenCtas(int N, int K) const {
  const int ctas = kvsk_gemv_even_ctas(N, K, numSms_);
  if (ctas < 1) throw std::runtime_error("the even GEMV: the occupancy query of its kernel failed");
  return ctas;
}

void GemmRunner::reserveEven(int N, int K) {
  const size_t need = kvsk_gemv_even_workspace_bytes(gemvEvenCtas(N, K));
  if (need <= evenWorkspace_.bytes()) return;
  KVS_CUDA_CHECK(cudaStreamSynchronize(stream_));  // no call in flight uses the old one
  evenWorkspace_.resize(need);
  KVS_CUDA_CHECK(cudaMemsetAsync(evenWorkspace_.get(), 0, need, stream_));  // counters start at zero; calls leave them so
}

void GemmRunner::runEven(const void* X, const void* W, void* Y, int M, int N, int K, DType in) {
  const kvsk_gemv_even_params g{X, W, Y, M, N, K, static_cast<kvsk_dtype>(in), gemvEvenCtas(N, K), evenWorkspace_.get(),
                                evenWorkspace_.bytes()};
  KVS_CUDA_CHECK(kvsk_gemv_even(&g, stream_));
}

}  // namespace kvs::cuda
