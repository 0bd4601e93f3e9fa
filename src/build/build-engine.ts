// Building an engine folder: the native writer puts the weights in the backend's final layout, then the model
// is hashed, config.json and the tokenizer files are copied, and manifest.json is written last, all inside a
// temporary folder that becomes the engine only when complete (atomic-folder.ts).
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { repoRoot } from '../config.js';
import type { ProgressFn } from '../load-progress.js';
import { loadNative, type Device, type DTypeName, type NativeModule } from '../runner/binding.js';
import { writeFolderAtomically } from './atomic-folder.js';
import { MANIFEST, type EngineManifest, type OptimizationProfile, type Quantization } from './manifest.js';
import { hashModelFolder, type ModelHash } from './model-hash.js';

export interface BuildOptions {
  model: string; // as given: a folder or an org/name Hub id (recorded in the manifest)
  modelDir: string; // the local folder it resolved to
  revision: string | null; // Hub revision of an org/name model
  out: string;
  device: Device;
  dtype: 'auto' | DTypeName;
  quantization: Quantization;
  profile: OptimizationProfile;
  threads: number; // 0 = all cores
  dummyWeights?: boolean; // cuda: random weights for a config.json-only folder (benchmarks of an engine's load)
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
    '--device',
    o.device,
    '--dtype',
    o.dtype,
    '--quantization',
    o.quantization,
    '--max-num-seqs',
    String(o.profile.maxNumSeqs),
    '--max-num-batched-tokens',
    String(o.profile.maxNumBatchedTokens),
    '--max-model-len',
    String(o.profile.maxModelLen),
  ];
}

/** Builds the engine at o.out; `hash`, when the caller already has it, skips hashing the model again. */
export async function buildEngineFolder(
  o: BuildOptions,
  progress?: ProgressFn,
  native: NativeModule = loadNative(),
  hash?: ModelHash,
): Promise<EngineManifest> {
  if (o.quantization !== 'none' && o.device === 'cuda') {
    throw new Error(
      `--quantization ${o.quantization} with --device cuda is not implemented yet (supported there: none)`,
    );
  }
  if (o.quantization !== 'none') {
    throw new Error(`--quantization ${o.quantization} is not supported yet (supported: none)`);
  }
  if (o.device === 'cuda' && !native.builtWithCuda()) {
    throw new Error(
      '--device cuda: this build has no CUDA backend (built without nvcc and cuBLASLt); build for --device cpu',
    );
  }
  const t0 = performance.now();
  return writeFolderAtomically(o.out, async (tmp) => {
    const built = await native.buildEngine(
      {
        model: o.modelDir,
        dummyWeights: o.dummyWeights ?? false,
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
        seed: 0,
      },
      tmp,
      progress,
    );
    const t1 = performance.now();
    progress?.('hash', 0);
    const source = hash ?? (await hashModelFolder(o.modelDir, (f) => progress?.('hash', f)));
    progress?.('hash', 1);
    const t2 = performance.now();
    progress?.('copy', 0);
    for (const name of COPIED)
      if (existsSync(join(o.modelDir, name))) copyFileSync(join(o.modelDir, name), join(tmp, name));
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
      quantization: { method: o.quantization },
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
        write: built.writeSeconds,
        hash: (t2 - t1) / 1000,
        copy: (t3 - t2) / 1000,
        total: (performance.now() - t0) / 1000,
      },
      rebuild: rebuildArgs(o),
    };
    writeFileSync(join(tmp, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    return manifest;
  });
}
