// Prefill attention in the engine: KVSERVE_ATTN_PREFILL unset (auto: version 2, kernels/flash_prefill.cuh, for
// steps whose longest query holds 1,024 tokens or more, version 1 below), v1 and v2, on the tiny random bf16
// models of make_bf16_references.py (head_dim 64 with G 4, 128 with G 2 and G 8), every load in
// --batch-invariant mode so that all run the same GEMMs:
// - info().attnPrefill says 'auto' unset, 'v1' and 'v2' with the switch;
// - 4 prompts of 5, 140, 700 and 1500 tokens generated together, whole (one prefill step: auto runs version 2)
//   and in 96-token chunks beside the others' decodes (mixed steps, decode rows split over partitions: auto runs
//   version 1): the same greedy ids and the same top-5 logprob bytes at every step under all three, over the
//   bf16 and the fp8 cache;
// - version 2 stays batch invariant (batch-invariance.ts: alone vs 8 batched vs 7-token chunks);
// - KVSERVE_ATTN_PREFILL=v3 is refused in one line; stories260K (float32, head_dim 8) runs version 1 with v2
//   and unset.
import { resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadNative, type NativeEngine, type NativeEngineOptions } from '../../src/runner/binding.js';
import { generate, greedy, type Sampling, storiesDir } from '../native/harness.js';
import { expectBatchInvariant } from './batch-invariance.js';
import { bytes, loadError } from './cuda-engine-helpers.js';
import { BF16_MODELS, bf16RefsDir, cudaOptions, ensureBf16Refs, record } from './gpu-harness.js';

beforeAll(ensureBf16Refs, 600_000);

const vocab = 1024;
const prompts = [5, 140, 700, 1500].map((n, i) => [
  1,
  ...Array.from({ length: n - 1 }, (_, j) => 3 + ((i * 131 + j * 17) % (vocab - 3))),
]);
const withLogprobs: Sampling = { ...greedy, numLogprobs: 5 };

/** Runs `fn` with KVSERVE_ATTN_PREFILL set to `version` (unset for undefined), restoring it after. */
async function withVersion<R>(version: string | undefined, fn: () => Promise<R>): Promise<R> {
  const saved = process.env.KVSERVE_ATTN_PREFILL;
  if (version === undefined) delete process.env.KVSERVE_ATTN_PREFILL;
  else process.env.KVSERVE_ATTN_PREFILL = version;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.KVSERVE_ATTN_PREFILL;
    else process.env.KVSERVE_ATTN_PREFILL = saved;
  }
}

function load(model: string, version: string | undefined, overrides: Partial<NativeEngineOptions> = {}) {
  return withVersion(version, () =>
    loadNative().loadEngine(
      cudaOptions(model, {
        numKvBlocks: 512,
        maxNumSeqs: 16,
        maxNumBatchedTokens: 4096,
        batchInvariant: true,
        ...overrides,
      }),
    ),
  );
}

/** The 4 prompts together (whole, or in chunks beside the others' decodes): ids and every step's top-5 bytes. */
async function run(engine: NativeEngine, prefillChunk?: number) {
  const steps: Float32Array[] = [];
  const ids = await generate(engine, prompts, {
    maxTokens: 8,
    blockSize: 16,
    maxBlocks: 96,
    prefillChunk,
    sampling: prompts.map(() => withLogprobs),
    onStep: (r) => steps.push(r.topValues.slice()),
  });
  return { ids, logprobs: bytes(steps), steps: steps.length };
}

describe.each(BF16_MODELS)('%s: prefill attention version 2 against version 1', (name) => {
  const model = resolve(bf16RefsDir, name);

  test.each(['bf16', 'fp8'] as const)('the same ids and logprob bytes, whole and chunked (%s cache)', async (cache) => {
    const overrides: Partial<NativeEngineOptions> = cache === 'fp8' ? { kvCacheDtype: 'fp8' } : {};
    const results = [];
    for (const version of ['v1', 'v2', undefined]) {
      const engine = await load(model, version, overrides);
      try {
        expect(engine.info().attnPrefill).toBe(version ?? 'auto');
        results.push({ whole: await run(engine), chunked: await run(engine, 96) });
      } finally {
        engine.dispose();
      }
    }
    const [v1, ...others] = results as [(typeof results)[0], ...typeof results];
    for (const other of others)
      for (const k of ['whole', 'chunked'] as const) {
        expect(other[k].ids).toEqual(v1[k].ids);
        expect(other[k].logprobs.equals(v1[k].logprobs)).toBe(true);
      }
    record(`attn prefill v2 = auto = v1 ${name} ${cache} cache`, { ids: v1.whole.ids, chunkedSteps: v1.chunked.steps });
  });

  test('version 2 stays batch invariant', async () => {
    const engine = await load(model, 'v2');
    try {
      record(`attn prefill v2 batch invariance ${name}`, await expectBatchInvariant(engine));
    } finally {
      engine.dispose();
    }
  });
});

describe('KVSERVE_ATTN_PREFILL at load', () => {
  test('an unknown version is refused in one line', async () => {
    const message = await withVersion('v3', () => loadError({ model: resolve(bf16RefsDir, 'llama-d64-g4') }));
    expect(message).toBe('KVSERVE_ATTN_PREFILL must be auto, v1 or v2, not "v3"');
  });

  test.each(['v2', undefined])(
    'a model version 2 does not serve (stories260K: float32, head_dim 8) runs version 1 (%s)',
    async (version) => {
      const engine = await load(storiesDir, version, { batchInvariant: false, maxNumBatchedTokens: 2048 });
      try {
        expect(engine.info().attnPrefill).toBe('v1');
      } finally {
        engine.dispose();
      }
    },
  );
});
