// The only file that loads the native addon. It declares the whole native module's types.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Device = 'cpu' | 'cuda';
export type DTypeName = 'float32' | 'bfloat16' | 'float16';

export interface NativeEngineOptions {
  model: string; // HF folder; for dummy weights a folder or a config.json path
  engine?: string; // an engine folder made by `kvserve build` (then model is not read)
  dummyWeights: boolean;
  privateWeights?: boolean; // read the weights into private memory instead of mapping the files
  device: Device;
  dtype: 'auto' | DTypeName;
  numThreads: number; // cpu: 0 = all cores
  blockSize: number;
  numKvBlocks: number; // 0 = derive from kvCacheBytes / gpuMemoryUtilization
  kvCacheBytes: number; // cpu: 0 = default budget
  gpuMemoryUtilization: number;
  maxNumBatchedTokens: number;
  maxNumSeqs: number;
  maxModelLen: number; // 0 = from config
  seed: number;
  batchInvariant?: boolean; // cuda: bitwise batch-invariant GEMMs (the CPU backend always is)
  /** cuda, batchInvariant: 'cublaslt' (one cuBLASLt algorithm per weight shape), 'own' (our GEMM with one fixed
   *  k-reduction per shape, fast at every M), 'wgmma' (the same on Hopper's wgmma; refused on other GPUs) or
   *  'hybrid' (Hopper: our mma.sync GEMM for M <= 16 and wgmma above on one k-reduction, valid where the kernel
   *  suite shows the two instructions give the same bits, as on the H200) or 'auto': hybrid where wgmma runs, else
   *  cublaslt; absent: KVSERVE_INVARIANT_GEMM, else auto. info().invariantGemm names the one that runs. */
  invariantGemm?: 'auto' | 'cublaslt' | 'own' | 'wgmma' | 'hybrid';
  /** cuda: RoPE + cache write and SiLU·mul in the qkv / gate-up GEMV epilogues (M <= 8; bitwise the same
   *  results); absent: on unless KVSERVE_GEMV_FUSE=0. */
  gemvFuse?: boolean;
  /** cuda, fp8: the same fusions for the fp8 matrices, where they run the FP8 GEMV's version 2 (KVSERVE_GEMV_FP8=v2;
   *  M <= 8; bitwise the same results); default: on when KVSERVE_GEMV_FUSE_FP8=1. */
  gemvFuseFp8?: boolean;
  /** cuda: 'fp8' quantizes the layer matrices at load (fp8 E4M3, a scale per output row) and runs FP8 GEMMs;
   *  'int8' calibrates and quantizes them (SmoothQuant W8A8, on `quantization`'s samples, as kvserve build does)
   *  and runs int8 GEMMs. */
  quantize?: 'none' | 'fp8' | 'int8';
  /** quantize 'int8': the calibration samples and search options (planInt8's request). */
  quantization?: NativeQuantization;
  /** cuda, fp8: the RMSNorms write the qkv and gate/up FP8 GEMMs' e4m3 inputs themselves (bitwise the same
   *  results); absent: on unless KVSERVE_FP8_FUSE=0. */
  fp8Fuse?: boolean;
  /** KV cache element type: auto = the compute dtype (cpu: float32), or what an engine was built with (an fp8
   *  cache with its calibrated scales, kvserve build --kv-cache-dtype fp8); fp8 = e4m3, half the bytes (cuda). */
  kvCacheDtype?: 'auto' | 'fp8';
  /** fp8 KV cache: one K and one V scale per layer (stored = e4m3(x / scale)); absent = the engine's calibrated
   *  ones, else 1.0 for every layer. */
  kvScales?: { k: number[]; v: number[] };
}

