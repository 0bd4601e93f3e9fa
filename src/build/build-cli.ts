// `kvserve build --model M --out DIR`: an engine folder for one backend and optimization profile;
// `kvserve engine-info DIR` (or `kvserve build --print DIR`) prints an engine's manifest.
import { resolve } from 'node:path';
import { renderHelp } from '../cli-help.js';
import { ConfigError, defaultModelDir, engineDefaults, engineFlags, parseFlags, type FlagSpec } from '../config.js';
import { isHubModelId, resolveModelDir } from '../hub/resolve-model.js';
import { stderrProgress } from '../load-progress.js';
import { buildEngineFolder } from './build-engine.js';
import { fp8Summary } from './fp8-build.js';
import { int8Defaults, int8Summary, type Int8Options } from './int8-build.js';
import { kvCacheSummary } from './kv-calibration.js';
import { formatManifest, readManifest, type Quantization } from './manifest.js';

interface BuildConfig extends Int8Options {
  model: string;
  revision: string;
  loadFormat: 'auto' | 'dummy';
  seed: number;
  out: string;
  device: 'cpu' | 'cuda';
  dtype: 'auto' | 'float32' | 'bfloat16' | 'float16';
  quantization: Quantization;
  kvCacheDtype: 'auto' | 'fp8' | 'fp8_e4m3';
  threads: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number;
  print: string;
  quiet: boolean;
}

const buildFlags: Record<string, FlagSpec> = {
  model: engineFlags.model!,
  revision: engineFlags.revision!,
  out: {
    key: 'out',
    kind: 'string',
    metavar: 'DIR',
    help: 'the engine folder to write (required; replaced when it holds an engine)',
  },
  device: { key: 'device', kind: 'string', choices: ['cpu', 'cuda'], help: 'the backend the engine is for' },
  dtype: engineFlags.dtype!,
  'load-format': {
    key: 'loadFormat',
    kind: 'string',
    choices: ['auto', 'dummy'],
    help: 'dummy = random weights of the shape of --model (a folder or a config.json), for benchmarks',
  },
  'dummy-seed': engineFlags['dummy-seed']!,
  quantization: {
    key: 'quantization',
    kind: 'string',
    choices: ['none', 'fp8', 'int8'],
    help: 'int8: W8A8 with SmoothQuant, calibrated on --calib-data (--device cpu); fp8: E4M3 weights per channel, activations per token (--device cuda)',
  },
  'kv-cache-dtype': {
    key: 'kvCacheDtype',
    kind: 'string',
    choices: ['auto', 'fp8', 'fp8_e4m3'],
    help:
      'auto = the compute dtype; fp8 (or fp8_e4m3): the engine runs an e4m3 KV cache with one K and one V scale per ' +
      'layer, calibrated on --calib-data (abs-max / 448) and kept in the manifest (--device cuda)',
  },
  'calib-data': {
    key: 'calibData',
    kind: 'string',
    metavar: 'FILE',
    help: 'int8 and fp8 KV cache calibration text: .jsonl with {"text": ...} per line, else one sample per paragraph (or line)',
  },
  'calib-samples': {
    key: 'calibSamples',
    kind: 'int',
    min: 1,
    help: 'int8, fp8 KV cache: calibrate on the first N samples',
  },
  'eval-data': {
    key: 'evalData',
    kind: 'string',
    metavar: 'FILE',
    help: 'int8, fp8, fp8 KV cache: held-out text (as --calib-data) for perplexity and top-1 agreement against the unquantized model',
  },
  'keep-precision': {
    key: 'keepPrecision',
    kind: 'string',
    metavar: 'NAMES',
    help: 'int8: layers kept in float, comma-separated names or patterns (lm_head, down_proj, layers.0.*)',
  },
  'max-layer-error': {
    key: 'maxLayerError',
    kind: 'number',
    metavar: 'E',
    min: 0,
    help: 'int8: a layer whose relative output error on the calibration set exceeds this stays in float',
  },
  'smoothquant-alpha': {
    key: 'alpha',
    kind: 'string',
    metavar: 'A',
    help: 'int8: SmoothQuant migration strength in [0, 1], or auto (the best of 0.3..0.8 or none, per layer group)',
  },
  'calib-observer': {
    key: 'observer',
    kind: 'string',
    choices: ['auto', 'absmax', 'percentile'],
    help: "int8: activation range for smoothing: channel abs-max, a percentile, or auto (each group's best)",
  },
  'calib-percentile': {
    key: 'percentile',
    kind: 'number',
    metavar: 'P',
    min: 50,
    max: 100,
    help: 'int8: the percentile observer takes this percentile of |x| per channel',
  },
  threads: engineFlags.threads!,
  'max-num-seqs': engineFlags['max-num-seqs']!,
  'max-num-batched-tokens': engineFlags['max-num-batched-tokens']!,
  'max-model-len': engineFlags['max-model-len']!,
  print: { key: 'print', kind: 'string', metavar: 'DIR', help: 'print the manifest of an engine folder and exit' },
  quiet: { key: 'quiet', kind: 'boolean', help: 'no progress on stderr' },
};

const buildDefaults = (): BuildConfig => {
  const e = engineDefaults();
  return {
    ...int8Defaults(),
    model: e.model,
    revision: e.revision,
    loadFormat: 'auto',
    seed: 0,
    out: '',
    device: 'cpu',
    dtype: 'auto',
    quantization: 'none',
    kvCacheDtype: 'auto',
    threads: 0,
    maxNumSeqs: e.maxNumSeqs,
    maxNumBatchedTokens: e.maxNumBatchedTokens,
    maxModelLen: e.maxModelLen,
    print: '',
    quiet: false,
  };
};

