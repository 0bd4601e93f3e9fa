// An engine folder's manifest.json: what `kvserve build` made, from what, for which hardware, and how long each
// stage took. The native loader checks formatVersion and target again before mapping a weight
// (engines/engine_manifest.cc); this side reads it for display, for the optimization profile a served engine
// keeps, and for the engine cache.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DTypeName, NativeQuantizedLayer, NativeTarget, NativeTunedGemm } from '../runner/binding.js';
import { fp8Summary } from './fp8-build.js';
import { int8Summary } from './int8-build.js';
import { kvCacheSummary } from './kv-calibration.js';
import type { QualityReport } from './quality.js';

export interface SourceFile {
  path: string; // relative to the model folder
  bytes: number;
  sha256: string;
}

export interface OptimizationProfile {
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number; // 0 = the model's max_position_embeddings
}

export type Quantization = 'none' | 'fp8' | 'int8';

/** The manifest's quantization of an int8 engine: how it was made, per layer, and what it costs in quality. */
export interface Int8Quantization {
  method: 'int8';
  scheme: string; // in words: weights per output channel, activations per token
  kernel: string; // the int8 GEMM path: compiled into the building addon (cpu), or the CUDA kernels
  smoothquant: { alphaGrid: number[]; tryUnsmoothed: boolean; chosenPer: 'layer group' };
  observer: { searched: Array<'absmax' | 'percentile'>; percentile: number };
  maxLayerError: number;
  calibration: {
    file: string;
    sha256: string;
    samples: number;
    tokens: number;
    keptTokens: number;
    evalTokens: number;
    seconds: number;
    searchSeconds: number;
  };
  layers: NativeQuantizedLayer[];
  keptInFloat: Array<{ name: string; why: string }>;
  quality: (QualityReport & { file: string }) | null;
}

/** The manifest's quantization of a CUDA fp8 engine (fp8-build.ts). */
export interface Fp8Quantization {
  method: 'fp8';
  scheme: string;
  keptInFloat: Array<{ name: string; why: string }>;
  quality: (QualityReport & { file: string }) | null;
}

/** The manifest's kvCache of an engine built with --kv-cache-dtype fp8 (kv-calibration.ts): the cache a load runs
 *  by default, with its calibrated per-layer scales (engines/engine_manifest.cc checks them at load). */
export interface KvCacheSection {
  dtype: 'fp8_e4m3';
  scheme: string; // in words
  observer: 'absmax'; // the abs-max of K (after RoPE) and V as written to a cache in the compute dtype
  kScale: number[]; // [numLayers] float32, > 0
  vScale: number[];
  kAbsMax: number[]; // [numLayers] what the observer saw
  vAbsMax: number[];
  calibration: { file: string; sha256: string; samples: number; tokens: number; seconds: number };
  /** The engine with this cache against the unquantized model (null when the quantization section holds the
   *  measurement of both, as for --quantization fp8). */
  quality: (QualityReport & { file: string }) | null;
}

export interface EngineManifest {
  formatVersion: number;
  kvserveVersion: string;
  createdAt: string; // ISO 8601
  source: {
    model: string; // the --model argument: a folder or an org/name Hub id
    revision: string | null; // Hub revision, null for a local folder
    commit: string | null; // the Hub commit that revision resolved to (the snapshot folder's name)
    contentHash: string; // sha256 over the per-file hashes below, in path order (model-hash.ts)
    files: SourceFile[];
  };
  quantization: { method: 'none' } | Int8Quantization | Fp8Quantization;
  /** Absent: the KV cache is the compute dtype's (cpu: float32). */
  kvCache?: KvCacheSection;
  target: NativeTarget;
  weights: { file: 'model.safetensors'; dtype: DTypeName; bytes: number; tensors: number };
  profile: OptimizationProfile;
  /** Tuned GEMM algorithms per weight shape and M range (the CPU backend has none). */
  tunedGemms: NativeTunedGemm[];
  timings: Record<string, number>; // seconds per stage
  /** `kvserve build` arguments (without --out) that rebuild this engine. */
  rebuild: string[];
}

export class EngineFolderError extends Error {
  override name = 'EngineFolderError';
}

export const MANIFEST = 'manifest.json';

