// Helpers for the engine-folder tests: a build into a fresh temporary folder, and native engine options.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildEngineFolder, type BuildOptions } from '../../src/build/build-engine.js';
import { int8Defaults, type Int8Options } from '../../src/build/int8-build.js';
import type { EngineManifest } from '../../src/build/manifest.js';
import { type DTypeName, loadNative, type NativeEngineOptions } from '../../src/runner/binding.js';
import { expect } from 'vitest';
import { engineOptions } from '../native/harness.js';

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

/** An int8 engine of modelDir (the shipped calibration and held-out text unless overridden). */
export async function buildInt8Into(
  modelDir: string,
  int8: Partial<Int8Options> = {},
  dtype: 'auto' | DTypeName = 'auto',
): Promise<{ dir: string; manifest: EngineManifest }> {
  const out = join(tempDir(), 'engine');
  const manifest = await buildEngineFolder({
    ...buildOptions(modelDir, out, dtype),
    quantization: 'int8',
    int8: { ...int8Defaults(), ...int8 },
  });
  return { dir: out, manifest };
}

export function nativeOptions(overrides: Partial<NativeEngineOptions>): NativeEngineOptions {
  return engineOptions({ model: '', ...overrides });
}

/** The one-line error with which loading the engine at `dir` (or a load with these options, the demo model by
 *  default) fails; the test fails if it loads. */
export async function loadError(dir: string | Partial<NativeEngineOptions>): Promise<string> {
  const e = await loadNative()
    .loadEngine(typeof dir === 'string' ? nativeOptions({ engine: dir }) : engineOptions(dir))
    .then(
      (engine) => {
        engine.dispose();
        return undefined;
      },
      (err: Error) => err,
    );
  expect(e, 'the engine loaded').toBeInstanceOf(Error);
  expect(e!.message).not.toContain('\n');
  return e!.message;
}
