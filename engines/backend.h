// One forward step of a batch over the paged KV cache, and sampling. The cpu and cuda backends implement it.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model_config.h"
#include "quantization.h"
#include "step.h"
#include "weights.h"

namespace kvs {

struct EngineOptions {
  std::string model;                  // Hugging Face folder (for dummy weights: a folder or a config.json path)
  std::string engine;                 // an engine folder made by `kvserve build`; when set, model is not read
  bool dummyWeights = false;          // --load-format dummy
  bool privateWeights = false;        // --load-format private: read weights into anonymous memory, no file mapping
  std::string device = "cpu";         // "cpu" | "cuda"
  std::string dtype = "auto";         // compute/weight dtype: auto (checkpoint's) | float32 | bfloat16 | float16
  int numThreads = 0;                 // cpu: 0 = hardware concurrency
  int blockSize = 16;                 // tokens per KV block
  int numKvBlocks = 0;                // 0 = derive from the budget below
  double kvCacheBytes = 0;            // cpu: KV budget in bytes; 0 = default (min(2 GiB, what maxModelLen*maxNumSeqs needs))
  double gpuMemoryUtilization = 0.9;  // cuda: fraction of total memory the process may use
  int maxNumBatchedTokens = 2048;     // bounds T: sizes activation buffers
  int maxNumSeqs = 256;               // bounds S and R
  int maxModelLen = 0;                // 0 = config's max_position_embeddings
  uint64_t seed = 0;                  // dummy weights
  bool batchInvariant = false;        // cuda: one GEMM algorithm for every M (bitwise batch invariance)
  // cuda, batchInvariant: "cublaslt" (one cuBLASLt algorithm per shape), "own" (our GEMM, kernels/gemm_inv.cu:
  // one fixed k-reduction per shape, tiles by M; bf16/f16 with K % 8 == 0, other shapes keep cuBLASLt) or "wgmma"
  // (the same on Hopper's wgmma, kernels/gemm_wgmma.cu; refused at load elsewhere) or "hybrid" (gemm_inv's small-M
  // tile up to M = 16, wgmma beyond, on wgmma's k-partitions; Hopper only), or "auto" (the default: hybrid where
  // wgmma runs, else cublaslt). The N-API option invariantGemm, whose default KVSERVE_INVARIANT_GEMM sets.
  std::string invariantGemm = "auto";
  // cuda: where the GEMM plan runs the bf16/f16 GEMV (M <= 8), RoPE + cache write and SiLU-and-mul in the qkv
  // and gate/up GEMVs' epilogues (kvsk_gemv_rope_cache / kvsk_gemv_silu_mul; bitwise the unfused results).
  // The N-API option gemvFuse, on unless KVSERVE_GEMV_FUSE=0.
  bool gemvFuse = true;
  // cuda, fp8: the same two fusions for the fp8 matrices, where the FP8 plan runs the FP8 GEMV's version 2 (M <= 8;
  // kvsk_gemv_fp8_rope_cache / kvsk_gemv_fp8_silu_mul; bitwise the unfused results). Independent of gemvFuse.
  // The N-API option gemvFuseFp8, whose default KVSERVE_GEMV_FUSE_FP8=1 turns on.
  bool gemvFuseFp8 = false;
  // cuda: "fp8" holds the decoder layers' linear weights (q/k/v, o, gate/up, down) as fp8 E4M3 with a scale
  // per output channel and runs them through FP8 GEMMs (activations quantized per token at run time):
  // quantized at load from a checkpoint, or as an fp8 engine holds them. lm_head stays in the compute dtype.
  // cuda: "int8" holds them as int8 (SmoothQuant W8A8, calibrated at load on int8Request's samples, as
  // kvserve build would), or as an int8 engine holds them.
  std::string quantization = "none";
  QuantizationRequest int8Request;    // quantization "int8" from a checkpoint: the calibration and search options
  // cuda, fp8: the RMSNorms write the FP8 GEMM inputs of qkv and gate/up (e4m3 rows and their scales)
  // themselves instead of a separate quantize pass per GEMM, with bitwise the same results. The N-API option
  // fp8Fuse, on unless KVSERVE_FP8_FUSE=0.
  bool fp8Fuse = true;
  std::string kvCacheDtype = "auto";  // auto: the compute dtype (cpu: float32); fp8: e4m3 (cuda only, half the bytes)
  // fp8 KV cache: per-layer K and V scales (stored = e4m3(x / scale)); both empty = 1.0 for every layer (what
  // vLLM does without calibration), else numLayers finite positive values each. Checked whenever given.
  std::vector<float> kvScalesK, kvScalesV;
  // Loading progress: while it is being made, a backend calls this each time one weight tensor is ready
  // (converted, uploaded, generated, or borrowed in place from the mapping), with its checkpoint bytes.
  // Never called after the backend's constructor returns.
  std::function<void(size_t bytes)> onTensorLoaded;
};

struct BackendInfo {
  std::string device;      // "cpu" | "cuda:0 (NVIDIA H100 80GB HBM3)"
  DType dtype;             // what the weights are held in (and the computations run in)
  std::string kvCacheDtype; // what the KV cache is held in: "float32" (cpu), the compute dtype's name, or "fp8_e4m3"
  int numKvBlocks = 0;
  size_t kvBlockBytes = 0; // bytes of one block over all layers, K and V
  size_t weightBytes = 0;
  int gemmShapesImported = 0;  // cuda: GEMM shapes whose algorithms came from the engine's manifest, not timed here
  int gemmShapesPlanned = 0;   // cuda: GEMM shapes planned at load (timed; --batch-invariant: the heuristic's pick)
  std::string quantization = "none";  // cuda: "fp8" or "int8" when the layer matrices run so (EngineOptions::quantization)
  // cuda, EngineOptions::gemvFuse / gemvFuseFp8: the epilogues a batch-1 step fuses into its GEMVs
  // ("rope+cache", "silu*mul", comma-separated), "" when none (off for the matrices' kind, cuBLASLt picked at
  // M = 1, fp8 matrices on the FP8 GEMV's version 1, q/k norm: RoPE)
  std::string gemvFusion;
  // cuda, EngineOptions::gemvFuseFp8 in effect: fp8 matrices, and the runner's FP8 GEMV is version 2
  bool gemvFuseFp8 = false;
  bool fp8Fuse = false;               // cuda, fp8: the norms quantize their own outputs (EngineOptions::fp8Fuse)
  std::string attnPrefill;            // cuda: the prefill attention kernel, "auto", "v1" or "v2" (KVSERVE_ATTN_PREFILL)
  // cuda, batchInvariant: which GEMMs serve it, "cublaslt", "own", "wgmma" or "hybrid" (EngineOptions::invariantGemm), with
  // the weights that ours still leaves to cuBLASLt, if any ("own; cublaslt: lm_head"); "" otherwise.
  std::string invariantGemm;
  std::vector<float> kvScalesK, kvScalesV;  // an fp8 KV cache's per-layer scales (empty otherwise)
  // cuda: the decode steps' attention kernel, "v1" (two launches) or "v2" (one: KVSERVE_ATTN_DECODE=v2 on a
  // model it runs); "" on the cpu.
  std::string attnDecode;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual BackendInfo info() const = 0;
  // Runs the step: block copies, forward over all T tokens, logits for the R sampled rows, sampling.
  // Throws std::runtime_error on invalid input (the caller validates, this is the last line of defence).
  virtual void step(const StepBatch& batch, StepResult& out) = 0;
  // The calibration observer of an fp8 KV cache: out = [numLayers, 2], per layer the largest |K| and |V| over
  // the cache rows of slots[0 .. n) (< 0 skipped; in range, as a step checked them), as the cache holds them
  // (K after RoPE; an fp8 cache: the e4m3 value times the layer's scale). NaN when a row holds one. Called
  // after the step that wrote those slots.
  virtual void kvAbsMax(const int32_t* slots, int n, std::vector<float>& out) = 0;
};

std::unique_ptr<Backend> makeCpuBackend(const ModelConfig& cfg, std::unique_ptr<WeightStore> weights,
                                        const EngineOptions& opts);
#ifdef KVSERVE_WITH_CUDA
std::unique_ptr<Backend> makeCudaBackend(const ModelConfig& cfg, std::unique_ptr<WeightStore> weights,
                                         const EngineOptions& opts);
#endif

}  // namespace kvs