/** The manifest of an engine folder; one-line errors for a missing or malformed one. */
export function readManifest(dir: string): EngineManifest {
  let text: string;
  try {
    text = readFileSync(join(dir, MANIFEST), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new EngineFolderError(
      code === 'ENOENT'
        ? `engine ${dir} has no ${MANIFEST} (is it a folder made by kvserve build?)`
        : `engine ${dir}: cannot read ${MANIFEST}: ${(e as Error).message}`,
    );
  }
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (e) {
    throw new EngineFolderError(
      `engine ${dir}: ${MANIFEST} is not valid JSON (${(e as Error).message}) (rebuild it with kvserve build)`,
    );
  }
  const bad = (what: string) =>
    new EngineFolderError(`engine ${dir}: ${MANIFEST} ${what} (rebuild it with kvserve build)`);
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw bad('is not a JSON object');
  const o = m as Partial<EngineManifest>;
  if (!Number.isInteger(o.formatVersion)) throw bad('has no integer formatVersion');
  const p = o.profile;
  if (!p || ![p.maxNumSeqs, p.maxNumBatchedTokens, p.maxModelLen].every((v) => Number.isInteger(v) && v >= 0)) {
    throw bad('has no valid profile');
  }
  if (!o.target || typeof o.target.device !== 'string' || !Array.isArray(o.target.features))
    throw bad('has no valid target');
  if (!o.source || typeof o.source.model !== 'string' || typeof o.source.contentHash !== 'string')
    throw bad('has no valid source');
  if (!o.quantization || typeof o.quantization.method !== 'string') throw bad('has no valid quantization');
  // What the display needs; the values (count, sign, finiteness) are the native loader's to check.
  const kv = o.kvCache;
  const numbers = (a: unknown) => Array.isArray(a) && a.every((x) => typeof x === 'number');
  if (kv !== undefined && (typeof kv !== 'object' || kv === null || !numbers(kv.kScale) || !numbers(kv.vScale)))
    throw bad('has no valid kvCache');
  return o as EngineManifest;
}

const GiB = 1024 ** 3;

/** "cpu x86_64: avx,avx2,…" or "cuda sm_90: NVIDIA H200 (compute capability 9.0, 132 SMs), driver …". */
export function describeTarget(t: NativeTarget): string {
  if (t.device !== 'cuda') return `${t.device} ${t.arch}: ${t.features.join(',') || 'no SIMD features'}`;
  return (
    `cuda ${t.arch}: ${t.gpuName} (compute capability ${t.computeCapability}, ${t.smCount} SMs), ` +
    `driver ${t.driverVersion || `for CUDA ${t.cudaDriverVersion}`}, CUDA runtime ${t.cudaRuntimeVersion}, ` +
    `cuBLASLt ${t.cublasLtVersion}, kernels for ${t.cudaArchs}`
  );
}

function describeGemm(g: NativeTunedGemm): string {
  if (g.kernel === 'gemv') return `GEMV kernel, ${g.rowsPerCta} rows of W per CTA`;
  if (g.kernel === 'gemv_even') return 'GEMV kernel, W cut evenly over one wave of CTAs';
  if (g.kernel === 'gemv_fp8') return `fp8 GEMV kernel, ${g.rowsPerCta} rows of W per CTA`;
  if (g.kernel === 'gemv_int8') return `int8 GEMV kernel, ${g.rowsPerCta} rows of W per CTA`;
  if (g.kernel === 'cublasLt' || g.kernel === 'cublasLt_int8')
    return `cuBLASLt${g.kernel === 'cublasLt_int8' ? ' int8' : ''} algo ${g.algoId}, tile ${g.tile}, stages ${g.stages}, split-K ${g.splitK}`;
  return g.algo ?? '';
}

/** A manifest for people: `kvserve engine-info DIR`. */
export function formatManifest(dir: string, m: EngineManifest): string {
  const size = (b: number) => (b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : `${(b / 1024 ** 2).toFixed(2)} MiB`);
  const lines = [
    `engine         ${dir}`,
    `format         ${m.formatVersion} (kvserve ${m.kvserveVersion}, built ${m.createdAt})`,
    `model          ${m.source.model}${m.source.revision ? ` @ ${m.source.revision}` : ''}${m.source.commit ? ` (commit ${m.source.commit})` : ''}`,
    `content hash   ${m.source.contentHash} (${m.source.files.length} files)`,
    `target         ${describeTarget(m.target)}`,
    `weights        ${m.weights.dtype}, ${m.weights.tensors} tensors, ${size(m.weights.bytes)} (${m.weights.file})`,
    `quantization   ${m.quantization.method}`,
    ...(m.quantization.method === 'int8' ? int8Summary(m.quantization).map((l) => `  ${l}`) : []),
    ...(m.quantization.method === 'fp8' ? fp8Summary(m.quantization).map((l) => `  ${l}`) : []),
    `kv cache       ${m.kvCache ? `${m.kvCache.dtype}, calibrated scales` : 'the compute dtype'}`,
    ...(m.kvCache ? kvCacheSummary(m.kvCache).map((l) => `  ${l}`) : []),
    `profile        max-num-seqs ${m.profile.maxNumSeqs}, max-num-batched-tokens ${m.profile.maxNumBatchedTokens}, ` +
      `max-model-len ${m.profile.maxModelLen || 'from config.json'}`,
    `tuned GEMMs    ${m.tunedGemms.length === 0 ? 'none' : `${m.tunedGemms.length} M ranges`}`,
    ...m.tunedGemms.map((g) => `  ${g.weight} [${g.n}, ${g.k}] M ${g.mMin}..${g.mMax}: ${describeGemm(g)}`),
    `timings        ${Object.entries(m.timings)
      .map(([k, v]) => `${k} ${v.toFixed(3)} s`)
      .join(', ')}`,
    `rebuild        kvserve build ${m.rebuild.join(' ')} --out ${dir}`,
  ];
  return lines.join('\n');
}
