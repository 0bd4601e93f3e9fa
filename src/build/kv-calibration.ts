// The fp8 KV cache of `kvserve build --device cuda --kv-cache-dtype fp8`: one float32 scale per layer for K and
// one for V (stored = e4m3(x / scale)), calibrated as the weights are, on --calib-data. The engine as built
// (its manifest not yet naming a KV cache, so over a cache in its compute dtype) prefills the first
// --calib-samples samples, one step each; after each step the native observer (Backend::kvAbsMax) reads back,
// per layer, the abs-max of K (after RoPE, as stored) and of V over the slots the sample wrote. The scale is
// abs-max / 448, so the largest value seen lands on e4m3's largest finite code and no value saturates; a layer
// that held only zeros keeps 1.0. The manifest's kvCache section keeps the scales, and a load of the engine
// runs its fp8 cache with them (engines/engine.cc).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type Device, loadNative, type NativeEngine, type NativeEngineOptions } from '../runner/binding.js';
import { TextTokenizer } from '../tokenizer/tokenizer.js';
import { calibrationTokens, evalSamples, sampleMaxLen } from './calibration-data.js';
import type { KvCacheSection } from './manifest.js';
import { prefillBatch, qualityLine, sampleEngineOptions } from './quality.js';
import { formatTable, shortNumber } from './summary-table.js';

/** e4m3's largest finite value. */
export const E4M3_MAX = 448;
const FLT_MIN = 2 ** -126;

export interface KvCalibrationOptions {
  calibData: string; // --calib-data
  calibSamples: number; // --calib-samples: the first N samples
  evalData: string; // --eval-data: the quality check's held-out text
}

export interface KvCachePlan {
  options: KvCalibrationOptions;
  samples: number[][]; // calibration token ids, each at most maxLen
  evalSamples: number[][];
  maxLen: number;
  calibSha256: string;
}

/** Reads and tokenizes the calibration and held-out text before the native build starts. */
export async function planKvCache(
  o: KvCalibrationOptions,
  model: { dir: string; configPath: string; dummy: boolean; maxModelLen: number },
): Promise<KvCachePlan> {
  const config = JSON.parse(readFileSync(model.configPath, 'utf8')) as { max_position_embeddings?: number };
  const maxLen = sampleMaxLen(config.max_position_embeddings, model.maxModelLen);
  const tok = await TextTokenizer.forModel(model.dir, { dummy: model.dummy, configPath: model.configPath });
  return {
    options: o,
    samples: calibrationTokens(tok, o.calibData, o.calibSamples, maxLen, 'KV cache calibration'),
    evalSamples: evalSamples(tok, o.evalData, maxLen),
    maxLen,
    calibSha256: createHash('sha256').update(readFileSync(o.calibData)).digest('hex'),
  };
}

export interface KvAbsMax {
  k: number[]; // [numLayers]
  v: number[];
}

/** Per layer, the abs-max of K and of V over every token of `samples`, each prefilled alone into slots 0 .. n-1
 *  (the engine's pool must hold maxLen tokens). NaN when a layer produced one. */
export async function observeKvAbsMax(
  engine: NativeEngine,
  samples: number[][],
  onSample?: (index: number) => void,
): Promise<KvAbsMax> {
  const layers = engine.info().numLayers;
  const k = new Array<number>(layers).fill(0);
  const v = new Array<number>(layers).fill(0);
  for (const [i, ids] of samples.entries()) {
    onSample?.(i);
    const m = (await engine.step({ ...prefillBatch(ids, false), observeKvAbsMax: true })).kvAbsMax!;
    for (let l = 0; l < layers; l++) {
      k[l] = Math.max(k[l]!, m[2 * l]!); // Math.max keeps a NaN
      v[l] = Math.max(v[l]!, m[2 * l + 1]!);
    }
  }
  return { k, v };
}

/** A layer's scale from its abs-max, in float32: absMax / 448, FLT_MIN at the least, 1.0 for a layer of zeros
 *  (as the fp8 weight quantizer treats a row). */
