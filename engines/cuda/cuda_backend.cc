// CudaBackend construction: device, weights, GEMM plans, activation buffers and the KV cache sized from the
// GPU memory left under --gpu-memory-utilization.
#include "cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cuda_check.h"
#include "cuda_int8.h"
#include "kvserve_kernels.h"
#include "model_gemms.h"
#include "../engine_manifest.h"
#include "../env_flag.h"
#include "../rope.h"

namespace kvs::cuda {

namespace {

// The tuned GEMMs this load restores, and `from` the engine they come from ("" for none): its own engine's,
// or, for a model folder, those of the engine named by KVSERVE_GEMM_TUNED (A/B runs of a model against its
// engine with the same algorithms). That engine must be for this GPU (checkEngineManifest) and this dtype.
std::vector<TunedGemm> tunedGemmsFor(const EngineOptions& opts, DType dt, std::string* from) {
  const char* knob = std::getenv("KVSERVE_GEMM_TUNED");
  const std::string dir = !opts.engine.empty() ? opts.engine : knob && *knob ? knob : "";
  if (dir.empty() || opts.batchInvariant) return {};
  const EngineManifestView m = checkEngineManifest(dir, "cuda");
  if (m.dtype != dt) {
    std::fprintf(stderr, "kvserve: engine %s holds %s GEMM plans, this load computes in %s: timing them here\n",
                 dir.c_str(), dtypeName(m.dtype), dtypeName(dt));
    return {};
  }
  *from = "engine " + dir;
  return m.tunedGemms;
}

// KVSERVE_ATTN_PREFILL: the prefill attention kernel every step's plan asks for. auto (unset, empty: the
// default) lets each step's plan choose version 2 (kernels/flash_prefill.cuh: the same bits, 128-row tiles) for
// queries of KVSK_ATTN_PREFILL_AUTO_MIN_QUERY tokens and more, version 1 below, and is version 1 alone where
// version 2 does not serve the model or the GPU's shared memory per block cannot hold its CTA (compute
// capability 8.6, 8.9). v1 and v2 pin one version: v2 where it does not serve the model runs version 1, said in
// one line, and is refused where shared memory cannot hold it.
kvsk_attn_prefill attnPrefillFor(const ModelConfig& cfg, DType dt, kvsk_kv_dtype kv, const cudaDeviceProp& prop) {
  const char* env = std::getenv("KVSERVE_ATTN_PREFILL");
  const std::string v = env ? env : "";
  if (v == "v1") return KVSK_ATTN_PREFILL_V1;
  const bool automatic = v.empty() || v == "auto";
  if (!automatic && v != "v2") throw std::runtime_error("KVSERVE_ATTN_PREFILL must be auto, v1 or v2, not \"" + v + "\"");
  const size_t smem = kvsk_attention_prefill_v2_smem(static_cast<kvsk_dtype>(dt), kv, cfg.headDim, cfg.numHeads, cfg.numKvHeads);
  if (automatic) return smem != 0 && smem <= prop.sharedMemPerBlockOptin ? KVSK_ATTN_PREFILL_AUTO : KVSK_ATTN_PREFILL_V1;
  if (smem == 0) {
    std::fprintf(stderr, "kvserve: KVSERVE_ATTN_PREFILL=v2 serves bfloat16/float16 at head_dim 64 and 128; this model "
                 "(%s, head_dim %d) runs prefill attention version 1\n", dtypeName(dt), cfg.headDim);
    return KVSK_ATTN_PREFILL_V1;
  }
  if (smem > prop.sharedMemPerBlockOptin)
    throw std::runtime_error("KVSERVE_ATTN_PREFILL=v2 needs " + std::to_string(smem / 1024) + " KiB of shared memory per block; " +
                             prop.name + " allows " + std::to_string(prop.sharedMemPerBlockOptin / 1024) +
                             " KiB (KVSERVE_ATTN_PREFILL=v1 for version 1)");
  return KVSK_ATTN_PREFILL_V2;
}

// KVSERVE_ATTN_DECODE: 0 (auto) when unset, empty or auto, 1 for v1, 2 for v2 (kvsk_attention_params.decodeVersion);
// throws on anything else.
int attnDecodeFromEnv() {
  const char* v = std::getenv("KVSERVE_ATTN_DECODE");
  if (!v || !*v || std::string(v) == "auto") return 0;
  if (std::string(v) == "v1") return 1;
  if (std::string(v) == "v2") return 2;
  throw std::runtime_error(std::string("KVSERVE_ATTN_DECODE must be auto, v1 or v2, not \"") + v + "\"");
}

// KVSERVE_ROPE_VECTOR=1: the rope + cache kernel's vector path (kvsk_rope_cache_params.vector: 16 bytes a lane, the
// token's cos/sin once a CTA; the same bits) where it serves. Off until measured on a GPU (kernel bench `rope`,
// kernel suite `layers`: its bits against the scalar kernel's).
bool ropeVectorFromEnv() { return envFlag("KVSERVE_ROPE_VECTOR", false); }

// KVSERVE_ABLATE: a comma-separated list of kernel kinds the forward pass leaves out (norm, attn, gemm: every
// layer's linear layers, their fused RoPE + cache and SiLU·mul included), for timing what each costs inside a
// real step (test/gpu/bench-engine.ts). The step's output is then meaningless; nothing else reads it.
unsigned ablateFromEnv() {
  const char* v = std::getenv("KVSERVE_ABLATE");
  if (!v || !*v) return 0;
  unsigned mask = 0;
  std::string list = v;
  for (size_t at = 0; at <= list.size();) {
    const size_t end = std::min(list.find(',', at), list.size());
    const std::string kind = list.substr(at, end - at);
    if (kind == "norm") mask |= CudaBackend::kAblateNorm;
    else if (kind == "attn") mask |= CudaBackend::kAblateAttn;
    else if (kind == "gemm") mask |= CudaBackend::kAblateGemm;
    else throw std::runtime_error("KVSERVE_ABLATE lists norm, attn or gemm, not \"" + kind + "\"");
    at = end + 1;
  }
  std::fprintf(stderr, "kvserve: KVSERVE_ABLATE=%s: those kernels are left out of every step (timing only)\n", v);
  return mask;
}

DType resolveDType(const ModelConfig& cfg, const EngineOptions& opts) {
  DType dt = cfg.dtype;
  if (opts.dtype != "auto" && !parseDType(opts.dtype, &dt))
    throw std::runtime_error("unsupported dtype \"" + opts.dtype + "\" (supported: auto, float32, bfloat16, float16)");
  return dt;
}

}  // namespace

void checkCudaModel(const ModelConfig& cfg) {
  const int D = cfg.headDim, G = cfg.numKvHeads > 0 ? cfg.numHeads / cfg.numKvHeads : 0;
  if (cfg.numKvHeads <= 0 || cfg.numHeads % cfg.numKvHeads != 0)
    throw std::runtime_error("numHeads must be a multiple of numKvHeads");
  if (D != 8 && D != 16 && D != 32 && D != 64 && D != 128 && D != 256)
    throw std::runtime_error("head_dim " + std::to_string(D) + " is not supported by the CUDA backend (8, 16, 32, 64, 128, 256)");
  if (G > 16) throw std::runtime_error("more than 16 query heads per KV head is not supported by the CUDA backend");
}

// --kv-cache-dtype fp8: the tensor-core attention kernels only (kvsk_attention_fp8_supported), and a GPU with
// fp8 conversions (compute capability 8.9+). Refused before any weight is uploaded.
void checkKvCacheDtype(const ModelConfig& cfg, const EngineOptions& opts, DType dt, const cudaDeviceProp& prop) {
  if (opts.kvCacheDtype != "fp8") return;
  if (!kvsk_attention_fp8_supported(static_cast<kvsk_dtype>(dt), cfg.headDim, cfg.numHeads, cfg.numKvHeads)) {
    // Only the dtype in the way: --dtype can fix it.
    const bool shapeOk = kvsk_attention_fp8_supported(KVSK_BF16, cfg.headDim, cfg.numHeads, cfg.numKvHeads);
    throw std::runtime_error(std::string("--kv-cache-dtype fp8 needs a bfloat16 or float16 model with head_dim 64, 128 "
                                         "or 256 and at most 16 query heads per KV head; this one computes in ") +
                             dtypeName(dt) + " with head_dim " + std::to_string(cfg.headDim) + " and " +
                             std::to_string(cfg.numHeads / cfg.numKvHeads) + " query heads per KV head (use " +
                             "--kv-cache-dtype auto" + (shapeOk ? ", or --dtype bfloat16)" : ")"));
  }
  if (prop.major * 10 + prop.minor < 89)
    throw std::runtime_error("--kv-cache-dtype fp8 needs a GPU of compute capability 8.9 or newer (fp8 conversions); " +
                             std::string(prop.name) + " is " + std::to_string(prop.major) + "." +
                             std::to_string(prop.minor) + " (use --kv-cache-dtype auto)");
}

CudaBackend::CudaBackend(const ModelConfig& cfg, std::unique_ptr<WeightStore> weights, const EngineOptions& opts)
    : cfg_(cfg), opts_(opts), dt_(resolveDType(cfg, opts)), fp8_(opts.quantization == "fp8"), int8_(opts.quantization == "int8") {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
    throw std::runtime_error("device cuda requested but no CUDA GPU is visible");
  KVS_CUDA_CHECK(cudaSetDevice(0));
  cudaDeviceProp prop;
  KVS_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  // Programmatic dependent launch (Hopper+): each forward-pass kernel starts while its predecessor drains
  // (kernels/common.cuh). KVSERVE_CUDA_PDL=0 turns it off for A/B measurements.
  const char* pdl = std::getenv("KVSERVE_CUDA_PDL");
  kvsk_set_programmatic_launch(prop.major >= 9 && !(pdl && std::string(pdl) == "0"));
  checkCudaModel(cfg);
  if (fp8_) {
    if (opts.batchInvariant)
      throw std::runtime_error("quantization fp8 with --batch-invariant is not supported yet (the FP8 GEMMs are tuned per M)");
    if (prop.major * 10 + prop.minor < 89)
      throw std::runtime_error(std::string("quantization fp8 needs a GPU of compute capability 8.9 or newer (FP8 tensor cores); ") +
                               prop.name + " is " + std::to_string(prop.major) + "." + std::to_string(prop.minor));
    if (dt_ == DType::F32)
      throw std::runtime_error("quantization fp8 computes in bfloat16 or float16, not float32: pass --dtype bfloat16");
    fp8Fuse_ = opts.fp8Fuse;
  }
  // int8: no refusal of --batch-invariant, since every int8 GEMM kernel gives the same bits (gemm.h).
  if (int8_) {
    if (prop.major < 8)
      throw std::runtime_error(std::string("quantization int8 needs a GPU of compute capability 8.0 or newer (int8 mma.sync, IMMA); ") +
                               prop.name + " is " + std::to_string(prop.major) + "." + std::to_string(prop.minor));
    if (dt_ == DType::F32)
      throw std::runtime_error("quantization int8 computes in bfloat16 or float16, not float32: pass --dtype bfloat16");
  }
  checkKvCacheDtype(cfg, opts, dt_, prop);
  kvFp8_ = opts.kvCacheDtype == "fp8";
  attnPrefill_ = attnPrefillFor(cfg, dt_, kvKind(), prop);
  if (kvFp8_) {  // uncalibrated: 1.0 for every layer, as vLLM (Engine::load checked any given ones, and an engine's)
    kScale_ = opts.kvScalesK.empty() ? std::vector<float>(cfg.numLayers, 1.f) : opts.kvScalesK;
    vScale_ = opts.kvScalesV.empty() ? std::vector<float>(cfg.numLayers, 1.f) : opts.kvScalesV;
  }
  const int D = cfg.headDim;
  KVS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));

  maxT_ = std::max(opts.maxNumBatchedTokens, 1);
  maxS_ = std::max(opts.maxNumSeqs, 1);
  const int maxLen = opts.maxModelLen > 0 ? opts.maxModelLen : cfg.maxPositions;
  // Split-KV partition of decode sequences: a function of the engine's configuration only (never of a
  // batch), 128 keys or more so that at most 64 partitions cover the longest context. Small partitions keep
  // the SMs busy at small batches (batch 1, context 512: 4 partitions per KV head).
  // KVSERVE_ATTN_MIN_PARTITION (a multiple of 32, default 128) lowers that floor, for A/B runs of the batch-1 step.
  const char* minPart = std::getenv("KVSERVE_ATTN_MIN_PARTITION");
  const int minPartition = minPart ? std::max(32, std::atoi(minPart) / 32 * 32) : 128;
  partition_ = std::max(minPartition, (maxLen / 64 + 31) / 32 * 32);
  maxSplits_ = std::max(1, (maxLen + partition_ - 1) / partition_);
  // Default mode: about 8 waves of 3 decode CTAs per SM (KVSERVE_ATTN_TARGET_CTAS overrides; 0 keeps every
  // step at partition_, as --batch-invariant does).
  const char* target = std::getenv("KVSERVE_ATTN_TARGET_CTAS");
  attnTargetCtas_ = target ? std::max(0, std::atoi(target)) : 24 * prop.multiProcessorCount;
  // KVSERVE_ATTN_DECODE=v2: decode steps' attention in one launch (kernels/flash_decode_v2.cuh: the same bits as
  // v1's two launches). A model it cannot run keeps v1, said in one line. auto (the default mode's default): v2 for
  // decode steps of one sequence and of at least v2MinSeqs_ (decodeVersionFor), v1 for the rest. Not in
  // --batch-invariant mode, whose partitions stay partition_: there v2 was slower (GPU run 16: batch 1 5.38 against
  // 5.23 ms, batch 256 17.16 against 16.62).
  attnDecode_ = attnDecodeFromEnv();
  ropeVector_ = ropeVectorFromEnv();
  ablate_ = ablateFromEnv();
  if (const char* dt = std::getenv("KVSERVE_CUDA_DEVICE_TIME"); dt && std::string(dt) == "1") {
    KVS_CUDA_CHECK(cudaEventCreate(&stepStart_));
    KVS_CUDA_CHECK(cudaEventCreate(&stepDone_));
  }
  // Large batches on v2 too (GPU run 16, context 512: the batch-256 step 12.91 against 13.25 ms, attention alone
  // 4.86 against 5.20; at batch 64 and 128 no gain, 7.01 / 8.63 against 6.96 / 8.48; over an fp8 cache v2 lost at
  // every batch of 8 and more in the kernel bench).
  const char* v2Seqs = std::getenv("KVSERVE_ATTN_DECODE_V2_SEQS");
  if (v2Seqs && *v2Seqs) v2MinSeqs_ = std::max(0, std::atoi(v2Seqs));
  if (kvFp8_) v2MinSeqs_ = 0;
  const bool v2Runs = kvsk_attention_decode_v2_supported(static_cast<kvsk_dtype>(dt_), kvKind(), D, cfg.numHeads,
                                                         cfg.numKvHeads, maxSplits_);
  if (attnDecode_ == 2 && !v2Runs) {
    std::fprintf(stderr, "kvserve: KVSERVE_ATTN_DECODE=v2 runs bfloat16/float16 models of head_dim 64 or 128 with at most "
                 "16 query heads per KV head; this one (%s, head_dim %d, %d per KV head) decodes with v1\n",
                 dtypeName(dt_), D, cfg.numHeads / cfg.numKvHeads);
    attnDecode_ = 1;
  }
  if (attnDecode_ == 0 && (!v2Runs || opts.batchInvariant || attnTargetCtas_ <= 0)) attnDecode_ = 1;
  qkvRows_ = (cfg.numHeads + 2 * cfg.numKvHeads) * D;

  // From an engine every tensor is already in its final layout and dtype; from a checkpoint q/k/v and gate/up
  // are fused (and converted) on the way. int8 from a checkpoint: calibrated and quantized on the host
  // first, as kvserve build does, then uploaded as an engine's tensors.
  if (!opts.engine.empty()) {
    w_ = uploadEngineWeights(cfg, *weights, dt_, opts.onTensorLoaded, cudaQuantOf(cfg, *weights, opts.quantization));
  } else if (int8_) {
    const CudaInt8Model q = quantizeInt8ForCuda(cfg, *weights, dt_, opts.int8Request, opts.numThreads, opts.seed,
                                                opts.onTensorLoaded, {});
    w_ = uploadEngineWeights(cfg, *q.store, dt_, {}, q.quant);
  } else {
    w_ = uploadWeights(cfg, *weights, dt_, opts.seed, stream_, opts.onTensorLoaded, fp8_);
  }
  weights.reset();  // the mmapped checkpoint is no longer needed: one copy, on the GPU

  // Fast mode (default): per weight shape, the GEMV kernel for M <= 8 and a cuBLASLt algorithm per M bucket,
  // timed on the real weights here. --batch-invariant: one cuBLASLt algorithm per shape, the heuristic's pick
  // at M = maxNumSeqs (KVSERVE_GEMM_PROBE_M overrides), for every M; or, with invariantGemm "own", "wgmma" or
  // "hybrid", our GEMM (kernels/gemm_inv.cu, gemm_wgmma.cu on Hopper, or both) for the bf16/f16 shapes. docs/cuda.md has the measurements.
  const char* probe = std::getenv("KVSERVE_GEMM_PROBE_M");
  const int probeM = probe && std::atoi(probe) > 0 ? std::atoi(probe) : maxS_;
  // "auto": hybrid where wgmma runs (Hopper; measured in GPU run 13 the fastest batch-invariant GEMM at batch 1-64,
  // gemm_inv and wgmma bitwise equal on every Llama-3-8B shape), else cuBLASLt's one algorithm per shape.
  const InvariantGemm invariantGemm = opts.invariantGemm == "own"      ? InvariantGemm::Own
                                      : opts.invariantGemm == "wgmma"  ? InvariantGemm::Wgmma
                                      : opts.invariantGemm == "hybrid" ? InvariantGemm::Hybrid
                                      : opts.invariantGemm == "auto" && kvsk_gemm_wgmma_unavailable() == nullptr
                                          ? InvariantGemm::Hybrid
                                          : InvariantGemm::CublasLt;
  gemm_ = std::make_unique<GemmRunner>(stream_, std::max(maxT_, maxS_),
                                       opts.batchInvariant ? GemmMode::BatchInvariant : GemmMode::Fast, probeM,
                                       32u << 20, invariantGemm);
  // An engine's plans are restored instead of timed (a shape whose record cuBLASLt rejects is timed again).
  std::string tunedFrom;
  const std::vector<TunedGemm> tuned = tunedGemmsFor(opts, dt_, &tunedFrom);
  const GemmPlanning planned = planModelGemms(*gemm_, modelGemms(cfg, w_, maxT_, maxS_), dt_,
                                              tunedFrom.empty() ? nullptr : &tuned);
  for (const std::string& why : planned.retimed)
    std::fprintf(stderr, "kvserve: %s: cannot restore the tuned GEMM of %s; timed it again\n", tunedFrom.c_str(), why.c_str());
  gemvFuseFp8_ = fp8_ && opts.gemvFuseFp8 && gemm_->fp8GemvVersion() == 2;
  info_.gemmShapesImported = planned.imported;
  info_.gemmShapesPlanned = planned.planned;
  if (opts.batchInvariant) info_.invariantGemm = describeInvariantGemm();
  sampler_ = std::make_unique<GpuSampler>(maxS_, cfg.vocabSize, stream_);

  const std::vector<float> inv = ropeInvFreq(cfg.rope, D);
  invFreq_.resize(inv.size() * sizeof(float));
  KVS_CUDA_CHECK(cudaMemcpy(invFreq_.get(), inv.data(), inv.size() * sizeof(float), cudaMemcpyHostToDevice));
  allocateActivations();
  // Graphed decode steps: block tables re-padded to the longest context's width; inputs at a fixed address.
  const char* graphs = std::getenv("KVSERVE_CUDA_GRAPHS");
  graphsOn_ = !(graphs && std::string(graphs) == "0");
  graphMaxBlocks_ = (maxLen + opts.blockSize - 1) / opts.blockSize + 1;
  {
    const int B = std::min(maxS_, maxT_);
    StepShape big{B, B, B, graphMaxBlocks_, B, 1, B, maxSplits_, 1, partition_};
    graphInputs_.resize(layoutFor(big, 0).words * 4);
  }
  allocateKvCache();

  info_.device = "cuda:0 (" + std::string(prop.name) + ")";
  info_.dtype = dt_;
  info_.kvCacheDtype = kvFp8_ ? "fp8_e4m3" : dtypeName(dt_);
  info_.kvScalesK = kScale_;
  info_.kvScalesV = vScale_;
  info_.weightBytes = w_.bytes;
  info_.quantization = fp8_ ? "fp8" : int8_ ? "int8" : "none";
  info_.gemvFusion = describeGemvFusion();
  info_.gemvFuseFp8 = gemvFuseFp8_;
  info_.fp8Fuse = fp8Fuse_;
  info_.attnPrefill = attnPrefill_ == KVSK_ATTN_PREFILL_AUTO ? "auto" : attnPrefill_ == KVSK_ATTN_PREFILL_V2 ? "v2" : "v1";
  info_.attnDecode = attnDecode_ == 2 ? "v2" : attnDecode_ == 0 ? "auto" : "v1";
}

