// An int8 engine keeps the CPU backend's batch invariance: each token's activations are quantized on their
// own scale and integer sums are exact, so a row's greedy ids and logprobs do not depend on what else is in
// the batch (all prompts together, prefill split over steps, mixed with decodes), bitwise. The reference is
// the same engine running each prompt alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative, type NativeEngine } from '../../src/runner/binding.js';
import { blockSize, engineOptions, generate, greedy, loadExpected, type Sampling } from '../native/harness.js';
import { buildInt8Into, storiesDir } from './engine-helpers.js';

const prompts = loadExpected().map((e) => e.prompt_ids);
const maxBlocks = 8;

describe('batch invariance of an int8 engine (stories260K)', () => {
  let engine: NativeEngine;
  let alone: number[][];
  beforeAll(async () => {
    const { dir } = await buildInt8Into(storiesDir);
    engine = await loadNative().loadEngine(engineOptions({ model: '', engine: dir }));
    alone = [];
    for (const p of prompts) alone.push((await generate(engine, [p], { maxTokens: 40, blockSize, maxBlocks }))[0]!);
  });
  afterAll(() => engine?.dispose());

  it('all prompts in one batch give the ids each gives alone', async () => {
    expect(prompts.length).toBeGreaterThan(1);
    expect(await generate(engine, prompts, { maxTokens: 40, blockSize, maxBlocks })).toEqual(alone);
  });

  for (const chunk of [1, 3]) {
    it(`chunked prefill (${chunk} tokens per step) mixed with decodes gives the same ids`, async () => {
      expect(await generate(engine, prompts, { maxTokens: 40, blockSize, maxBlocks, prefillChunk: chunk })).toEqual(
        alone,
      );
    });
  }

  it('the top-5 logprobs of a row do not depend on the batch (bitwise)', async () => {
    const ask: Sampling = { ...greedy, numLogprobs: 5 };
    const one: number[] = [],
      all: number[] = [];
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
      onStep: (r) => all.push(...r.topValues.slice(0, 5)),
    });
    expect(all).toEqual(one);
  });
});
