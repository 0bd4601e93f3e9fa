// The StepBatch the model runner builds, checked field by field against what the protocol in
// docs/architecture.md and engines/step.h says for a hand-made step. (Lives here because test/runner/ is
// not this module's; the runner is only ever driven by the engine loop.)
import { describe, expect, it } from 'vitest';
import { ModelRunner } from '../../src/runner/model-runner.js';
import { Request } from '../../src/scheduler/request.js';
import { Scheduler, type SchedulerConfig } from '../../src/scheduler/scheduler.js';
import type { SamplingParams } from '../../src/engine/types.js';
import { greedy } from './greedy.js';

const config: SchedulerConfig = {
  maxNumBatchedTokens: 64,
  maxNumSeqs: 4,
  maxModelLen: 64,
  blockSize: 4,
  numBlocks: 64,
  enablePrefixCaching: false,
};

function params(over: Partial<SamplingParams>): SamplingParams {
  return greedy(10, { ignoreEos: false, ...over });
}

function make(id: number, prompt: number[], sp: SamplingParams): Request {
  return new Request(String(id), prompt, sp, {
    priority: 0,
    arrivalSeq: id,
    arrivalTime: 0,
    seed: 1000 + id,
    eosTokenIds: [2],
    blockSize: 4,
  });
}