std::string CudaBackend::describeInvariantGemm() {
  const std::string ours = invariantGemmName(gemm_->invariantGemm());
  if (gemm_->invariantGemm() == InvariantGemm::CublasLt) return ours;
  std::string rest;  // the bf16/f16/float32 weights our GEMM does not serve (float32, K % 8 != 0); int8 has its own
  for (const ModelGemm& g : modelGemms(cfg_, w_, maxT_, maxS_))
    if (g.kind == GemmKind::Float && gemm_->ownSplits(g.n, g.k, dt_, dt_) == 0)
      rest += (rest.empty() ? "" : ", ") + g.weight;
  return rest.empty() ? ours : ours + "; cublaslt: " + rest;
}

CudaBackend::~CudaBackend() {
  for (auto& [key, g] : graphs_) cudaGraphExecDestroy(g.exec);
  if (stream_) {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
  if (stepStart_) cudaEventDestroy(stepStart_);
  if (stepDone_) cudaEventDestroy(stepDone_);
}

void CudaBackend::allocateActivations() {
  const size_t es = dtypeSize(dt_);
  const size_t T = maxT_, S = maxS_, H = cfg_.hiddenSize, I = cfg_.intermediateSize, V = cfg_.vocabSize;
  const size_t qd = static_cast<size_t>(cfg_.numHeads) * cfg_.headDim;
  residual_.resize(T * H * es);
  normed_.resize(T * H * es);
  qkv_.resize(T * qkvRows_ * es);
  q_.resize(T * qd * es);
  attn_.resize(T * qd * es);
  proj_.resize(T * H * es);
  gateUp_.resize(T * 2 * I * es);
  act_.resize(T * I * es);
  final_.resize(S * H * es);
  if (fp8Fuse_) {
    xq_.resize(T * H);
    xqScale_.resize(T * sizeof(float));
  }
  logits_.resize(S * V * es);
  const size_t parts = S * cfg_.numHeads * static_cast<size_t>(maxSplits_);
  partOut_.resize(parts * cfg_.headDim * sizeof(float));
  partMax_.resize(parts * sizeof(float));
  partSum_.resize(parts * sizeof(float));
  if (attnDecode_ != 1) {  // a counter per split slot and KV head, zero between launches (each launch leaves them so)
    const size_t counters = S * cfg_.numKvHeads * sizeof(unsigned);
    splitCounters_.resize(counters);
    KVS_CUDA_CHECK(cudaMemsetAsync(splitCounters_.get(), 0, counters, stream_));
  }
  inputs_.resize(1 << 20);
  hostInputs_.resize(1 << 20);
  if (ablate_) {  // what a skipped kernel would have written reads as zeros (finite logits for the sampler)
    for (DeviceBuffer* b : {&normed_, &qkv_, &q_, &attn_, &proj_, &gateUp_, &act_, &final_, &logits_})
      KVS_CUDA_CHECK(cudaMemsetAsync(b->get(), 0, b->bytes(), stream_));
  }
}

void CudaBackend::allocateKvCache() {
  const size_t es = kvElemBytes();  // fp8: one byte, so twice the blocks of bf16 fit the same memory
  const size_t blockElems = static_cast<size_t>(opts_.blockSize) * cfg_.numKvHeads * cfg_.headDim;
  const size_t blockBytes = blockElems * es * 2 * cfg_.numLayers;
  int64_t blocks = opts_.numKvBlocks;
  if (blocks <= 0) {
    size_t freeB = 0, totalB = 0;
    KVS_CUDA_CHECK(cudaMemGetInfo(&freeB, &totalB));
    // Everything already in use on the device (weights, activations, scratch, other processes) counts
    // against the utilization budget.
    const double budget = opts_.gpuMemoryUtilization * static_cast<double>(totalB) - static_cast<double>(totalB - freeB);
    blocks = budget > 0 ? static_cast<int64_t>(budget / static_cast<double>(blockBytes)) : 0;
    // Never more than every sequence at full length can use.
    const int maxLen = opts_.maxModelLen > 0 ? opts_.maxModelLen : cfg_.maxPositions;
    const int64_t useful = static_cast<int64_t>(maxS_) * ((maxLen + opts_.blockSize - 1) / opts_.blockSize + 1);
    blocks = std::min(blocks, useful);
    if (blocks < 1)
      throw std::runtime_error("no GPU memory left for the KV cache: weights and activations use " +
                               std::to_string((totalB - freeB) >> 20) + " MiB of " + std::to_string(totalB >> 20) +
                               " MiB; raise --gpu-memory-utilization (now " +
                               std::to_string(opts_.gpuMemoryUtilization) + ") or lower --max-num-batched-tokens");
  }
  if (blocks > INT32_MAX / opts_.blockSize) blocks = INT32_MAX / opts_.blockSize;
  kvPlaneElems_ = blockElems * static_cast<size_t>(blocks);
  kv_.resize(kvPlaneElems_ * es * 2 * cfg_.numLayers);
  info_.numKvBlocks = static_cast<int>(blocks);
  info_.kvBlockBytes = blockBytes;
}

}  // namespace kvs::cuda

namespace kvs {

std::unique_ptr<Backend> makeCudaBackend(const ModelConfig& cfg, std::unique_ptr<WeightStore> weights,
                                         const EngineOptions& opts) {
  return std::make_unique<cuda::CudaBackend>(cfg, std::move(weights), opts);
}

}  // namespace kvs
