// Random workloads through the scheduler, the KV manager, the model runner and a fake paged model. Checked
// every step: budgets, block ownership and refcounts (harness.ts). Checked at the end: every block is free
// again, and every request generated exactly what the naive reference generates for it alone.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SchedulerConfig } from '../../src/scheduler/scheduler.js';
import { referenceGenerate } from './fake-model.js';
import { EOS, simulate, type WorkItem } from './harness.js';

const VOCAB = 64;

const configArb = fc.record({
  blockSize: fc.constantFrom(1, 2, 4, 8, 16),
  maxNumBatchedTokens: fc.integer({ min: 1, max: 96 }),
  maxNumSeqs: fc.integer({ min: 1, max: 12 }),
  enablePrefixCaching: fc.boolean(),
  extraBlocks: fc.integer({ min: 0, max: 40 }),
});

/** Requests built from a few shared prefixes plus random tails, so prefix hits happen. */
const workloadArb = fc
  .record({
    prefixes: fc.array(fc.array(fc.integer({ min: 3, max: VOCAB - 1 }), { minLength: 0, maxLength: 40 }), {
      minLength: 1,
      maxLength: 3,
    }),
    items: fc.array(
      fc.record({
        prefix: fc.nat(),
        tail: fc.array(fc.integer({ min: 0, max: VOCAB - 1 }), { minLength: 1, maxLength: 24 }),
        maxTokens: fc.integer({ min: 1, max: 30 }),
        minTokens: fc.integer({ min: 0, max: 4 }),
        stopTokenIds: fc.array(fc.integer({ min: 3, max: VOCAB - 1 }), { maxLength: 2 }),
        ignoreEos: fc.boolean(),
        priority: fc.integer({ min: 0, max: 2 }),
        arriveAtStep: fc.integer({ min: 0, max: 20 }),
        abortAtStep: fc.oneof(fc.constant(-1), fc.constant(-1), fc.integer({ min: 0, max: 40 })),
        abortMidStep: fc.boolean(),
      }),
      { minLength: 1, maxLength: 14 },
    ),
  })
  .map(({ prefixes, items }): WorkItem[] =>
    items.map((it) => ({ ...it, prompt: [1, ...prefixes[it.prefix % prefixes.length]!, ...it.tail] })),
  );

function stopIds(w: WorkItem): number[] {
  return [...(w.ignoreEos ? [] : [EOS]), ...w.stopTokenIds];
}

describe('scheduler on random workloads', () => {
  it('keeps budgets and block ownership, frees everything, and matches the reference', () => {
    let runsWithPreemption = 0;
    let runsWithHits = 0;
    fc.assert(
      fc.property(configArb, workloadArb, (c, work) => {
        const maxModelLen = 96;
        const longest = Math.max(...work.map((w) => Math.min(w.prompt.length + w.maxTokens, maxModelLen)));
        // The pool always fits the longest request alone (what validation guarantees), and is often much
        // too small for all of them together, so preemption happens.
        const config: SchedulerConfig = {
          maxNumBatchedTokens: c.maxNumBatchedTokens,
          maxNumSeqs: c.maxNumSeqs,
          maxModelLen,
          blockSize: c.blockSize,
          numBlocks: Math.ceil(longest / c.blockSize) + c.extraBlocks,
          enablePrefixCaching: c.enablePrefixCaching,
        };
        const sim = simulate(work, config, VOCAB);
        if (sim.scheduler.numPreemptions > 0) runsWithPreemption++;
        if (sim.scheduler.kv.prefixHits > 0) runsWithHits++;
        const pool = sim.scheduler.kv.pool;
        expect(pool.numFree).toBe(pool.numBlocks);
        for (let b = 0; b < pool.numBlocks; b++) expect(pool.refCount[b]).toBe(0);
        work.forEach((w, i) => {
          const ref = referenceGenerate(w.prompt, {
            maxTokens: w.maxTokens,
            minTokens: w.minTokens,
            stopIds: stopIds(w),
            maxModelLen,
            vocab: VOCAB,
          });
          const got = sim.tokens.get(i)!;
          if (sim.finish.get(i) === 'abort') expect(ref.slice(0, got.length)).toEqual(got);
          else {
            expect(got).toEqual(ref);
            const last = ref[ref.length - 1]!;
            const stopped = ref.length - 1 >= w.minTokens && stopIds(w).includes(last);
            expect(sim.finish.get(i)).toBe(stopped ? 'stop' : 'length');
          }
        });
      }),
      { numRuns: 300 },
    );
    // The generators must exercise what the invariants are about.
    expect(runsWithPreemption).toBeGreaterThan(30);
    expect(runsWithHits).toBeGreaterThan(30);
  });

  it('gives the same tokens with prefix caching on and off, and hits when prefixes are shared', () => {
    let runsWithHits = 0;
    fc.assert(
      fc.property(workloadArb, fc.constantFrom(2, 4, 16), (work, blockSize) => {
        const base = { maxNumBatchedTokens: 64, maxNumSeqs: 8, maxModelLen: 128, blockSize, numBlocks: 400 };
        const on = simulate(work, { ...base, enablePrefixCaching: true }, VOCAB);
        const off = simulate(work, { ...base, enablePrefixCaching: false }, VOCAB);
        // Aborts fire at a step number, and cache hits shorten prefill, so an aborted request may stop at a
        // different length in the two runs: there the shorter output must be a prefix of the longer.
        work.forEach((_, i) => {
          const a = on.tokens.get(i)!;
          const b = off.tokens.get(i)!;
          if (on.finish.get(i) === 'abort' || off.finish.get(i) === 'abort') {
            const n = Math.min(a.length, b.length);
            expect(a.slice(0, n)).toEqual(b.slice(0, n));
          } else {
            expect(a).toEqual(b);
            expect(on.finish.get(i)).toBe(off.finish.get(i));
          }
        });
        expect(off.scheduler.kv.prefixHits).toBe(0);
        if (on.scheduler.kv.prefixHits > 0) runsWithHits++;
      }),
      { numRuns: 100 },
    );
    expect(runsWithHits).toBeGreaterThan(10);
  });

  it('reuses a shared prefix: later requests compute only their tails', () => {
    const shared = Array.from({ length: 40 }, (_, i) => 3 + ((i * 7) % 60));
    const work: WorkItem[] = [0, 1, 2, 3].map((i) => ({
      prompt: [1, ...shared, 10 + i, 20 + i],
      maxTokens: 5,
      minTokens: 0,
      stopTokenIds: [],
      ignoreEos: true,
      priority: 0,
      arriveAtStep: i * 10,
      abortAtStep: -1,
      abortMidStep: false,
    }));
    const config = { maxNumBatchedTokens: 64, maxNumSeqs: 8, maxModelLen: 128, blockSize: 8, numBlocks: 64 };
    const on = simulate(work, { ...config, enablePrefixCaching: true }, VOCAB);
    const off = simulate(work, { ...config, enablePrefixCaching: false }, VOCAB);
    // 41 shared tokens = 5 full blocks of 8: each later request finds 40 cached tokens.
    expect(on.scheduler.kv.prefixHits).toBe(3 * 40);
    expect(on.scheduler.promptTokensComputed).toBe(4 * 43 - 3 * 40);
    expect(off.scheduler.promptTokensComputed).toBe(4 * 43);
    expect(on.tokens).toEqual(off.tokens);
  });
});
