// gemvFuse (KVSERVE_GEMV_FUSE=1): RoPE + cache write and SiLU·mul in the qkv and gate/up GEMVs' epilogues
// change no bit of what the engine computes. Each bf16 model (make_bf16_references.py: llama GQA 8/2 d64,
// qwen2 with q/k/v bias, qwen3 with q/k norm, whose RoPE is never fused) is built once as an engine whose
// manifest pins qkv_proj and gate_up_proj to the GEMV for M <= 8 (1, 2 and 4 rows per CTA over the ranges,
// so the fused kernels run whatever the build's timing picked); both loads restore the same plans. Loaded with
// the fusion off and on: the same greedy ids and logits bytes for one prompt (decode steps of M = 1), the same
// ids and top-5 logprob bytes for 8 prompts batched (M = 8) and for 3 prompts in 2-token prefill chunks
// (mixed steps of 3 to 6 tokens, eager: prefill rows through the fused kernels too), with CUDA graphs on and
// off (then every decode step is eager), and over an fp8 KV cache.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import type { EngineManifest } from '../../src/build/manifest.js';
import type { NativeEngine, NativeEngineOptions } from '../../src/runner/binding.js';
import { generate, greedy, type Sampling } from '../native/harness.js';
import { greedyRun } from '../native/native-run.js';
import { buildCuda, bytes, timedLoad } from './cuda-engine-helpers.js';
import { BF16_MODELS, bf16RefsDir, ensureBf16Refs, record } from './gpu-harness.js';

beforeAll(ensureBf16Refs, 600_000);

const prompt = [1, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41];
const prompts = Array.from({ length: 8 }, (_, i) => [
  1,
  ...Array.from({ length: 2 + 19 * i }, (_, j) => 3 + ((i * 97 + j * 13) % 1000)),
]);
const withLogprobs: Sampling = { ...greedy, numLogprobs: 5 };

/** Builds `name` as an engine whose qkv and gate/up plans run the GEMV for every M <= 8. */
async function pinnedEngine(name: string): Promise<string> {
  const dir = await buildCuda(resolve(bf16RefsDir, name));
  const path = join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(path, 'utf8')) as EngineManifest;
  let pinned = 0;
  for (const g of m.tunedGemms)
    if ((g.weight === 'qkv_proj' || g.weight === 'gate_up_proj') && g.mMax <= 8) {
      Object.assign(g, { kernel: 'gemv', rowsPerCta: [1, 2, 4][pinned++ % 3] });
      for (const k of ['algo', 'algoId', 'tile', 'stages', 'splitK', 'workspace'] as const) delete g[k];
    }
  expect(pinned, 'M ranges of qkv_proj and gate_up_proj up to 8').toBeGreaterThanOrEqual(4);
  writeFileSync(path, JSON.stringify(m));
  return dir;
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

async function load(engine: string, gemvFuse: boolean, graphs: boolean, o: Partial<NativeEngineOptions>) {
  if (!graphs) process.env.KVSERVE_CUDA_GRAPHS = '0';
  try {
    return (await timedLoad({ engine, gemvFuse, ...o })).engine;
  } finally {
    delete process.env.KVSERVE_CUDA_GRAPHS;
  }
}

describe.each(BF16_MODELS)('%s: the GEMV epilogue fusions change no bit', (name) => {
  let dir = '';
  beforeAll(async () => {
    dir = await pinnedEngine(name);
  }, 300_000);
  const fused = name.includes('qknorm') ? 'silu*mul' : 'rope+cache,silu*mul';
  const kvCaches = name.startsWith('llama') ? (['auto', 'fp8'] as const) : (['auto'] as const);

  for (const kvCacheDtype of kvCaches)
    test.each([true, false])(`KV cache ${kvCacheDtype}, CUDA graphs %s`, async (graphs) => {
      const o = { kvCacheDtype };
      const off = await load(dir, false, graphs, o);
      expect(off.info()).toMatchObject({ gemvFusion: '', gemmShapesImported: 5 });
      const plain = await outputs(off);
      const on = await load(dir, true, graphs, o);
      expect(on.info()).toMatchObject({ gemvFusion: fused, gemmShapesImported: 5 });
      const withFusion = await outputs(on);
      expect(withFusion.one.ids).toEqual(plain.one.ids);
      expect(bytes(withFusion.one.logits).equals(bytes(plain.one.logits))).toBe(true);
      for (const k of ['batched', 'chunked'] as const) {
        expect(withFusion[k].ids, k).toEqual(plain[k].ids);
        expect(withFusion[k].logprobs.equals(plain[k].logprobs), k).toBe(true);
      }
      record(`gemv fusion ${name} kv ${kvCacheDtype} graphs ${graphs}`, { fused, identical: true });
    });
});
