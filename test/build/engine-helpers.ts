// Helpers for the engine-folder tests: a build into a fresh temporary folder, and native engine options.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildEngineFolder, type BuildOptions } from '../../src/build/build-engine.js';
import type { DTypeName, NativeEngineOptions } from '../../src/runner/binding.js';

export const repo = resolve(__dirname, '..', '..');
export const storiesDir = resolve(repo, 'models', 'stories260K');
export const fixturesDir = resolve(repo, 'test', 'fixtures');

export function tempDir(name = 'kvserve-engine-'): string {
  return mkdtempSync(join(tmpdir(), name));
}

export function buildOptions(modelDir: string, out: string, dtype: 'auto' | DTypeName = 'auto'): BuildOptions {
  return {
    model: modelDir,
    modelDir,
    revision: null,
    out,
    device: 'cpu',
    dtype,
    quantization: 'none',
    threads: 2,
    profile: { maxNumSeqs: 16, maxNumBatchedTokens: 2048, maxModelLen: 0 },
  };
}

/** Builds modelDir into a new temporary folder; returns the engine folder. */
export async function buildInto(modelDir: string, dtype: 'auto' | DTypeName = 'auto'): Promise<string> {
  const out = join(tempDir(), 'engine');
  await buildEngineFolder(buildOptions(modelDir, out, dtype));
  return out;
}

export function nativeOptions(overrides: Partial<NativeEngineOptions>): NativeEngineOptions {
  return {
    model: '',
    dummyWeights: false,
    device: 'cpu',
    dtype: 'auto',
    numThreads: 2,
    blockSize: 16,
    numKvBlocks: 0,
    kvCacheBytes: 0,
    gpuMemoryUtilization: 0.9,
    maxNumBatchedTokens: 2048,
    maxNumSeqs: 16,
    maxModelLen: 0,
    seed: 0,
    ...overrides,
  };
}