describe('ModelRunner.prepare', () => {
  it('lays out a prefill + decode step, penalties and biases as the protocol says', () => {
    const s = new Scheduler(config);
    const runner = new ModelRunner(config);
    const a = make(
      0,
      [1, 10, 11, 12, 13, 14],
      params({ repetitionPenalty: 1.2, temperature: 0.7, topP: 0.9, topK: 5, minP: 0.1, logprobs: 3 }),
    );
    const b = make(
      1,
      [1, 20, 21],
      params({ presencePenalty: 0.5, minTokens: 2, stopTokenIds: [7], logitBias: { 9: 1.5 } }),
    );
    s.add(a);
    s.add(b);
    const first = s.schedule();
    const b1 = runner.prepare(first);
    expect([...b1.tokenIds]).toEqual([1, 10, 11, 12, 13, 14, 1, 20, 21]);
    expect([...b1.positions]).toEqual([0, 1, 2, 3, 4, 5, 0, 1, 2]);
    expect([...b1.queryStart]).toEqual([0, 6, 9]);
    expect([...b1.contextLens]).toEqual([6, 3]);
    const ta = [...a.blockTable.view()];
    const tb = [...b.blockTable.view()];
    expect(b1.maxBlocksPerSeq).toBe(2);
    expect([...b1.blockTables]).toEqual([...ta, tb[0], -1]);
    expect([...b1.slotMapping]).toEqual(
      [0, 1, 2, 3, 4, 5].map((p) => ta[p >> 2]! * 4 + (p % 4)).concat([0, 1, 2].map((p) => tb[0]! * 4 + p)),
    );
    expect([...b1.sampleIndices]).toEqual([5, 8]);
    expect([...b1.temperature]).toEqual([Math.fround(0.7), 0]);
    expect([...b1.topP]).toEqual([Math.fround(0.9), 1]);
    expect([...b1.topK]).toEqual([5, 0]);
    expect([...b1.minP]).toEqual([Math.fround(0.1), 0]);
    expect([...b1.repetitionPenalty]).toEqual([Math.fround(1.2), 1]);
    expect([...b1.presencePenalty]).toEqual([0, 0.5]);
    expect([...b1.seeds]).toEqual([1000, 1001]);
    expect([...b1.seedSteps]).toEqual([0, 0]);
    expect([...b1.numLogprobs]).toEqual([3, -1]);
    // Repetition penalty covers prompt + output; presence penalty only the output (none yet).
    expect([...b1.historyStart!]).toEqual([0, 6, 6]);
    expect([...b1.historyOutputStart!]).toEqual([6, 0]);
    expect([...b1.historyTokens!]).toEqual([1, 10, 11, 12, 13, 14]);
    // b: its logit_bias, then -inf on EOS and its stop id until 2 tokens exist.
    expect([...b1.biasStart!]).toEqual([0, 0, 3]);
    expect([...b1.biasTokens!]).toEqual([9, 2, 7]);
    expect([...b1.biasValues!]).toEqual([1.5, -Infinity, -Infinity]);

    s.update(first, new Int32Array([30, 31]));
    const b2 = runner.prepare(s.schedule());
    expect([...b2.tokenIds]).toEqual([30, 31]);
    expect([...b2.positions]).toEqual([6, 3]);
    expect([...b2.contextLens]).toEqual([7, 4]);
    expect([...b2.seedSteps]).toEqual([1, 1]);
    expect([...b2.historyStart!]).toEqual([0, 7, 8]);
    expect([...b2.historyOutputStart!]).toEqual([6, 0]);
    expect([...b2.historyTokens!]).toEqual([1, 10, 11, 12, 13, 14, 30, 31]);
    expect([...b2.biasTokens!]).toEqual([9, 2, 7]);
  });

  it('packs allowed-token masks for the rows that have one (allowed_token_ids AND the grammar)', () => {
    const s = new Scheduler(config);
    const runner = new ModelRunner(config);
    const opts = (id: number) => ({
      priority: 0,
      arrivalSeq: id,
      arrivalTime: 0,
      seed: id,
      eosTokenIds: [2],
      blockSize: 4,
      vocabSize: 40,
    });
    const a = new Request('a', [1, 3], params({ allowedTokenIds: [5, 33, 39] }), opts(0));
    const b = new Request('b', [1, 4], params({}), opts(1));
    const c = new Request('c', [1, 6], params({ allowedTokenIds: [7, 8, 33] }), opts(2));
    const grammar = new Int32Array(2);
    for (const t of [8, 33, 34]) grammar[t >> 5] |= 1 << (t & 31);
    c.setGrammarMask(grammar);
    for (const r of [a, b, c]) s.add(r);
    const batch = runner.prepare(s.schedule());
    expect([...batch.maskRow!]).toEqual([0, -1, 1]);
    const ids = (m: number) =>
      Array.from({ length: 40 }, (_, t) => t).filter((t) => ((batch.masks![m * 2 + (t >> 5)]! >>> (t & 31)) & 1) === 1);
    expect(batch.masks!.length).toBe(4); // two rows of ceil(40 / 32) words
    expect(ids(0)).toEqual([5, 33, 39]);
    expect(ids(1)).toEqual([8, 33]); // allowed_token_ids and the grammar together
    expect(batch.biasStart).toBeUndefined(); // allowed_token_ids no longer travels as a vocabulary of -inf biases
    const plain = runner.prepare(new Scheduler(config).schedule());
    expect(plain.maskRow).toBeUndefined();
  });

  it('sends no history or bias arrays when no row needs them, and samples only finished prompts', () => {
    const s = new Scheduler({ ...config, maxNumBatchedTokens: 5 });
    const runner = new ModelRunner({ ...config, maxNumBatchedTokens: 5 });
    const a = make(0, [1, 2, 3, 4, 5, 6, 7, 8], params({ minTokens: 1, ignoreEos: true }));
    s.add(a);
    const out = s.schedule(); // a chunk of 5 of 8 prompt tokens: nothing to sample
    const b = runner.prepare(out);
    expect(b.tokenIds.length).toBe(5);
    expect(b.sampleIndices.length).toBe(0);
    expect(b.historyStart).toBeUndefined();
    expect(b.biasStart).toBeUndefined();
  });

  it('sizes block tables by what the batch holds, not by context × sequences (a 16M-token context, 4096 sequences)', () => {
    const big: SchedulerConfig = {
      maxNumBatchedTokens: 64,
      maxNumSeqs: 4096,
      maxModelLen: 2 ** 24,
      blockSize: 4,
      numBlocks: 4096,
      enablePrefixCaching: false,
    };
    const runner = new ModelRunner(big); // 4096 × 2^22 block slots would be a 64 GiB Int32Array
    const s = new Scheduler(big);
    const long = make(
      0,
      Array.from({ length: 40 }, (_, i) => 3 + i),
      params({}),
    );
    const short = make(1, [1, 5], params({}));
    s.add(long);
    s.add(short);
    const b = runner.prepare(s.schedule());
    expect(b.maxBlocksPerSeq).toBe(10);
    expect([...b.blockTables]).toEqual([...long.blockTable.view(), short.blockTable.view()[0], ...Array(9).fill(-1)]);
  });
});
