// The TypeScript half of `kvserve build --quantization int8`: the calibration and evaluation text tokenized
// with the model's tokenizer, --keep-precision resolved to layer names, and the manifest's quantization
// section (with a summary for people) from what the native build reports.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config.js';
import type { NativeBuildResult, NativeQuantization } from '../runner/binding.js';
import { TextTokenizer } from '../tokenizer/tokenizer.js';
import {
  calibrationTokens,
  defaultCalibData,
  defaultEvalData,
  evalSamples,
  packSamples,
  sampleMaxLen,
} from './calibration-data.js';
import { linearLayerNames, resolveKeepPrecision } from './layer-names.js';
import type { Int8Quantization } from './manifest.js';
import { qualityLine, type QualityReport } from './quality.js';
import { formatTable, shortNumber } from './summary-table.js';

export interface Int8Options {
  calibData: string; // --calib-data
  calibSamples: number; // --calib-samples: the first N samples
  evalData: string; // --eval-data: held-out text for perplexity and top-1 agreement
  keepPrecision: string; // --keep-precision: comma list of layer names or patterns
  maxLayerError: number; // --max-layer-error: relative output error bound of the per-layer fallback
  alpha: string; // --smoothquant-alpha: "auto" (search the grid per layer group) or one value in [0, 1]
  observer: 'auto' | 'absmax' | 'percentile'; // --calib-observer
  percentile: number; // --calib-percentile
}

export const int8Defaults = (): Int8Options => ({
  calibData: defaultCalibData,
  calibSamples: 128,
  evalData: defaultEvalData,
  keepPrecision: '',
  maxLayerError: 0.1,
  alpha: 'auto',
  observer: 'auto',
  percentile: 99.9,
});

export const ALPHA_GRID = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8];

export interface Int8Plan {
  options: Int8Options;
  request: NativeQuantization;
  evalSamples: number[][];
  maxLen: number;
  calibSha256: string;
}

interface ModelShape {
  num_hidden_layers?: number;
  max_position_embeddings?: number;
}

/** Reads, tokenizes and checks everything an int8 build needs before the native build starts. */
export async function planInt8(
  o: Int8Options,
  model: { dir: string; configPath: string; dummy: boolean; maxModelLen: number },
): Promise<Int8Plan> {
  const config = JSON.parse(readFileSync(model.configPath, 'utf8')) as ModelShape;
  const names = linearLayerNames(config.num_hidden_layers ?? 0);
  const keepFloat = resolveKeepPrecision(o.keepPrecision, names);
  let alphas = ALPHA_GRID;
  if (o.alpha !== 'auto') {
    const a = Number(o.alpha);
    if (o.alpha.trim() === '' || !(a >= 0 && a <= 1)) {
      throw new ConfigError(`--smoothquant-alpha must be auto or a number in [0, 1], got "${o.alpha}"`);
    }
    alphas = [a];
  }
  const maxLen = sampleMaxLen(config.max_position_embeddings, model.maxModelLen);
  const tok = await TextTokenizer.forModel(model.dir, { dummy: model.dummy, configPath: model.configPath });
  const calib = calibrationTokens(tok, o.calibData, o.calibSamples, maxLen);
  return {
    options: o,
    request: {
      method: 'int8',
      calibration: packSamples(calib),
      alphas,
      observers: o.observer === 'auto' ? ['absmax', 'percentile'] : [o.observer],
      tryUnsmoothed: o.alpha === 'auto',
      percentile: o.percentile,
      maxLayerError: o.maxLayerError,
      keepFloat,
    },
    evalSamples: evalSamples(tok, o.evalData, maxLen),
    maxLen,
    calibSha256: createHash('sha256').update(readFileSync(o.calibData)).digest('hex'),
  };
}

export function int8Section(
  plan: Int8Plan,
  built: NativeBuildResult,
  quality: Int8Quantization['quality'],
): Int8Quantization {
  const layers = built.layers ?? [];
  const r = plan.request;
  return {
    method: 'int8',
    scheme:
      'W8A8: int8 weights with a symmetric scale per output channel; int8 activations with a symmetric scale per token, computed at run time',
    kernel: built.int8Kernel ?? '',
    smoothquant: { alphaGrid: r.alphas ?? [], tryUnsmoothed: r.tryUnsmoothed ?? true, chosenPer: 'layer group' },
    observer: { searched: r.observers ?? [], percentile: r.percentile ?? 99.9 },
    maxLayerError: r.maxLayerError ?? 0.1,
    calibration: { file: plan.options.calibData, sha256: plan.calibSha256, ...built.calibration! },
    layers,
    keptInFloat: layers.filter((l) => !l.int8).map((l) => ({ name: l.name, why: l.keptBecause ?? '' })),
    quality,
  };
}

export const withQuality = (q: QualityReport, file: string): Int8Quantization['quality'] => ({ file, ...q });

/** The per-layer table and the quality line, for the build's output and engine-info. */
export function int8Summary(q: Int8Quantization): string[] {
  const rows = q.layers.map((l) => [
    l.name,
    l.int8 ? 'int8' : 'float',
    l.smoothing === 'none' ? 'none' : `${l.observer} α=${l.alpha!.toFixed(2)} (${l.smoothing})`,
    `${shortNumber(l.weightScale[0])}..${shortNumber(l.weightScale[1])}`,
    `${shortNumber(l.actMax[0])}..${shortNumber(l.actMax[1])}`,
    `${(l.error * 100).toFixed(2)}%`,
    `${(l.errorUnsmoothed * 100).toFixed(2)}%`,
    l.keptBecause ?? '',
  ]);
  const head = [
    'layer',
    'as',
    'smoothing',
    'weight scale',
    'act abs-max',
    'error',
    'unsmoothed',
    'kept in float because',
  ];
  const c = q.calibration;
  const out = [
    `int8 (${q.kernel}): ${q.layers.filter((l) => l.int8).length} of ${q.layers.length} linear layers; calibrated on ${c.samples} samples, ${c.tokens} tokens of ${c.file}`,
    ...formatTable(head, rows),
  ];
  if (q.quality) out.push(qualityLine(q.quality, 'float', 'int8'));
  return out;
}

/** The rebuild arguments of an int8 build's options. */
export function int8Args(o: Int8Options): string[] {
  return [
    '--calib-data',
    o.calibData,
    '--calib-samples',
    String(o.calibSamples),
    '--eval-data',
    o.evalData,
    ...(o.keepPrecision ? ['--keep-precision', o.keepPrecision] : []),
    '--max-layer-error',
    String(o.maxLayerError),
    '--smoothquant-alpha',
    o.alpha,
    '--calib-observer',
    o.observer,
    '--calib-percentile',
    String(o.percentile),
  ];
}

export const configPathOf = (modelDir: string, dummy: boolean): string =>
  dummy && modelDir.endsWith('.json') ? modelDir : join(modelDir, 'config.json');
