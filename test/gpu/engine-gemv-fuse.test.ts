// The GEMV epilogue fusions (RoPE + cache write and SiLU·mul in the qkv and gate/up GEMVs' epilogues) change no bit
// of what the engine computes:
// - gemvFuse (KVSERVE_GEMV_FUSE=1) on the bf16 GEMV. Each bf16 model (make_bf16_references.py: llama GQA 8/2 d64,
//   qwen2 with q/k/v bias, qwen3 with q/k norm, whose RoPE is never fused) is built once as an engine whose
//   manifest pins qkv_proj and gate_up_proj to the GEMV for M <= 8 (1, 2 and 4 rows per CTA over the ranges, so the
//   fused kernels run whatever the build's timing picked); both loads restore the same plans.
// - gemvFuseFp8 (KVSERVE_GEMV_FUSE_FP8=1) on the FP8 GEMV's version 2 (KVSERVE_GEMV_FP8=v2 in both loads). The same
//   models built as fp8 engines, qkv_proj and gate_up_proj pinned to gemv_fp8 for M <= 8 (16, 32 and 64 rows per
//   CTA). The switch reaches the load from the environment, the option wins, and without version 2 nothing fuses.
// Loaded with the fusion off and on: the same greedy ids and logits bytes for one prompt (decode steps of M = 1),
// the same ids and top-5 logprob bytes for 8 prompts batched (M = 8) and for 3 prompts in 2-token prefill chunks
// (mixed steps of 3 to 6 tokens, eager: prefill rows through the fused kernels too), with CUDA graphs on and off
// (then every decode step is eager), and over an fp8 KV cache.
// - KVSERVE_ROPE_VECTOR=1 (the rope + cache kernel's 16-bytes-a-lane path, kernels/rope_cache.cu): the same outputs
//   bitwise with and without it, the GEMV fusions off (every step through the kernel) and on (prefill and chunks).
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import type { EngineManifest } from '../../src/build/manifest.js';
import type { NativeEngine, NativeEngineOptions } from '../../src/runner/binding.js';
import { generate, greedy, type Sampling } from '../native/harness.js';
import { greedyRun } from '../native/native-run.js';
import { buildCuda, buildFp8, bytes, timedLoad } from './cuda-engine-helpers.js';
import { BF16_MODELS, bf16RefsDir, ensureBf16Refs, record } from './gpu-harness.js';

beforeAll(ensureBf16Refs, 600_000);

const prompt = [1, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41];
const prompts = Array.from({ length: 8 }, (_, i) => [
  1,
  ...Array.from({ length: 2 + 19 * i }, (_, j) => 3 + ((i * 97 + j * 13) % 1000)),
]);
const withLogprobs: Sampling = { ...greedy, numLogprobs: 5 };

/** Pins the engine's qkv and gate/up plans to `kernel` for every M <= 8, its rows per CTA cycling through `rows`
 *  over the ranges. */
function pinGemv(dir: string, kernel: 'gemv' | 'gemv_fp8', rows: number[]): void {
  const path = join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(path, 'utf8')) as EngineManifest;
  let pinned = 0;
  for (const g of m.tunedGemms)
    if ((g.weight === 'qkv_proj' || g.weight === 'gate_up_proj') && g.mMax <= 8) {
      Object.assign(g, { kernel, rowsPerCta: rows[pinned++ % rows.length] });
      for (const k of ['algo', 'algoId', 'tile', 'stages', 'splitK', 'workspace'] as const) delete g[k];
    }
  expect(pinned, 'M ranges of qkv_proj and gate_up_proj up to 8').toBeGreaterThanOrEqual(4);
  writeFileSync(path, JSON.stringify(m));
}

/** Greedy ids and logits of one prompt, 8 prompts batched, 3 in 2-token prefill chunks; disposes the engine. */
async function outputs(engine: NativeEngine) {
  try {
    const one = await greedyRun(engine, prompt, 10);
    const run = async (ps: number[][], prefillChunk?: number) => {
      const logprobs: Float32Array[] = [];
      const ids = await generate(engine, ps, {
        maxTokens: 10,
        blockSize: 16,
        maxBlocks: 16,
        prefillChunk,
        sampling: ps.map(() => withLogprobs),
        onStep: (r) => logprobs.push(r.topValues.slice()),
      });
      return { ids, logprobs: bytes(logprobs) };
    };
    return { one, batched: await run(prompts), chunked: await run(prompts.slice(2, 5), 2) };
  } finally {
    engine.dispose();
  }
}