export interface NativeEngineInfo {
  architecture: string;
  modelType: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxModelLen: number;
  bosTokenId: number; // -1 when none
  eosTokenIds: number[];
  device: string; // "cpu" or e.g. "cuda:0 (NVIDIA H100 80GB HBM3)"
  dtype: DTypeName;
  /** What the KV cache holds: the compute dtype (cpu: float32), or fp8_e4m3 with --kv-cache-dtype fp8. */
  kvCacheDtype: DTypeName | 'fp8_e4m3';
  blockSize: number;
  numKvBlocks: number;
  kvBlockBytes: number;
  weightBytes: number;
  /** cuda: GEMM shapes whose algorithms came from the engine's manifest (not timed at this load); cpu 0. */
  gemmShapesImported: number;
  /** cuda: GEMM shapes planned at this load (timed; --batch-invariant: the heuristic's pick); cpu 0. */
  gemmShapesPlanned: number;
  /** cuda: 'fp8' or 'int8' when the layer matrices run so (quantized at load, or such an engine); else 'none'. */
  quantization?: 'none' | 'fp8' | 'int8';
  /** cuda: the epilogues a batch-1 step fuses into its GEMVs ('rope+cache', 'silu*mul', comma-separated); '' none. */
  gemvFusion?: string;
  /** cuda: true when gemvFuseFp8 applies (fp8 matrices on the FP8 GEMV's version 2). */
  gemvFuseFp8?: boolean;
  /** cuda: true when fp8 layers get their inputs quantized by the kernels that produce them (fp8Fuse). */
  fp8Fuse?: boolean;
  /** cuda: the prefill attention kernel: 'auto' (the default: version 2 for steps with a query of 1,024 tokens or more,
   * version 1 below), 'v1' or 'v2' (KVSERVE_ATTN_PREFILL pins one; 'v1' where version 2 does not serve the model). */
  attnPrefill?: 'auto' | 'v1' | 'v2';
  /** cuda with batchInvariant: the GEMMs that serve it, 'cublaslt', 'own' or 'wgmma' (with the weights ours leaves
   *  to cuBLASLt, as 'own; cublaslt: lm_head'); absent otherwise. */
  invariantGemm?: string;
  /** cuda: the decode steps' attention kernel, 'v1' (two launches), 'v2' (one launch, KVSERVE_ATTN_DECODE=v2 on a
   *  model it runs: bf16/f16, head_dim 64 or 128) or 'auto' (v2 for one sequence and large batches, v1 otherwise);
   *  absent on the cpu. */
  attnDecode?: 'v1' | 'v2' | 'auto';
  /** An fp8 KV cache's per-layer scales, as the engine runs them (absent for any other cache). */
  kvScales?: { k: number[]; v: number[] };
}

/** One step of the protocol in docs/architecture.md. T tokens, S sequences, R sampled rows. */
export interface StepBatch {
  tokenIds: Int32Array; // [T]
  positions: Int32Array; // [T]
  queryStart: Int32Array; // [S+1]
  contextLens: Int32Array; // [S]
  blockTables: Int32Array; // [S * maxBlocksPerSeq]
  maxBlocksPerSeq: number;
  slotMapping: Int32Array; // [T]
  sampleIndices: Int32Array; // [R]
  temperature: Float32Array; // [R] <= 1e-5 greedy
  topP: Float32Array; // [R]
  topK: Int32Array; // [R] <= 0 off
  minP: Float32Array; // [R]
  presencePenalty: Float32Array; // [R]
  frequencyPenalty: Float32Array; // [R]
  repetitionPenalty: Float32Array; // [R]
  seeds: Uint32Array; // [R]
  seedSteps: Int32Array; // [R] output index of the token being sampled
  numLogprobs: Int32Array; // [R] -1 none, 0 sampled only, k top-k too
  historyStart?: Int32Array; // [R+1] penalty history offsets (only when some row has penalties)
  historyOutputStart?: Int32Array; // [R]
  historyTokens?: Int32Array;
  biasStart?: Int32Array; // [R+1] logit bias offsets (only when some row has a bias)
  biasTokens?: Int32Array;
  biasValues?: Float32Array;
  /** [R] row r's allowed-token bitmask in `masks`, -1 none (only when some row has one). */
  maskRow?: Int32Array;
  /** [M * ceil(vocab / 32)] bitmasks: bit (t & 31) of word t >> 5 set = token t may be sampled. */
  masks?: Int32Array;
  blockCopies?: Int32Array; // [2C] (src, dst)
  returnLogits?: boolean; // tests: raw logits [R * vocab]
  /** Also return kvAbsMax: per layer, the abs-max of K (after RoPE) and of V over the cache slots this step wrote,
   *  as the cache holds them (fp8: the e4m3 value times the layer's scale). The fp8 KV cache's calibration. */
  observeKvAbsMax?: boolean;
}

