// The CUDA engine in float32 (cuBLASLt fp32 without TF32) against transformers: stories260K's expected.json
// and the float32 fixtures of test/fixtures (llama3 / linear RoPE, explicit head_dim, tied embeddings,
// qwen2 bias, qwen3 q/k norm, mistral) must give transformers' greedy ids exactly, alone and batched.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadNative, type NativeEngine } from '../../src/runner/binding.js';
import { generate, loadExpected, storiesDir } from '../native/harness.js';
import { greedyRun } from '../native/native-run.js';
import { argmax, cudaOptions, record } from './gpu-harness.js';

describe('stories260K on CUDA (float32)', () => {
  const expected = loadExpected();
  const prompts = expected.map((e) => e.prompt_ids);
  let engine: NativeEngine;
  beforeAll(async () => {
    engine = await loadNative().loadEngine(cudaOptions(storiesDir));
  });
  afterAll(() => engine?.dispose());

  test('reports a CUDA device and a KV cache sized from GPU memory', () => {
    const info = engine.info();
    expect(info.device).toMatch(/^cuda:0/);
    expect(info.dtype).toBe('float32');
    expect(info.numKvBlocks).toBeGreaterThan(0);
    record('stories260K info', { device: info.device, numKvBlocks: info.numKvBlocks, kvBlockBytes: info.kvBlockBytes });
  });

  test('greedy ids reproduce expected.json exactly, one prompt at a time', async () => {
    for (const e of expected) {
      const out = await generate(engine, [e.prompt_ids], {
        maxTokens: e.greedy_ids.length,
        blockSize: 16,
        maxBlocks: 8,
      });
      expect(out[0]).toEqual(e.greedy_ids);
    }
  });

  test('all prompts batched, and with chunked prefill, give the same ids', async () => {
    const all = await generate(engine, prompts, { maxTokens: 80, blockSize: 16, maxBlocks: 8 });
    expect(all).toEqual(expected.map((e) => e.greedy_ids));
    const chunked = await generate(engine, prompts, { maxTokens: 80, blockSize: 16, maxBlocks: 8, prefillChunk: 3 });
    expect(chunked).toEqual(expected.map((e) => e.greedy_ids));
  });

  test('top-5 logits of the first step match transformers within 1e-3', async () => {
    let maxErr = 0;
    for (const e of expected) {
      const { logits } = await greedyRun(engine, e.prompt_ids, 1);
      const row = logits[0]!;
      expect(argmax(row)).toBe(e.top5_ids[0]);
      e.top5_ids.forEach((id, i) => {
        maxErr = Math.max(maxErr, Math.abs(row[id]! - e.top5_logits[i]!));
      });
    }
    record('stories260K top5 logits', { maxAbsErr: maxErr });
    expect(maxErr).toBeLessThan(1e-3); // expected.json rounds to 1e-4
  });
});

const fixtures = resolve(import.meta.dirname, '..', 'fixtures');
describe.each(['llama-llama3rope-headdim', 'llama-linear-ropeparams-tied', 'qwen2-bias', 'qwen3-qknorm', 'mistral'])(
  'float32 fixture %s on CUDA',
  (name) => {
    test('greedy ids equal transformers float32', async () => {
      const dir = resolve(fixtures, name);
      const exp = JSON.parse(readFileSync(resolve(dir, 'expected.json'), 'utf8')) as {
        prompts: number[][];
        steps: number;
        references: { exact: { greedy_ids: number[][] } };
      };
      const engine = await loadNative().loadEngine(cudaOptions(dir, { numKvBlocks: 64, maxNumSeqs: 8 }));
      try {
        for (let p = 0; p < exp.prompts.length; p++) {
          const { ids } = await greedyRun(engine, exp.prompts[p]!, exp.steps);
          expect(ids, `prompt ${p}`).toEqual(exp.references.exact.greedy_ids[p]);
        }
      } finally {
        engine.dispose();
      }
    });
  },
);
