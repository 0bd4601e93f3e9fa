// Decode steps through CUDA graphs. A decode step (every sequence has one new token and samples it) is
// padded to a bucket of B = next power of two sequences and replayed from a graph captured once per
// (B, split-KV bucket, partition): the ~10 launches per layer cost one graph launch. Inputs go to a buffer of fixed
// address (graphInputs_) in the bucket's fixed layout; the block table is re-padded to the engine's
// maximum width. Padding sequences compute ignored rows (see packInputs).
//
// In --batch-invariant mode values are bit-identical to the eager path: GEMM algorithms do not depend on M
// (gemm.h), attention rows are independent, and giving every tile a split slot only turns "o / l" into a
// one-partition merge, which is the same division. In the fast mode a padded bucket B shares its GEMM
// algorithm with every M in (B/2, B] (gemm.h's buckets), but cuBLASLt may still order a row's sums by M.
#include <algorithm>
#include <cstdio>

#include "cuda_backend.h"
#include "cuda_check.h"

namespace kvs::cuda {

bool CudaBackend::stepGraphed(const StepBatch& b, const StepShape& eager) {
  if (!graphsOn_ || !eager.decode || b.numBlockCopies > 0 || eager.R != eager.S || prof_.on() ||
      b.maxBlocksPerSeq > graphMaxBlocks_)
    return false;
  for (int r = 0; r < eager.R; ++r)
    if (b.sampleIndices[r] != r) return false;
  int B = 1;
  while (B < eager.S) B *= 2;
  B = std::min({B, maxS_, maxT_});
  int splits = 1;
  while (splits < eager.maxSplits) splits *= 2;
  splits = std::min(splits, maxSplits_);
  const StepShape sh{B, B, B, graphMaxBlocks_, B, 1, B, splits, 1, eager.partition};
  tileSeq_.resize(B);
  tileQStart_.resize(B);
  tileSlot_.resize(B);
  for (int i = 0; i < B; ++i) {
    tileSeq_[i] = i;
    tileQStart_[i] = 0;
    tileSlot_[i] = i;
  }
  const Layout lay = layoutFor(sh, 0);
  int32_t* in = graphInputs_.get<int32_t>();

  auto it = graphs_.find({B, splits, eager.partition});
  if (it == graphs_.end()) {
    cudaGraph_t g = nullptr;
    KVS_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      forward(sh, in, lay);
    } catch (const std::exception& e) {
      cudaStreamEndCapture(stream_, &g);
      if (g) cudaGraphDestroy(g);
      cudaGetLastError();
      std::fprintf(stderr, "kvserve: CUDA graph capture failed (%s); decoding without graphs\n", e.what());
      graphsOn_ = false;
      return false;
    }
    KVS_CUDA_CHECK(cudaStreamEndCapture(stream_, &g));
    Graph graph;
    const cudaError_t err = cudaGraphInstantiate(&graph.exec, g, 0);
    cudaGraphDestroy(g);
    if (err != cudaSuccess) {  // as a failed capture: decode eagerly from now on instead of failing every step
      cudaGetLastError();
      std::fprintf(stderr, "kvserve: CUDA graph instantiation failed (%s); decoding without graphs\n", cudaGetErrorString(err));
      graphsOn_ = false;
      return false;
    }
    it = graphs_.emplace(std::make_tuple(B, splits, eager.partition), graph).first;
  }
  packInputs(b, sh, lay, in);
  KVS_CUDA_CHECK(cudaGraphLaunch(it->second.exec, stream_));
  return true;
}

}  // namespace kvs::cuda
