// Building an engine folder: the native writer puts the weights in the backend's final layout (for int8:
// after calibrating and quantizing them), then the model is hashed, config.json and the tokenizer files are
// copied, and manifest.json is written; with --kv-cache-dtype fp8 the engine is then loaded from the folder to
// calibrate its KV cache's scales (kv-calibration.ts); a quantized engine (or one with an fp8 KV cache) is then
// loaded as it will be served and measured against the unquantized model on held-out text, and the manifest
// rewritten with the result. All of it happens in a temporary folder that becomes the engine only when
// complete (atomic-folder.ts).
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ConfigError, repoRoot } from '../config.js';
import type { ProgressFn } from '../load-progress.js';
import { loadNative, type Device, type DTypeName, type NativeModule } from '../runner/binding.js';
import { writeSyntheticTokenizer } from '../tokenizer/synthetic.js';
import { writeFolderAtomically } from './atomic-folder.js';
import {
  configPathOf,
  int8Args,
  int8Defaults,
  int8Section,
  planInt8,
  withQuality,
  type Int8Options,
  type Int8Plan,
} from './int8-build.js';
import { defaultCalibData, defaultEvalData } from './calibration-data.js';
import { fp8Section, planFp8, type Fp8Plan } from './fp8-build.js';
import { calibrateKvCache, kvCacheArgs, kvCacheSection, planKvCache, type KvCachePlan } from './kv-calibration.js';
import { MANIFEST, type EngineManifest, type OptimizationProfile, type Quantization } from './manifest.js';
import { hashModelFolder, type ModelHash } from './model-hash.js';
import { measureQuality } from './quality.js';

export interface BuildOptions {
  model: string; // as given: a folder or an org/name Hub id (recorded in the manifest)
  modelDir: string; // the local folder it resolved to (with dummy: a folder or a config.json)
  revision: string | null; // Hub revision of an org/name model
  out: string;
  device: Device;
  dtype: 'auto' | DTypeName;
  quantization: Quantization;
  profile: OptimizationProfile;
  threads: number; // 0 = all cores
  dummy?: { seed: number }; // --load-format dummy: random weights of the config's shape, for benchmarks
  int8?: Int8Options; // with quantization int8; int8Defaults() when absent
  evalData?: string; // fp8 (weights or KV cache): held-out text of the quality report (default: the shipped one)
  kvCacheDtype?: 'auto' | 'fp8'; // fp8: the engine runs an fp8 KV cache with scales calibrated at build (cuda)
  calibration?: { calibData: string; calibSamples: number }; // of the fp8 KV cache (default: the shipped text, 128)
}

// Copied beside the weights when the model has them: what the tokenizer, the chat template and generation
// defaults are read from.
const COPIED = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
  'chat_template.json',
];

