// Scheduling policy on small hand-made cases: chunked prefill next to running decodes, line order with
// priorities, the preemption victim, abort.
import { describe, expect, it } from 'vitest';
import { Request } from '../../src/scheduler/request.js';
import { Scheduler, type SchedulerConfig } from '../../src/scheduler/scheduler.js';
import type { SchedulerOutput } from '../../src/scheduler/scheduler-output.js';
import { sampling } from './harness.js';

const base: SchedulerConfig = {
  maxNumBatchedTokens: 64,
  maxNumSeqs: 8,
  maxModelLen: 4096,
  blockSize: 4,
  numBlocks: 1000,
  enablePrefixCaching: true,
};
let seq = 0;

function req(promptLen: number, opts: { maxTokens?: number; priority?: number } = {}): Request {
  const id = seq++;
  const prompt = Array.from({ length: promptLen }, (_, i) => 3 + ((i * 31 + id * 17) % 500));
  return new Request(
    String(id),
    prompt,
    sampling({ maxTokens: opts.maxTokens ?? 1000, minTokens: 0, stopTokenIds: [], ignoreEos: true }),
    {
      priority: opts.priority ?? 0,
      arrivalSeq: id,
      arrivalTime: 0,
      seed: 0,
      eosTokenIds: [2],
      blockSize: base.blockSize,
    },
  );
}

/** Applies a step in which every sampled row produced token 7. */
function step(s: Scheduler): SchedulerOutput {
  const out = s.schedule();
  s.update(out, new Int32Array(out.numSamples).fill(7));
  return out;
}

function scheduled(out: SchedulerOutput): Map<string, number> {
  return new Map(out.requests.map((r, k) => [r.id, out.numNewTokens[k]!]));
}

describe('Scheduler', () => {
  it('chunks a long prompt without stalling the running decodes', () => {
    const s = new Scheduler(base);
    const decoders = [req(5), req(6), req(7), req(8)];
    for (const r of decoders) s.add(r);
    step(s); // prefill all four (26 tokens)
    // Higher priority puts it first in line, ahead of the decoders: it must still leave them a token each.
    const long = req(500, { priority: -1 });
    s.add(long);
    let steps = 0;
    while (long.numComputedTokens < 500) {
      const out = scheduled(step(s));
      for (const d of decoders) expect(out.get(d.id)).toBe(1);
      expect(out.get(long.id)).toBe(Math.min(60, 500 - steps * 60));
      steps++;
    }
    expect(steps).toBe(Math.ceil(500 / 60));
    expect(long.numOutputTokens).toBe(1);
  });

  it('admits in priority order, then first come first served', () => {
    const s = new Scheduler({ ...base, maxNumSeqs: 1 });
    const a = req(4, { maxTokens: 1, priority: 1 });
    const b = req(4, { maxTokens: 1, priority: 0 });
    const c = req(4, { maxTokens: 1, priority: 1 });
    const d = req(4, { maxTokens: 1, priority: 0 });
    for (const r of [a, b, c, d]) s.add(r);
    const order: string[] = [];
    while (s.hasWork()) for (const r of step(s).requests) order.push(r.id);
    expect(order).toEqual([b.id, d.id, a.id, c.id]);
  });

  it('preempts the request last in line, which keeps its tokens and recomputes them', () => {
    // 8 blocks of 4 tokens. Two requests of 12 prompt tokens (3 blocks each) grow until the pool is full.
    const s = new Scheduler({ ...base, numBlocks: 8, enablePrefixCaching: false });
    const first = req(12);
    const second = req(12);
    s.add(first);
    s.add(second);
    step(s); // 6 blocks; each has 13 tokens now
    let out: SchedulerOutput;
    do out = step(s);
    while (out.preempted.length === 0);
    expect(out.preempted).toEqual([second]);
    expect(second.status).toBe('waiting');
    expect(second.blockTable.length).toBe(0);
    const kept = second.numTokens;
    expect(kept).toBeGreaterThan(13);
    expect(first.blockTable.length).toBeGreaterThan(4);
    // While `first` runs alone it never gives its blocks up; `second` comes back once `first` is done.
    s.finish(first, 'abort');
    const back = scheduled(s.schedule());
    expect(back.get(second.id)).toBe(kept);
    expect(s.numPreemptions).toBe(1);
  });

  it('frees an aborted request at once, waiting or running', () => {
    const s = new Scheduler(base);
    const a = req(10);
    const b = req(10);
    s.add(a);
    step(s);
    s.add(b);
    expect(s.kv.pool.numFree).toBe(1000 - 3);
    s.finish(a, 'abort');
    s.finish(b, 'abort');
    expect(s.kv.pool.numFree).toBe(1000);
    expect(s.hasWork()).toBe(false);
    expect(a.finishReason).toBe('abort');
  });

  it('drops the result of a step for a request aborted while the step was in flight', () => {
    const s = new Scheduler(base);
    const a = req(10);
    s.add(a);
    const out = s.schedule();
    s.finish(a, 'abort');
    expect(s.update(out, new Int32Array([7]))).toEqual([]);
    expect(a.numOutputTokens).toBe(0);
  });
});
