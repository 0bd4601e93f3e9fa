// The CUDA backend: one stream, weights in the compute dtype (cuda_weights.h), a paged KV cache sized from
// the free GPU memory, cuBLASLt GEMMs (gemm.h), our kernels (kernels/kvserve_kernels.h) and GPU sampling
// (gpu_sampler.h). A step uploads its inputs in one copy, runs the forward pass of all T tokens, and brings
// back only the sampled ids and requested logprobs.
#pragma once
#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "../backend.h"
#include "cuda_weights.h"
#include "kvserve_kernels.h"
#include "device_buffer.h"
#include "gemm.h"
#include "gpu_sampler.h"
#include "step_profiler.h"

namespace kvs::cuda {

// Throws std::runtime_error when the CUDA backend cannot run a model of this shape (head_dim, GQA groups).
void checkCudaModel(const ModelConfig& cfg);
// Throws when opts.kvCacheDtype is fp8 and this model (computing in dt) or GPU cannot have an fp8 KV cache.
void checkKvCacheDtype(const ModelConfig& cfg, const EngineOptions& opts, DType dt, const cudaDeviceProp& prop);

class CudaBackend final : public Backend {
 public:
  CudaBackend(const ModelConfig& cfg, std::unique_ptr<WeightStore> weights, const EngineOptions& opts);
  ~CudaBackend() override;
  BackendInfo info() const override { return info_; }
  void step(const StepBatch& batch, StepResult& out) override;
  void kvAbsMax(const int32_t* slots, int n, std::vector<float>& out) override;

  static constexpr unsigned kAblateNorm = 1, kAblateAttn = 2, kAblateGemm = 4;  // KVSERVE_ABLATE's kinds
 private:
  void allocateActivations();
  void allocateKvCache();

  ModelConfig cfg_;
  EngineOptions opts_;
  DType dt_;
  bool fp8_ = false;   // the layer matrices are fp8 (w_.quant): their GEMMs go through GemmRunner::runFp8
  bool int8_ = false;  // some layer matrices are int8 (w_.quant): theirs go through GemmRunner::runInt8
  // fp8 only (EngineOptions::fp8Fuse, KVSERVE_FP8_FUSE): the RMSNorms write the e4m3 rows of the fp8 GEMMs
  // they feed (qkv, gate/up) into xq_ themselves, for the steps whose M runs cuBLASLt there.
  bool fp8Fuse_ = false;
  // fp8 only (EngineOptions::gemvFuseFp8, KVSERVE_GEMV_FUSE_FP8) and the runner's FP8 GEMV is version 2: RoPE +
  // cache write and SiLU·mul fused into the qkv and gate/up FP8 GEMVs where their plans run it (fusedGemvFp8).
  bool gemvFuseFp8_ = false;
  BackendInfo info_;
  cudaStream_t stream_ = nullptr;
  int maxT_ = 0, maxS_ = 0, maxSplits_ = 1, partition_ = 512;
  int attnTargetCtas_ = 0;  // decode attention CTAs a step aims to stay under (0: always partition_)
  kvsk_attn_prefill attnPrefill_ = KVSK_ATTN_PREFILL_AUTO;  // asked of every step's plan (KVSERVE_ATTN_PREFILL)
  // KVSERVE_ABLATE (cuda_backend.cc: ablateFromEnv): kernel kinds the forward pass leaves out, for timing.
  unsigned ablate_ = 0;
  // KVSERVE_ATTN_DECODE: 1 (v1) or 2 (v2) for every decode step, 0 (auto, the default mode's default): v2 for
  // decode steps of one sequence, v1 for the rest (decodeVersionFor: kvsk_attention_params.decodeVersion).
  int attnDecode_ = 1;
  bool ropeVector_ = false;  // KVSERVE_ROPE_VECTOR=1 (cuda_backend.cc: ropeVectorFromEnv)
  // auto over a bf16/f16 cache: decode steps of at least this many sequences (graphs: bucket 256) also run v2, on
  // a 2-stage ring (decodeStagesFor); KVSERVE_ATTN_DECODE_V2_SEQS overrides (0 never).
  int v2MinSeqs_ = 256;
  // The split-KV partition of a step: partition_ (the smallest, fixed per engine) in --batch-invariant mode;
  // in the default mode the smallest power-of-two multiple of it that keeps the step's decode CTAs under
  // a few waves, so a large batch streams long runs of keys per CTA instead of many 2-tile CTAs and merges.
  int stepPartition(const StepBatch& b) const;
  int qkvRows_ = 0;  // (Hq + 2 Hkv) * D
  CudaWeights w_;
  std::unique_ptr<GemmRunner> gemm_;
  std::unique_ptr<GpuSampler> sampler_;

