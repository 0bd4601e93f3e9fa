// --kv-cache-dtype fp8 on the GPU: the tiny random bf16 Llama / Qwen2 / Qwen3 (make_bf16_references.py) with K
// and V held as e4m3 at the default scales (1.0, uncalibrated, as vLLM), against transformers in bf16 on the
// same GPU, as engine-bf16.test.ts does for the bf16 cache. Measured and recorded beside the bf16 cache's:
// teacher-forced top-1 agreement along transformers' path, logit error, the greedy prefix that matches, and
// the agreement of the two caches with each other. These random models have flat logits full of near-ties,
// and e4m3 keeps 3 mantissa bits against bf16's 8 (about 16x the rounding error per element): measured on the
// H200 (2026-12-02) 73-80 % teacher-forced agreement against bf16's 96-98 %, logit error 0.06-0.23 against
// 0.02-0.06. Required: agreement >= 0.6 (a broken cache read lands near 1/vocab) and a logit error within 10x
// the bf16 cache's. Also: half the bytes per block
// and about twice the blocks in the same memory; --batch-invariant stays bitwise invariant (greedy ids and
// top-5 logprobs alone vs 8 batched vs chunked prefill, graphs on); kvserve generate and serve take the flag;
// a model the fp8 attention cannot run (stories260K: float32, head_dim 8) is refused in one line.
import { cpSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadNative, type NativeEngine, type NativeEngineOptions } from '../../src/runner/binding.js';
import { writeSyntheticTokenizer } from '../../src/tokenizer/synthetic.js';
import { kvserve } from '../cli/helpers/run-kvserve.js';
import { storiesDir } from '../native/harness.js';
import { greedyRun } from '../native/native-run.js';
import { serveCompletion } from '../server/helpers/child-server.js';
import { loadError, tempDir } from './cuda-engine-helpers.js';
import { expectBatchInvariant } from './batch-invariance.js';
import { argmax, BF16_MODELS, bf16RefsDir, cudaOptions, ensureBf16Refs, record } from './gpu-harness.js';

interface Ref {
  prompts: number[][];
  steps: number;
  greedy_ids: number[][];
  logits_file: string;
  logits_shape: [number, number, number];
  head_dim: number;
}

beforeAll(ensureBf16Refs, 600_000);

const FP8: Partial<NativeEngineOptions> = { kvCacheDtype: 'fp8' };

async function load(name: string, overrides: Partial<NativeEngineOptions> = {}): Promise<NativeEngine> {
  return loadNative().loadEngine(
    cudaOptions(resolve(bf16RefsDir, name), { numKvBlocks: 512, maxNumSeqs: 16, ...overrides }),
  );
}

/** Teacher-forced logits along transformers' greedy path, and the free-running greedy ids, of every prompt. */
async function runs(engine: NativeEngine, ref: Ref) {
  const forced: Float32Array[][] = [];
  const free: number[][] = [];
  for (let p = 0; p < ref.prompts.length; p++) {
    forced.push((await greedyRun(engine, ref.prompts[p]!, ref.steps, ref.greedy_ids[p]!)).logits);
    free.push((await greedyRun(engine, ref.prompts[p]!, ref.steps)).ids);
  }
  return { forced, free };
}

describe.each(BF16_MODELS)('%s with an fp8 KV cache vs transformers bf16 on the same GPU', (name) => {
  test('greedy agreement stays >= 0.6; the cache holds half the bytes per block', async () => {
    const ref = JSON.parse(readFileSync(resolve(bf16RefsDir, name, 'expected.json'), 'utf8')) as Ref;
    const buf = readFileSync(resolve(bf16RefsDir, name, ref.logits_file));
    const theirs = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    const [, steps, vocab] = ref.logits_shape;
    const results: Record<string, Awaited<ReturnType<typeof runs>>> = {};
    const blockBytes: Record<string, number> = {};
    for (const [cache, o] of [
      ['bf16', {}],
      ['fp8', FP8],
    ] as const) {
      const engine = await load(name, o);
      try {
        expect(engine.info()).toMatchObject({
          dtype: 'bfloat16',
          kvCacheDtype: cache === 'fp8' ? 'fp8_e4m3' : 'bfloat16',
        });
        blockBytes[cache] = engine.info().kvBlockBytes;
        results[cache] = await runs(engine, ref);
      } finally {
        engine.dispose();
      }
    }
    expect(blockBytes.fp8! * 2).toBe(blockBytes.bf16);
    const measure = (r: Awaited<ReturnType<typeof runs>>) => {
      let agree = 0,
        maxErr = 0,
        sumErr = 0,
        n = 0,
        matchedPrefix = 0;
      for (let p = 0; p < ref.prompts.length; p++) {
        for (let s = 0; s < steps; s++) {
          const t = theirs.subarray((p * steps + s) * vocab, (p * steps + s + 1) * vocab);
          const m = r.forced[p]![s]!;
          for (let v = 0; v < vocab; v++) {
            const d = Math.abs(m[v]! - t[v]!);
            maxErr = Math.max(maxErr, d);
            sumErr += d;
            n++;
          }
          if (argmax(m) === argmax(t)) agree++;
        }
        let k = 0;
        while (k < steps && r.free[p]![k] === ref.greedy_ids[p]![k]) k++;
        matchedPrefix += k;
      }
      const total = ref.prompts.length * steps;
      return {
        agreement: agree / total,
        maxAbsLogitErr: maxErr,
        meanAbsLogitErr: sumErr / n,
        meanMatchedGreedyPrefix: matchedPrefix / ref.prompts.length,
      };
    };
    const fp8 = measure(results.fp8!),
      bf16 = measure(results.bf16!);
    let caches = 0;
    for (let p = 0; p < ref.prompts.length; p++)
      for (let s = 0; s < steps; s++)
        caches += argmax(results.fp8!.forced[p]![s]!) === argmax(results.bf16!.forced[p]![s]!) ? 1 : 0;
    record(`fp8 kv ${name}`, {
      headDim: ref.head_dim,
      fp8: fp8,
      bf16Cache: bf16,
      fp8VsBf16CacheTop1Agreement: caches / (ref.prompts.length * steps),
      steps,
    });
    expect(fp8.agreement).toBeGreaterThanOrEqual(0.6);
    expect(fp8.meanAbsLogitErr).toBeLessThan(10 * bf16.meanAbsLogitErr);
  });
});