/** The sampling fields of a StepBatch for R greedy rows without logprobs (benchmarks, quality passes). */
export function greedyRows(
  R: number,
): Pick<
  StepBatch,
  | 'temperature'
  | 'topP'
  | 'topK'
  | 'minP'
  | 'presencePenalty'
  | 'frequencyPenalty'
  | 'repetitionPenalty'
  | 'seeds'
  | 'seedSteps'
  | 'numLogprobs'
> {
  return {
    temperature: new Float32Array(R),
    topP: new Float32Array(R).fill(1),
    topK: new Int32Array(R),
    minP: new Float32Array(R),
    presencePenalty: new Float32Array(R),
    frequencyPenalty: new Float32Array(R),
    repetitionPenalty: new Float32Array(R).fill(1),
    seeds: new Uint32Array(R),
    seedSteps: new Int32Array(R),
    numLogprobs: new Int32Array(R).fill(-1),
  };
}

export interface StepResult {
  tokens: Int32Array; // [R]
  logprobs: Float32Array; // [R] NaN when not asked
  topLogprobs: number; // K
  topIds: Int32Array; // [R * K], -1 padded
  topValues: Float32Array; // [R * K]
  logits?: Float32Array; // [R * vocab] when returnLogits
  kvAbsMax?: Float32Array; // [numLayers * 2]: layer l's K at 2l, V at 2l + 1, when observeKvAbsMax (NaN: the cache held one)
  /** [R] present only when some row could not be sampled: ROW_FAULT_* per row, 0 for the rows that were.
   *  A faulted row's token is meaningless; the step's other rows stand. */
  rowFaults?: Int32Array;
  /** The step's time on the engine's own thread, from taking it up to its result (forward pass and sampling; on
   *  the GPU until the results are on the host), in ms: what launch → result adds to it is the thread hand-offs. */
  nativeMs?: number;
  /** CUDA with KVSERVE_CUDA_DEVICE_TIME=1 (read at load): the step's span on the device, from its inputs' upload to
   *  its results' copy back (events), in ms; nativeMs minus it is the host's part of the step on that thread. */
  deviceMs?: number;
}

export const ROW_FAULT_NON_FINITE_LOGITS = 1; // a logit is NaN or +inf, or none is finite

/** A sequence of a step that the native batch check refused, and why. */
export interface StepFault {
  seq: number; // index into the step's sequences
  message: string;
}

/** What a rejected step() carries when the native batch check could pin the fault on sequences: the step ran
 *  nothing, and runs as it is for the other sequences. Without `faults`, the fault belongs to the whole step. */
export interface StepError extends Error {
  faults?: StepFault[];
}

export interface NativeEngine {
  info(): NativeEngineInfo;
  /** Runs on a native worker thread; one step in flight at a time (a second call rejects). */
  step(batch: StepBatch): Promise<StepResult>;
  /** Frees weights and KV cache; the engine is unusable afterwards. */
  dispose(): void;
}

/** What an engine is built for (engines/engine_target.h): the ISA features it needs and those this CPU has. */
export interface NativeTarget {
  device: Device;
  arch: string; // "x86_64" | "aarch64"; cuda: "sm_90"
  features: string[]; // compiled-in ISA features, which an engine built here needs (cuda: none)
  hostFeatures: string[]; // the running CPU's, of the features kvserve knows
  // cuda only (engines/cuda/cuda_target.cc)
  gpuName?: string; // "NVIDIA H200"
  computeCapability?: string; // "9.0"
  smCount?: number;
  driverVersion?: string; // the NVIDIA kernel driver, "580.159.04"; "" where unreadable
  cudaDriverVersion?: string; // the newest CUDA that driver runs, "13.0"
  cudaRuntimeVersion?: string; // the addon's CUDA runtime, "13.0"
  cublasLtVersion?: string; // "13.1.0"
  cudaArchs?: string; // the archs the addon's kernels were compiled for, "90"
}

