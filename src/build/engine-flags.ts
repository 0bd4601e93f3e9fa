// --engine DIR and --engine-cache DIR for `serve` and `generate`: both end as an engine folder to load, with
// the tokenizer read from it and the optimization profile it was built for as the engine's limits.
import { resolve } from 'node:path';
import { ConfigError, engineDefaults, type EngineConfig } from '../config.js';
import type { ProgressFn } from '../load-progress.js';
import { loadNative, type NativeModule } from '../runner/binding.js';
import { ensureCachedEngine } from './engine-cache.js';
import { readManifest, type EngineManifest } from './manifest.js';

export interface EngineFlagOptions {
  progress?: ProgressFn;
  log: (line: string) => void;
  native?: NativeModule;
}

/** Resolves --engine-cache into --engine, then points the config at the engine folder. */
export async function applyEngineFlags<T extends EngineConfig>(c: T, o: EngineFlagOptions): Promise<T> {
  if (c.engine && c.engineCache) throw new ConfigError('--engine and --engine-cache exclude each other');
  if (!c.engine && !c.engineCache) return c;
  if (c.loadFormat === 'dummy')
    throw new ConfigError('--load-format dummy cannot be used with --engine or --engine-cache');
  if (c.engine && c.model !== resolve(engineDefaults().model)) {
    throw new ConfigError(
      '--engine and --model exclude each other (an engine holds its model; --engine-cache goes with --model)',
    );
  }
  let engine = c.engine;
  if (c.engineCache) {
    const native = o.native ?? loadNative();
    engine = await ensureCachedEngine(
      {
        cacheDir: resolve(c.engineCache),
        model: c.model,
        modelDir: c.model,
        revision: null,
        device: c.device === 'auto' ? (native.cudaAvailable() ? 'cuda' : 'cpu') : c.device,
        dtype: c.dtype,
        quantization: c.quantization,
        threads: c.threads,
        profile: { maxNumSeqs: c.maxNumSeqs, maxNumBatchedTokens: c.maxNumBatchedTokens, maxModelLen: c.maxModelLen },
      },
      o.progress,
      o.log,
      native,
    );
  }
  engine = resolve(engine);
  return withEngine(c, engine, readManifest(engine));
}

function withEngine<T extends EngineConfig>(c: T, dir: string, m: EngineManifest): T {
  const defaults = engineDefaults();
  const rebuild = (flag: string, value: number | string) =>
    `rebuild with kvserve build ${m.rebuild.join(' ')} --out ${dir} (with ${flag} ${value})`;
  // A limit left at its default takes the engine's; one asked for explicitly must fit inside it.
  const limit = (flag: string, key: 'maxNumSeqs' | 'maxNumBatchedTokens' | 'maxModelLen') => {
    const built = m.profile[key];
    if (c[key] === defaults[key]) return built;
    if (built > 0 && (c[key] > built || c[key] === 0)) {
      throw new ConfigError(
        `${flag} ${c[key] || 'from config.json'} exceeds engine ${dir}'s profile (${built}): ${rebuild(flag, c[key])}`,
      );
    }
    return c[key];
  };
  if (c.quantization !== 'none' && c.quantization !== m.quantization.method) {
    throw new ConfigError(
      `engine ${dir} is quantized as ${m.quantization.method}; --quantization ${c.quantization}: ${rebuild('--quantization', c.quantization)}`,
    );
  }
  if (c.dtype !== 'auto' && c.dtype !== m.weights.dtype) {
    throw new ConfigError(
      `engine ${dir} holds ${m.weights.dtype} weights; --dtype ${c.dtype}: ${rebuild('--dtype', c.dtype)}`,
    );
  }
  return {
    ...c,
    engine: dir,
    engineCache: '',
    model: dir,
    tokenizer: !c.tokenizer || c.tokenizer === c.model ? dir : c.tokenizer,
    device: c.device === 'auto' ? m.target.device : c.device,
    maxNumSeqs: limit('--max-num-seqs', 'maxNumSeqs'),
    maxNumBatchedTokens: limit('--max-num-batched-tokens', 'maxNumBatchedTokens'),
    maxModelLen: limit('--max-model-len', 'maxModelLen'),
  };
}