describe('the fp8 pool', () => {
  test('about twice the blocks of a bf16 cache in the same memory', async () => {
    // A budget below what maxNumSeqs full-length sequences could use, so that memory, not the cap, sizes both.
    const o = { numKvBlocks: 0, maxNumSeqs: 4096, gpuMemoryUtilization: 0.08 };
    const blocks: number[] = [];
    for (const extra of [{}, FP8]) {
      const engine = await load('llama-d64-g4', { ...o, ...extra });
      blocks.push(engine.info().numKvBlocks);
      engine.dispose();
    }
    record('fp8 kv pool', { bf16Blocks: blocks[0], fp8Blocks: blocks[1], ratio: blocks[1]! / blocks[0]! });
    expect(blocks[1]! / blocks[0]!).toBeGreaterThan(1.9);
    expect(blocks[1]! / blocks[0]!).toBeLessThan(2.1);
  });
});

// With cuBLASLt's one algorithm per shape, and with our own GEMMs (invariantGemm 'own', and 'wgmma' and 'hybrid' on Hopper).
describe.each(['cublaslt', 'own', 'wgmma', 'hybrid'] as const)(
  'batch invariance (bf16, fp8 cache, batchInvariant mode, %s GEMMs)',
  (invariantGemm) => {
    test.each(['qwen3-d128-g8-qknorm', 'llama-d64-g4'])(
      '%s: greedy ids and top-5 logprobs do not depend on the batch',
      async (name) => {
        const engine = await load(name, { batchInvariant: true, invariantGemm, ...FP8 });
        try {
          expect(engine.info().kvCacheDtype).toBe('fp8_e4m3');
          expect(engine.info().invariantGemm).toBe(invariantGemm);
          record(`batch invariance fp8 kv ${name} ${invariantGemm}`, {
            ...(await expectBatchInvariant(engine)),
            identical: true,
          });
        } finally {
          engine.dispose();
        }
      },
    );
  },
);

describe('kvserve generate and serve --kv-cache-dtype fp8 --device cuda', () => {
  test('generate gives the native engine greedy ids; serve reports the cache and answers', async () => {
    const dir = join(tempDir('kvserve-fp8-kv-'), 'llama-d64-g4');
    cpSync(resolve(bf16RefsDir, 'llama-d64-g4'), dir, { recursive: true });
    writeSyntheticTokenizer(dir, 1024);
    const args = ['--model', dir, '--device', 'cuda', '--kv-cache-dtype', 'fp8'];
    // --batch-invariant at the same --max-num-seqs: both loads run the same GEMM algorithms (not timed ones).
    const r = await kvserve([
      'generate',
      ...args,
      '--batch-invariant',
      '--max-num-seqs',
      '16',
      '--prompt',
      'w5 w9 w13 w17',
      '--max-tokens',
      '24',
      '--ignore-eos',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { prompt_ids: number[]; output_ids: number[] };
    const engine = await load('llama-d64-g4', { batchInvariant: true, ...FP8 });
    try {
      const ids = (await greedyRun(engine, out.prompt_ids, 24)).ids;
      expect(out.output_ids).toEqual(ids);
    } finally {
      engine.dispose();
    }

    const { ready, answer } = await serveCompletion([...args, '--served-model-name', 'fp8'], {
      model: 'fp8',
      prompt: 'w5 w9 w13',
      max_tokens: 16,
      temperature: 0,
      ignore_eos: true,
    });
    expect(ready).toMatchObject({ kvCacheDtype: 'fp8_e4m3' });
    expect((answer as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(16);
  });

  test('a model the fp8 attention cannot run is refused in one line, before its weights', async () => {
    const message = (headDim: number, G: number, hint: string) =>
      '--kv-cache-dtype fp8 needs a bfloat16 or float16 model with head_dim 64, 128 or 256 and at most 16 query ' +
      `heads per KV head; this one computes in float32 with head_dim ${headDim} and ${G} query heads per KV head ` +
      `(use --kv-cache-dtype auto${hint})`;
    expect(await loadError({ model: storiesDir, kvCacheDtype: 'fp8' })).toBe(message(8, 2, ''));
    const llama = resolve(bf16RefsDir, 'llama-d64-g4');
    expect(await loadError({ model: llama, kvCacheDtype: 'fp8', dtype: 'float32' })).toBe(
      message(64, 4, ', or --dtype bfloat16'),
    );
  });
});