/** A GEMM algorithm chosen for one weight shape and M range (engines/cuda/model_gemms.cc). */
export interface NativeTunedGemm {
  weight: string;
  n: number;
  k: number;
  mMin: number;
  mMax: number;
  algo?: string; // what the backend restores; cuBLASLt: its cublasLtMatmulAlgo_t as 128 hex digits
  kernel?: 'cublasLt' | 'gemv' | 'gemv_even' | 'gemv_fp8' | 'gemv_int8' | 'cublasLt_int8';
  rowsPerCta?: number; // gemv, gemv_fp8, gemv_int8 (gemv_even: the weight cut evenly over one wave of CTAs)
  algoId?: number; // cublasLt, for people
  tile?: number;
  stages?: number;
  splitK?: number;
  workspace?: number;
}

/** What buildEngine quantizes with (engines/quantization.h); absent = no quantization. */
export interface NativeQuantization {
  method: 'none' | 'int8' | 'fp8';
  /** Token ids of every calibration sample, concatenated; sample i is tokens[offsets[i] .. offsets[i+1]). */
  calibration?: { tokens: Int32Array; offsets: Int32Array };
  alphas?: number[]; // SmoothQuant migration strengths searched (default 0.3 … 0.8)
  observers?: Array<'absmax' | 'percentile'>; // searched (default both)
  tryUnsmoothed?: boolean; // also consider no smoothing (default true)
  percentile?: number; // of the percentile observer (default 99.9)
  maxLayerError?: number; // a layer above this relative output error stays in float (default 0.1)
  keepFloat?: string[]; // module names kept in float
}

export type NativeBuildOptions = NativeEngineOptions;

/** One linear layer of an int8 build: int8 or kept in float (and why), its smoothing and its error. */
export interface NativeQuantizedLayer {
  name: string; // module name: model.layers.0.self_attn.q_proj, lm_head
  int8: boolean;
  keptBecause?: string;
  smoothing: 'norm' | 'act' | 'none';
  observer?: 'absmax' | 'percentile';
  alpha?: number;
  error: number; // relative output error in int8 at the chosen smoothing, on calibration inputs
  errorUnsmoothed: number;
  weightScale: [number, number]; // min, max over output rows
  smooth: [number, number]; // min, max of the smoothing factors s
  actMax: [number, number]; // min, max over input channels of the activation abs-max
}

export interface NativeBuildResult {
  formatVersion: number;
  target: NativeTarget;
  dtype: DTypeName;
  weightBytes: number;
  prepareSeconds: number;
  writeSeconds: number;
  tuneSeconds?: number; // cuda: timing the GEMM algorithms
  tensors: Array<{
    name: string;
    dtype: DTypeName | 'int8' | 'int32' | 'float8_e4m3fn';
    shape: number[];
    bytes: number;
  }>;
  tunedGemms: NativeTunedGemm[];
  quantization: 'none' | 'int8' | 'fp8';
  int8Kernel?: string; // the int8 GEMM path: cpu avx512-vnni | avx2 | scalar; cuda: its kernels (cuda_int8.h)
  layers?: NativeQuantizedLayer[];
  calibration?: {
    samples: number;
    tokens: number;
    keptTokens: number;
    evalTokens: number;
    seconds: number;
    searchSeconds: number;
  };
}

export interface NativeModule {
  /** Loads on a worker thread. onProgress(stage, fraction 0..1) is called on the JS thread. */
  loadEngine(opts: NativeEngineOptions, onProgress?: (stage: string, fraction: number) => void): Promise<NativeEngine>;
  /** Writes outDir/model.safetensors in the backend's final layout, on a worker thread. */
  buildEngine(
    opts: NativeBuildOptions,
    outDir: string,
    onProgress?: (stage: string, fraction: number) => void,
  ): Promise<NativeBuildResult>;
  /** The target an engine built now for `device` (default cpu) records, and the engine format version this
   *  build reads and writes. cuda: throws without a CUDA backend or a usable GPU. */
  engineTarget(device?: Device): NativeTarget & { formatVersion: number };
  cudaAvailable(): boolean;
  builtWithCuda(): boolean;
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
let cached: NativeModule | undefined;

/** Loads build/Release/kvserve.node once; a clear error tells how to build it when it is missing. */
export function loadNative(): NativeModule {
  if (cached) return cached;
  const candidates = [join(root, 'build', 'Release', 'kvserve.node'), join(root, 'build', 'Debug', 'kvserve.node')];
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    throw new Error(`native addon not built (looked for ${candidates.join(', ')}); run \`npm run build\``);
  }
  cached = createRequire(import.meta.url)(path) as NativeModule;
  return cached;
}
