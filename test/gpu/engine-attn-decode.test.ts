// KVSERVE_ATTN_DECODE=v2 in the engine: decode steps' attention in one launch (kernels/flash_decode_v2.cuh),
// which promises the two-launch kernel's bits. On the tiny bf16 models of make_bf16_references.py (head_dim 64
// with G 4, 128 with G 2, 128 with G 8), over a bf16 and an fp8 cache:
// - 32 greedy steps after the 300-token reference prompt (contexts 300-331: three 128-key partitions merged every
//   step) give the same ids and bitwise the same logits with v1 and v2, CUDA graphs on (every tile through the
//   merge, the split counters reused by each replay) and off;
// - with v2 in --batch-invariant mode, 8 prompts of 4-165 tokens: greedy ids and top-5 logprobs alone = batched =
//   with chunked prefill (whose mixed steps run the prefill-shaped kernel), as with v1; a prompt alone decodes on
//   the device's deepest ring, a batch of several on 2 stages (cuda_forward.cc: decodeStagesFor).
// - auto (the default mode's default): decode steps of one sequence run v2 at half the engine's partition (64
//   keys), the rest v1; 32 greedy steps of one sequence give bitwise the ids and logits of a v1 engine whose
//   partition is 64 keys (KVSERVE_ATTN_MIN_PARTITION=64), graphs on and off.
// The loads compared bitwise restore one set of GEMM plans (KVSERVE_GEMM_TUNED: an engine built once per model),
// since two loads that each time their own GEMMs can pick kernels of other bits for a near tie (the row or the even
// GEMV, gemv_inv, cuBLASLt): GPU run 17 saw v2 against v1 differ once in 5 runs, the ids equal, before this.
// info().attnDecode names the kernel: auto without the switch, v2 / v1 with it, v1 in --batch-invariant mode
// without it and for a model v2 does not run (stories260K: float32, head_dim 8); any other value of the switch
// is refused at load, in one line.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadNative, type NativeEngine, type NativeEngineOptions } from '../../src/runner/binding.js';
import { storiesDir } from '../native/harness.js';
import { greedyRun } from '../native/native-run.js';
import { expectBatchInvariant } from './batch-invariance.js';
import { buildCuda, bytes, loadError } from './cuda-engine-helpers.js';
import { BF16_MODELS, bf16RefsDir, cudaOptions, ensureBf16Refs, record } from './gpu-harness.js';

beforeAll(ensureBf16Refs, 600_000);

/** Loads `model` with `env` set for the load only (the backend reads KVSERVE_ATTN_DECODE and KVSERVE_CUDA_GRAPHS there). */
async function load(
  model: string,
  env: Record<string, string>,
  o: Partial<NativeEngineOptions> = {},
): Promise<NativeEngine> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await loadNative().loadEngine(cudaOptions(model, { numKvBlocks: 512, maxNumSeqs: 16, ...o }));
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const longPrompt = (name: string): number[] => {
  const ref = JSON.parse(readFileSync(resolve(bf16RefsDir, name, 'expected.json'), 'utf8')) as { prompts: number[][] };
  const p = ref.prompts.find((x) => x.length >= 300);
  if (!p) throw new Error(`${name}: no reference prompt of 300 tokens`);
  return p;
};

describe.each(BF16_MODELS)('%s: the single-launch decode attention', (name) => {
  const model = resolve(bf16RefsDir, name);
  let tuned = ''; // the engine whose GEMM plans every compared load restores
  beforeAll(async () => {
    tuned = await buildCuda(model);
  }, 300_000);
  test.each([
    ['bf16', true],
    ['bf16', false],
    ['fp8', true],
    ['fp8', false],
  ] as const)('%s cache, CUDA graphs %s: v2 gives v1 bits over split contexts', async (cache, graphs) => {
    const prompt = longPrompt(name);
    const o: Partial<NativeEngineOptions> = cache === 'fp8' ? { kvCacheDtype: 'fp8' } : {};
    const env: Record<string, string> = { KVSERVE_GEMM_TUNED: tuned, ...(graphs ? {} : { KVSERVE_CUDA_GRAPHS: '0' }) };
    const runs = [];
    for (const version of ['v1', 'v2'] as const) {
      const engine = await load(model, { ...env, KVSERVE_ATTN_DECODE: version }, o);
      try {
        expect(engine.info().attnDecode).toBe(version);
        runs.push(await greedyRun(engine, prompt, 32));
      } finally {
        engine.dispose();
      }
    }
    const [v1, v2] = runs as [Awaited<ReturnType<typeof greedyRun>>, Awaited<ReturnType<typeof greedyRun>>];
    expect(v2.ids).toEqual(v1.ids);
    expect(bytes(v2.logits).equals(bytes(v1.logits))).toBe(true);
    record(`attn decode v2 ${name} ${cache} graphs ${graphs}`, { ids: v2.ids.slice(0, 8), identical: true });
  });

  test.each([true, false])('auto, CUDA graphs %s: one sequence decodes on v2 at 64-key partitions', async (graphs) => {
    const prompt = longPrompt(name);
    const env: Record<string, string> = { KVSERVE_GEMM_TUNED: tuned, ...(graphs ? {} : { KVSERVE_CUDA_GRAPHS: '0' }) };
    const runs = [];
    for (const [version, extra] of [
      ['auto', {}],
      ['v1', { KVSERVE_ATTN_DECODE: 'v1', KVSERVE_ATTN_MIN_PARTITION: '64' }],
    ] as const) {
      const engine = await load(model, { ...env, ...extra });
      try {
        expect(engine.info().attnDecode).toBe(version);
        runs.push(await greedyRun(engine, prompt, 32));
      } finally {
        engine.dispose();
      }
    }
    const [auto, v1] = runs as [Awaited<ReturnType<typeof greedyRun>>, Awaited<ReturnType<typeof greedyRun>>];
    expect(auto.ids).toEqual(v1.ids);
    expect(bytes(auto.logits).equals(bytes(v1.logits))).toBe(true);
    record(`attn decode auto ${name} graphs ${graphs}`, { ids: auto.ids.slice(0, 8), identical: true });
  });

  test('v2 in --batch-invariant mode: ids and top-5 logprobs do not depend on the batch', async () => {
    const engine = await load(model, { KVSERVE_ATTN_DECODE: 'v2' }, { batchInvariant: true });
    try {
      expect(engine.info().attnDecode).toBe('v2');
      record(`attn decode v2 batch invariance ${name}`, { ...(await expectBatchInvariant(engine)), identical: true });
    } finally {
      engine.dispose();
    }
  });
});

describe('KVSERVE_ATTN_DECODE', () => {
  test('auto by default, v1 in --batch-invariant mode and for a model v2 does not run; any other value refused', async () => {
    const llama = resolve(bf16RefsDir, 'llama-d64-g4');
    for (const [model, env, want, batchInvariant] of [
      [llama, {}, 'auto', false],
      [llama, {}, 'v1', true],
      [storiesDir, {}, 'v1', false],
      [storiesDir, { KVSERVE_ATTN_DECODE: 'v2' }, 'v1', false],
    ] as const) {
      const engine = await load(model, env, { batchInvariant });
      try {
        expect(engine.info().attnDecode).toBe(want);
      } finally {
        engine.dispose();
      }
    }
    process.env.KVSERVE_ATTN_DECODE = 'v3';
    try {
      expect(await loadError({ model: llama })).toBe('KVSERVE_ATTN_DECODE must be auto, v1 or v2, not "v3"');
    } finally {
      delete process.env.KVSERVE_ATTN_DECODE;
    }
  });
});
