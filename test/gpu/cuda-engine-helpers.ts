// Shared by the CUDA engine tests: building an engine of a model folder for the GPU, loading it or its model
// with the same profile, and running a model folder with an engine's tuned GEMMs (KVSERVE_GEMM_TUNED).
import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { expect } from 'vitest';
import { type BuildOptions, buildEngineFolder } from '../../src/build/build-engine.js';
import type { OptimizationProfile } from '../../src/build/manifest.js';
import { loadNative, type DTypeName, type NativeEngine, type NativeEngineOptions } from '../../src/runner/binding.js';
import { writeSyntheticTokenizer } from '../../src/tokenizer/synthetic.js';
import { greedyRun } from '../native/native-run.js';
import { cudaOptions } from './gpu-harness.js';

export const PROFILE: OptimizationProfile = { maxNumSeqs: 16, maxNumBatchedTokens: 2048, maxModelLen: 0 };

export const tempDir = (name = 'kvserve-cuda-engine-') => mkdtempSync(join(tmpdir(), name));

/** kvserve build --device cuda of modelDir (the profile above) into a new temporary folder; `extra` adds build
 *  options (quantization, kvCacheDtype, calibration, evalData). */
export async function buildCuda(
  modelDir: string,
  dtype: 'auto' | DTypeName = 'auto',
  out?: string,
  extra: Partial<BuildOptions> = {},
): Promise<string> {
  const dir = out ?? join(tempDir(), 'engine');
  await buildEngineFolder({
    model: modelDir,
    modelDir,
    revision: null,
    out: dir,
    device: 'cuda',
    dtype,
    quantization: 'none',
    threads: 0,
    profile: PROFILE,
    ...extra,
  });
  return dir;
}

/** kvserve build --quantization fp8 --device cuda (bfloat16) of a copy of the model folder `modelDir` given a synthetic
 *  tokenizer of its 1024 ids, whose quality report (the build measures it on text) reads `evalIds` as its held-out
 *  text, one line per prompt (ids from 3; BOS left to the tokenizer), into a new temporary folder. */
export async function buildFp8(
  modelDir: string,
  evalIds: number[][],
  extra: Partial<BuildOptions> = {},
): Promise<string> {
  const root = tempDir('kvserve-fp8-');
  const model = join(root, basename(modelDir));
  cpSync(modelDir, model, { recursive: true });
  writeSyntheticTokenizer(model, 1024);
  const evalData = join(root, 'eval.txt');
  writeFileSync(evalData, evalIds.map((p) => p.map((id) => `w${id}`).join(' ')).join('\n'));
  return buildCuda(model, 'bfloat16', join(root, 'engine'), { quantization: 'fp8', evalData, ...extra });
}

/** Native options of the profile the engines are built with; `engine` or `model` in the overrides. */
export function profileOptions(overrides: Partial<NativeEngineOptions>): NativeEngineOptions {
  return cudaOptions(overrides.model ?? '', {
    numKvBlocks: 512,
    maxNumSeqs: PROFILE.maxNumSeqs,
    maxNumBatchedTokens: PROFILE.maxNumBatchedTokens,
    ...overrides,
  });
}

/** Loads, timed; with `tunedFrom`, a model folder takes that engine's GEMM algorithms instead of timing its own. */
export async function timedLoad(
  o: Partial<NativeEngineOptions>,
  tunedFrom?: string,
): Promise<{ engine: NativeEngine; ms: number }> {
  if (tunedFrom) process.env.KVSERVE_GEMM_TUNED = tunedFrom;
  const t0 = performance.now();
  try {
    const engine = await loadNative().loadEngine(profileOptions(o));
    return { engine, ms: performance.now() - t0 };
  } finally {
    delete process.env.KVSERVE_GEMM_TUNED;
  }
}

/** The rows' bytes, concatenated (bitwise comparisons of logits and logprobs). */
export function bytes(rows: Float32Array[]): Buffer {
  return Buffer.concat(rows.map((r) => Buffer.from(r.buffer, r.byteOffset, r.byteLength)));
}

/** The engine in `dir` and a load of `model` with the engine's GEMMs: both info() match `info`, and 16 greedy steps
 *  after one prompt give the same ids and bitwise the same logits. Returns both load times. */
export async function expectEngineMatchesModel(
  model: Partial<NativeEngineOptions>,
  dir: string,
  info: Record<string, unknown>,
): Promise<{ engineLoadMs: number; modelLoadMs: number }> {
  const prompt = [1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41];
  const direct = await timedLoad(model, dir);
  try {
    const loaded = await timedLoad({ engine: dir });
    try {
      expect(loaded.engine.info()).toMatchObject(info);
      expect(direct.engine.info()).toMatchObject(info);
      const a = await greedyRun(direct.engine, prompt, 16);
      const b = await greedyRun(loaded.engine, prompt, 16);
      expect(b.ids).toEqual(a.ids);
      expect(bytes(b.logits).equals(bytes(a.logits))).toBe(true);
      return { engineLoadMs: loaded.ms, modelLoadMs: direct.ms };
    } finally {
      loaded.engine.dispose();
    }
  } finally {
    direct.engine.dispose();
  }
}

/** The load's error message (the load must fail), checked to be one line. */
export async function loadError(o: Partial<NativeEngineOptions>): Promise<string> {
  const e = await loadNative()
    .loadEngine(profileOptions(o))
    .then(
      (engine) => {
        engine.dispose();
        return undefined;
      },
      (err: Error) => err,
    );
  if (!e) throw new Error(`the load of ${o.engine ?? o.model} succeeded`);
  if (e.message.includes('\n')) throw new Error(`not one line: ${e.message}`);
  return e.message;
}

/** name → dtype, shape and bytes of every tensor of the safetensors files in `dir`, read by hand. */
export function readTensors(dir: string): Map<string, { dtype: string; shape: number[]; bytes: Buffer }> {
  const out = new Map<string, { dtype: string; shape: number[]; bytes: Buffer }>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.safetensors'))) {
    const buf = readFileSync(join(dir, f));
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<
      string,
      { dtype: string; shape: number[]; data_offsets: [number, number] }
    >;
    for (const [name, e] of Object.entries(header))
      if (name !== '__metadata__')
        out.set(name, {
          dtype: e.dtype,
          shape: e.shape,
          bytes: buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]),
        });
  }
  return out;
}