  // KV cache: [numLayers][2 (K, V)][numBlocks][blockSize][Hkv][D] in dt_, or e4m3 bytes (--kv-cache-dtype fp8,
  // read as stored * kScale_[l] / vScale_[l]).
  DeviceBuffer kv_;
  size_t kvPlaneElems_ = 0;
  bool kvFp8_ = false;
  std::vector<float> kScale_, vScale_;  // [numLayers], fp8 only
  size_t kvElemBytes() const { return kvFp8_ ? 1 : dtypeSize(dt_); }
  kvsk_kv_dtype kvKind() const { return kvFp8_ ? KVSK_KV_FP8_E4M3 : KVSK_KV_SAME; }
  DeviceBuffer invFreq_;  // [D/2] float32
  DeviceBuffer observedSlots_, observedMax_;  // kvAbsMax: int32 [n], float32 [numLayers * 2]

  // Activations, row-major in dt_ unless noted.
  DeviceBuffer residual_;  // [maxT, H]
  DeviceBuffer normed_;    // [maxT, H]
  DeviceBuffer qkv_;       // [maxT, qkvRows]
  DeviceBuffer q_;         // [maxT, Hq, D]
  DeviceBuffer attn_;      // [maxT, Hq, D]
  DeviceBuffer proj_;      // [maxT, H]  o_proj and down_proj outputs (added to the residual by the next norm)
  DeviceBuffer gateUp_;    // [maxT, 2 I]
  DeviceBuffer act_;       // [maxT, I]
  DeviceBuffer final_;     // [maxS, H]  final-normed sampled rows
  // fp8Fuse_ only: the fused norms' output, the input of the GEMM that follows them (qkv and gate/up: H
  // columns). One buffer serves both: each norm writes it after the previous reader is done (stream order;
  // with PDL each kernel waits on its predecessor before it touches it).
  DeviceBuffer xq_;        // [maxT, H] e4m3 bytes
  DeviceBuffer xqScale_;   // [maxT] float32, a scale per row (kvsk_quantize_rows_fp8's)
  DeviceBuffer logits_;    // [maxS, V]
  DeviceBuffer partOut_, partMax_, partSum_;  // split-KV partials, float32 [maxS, Hq, maxSplits, (D)]
  DeviceBuffer splitCounters_;                // attnDecode_ 2: the v2 kernel's arrivals, unsigned [maxS, Hkv]

