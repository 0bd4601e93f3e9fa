// The --batch-invariant check shared by the bf16 and fp8-cache GPU tests: 8 prompts of 4..165 tokens (the
// tiny models' 1024-token vocabulary), each generated alone, then all 8 batched, then all 8 with 7-token
// prefill chunks (mixed steps): greedy ids equal, and the top-5 logprobs of every step bitwise equal.
import { expect } from 'vitest';
import type { NativeEngine } from '../../src/runner/binding.js';
import { generate, greedy, type Sampling } from '../native/harness.js';

const vocab = 1024;
export const invariancePrompts = Array.from({ length: 8 }, (_, i) => [
  1,
  ...Array.from({ length: 3 + 23 * i }, (_, j) => 3 + ((i * 131 + j * 17) % (vocab - 3))),
]);
const withLogprobs: Sampling = { ...greedy, numLogprobs: 5 };

/** Asserts that `engine`'s greedy ids and top-5 logprobs do not depend on the batch; returns what it compared. */
export async function expectBatchInvariant(engine: NativeEngine): Promise<{ prompts: number; tokensEach: number }> {
  const prompts = invariancePrompts;
  const o = { maxTokens: 24, blockSize: 16, maxBlocks: 16 };
  const alone: number[][] = [];
  const aloneLp: number[][] = [];
  for (const p of prompts) {
    const lp: number[] = [];
    const [ids] = await generate(engine, [p], {
      ...o,
      sampling: [withLogprobs],
      onStep: (r) => lp.push(...r.topValues.slice(0, 5)),
    });
    alone.push(ids!);
    aloneLp.push(lp);
  }
  const lpAll: number[][] = prompts.map(() => []);
  const all = await generate(engine, prompts, {
    ...o,
    sampling: prompts.map(() => withLogprobs),
    onStep: (r, b) => {
      // rows are in the order of the sequences that sampled this step; recover which by the slot of their block table
      for (let i = 0; i < b.sampleIndices.length; i++) {
        const tok = b.sampleIndices[i]!;
        let s = 0;
        while (b.queryStart[s + 1]! <= tok) s++;
        const slot = b.blockTables[s * b.maxBlocksPerSeq]! / b.maxBlocksPerSeq;
        lpAll[slot]!.push(...r.topValues.slice(i * 5, i * 5 + 5));
      }
    },
  });
  const chunked = await generate(engine, prompts, { ...o, prefillChunk: 7 });
  expect(all).toEqual(alone);
  expect(chunked).toEqual(alone);
  expect(lpAll).toEqual(aloneLp); // bitwise: same floats
  return { prompts: prompts.length, tokensEach: o.maxTokens };
}