/** Loads with `env` set for the load only (undefined: unset). */
async function load(o: Partial<NativeEngineOptions>, env: Record<string, string | undefined> = {}) {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  const set = (vars: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(vars)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  set(env);
  try {
    return (await timedLoad(o)).engine;
  } finally {
    set(saved);
  }
}

/** `off` and `on` (each loaded by `loadOne(fused)`) compute bitwise the same: outputs() of both. */
async function expectSameBits(loadOne: (fused: boolean) => Promise<NativeEngine>, fusedInfo: Record<string, unknown>) {
  const off = await loadOne(false);
  expect(off.info()).toMatchObject({ gemvFusion: '', gemmShapesImported: 5 });
  const plain = await outputs(off);
  const on = await loadOne(true);
  expect(on.info()).toMatchObject({ ...fusedInfo, gemmShapesImported: 5 });
  const withFusion = await outputs(on);
  expect(withFusion.one.ids).toEqual(plain.one.ids);
  expect(bytes(withFusion.one.logits).equals(bytes(plain.one.logits))).toBe(true);
  for (const k of ['batched', 'chunked'] as const) {
    expect(withFusion[k].ids, k).toEqual(plain[k].ids);
    expect(withFusion[k].logprobs.equals(plain[k].logprobs), k).toBe(true);
  }
}

const graphsEnv = (graphs: boolean) => ({ KVSERVE_CUDA_GRAPHS: graphs ? undefined : '0' });

describe.each(BF16_MODELS)('%s: the GEMV epilogue fusions change no bit', (name) => {
  let dir = '';
  beforeAll(async () => {
    dir = await buildCuda(resolve(bf16RefsDir, name));
    pinGemv(dir, 'gemv', [1, 2, 4]);
  }, 300_000);
  const fused = name.includes('qknorm') ? 'silu*mul' : 'rope+cache,silu*mul';
  const kvCaches = name.startsWith('llama') ? (['auto', 'fp8'] as const) : (['auto'] as const);

  for (const kvCacheDtype of kvCaches)
    test.each([true, false])(`KV cache ${kvCacheDtype}, CUDA graphs %s`, async (graphs) => {
      await expectSameBits((gemvFuse) => load({ engine: dir, gemvFuse, kvCacheDtype }, graphsEnv(graphs)), {
        gemvFusion: fused,
      });
      record(`gemv fusion ${name} kv ${kvCacheDtype} graphs ${graphs}`, { fused, identical: true });
    });
});

describe.each(BF16_MODELS)('%s: the rope+cache vector kernel changes no bit', (name) => {
  let dir = '';
  beforeAll(async () => {
    dir = await buildCuda(resolve(bf16RefsDir, name));
  }, 300_000);
  const kvCaches = name.startsWith('llama') ? (['auto', 'fp8'] as const) : (['auto'] as const);

  for (const kvCacheDtype of kvCaches)
    test.each([false, true])(`KV cache ${kvCacheDtype}, GEMV fusions %s`, async (gemvFuse) => {
      const scalar = await outputs(
        await load({ engine: dir, gemvFuse, kvCacheDtype }, { KVSERVE_ROPE_VECTOR: undefined }),
      );
      const vector = await outputs(await load({ engine: dir, gemvFuse, kvCacheDtype }, { KVSERVE_ROPE_VECTOR: '1' }));
      expect(vector.one.ids).toEqual(scalar.one.ids);
      expect(bytes(vector.one.logits).equals(bytes(scalar.one.logits))).toBe(true);
      for (const k of ['batched', 'chunked'] as const) {
        expect(vector[k].ids, k).toEqual(scalar[k].ids);
        expect(vector[k].logprobs.equals(scalar[k].logprobs), k).toBe(true);
      }
      record(`rope vector ${name} kv ${kvCacheDtype} gemvFuse ${gemvFuse}`, { identical: true });
    });
});

describe.each(BF16_MODELS)('%s as an fp8 engine: the FP8 GEMV epilogue fusions change no bit', (name) => {
  let dir = '';
  beforeAll(async () => {
    dir = await buildFp8(
      resolve(bf16RefsDir, name),
      prompts.map((p) => p.slice(1)),
    );
    pinGemv(dir, 'gemv_fp8', [16, 32, 64]);
  }, 600_000);
  const fused = name.includes('qknorm') ? 'silu*mul' : 'rope+cache,silu*mul';
  const kvCaches = name.startsWith('llama') ? (['auto', 'fp8'] as const) : (['auto'] as const);
  const v2 = { KVSERVE_GEMV_FP8: 'v2' };

  for (const kvCacheDtype of kvCaches)
    test.each([true, false])(`KV cache ${kvCacheDtype}, CUDA graphs %s`, async (graphs) => {
      await expectSameBits(
        (gemvFuseFp8) => load({ engine: dir, gemvFuseFp8, kvCacheDtype }, { ...v2, ...graphsEnv(graphs) }),
        { gemvFusion: fused, gemvFuseFp8: true, quantization: 'fp8' },
      );
      record(`gemv fusion fp8 ${name} kv ${kvCacheDtype} graphs ${graphs}`, { fused, identical: true });
    });

  if (name.startsWith('llama'))
    test('KVSERVE_GEMV_FUSE_FP8=1 sets the default, the option wins, off by default; nothing fuses on version 1', async () => {
      const info = async (o: Partial<NativeEngineOptions>, env: Record<string, string | undefined>) => {
        const engine = await load({ engine: dir, ...o }, { KVSERVE_GEMV_FUSE_FP8: undefined, ...env });
        const { gemvFuseFp8, gemvFusion } = engine.info();
        engine.dispose();
        return { gemvFuseFp8, gemvFusion };
      };
      const on = { gemvFuseFp8: true, gemvFusion: fused };
      const off = { gemvFuseFp8: false, gemvFusion: '' };
      expect(await info({}, v2)).toEqual(off);
      expect(await info({}, { ...v2, KVSERVE_GEMV_FUSE_FP8: '1' })).toEqual(on);
      expect(await info({ gemvFuseFp8: false }, { ...v2, KVSERVE_GEMV_FUSE_FP8: '1' })).toEqual(off);
      expect(await info({ gemvFuseFp8: true }, v2)).toEqual(on);
      // The fused kernels are version 2's: on version 1 the switch finds nothing to fuse.
      expect(await info({ gemvFuseFp8: true }, { KVSERVE_GEMV_FP8: 'v1' })).toEqual(off);
      // gemvFuse is the bf16 matrices' switch: it fuses nothing of an fp8 engine.
      expect(await info({ gemvFuse: true }, v2)).toEqual(off);
    });
});