const help = () =>
  renderHelp({
    usage: 'kvserve build --model DIR --out DIR [options]',
    summary:
      "Builds an engine: the model's weights in the backend's final layout with a manifest of what it was " +
      'built from and for (format, CPU features or GPU, profile, on CUDA the tuned GEMM algorithms); ' +
      'kvserve serve --engine DIR loads it with no conversion. --device cuda runs on the GPU the engine is for.',
    flags: buildFlags,
    defaults: buildDefaults(),
    examples: [
      'kvserve build --model models/stories260K --out engines/stories-cpu',
      'kvserve build --model org/name --dtype float32 --max-num-seqs 64 --out /srv/engines/name-f32',
      'kvserve build --model org/name --device cuda --max-num-seqs 256 --max-num-batched-tokens 8192 --out /srv/engines/name-h200',
      'kvserve build --model models/stories260K --quantization int8 --out engines/stories-int8',
      'kvserve build --model DIR --quantization int8 --calib-data calib.jsonl --keep-precision lm_head --out DIR',
      'kvserve build --model org/name --device cuda --quantization fp8 --out /srv/engines/name-h200-fp8',
      'kvserve build --model org/name --device cuda --kv-cache-dtype fp8 --calib-data calib.jsonl --out /srv/engines/name-kv8',
      'kvserve engine-info engines/stories-cpu',
    ],
  });

export function runEngineInfoCli(argv: string[]): number {
  if (argv.length !== 1 || argv[0]!.startsWith('-')) {
    console.log('usage: kvserve engine-info DIR   (prints the manifest of an engine folder made by kvserve build)');
    return argv[0] === '--help' || argv[0] === '-h' ? 0 : 2;
  }
  const dir = resolve(argv[0]!);
  console.log(formatManifest(dir, readManifest(dir)));
  return 0;
}

export async function runBuildCli(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(help());
    return 0;
  }
  const { config: c, rest } = parseFlags<BuildConfig>(argv, buildFlags, buildDefaults());
  if (rest.length > 0) throw new ConfigError(`unexpected argument "${rest[0]}" (see --help)`);
  if (c.print) return runEngineInfoCli([c.print]);
  if (!c.out) throw new ConfigError('--out DIR is required (the engine folder to write)');
  if (c.maxNumBatchedTokens < 16)
    throw new ConfigError(`--max-num-batched-tokens must be at least 16, got ${c.maxNumBatchedTokens}`);
  const dummy = c.loadFormat === 'dummy';
  const kvFp8 = c.kvCacheDtype !== 'auto';
  if (c.quantization !== 'int8') {
    // The fp8 KV cache's calibration takes --calib-data and --calib-samples; its quality (and fp8's) --eval-data.
    const shared = [
      ...(kvFp8 ? ['calibData', 'calibSamples', 'evalData'] : []),
      ...(c.quantization === 'fp8' ? ['evalData'] : []),
    ];
    const given = Object.keys(int8Defaults()).filter(
      (k) =>
        !shared.includes(k) &&
        (c as unknown as Record<string, unknown>)[k] !== (int8Defaults() as unknown as Record<string, unknown>)[k],
    );
    if (given.length > 0) {
      const calib = given.every((k) => k === 'calibData' || k === 'calibSamples' || k === 'evalData');
      throw new ConfigError(
        `the int8 options (${given.join(', ')}) need --quantization int8${calib ? ' (or --kv-cache-dtype fp8)' : ''}`,
      );
    }
  }
  const hub = isHubModelId(c.model);
  const modelDir = hub
    ? await resolveModelDir(c.model, { revision: c.revision, set: 'model', progress: !c.quiet })
    : resolve(c.model);
  const started = performance.now();
  const manifest = await buildEngineFolder(
    {
      model: hub ? c.model : modelDir,
      modelDir,
      revision: hub ? c.revision : null,
      out: resolve(c.out),
      device: c.device,
      dtype: c.dtype,
      quantization: c.quantization,
      threads: c.threads,
      ...(dummy ? { dummy: { seed: c.seed } } : {}),
      int8: {
        calibData: resolve(c.calibData),
        calibSamples: c.calibSamples,
        evalData: resolve(c.evalData),
        keepPrecision: c.keepPrecision,
        maxLayerError: c.maxLayerError,
        alpha: c.alpha,
        observer: c.observer,
        percentile: c.percentile,
      },
      evalData: resolve(c.evalData),
      ...(kvFp8
        ? {
            kvCacheDtype: 'fp8' as const,
            calibration: { calibData: resolve(c.calibData), calibSamples: c.calibSamples },
          }
        : {}),
      profile: { maxNumSeqs: c.maxNumSeqs, maxNumBatchedTokens: c.maxNumBatchedTokens, maxModelLen: c.maxModelLen },
    },
    c.quiet ? undefined : stderrProgress('building: '),
  );
  if (!c.quiet) {
    const s = ((performance.now() - started) / 1000).toFixed(2);
    const q = manifest.quantization;
    if (q.method === 'int8') for (const line of int8Summary(q)) console.error(line);
    if (q.method === 'fp8') for (const line of fp8Summary(q)) console.error(line);
    if (manifest.kvCache) for (const line of kvCacheSummary(manifest.kvCache)) console.error(line);
    console.error(
      `kvserve: built ${resolve(c.out)} (${q.method !== 'none' ? `${q.method} + ` : ''}${manifest.weights.dtype}` +
        `${manifest.kvCache ? ', fp8 KV cache' : ''}, ${manifest.target.device} ` +
        `${manifest.target.device === 'cuda' ? `${manifest.target.arch} ${manifest.target.gpuName}` : manifest.target.features.join(',')}) ` +
        `in ${s} s${c.model === defaultModelDir ? ' from the stories260K demo' : ''}`,
    );
  }
  return 0;
}
