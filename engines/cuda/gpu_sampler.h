// Sampling on the GPU for the CUDA backend: uploads one step's sampling parameters (allowed-token masks
// included) in a single copy, runs
// kernels/sampling.cu's three stages on the lm_head output, and brings back only the sampled ids and the
// requested logprobs (and the raw logits when a test asks). Same semantics as engines/sampler.h.
#pragma once
#include <cuda_runtime_api.h>

#include <vector>

#include "device_buffer.h"
#include "../model_config.h"
#include "../step.h"

namespace kvs::cuda {

class GpuSampler {
 public:
  // maxRows: the most sampled rows per step (maxNumSeqs); scratch is [maxRows, vocab] x 6 arrays.
  GpuSampler(int maxRows, int vocab, cudaStream_t stream);
  // logits: device [R, vocab] in dtype. Synchronizes the stream before returning.
  // done, when not null, is recorded on the stream once the results' copies back are enqueued (before the wait).
  void sample(const SamplingBatch& s, int R, const void* logits, DType dtype, bool returnLogits, StepResult& out,
              cudaEvent_t done = nullptr);
  size_t scratchBytes() const { return scratchBytes_; }

 private:
  int maxRows_, vocab_;
  cudaStream_t stream_;
  size_t scratchBytes_ = 0;
  DeviceBuffer raw_, work_, counts_, sortedKeys_, sortedIds_, idsScratch_, rowStats_, segments_, sortTemp_;
  DeviceBuffer params_, results_;
  PinnedBuffer hostParams_, hostResults_;
  std::vector<uint32_t> words_;  // the packed parameters, staged before the pinned copy
};

}  // namespace kvs::cuda