  // What one launch sequence of the forward pass is shaped by. An eager step takes the batch's own values;
  // a graphed decode step pads to a bucket (see cuda_graphs.cc).
  struct StepShape {
    int T = 0, S = 0, R = 0, maxBlocks = 0;
    int numTiles = 0, tokensPerTile = 0, numSplitSlots = 0, maxSplits = 1, decode = 0;
    int partition = 0;  // keys per split-KV partition of this step's decode sequences
    kvsk_attn_prefill prefill = KVSK_ATTN_PREFILL_V1;  // the kernel the plan's prefill-shaped tiles are for
  };
  // Word offsets of each input array in the packed upload (4-byte words, 16-byte aligned arrays).
  struct Layout {
    size_t tokens, positions, queryStart, contextLens, blockTables, slots, sampleIdx, tileSeq, tileQ, tileSlot,
        copies, words;
  };
  static Layout layoutFor(const StepShape& sh, int numCopies);
  // Packs the batch into hostInputs_ (padding rows up to sh.S / sh.T for graphs) and copies it to `dst`.
  void packInputs(const StepBatch& b, const StepShape& sh, const Layout& lay, int32_t* dst);
  // Enqueues block copies (from the packed copies array).
  void blockCopies(const int32_t* in, const Layout& lay, int numCopies);
  // Enqueues embed .. lm_head for the shape; reads its inputs from `in` at `lay`.
  void forward(const StepShape& sh, const int32_t* in, const Layout& lay);
  int decodeVersionFor(const StepShape& sh) const;  // attnDecode_ for this shape
  int decodeStagesFor(const StepShape& sh) const;   // kvsk_attention_params.decodeStages for this shape
  double deviceMs() const;  // stepStart_ to stepDone_ once both completed, or -1 (KVSERVE_CUDA_DEVICE_TIME unset)
  // y[M, N] = x[M, K] W^T for one layer matrix: fp8 or int8 (the layout's) when it has scales, else in the
  // compute dtype; smooth: an int8 matrix's input multiplier, or null. quantized (fp8 only): x's producer
  // wrote its e4m3 rows into xq_ / xqScale_ instead (fusesInput), and x is not read. gemvInv: GemmRunner::run's
  // (o_proj and down_proj).
  void linear(const void* x, bool quantized, const void* W, const float* scale, const float* smooth, void* y, int M, int N,
              int K, bool gemvInv = false);
  // Whether the producer of a layer matrix [N, K]'s input writes e4m3 rows for it at this step's M: with
  // fp8Fuse_, for an fp8 matrix (cudaFp8Matrix) whose plan runs cuBLASLt there (it reads e4m3 rows) rather
  // than the FP8 GEMV (it reads bf16/f16 rows, and needs no quantization).
  bool fusesInput(int N, int K, int M) const;
  // Layer l's RoPE + cache write of T tokens: qkv_ -> q_ and the layer's K/V planes.
  kvsk_rope_cache_params ropeParams(int l, int T, const int32_t* positions, const int32_t* slots);
  // Whether linear(x, W, scale, ., M, N, K) may be a fused GEMV (opts_.gemvFuse, a bf16/f16 matrix, the plan
  // runs the GEMV at M): then *g is that GEMV (y unset), for kvsk_gemv_rope_cache / kvsk_gemv_silu_mul.
  bool fusedGemv(const void* x, const void* W, const float* scale, int M, int N, int K, kvsk_gemv_params* g);
  // The same for an fp8 matrix (gemvFuseFp8_, the FP8 plan runs the GEMV's version 2 at M): then *g is that GEMV
  // (y unset), for kvsk_gemv_fp8_rope_cache / kvsk_gemv_fp8_silu_mul.
  bool fusedGemvFp8(const void* x, const void* W, const float* scale, int M, int N, int K, kvsk_gemv_fp8_params* g);
  std::string describeGemvFusion();  // BackendInfo::gemvFusion, after the GEMMs are planned
  std::string describeInvariantGemm();  // BackendInfo::invariantGemm (batch-invariant mode), after planning
  // Decode steps through CUDA graphs: returns false when the step does not qualify (then run eagerly).
  bool stepGraphed(const StepBatch& b, const StepShape& eager);

  PinnedBuffer hostInputs_;
  DeviceBuffer inputs_;       // eager steps (grows)
  DeviceBuffer graphInputs_;  // graphed steps: fixed address, sized for the largest bucket
  std::vector<int32_t> tileSeq_, tileQStart_, tileSlot_;
  StepProfiler prof_;
  // KVSERVE_CUDA_DEVICE_TIME=1: each step's device span (StepResult::deviceMs) between these two events.
  cudaEvent_t stepStart_ = nullptr, stepDone_ = nullptr;

  struct Graph { cudaGraphExec_t exec = nullptr; };
  std::map<std::tuple<int, int, int>, Graph> graphs_;  // (batch bucket, split bucket, partition) -> decode graph
  bool graphsOn_ = true;
  int graphMaxBlocks_ = 0;  // block-table width of graphed steps: ceil(maxModelLen / blockSize)
};

}  // namespace kvs::cuda