export const kvserveVersion = (): string =>
  (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

/** A Hub snapshot folder is named by its commit (hub/hub-cache.ts). */
const hubCommit = (dir: string): string | null => (/^[0-9a-f]{40}$/.test(basename(dir)) ? basename(dir) : null);

export function rebuildArgs(o: BuildOptions): string[] {
  return [
    '--model',
    o.model,
    ...(o.revision ? ['--revision', o.revision] : []),
    ...(o.dummy ? ['--load-format', 'dummy', '--dummy-seed', String(o.dummy.seed)] : []),
    '--device',
    o.device,
    '--dtype',
    o.dtype,
    '--quantization',
    o.quantization,
    ...(o.quantization === 'int8' ? int8Args(o.int8 ?? int8Defaults()) : []),
    ...(o.quantization === 'fp8' || o.kvCacheDtype === 'fp8' ? ['--eval-data', o.evalData ?? defaultEvalData] : []),
    ...(o.kvCacheDtype === 'fp8' ? kvCacheArgs(kvCalibration(o)) : []),
    '--max-num-seqs',
    String(o.profile.maxNumSeqs),
    '--max-num-batched-tokens',
    String(o.profile.maxNumBatchedTokens),
    '--max-model-len',
    String(o.profile.maxModelLen),
  ];
}

const kvCalibration = (o: BuildOptions) => ({
  calibData: o.calibration?.calibData ?? defaultCalibData,
  calibSamples: o.calibration?.calibSamples ?? 128,
  evalData: o.evalData ?? defaultEvalData,
});

/** Builds the engine at o.out; `hash`, when the caller already has it, skips hashing the model again. */
export async function buildEngineFolder(
  o: BuildOptions,
  progress?: ProgressFn,
  native: NativeModule = loadNative(),
  hash?: ModelHash,
): Promise<EngineManifest> {
  if (o.quantization === 'fp8' && o.device !== 'cuda')
    throw new ConfigError('--quantization fp8 is for --device cuda (on cpu: none or int8)');
  if (o.kvCacheDtype === 'fp8' && o.device !== 'cuda')
    throw new ConfigError('--kv-cache-dtype fp8 is for --device cuda (the CPU backend keeps the KV cache in float32)');
  if (o.device === 'cuda' && !native.builtWithCuda()) {
    throw new Error(
      '--device cuda: this build has no CUDA backend (built without nvcc and cuBLASLt); build for --device cpu',
    );
  }
  const t0 = performance.now();
  const dummy = o.dummy !== undefined;
  const configPath = configPathOf(o.modelDir, dummy);
  const modelFiles = {
    dir: dummy && o.modelDir.endsWith('.json') ? dirname(o.modelDir) : o.modelDir,
    configPath,
    dummy,
    maxModelLen: o.profile.maxModelLen,
  };
  const plan: Int8Plan | undefined =
    o.quantization === 'int8' ? await planInt8(o.int8 ?? int8Defaults(), modelFiles) : undefined;
  const fp8: Fp8Plan | undefined =
    o.quantization === 'fp8' ? await planFp8(o.evalData ?? defaultEvalData, modelFiles) : undefined;
  const kv: KvCachePlan | undefined =
    o.kvCacheDtype === 'fp8' ? await planKvCache(kvCalibration(o), modelFiles) : undefined;
  return writeFolderAtomically(o.out, async (tmp) => {
    const built = await native.buildEngine(
      {
        model: o.modelDir,
        dummyWeights: dummy,
        device: o.device,
        dtype: o.dtype,
        numThreads: o.threads,
        blockSize: 16,
        numKvBlocks: 0,
        kvCacheBytes: 0,
        gpuMemoryUtilization: 0.9,
        maxNumBatchedTokens: o.profile.maxNumBatchedTokens,
        maxNumSeqs: o.profile.maxNumSeqs,
        maxModelLen: o.profile.maxModelLen,
        seed: o.dummy?.seed ?? 0,
        quantization: plan?.request ?? (fp8 ? { method: 'fp8' } : undefined),
        kvCacheDtype: kv ? 'fp8' : 'auto', // refused here, before the weights, where the model cannot have one
      },
      tmp,
      progress,
    );
    const t1 = performance.now();
    progress?.('hash', 0);
    const from = dirname(configPath);
    const only = dummy ? [basename(configPath)] : undefined;
    const source = hash ?? (await hashModelFolder(from, (f) => progress?.('hash', f), undefined, only));
    progress?.('hash', 1);
    const t2 = performance.now();
    progress?.('copy', 0);
    if (dummy) copyFileSync(configPath, join(tmp, 'config.json'));
    for (const name of COPIED)
      if (!(dummy && name === 'config.json') && existsSync(join(from, name)))
        copyFileSync(join(from, name), join(tmp, name));
    // A bare preset has no tokenizer: the engine gets the synthetic one serve --load-format dummy would use.
    if (!existsSync(join(tmp, 'tokenizer.json'))) {
      const vocab = (JSON.parse(readFileSync(configPath, 'utf8')) as { vocab_size?: number }).vocab_size;
      if (dummy && typeof vocab === 'number') writeSyntheticTokenizer(tmp, vocab);
    }
    progress?.('copy', 1);
    const t3 = performance.now();
    const manifest: EngineManifest = {
      formatVersion: built.formatVersion,
      kvserveVersion: kvserveVersion(),
      createdAt: new Date().toISOString(),
      source: {
        model: o.model,
        revision: o.revision,
        commit: o.revision ? hubCommit(o.modelDir) : null,
        contentHash: source.contentHash,
        files: source.files,
      },
      quantization: plan
        ? int8Section(plan, built, null)
        : fp8
          ? fp8Section(null, fp8.evalData, built)
          : { method: 'none' },
      target: built.target,
      weights: {
        file: 'model.safetensors',
        dtype: built.dtype,
        bytes: built.weightBytes,
        tensors: built.tensors.length,
      },
      profile: o.profile,
      tunedGemms: built.tunedGemms,
      timings: {
        prepare: built.prepareSeconds,
        ...(built.tuneSeconds ? { tune: built.tuneSeconds } : {}),
        ...(built.calibration
          ? { calibrate: built.calibration.seconds, quantize: built.calibration.searchSeconds }
          : {}),
        write: built.writeSeconds,
        hash: (t2 - t1) / 1000,
        copy: (t3 - t2) / 1000,
        total: (performance.now() - t0) / 1000,
      },
      rebuild: rebuildArgs(o),
    };
    const write = () => writeFileSync(join(tmp, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    write();
    if (kv) {
      // The manifest names no KV cache yet, so this load of the engine runs a cache in its compute dtype.
      const t4 = performance.now();
      progress?.('calibrate', 0);
      const observed = await calibrateKvCache({
        engine: { model: '', engine: tmp },
        samples: kv.samples,
        maxLen: kv.maxLen,
        threads: o.threads,
        device: o.device,
        progress: (f) => progress?.('calibrate', f),
      });
      const seconds = (performance.now() - t4) / 1000;
      manifest.kvCache = kvCacheSection(kv, observed, seconds);
      manifest.timings.calibrateKv = seconds;
      manifest.timings.total = (performance.now() - t0) / 1000;
      write();
    }
    // A quantized engine, or one with an fp8 KV cache, is measured as written (loaded from this folder as
    // serve --engine would: with its fp8 cache and calibrated scales when it has them), against the unquantized
    // model (its cache in the compute dtype) on the same device; the manifest is written again with the result.
    const evaluate = async (samples: number[][], maxLen: number, dtype: BuildOptions['dtype'], device: Device) => {
      const t4 = performance.now();
      progress?.('evaluate', 0);
      const quality = await measureQuality({
        engineDir: tmp,
        reference: { model: o.modelDir, dummyWeights: dummy, dtype, seed: o.dummy?.seed ?? 0 },
        samples,
        maxLen,
        threads: o.threads,
        device,
        progress: (f) => progress?.('evaluate', f),
      });
      progress?.('evaluate', 1);
      manifest.timings.evaluate = (performance.now() - t4) / 1000;
      manifest.timings.total = (performance.now() - t0) / 1000;
      return quality;
    };
    if (fp8) {
      // fp8 computes in the engine's dtype (bf16/f16), so that is the unquantized reference's too.
      manifest.quantization = fp8Section(
        await evaluate(fp8.evalSamples, fp8.maxLen, built.dtype, 'cuda'),
        fp8.evalData,
        built,
      );
      write();
    } else if (kv && manifest.kvCache) {
      manifest.kvCache.quality = {
        file: kv.options.evalData,
        ...(await evaluate(kv.evalSamples, kv.maxLen, built.dtype, 'cuda')),
      };
      write();
    }
    if (plan && manifest.quantization.method === 'int8') {
      // On the GPU, int8 computes in the engine's dtype, which is the unquantized reference's too (as fp8).
      const reference = o.device === 'cuda' ? built.dtype : o.dtype;
      const quality = await evaluate(plan.evalSamples, plan.maxLen, reference, o.device);
      manifest.quantization.quality = withQuality(quality, plan.options.evalData);
      write();
    }
    return manifest;
  });
}
