// Greedy decoding must not depend on what else is in the batch: all prompts of expected.json together
// (prefill together, decode together, and with prefill split over steps) give the ids one at a time gives,
// and those are transformers' ids.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative, type NativeEngine, type StepResult } from '../../src/runner/binding.js';
import { blockSize, engineOptions, generate, greedy, loadExpected } from './harness.js';

const expected = loadExpected();
const prompts = expected.map((e) => e.prompt_ids);
const maxBlocks = 8; // 128 tokens per sequence

describe('batch invariance (stories260K)', () => {
  let engine: NativeEngine;
  let alone: number[][];
  beforeAll(async () => {
    engine = await loadNative().loadEngine(engineOptions());
    alone = [];
    for (const p of prompts) alone.push((await generate(engine, [p], { maxTokens: 40, blockSize, maxBlocks }))[0]!);
  });
  afterAll(() => engine?.dispose());

  it('one at a time reproduces transformers', () => {
    expect(alone).toEqual(expected.map((e) => e.greedy_ids.slice(0, 40)));
  });

  it('all prompts in one batch give the same ids', async () => {
    let maxT = 0;
    const out = await generate(engine, prompts, {
      maxTokens: 40,
      blockSize,
      maxBlocks,
      onStep: (_r: StepResult, b) => {
        maxT = Math.max(maxT, b.tokenIds.length);
      },
    });
    expect(maxT).toBe(prompts.reduce((n, p) => n + p.length, 0)); // the prefill really was one step
    expect(out).toEqual(alone);
  });

  for (const chunk of [1, 3, 4]) {
    it(`chunked prefill (${chunk} tokens per step) mixed with decodes gives the same ids`, async () => {
      const out = await generate(engine, prompts, { maxTokens: 40, blockSize, maxBlocks, prefillChunk: chunk });
      expect(out).toEqual(alone);
    });
  }

  it('the top-5 logprobs of a row do not depend on the batch (bitwise)', async () => {
    const ask = { ...greedy, numLogprobs: 5 };
    const one: number[] = [],
      four: number[] = [];
    await generate(engine, [prompts[0]!], {
      maxTokens: 5,
      blockSize,
      maxBlocks,
      sampling: [ask],
      onStep: (r) => one.push(...r.topValues.slice(0, 5)),
    });
    await generate(engine, prompts, {
      maxTokens: 5,
      blockSize,
      maxBlocks,
      sampling: prompts.map(() => ask),
      onStep: (r) => four.push(...r.topValues.slice(0, 5)),
    });
    expect(four).toEqual(one);
  });
});