export function kvScale(absMax: number): number {
  const s = Math.fround(absMax / E4M3_MAX);
  return s >= FLT_MIN ? s : absMax > 0 ? FLT_MIN : 1;
}

export interface KvCalibrationRun {
  /** The model to observe: a model folder, or an engine folder (with model ''). */
  engine: Pick<NativeEngineOptions, 'model'> &
    Partial<Pick<NativeEngineOptions, 'engine' | 'dummyWeights' | 'dtype' | 'seed'>>;
  samples: number[][];
  maxLen: number;
  threads: number;
  device: Device;
  progress?: (fraction: number) => void;
}

/** Loads the engine (its cache in the compute dtype), observes every sample, and checks that every abs-max is
 *  finite: a NaN or an infinity means the model overflows in its compute dtype, which no scale can hold. */
export async function calibrateKvCache(o: KvCalibrationRun): Promise<KvAbsMax> {
  const engine = await loadNative().loadEngine({
    ...sampleEngineOptions(o.device, o.threads, o.maxLen, 1),
    ...o.engine,
    kvCacheDtype: 'auto',
  });
  let observed: KvAbsMax;
  try {
    if (engine.info().kvCacheDtype === 'fp8_e4m3')
      throw new Error('KV cache calibration needs a cache in the compute dtype; this engine already has an fp8 one');
    observed = await observeKvAbsMax(engine, o.samples, (i) => o.progress?.(i / o.samples.length));
  } finally {
    engine.dispose();
  }
  for (const [name, list] of [
    ['K', observed.k],
    ['V', observed.v],
  ] as const) {
    const l = list.findIndex((x) => !Number.isFinite(x));
    if (l >= 0) {
      throw new Error(
        `--kv-cache-dtype fp8: layer ${l}'s ${name} reached ${list[l]} on the calibration samples (the model overflows ` +
          'in its compute dtype); no fp8 scale can hold it (build with --kv-cache-dtype auto)',
      );
    }
  }
  o.progress?.(1);
  return observed;
}

export function kvCacheSection(plan: KvCachePlan, observed: KvAbsMax, seconds: number): KvCacheSection {
  return {
    dtype: 'fp8_e4m3',
    scheme:
      'K (after RoPE) and V stored as OCP e4m3 with one float32 scale per layer each: stored = e4m3(x / scale), ' +
      'read as stored × scale; scale = the abs-max on the calibration set / 448',
    observer: 'absmax',
    kScale: observed.k.map(kvScale),
    vScale: observed.v.map(kvScale),
    kAbsMax: observed.k,
    vAbsMax: observed.v,
    calibration: {
      file: plan.options.calibData,
      sha256: plan.calibSha256,
      samples: plan.samples.length,
      tokens: plan.samples.reduce((n, s) => n + s.length, 0),
      seconds,
    },
    quality: null,
  };
}

/** The per-layer table and the quality line, for the build's output and engine-info. */
export function kvCacheSummary(kv: KvCacheSection): string[] {
  const c = kv.calibration;
  const cell = (v: number | undefined) => (v === undefined ? '' : shortNumber(v));
  const rows = kv.kScale.map((k, l) => [
    String(l),
    cell(kv.kAbsMax?.[l]),
    cell(k),
    cell(kv.vAbsMax?.[l]),
    cell(kv.vScale[l]),
  ]);
  const out = [
    `fp8 KV cache (${kv.dtype}, one scale per layer for K and for V: ${kv.observer} / ${E4M3_MAX})` +
      (c ? `: calibrated on ${c.samples} samples, ${c.tokens} tokens of ${c.file}` : ''),
    ...formatTable(['layer', 'K abs-max', 'K scale', 'V abs-max', 'V scale'], rows),
  ];
  if (kv.quality) out.push(qualityLine(kv.quality, 'unquantized', 'fp8 KV cache'));
  return out;
}

/** The rebuild arguments of an fp8 KV cache's calibration. */
export function kvCacheArgs(o: KvCalibrationOptions): string[] {
  return ['--kv-cache-dtype', 'fp8', '--calib-data', o.calibData, '--calib-samples', String(o.calibSamples)];
}
