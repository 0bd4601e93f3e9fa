// The engine loop over the fake paged model: streams, abort at every stage, step failures, idling,
// validation, and what the outputs carry (EOS hiding, stop ids, logprobs, seeds).
import { afterEach, describe, expect, it } from 'vitest';
import { EngineLoop, type EngineLoopConfig } from '../../src/engine/engine-loop.js';
import { EngineError, type EngineRequest, type RequestOutput, type SamplingParams } from '../../src/engine/types.js';
import { FakeModel, referenceGenerate } from '../scheduler/fake-model.js';
import { greedy } from './greedy.js';

const VOCAB = 64;
const EOS = 2;
const loops: EngineLoop[] = [];

function start(over: Partial<EngineLoopConfig> = {}): { loop: EngineLoop; model: FakeModel } {
  const config: EngineLoopConfig = {
    maxNumBatchedTokens: 32,
    maxNumSeqs: 6,
    maxModelLen: 256,
    blockSize: 4,
    numBlocks: 40,
    enablePrefixCaching: true,
    vocabSize: VOCAB,
    eosTokenIds: [EOS],
    ...over,
  };
  const model = new FakeModel(config.numBlocks, config.blockSize, VOCAB);
  const loop = new EngineLoop(config, model);
  loops.push(loop);
  return { loop, model };
}

afterEach(async () => {
  await Promise.all(loops.splice(0).map((l) => l.close()));
});

function params(over: Partial<SamplingParams> = {}): SamplingParams {
  return greedy(20, { ignoreEos: false, ...over });
}

function prompt(n: number, salt: number): number[] {
  return [1, ...Array.from({ length: n - 1 }, (_, i) => 3 + ((i * 13 + salt * 7) % (VOCAB - 3)))];
}

async function collect(it: AsyncIterable<RequestOutput>): Promise<RequestOutput[]> {
  const outs: RequestOutput[] = [];
  for await (const o of it) outs.push(o);
  return outs;
}

const tokensOf = (outs: RequestOutput[]): number[] => outs.flatMap((o) => o.newTokenIds);

describe('EngineLoop', () => {
  it('streams every request to the reference while many run at once, then frees every block', async () => {
    const { loop } = start({ numBlocks: 24 }); // small: preemption happens
    const reqs: EngineRequest[] = Array.from({ length: 20 }, (_, i) => ({
      id: `r${i}`,
      promptTokenIds: prompt(3 + ((i * 7) % 30), i % 4),
      sampling: params({ maxTokens: 5 + (i % 11), minTokens: i % 3, ignoreEos: i % 5 === 0 }),
    }));
    const results = await Promise.all(reqs.map((r) => collect(loop.submit(r))));
    results.forEach((outs, i) => {
      const r = reqs[i]!;
      const ref = referenceGenerate(r.promptTokenIds, {
        maxTokens: r.sampling.maxTokens,
        minTokens: r.sampling.minTokens,
        stopIds: r.sampling.ignoreEos ? [] : [EOS],
        maxModelLen: 256,
        vocab: VOCAB,
      });
      const last = outs[outs.length - 1]!;
      expect(outs.filter((o) => o.finished)).toEqual([last]);
      const eosEnd = last.finishReason === 'stop';
      expect(eosEnd ? [...tokensOf(outs), last.stopTokenId] : tokensOf(outs)).toEqual(ref);
      expect(last.numOutputTokens).toBe(ref.length);
      expect(last.numPromptTokens).toBe(r.promptTokenIds.length);
      expect(outs[0]!.queueTimeMs).toBeGreaterThanOrEqual(0);
      expect(outs.slice(1).some((o) => o.queueTimeMs !== undefined)).toBe(false);
    });
    const st = loop.stats();
    expect(st.numPreemptions).toBeGreaterThan(0);
    expect(st).toMatchObject({ numRunning: 0, numWaiting: 0, numFreeKvBlocks: 24, kvCacheUsage: 0 });
  });

  it('hides an EOS that ends a request but keeps a stop token id in the output', async () => {
    const { loop } = start();
    // Find, with the reference, a prompt whose 3rd token is taken as a stop id.
    const p = prompt(9, 3);
    const free = referenceGenerate(p, { maxTokens: 5, minTokens: 0, stopIds: [], maxModelLen: 256, vocab: VOCAB });
    const stop = free[2]!;
    const outs = await collect(
      loop.submit({ id: 's', promptTokenIds: p, sampling: params({ stopTokenIds: [stop], ignoreEos: true }) }),
    );
    expect(tokensOf(outs)).toEqual(free.slice(0, free.indexOf(stop) + 1));
    expect(outs.at(-1)).toMatchObject({ finishReason: 'stop', stopTokenId: stop });
    const viaEos = await collect(
      start({ eosTokenIds: [stop] }).loop.submit({ id: 'e', promptTokenIds: p, sampling: params() }),
    );
    expect(tokensOf(viaEos)).toEqual(free.slice(0, free.indexOf(stop)));
    expect(viaEos.at(-1)).toMatchObject({
      finishReason: 'stop',
      stopTokenId: stop,
      numOutputTokens: free.indexOf(stop) + 1,
    });
  });

  it('aborts waiting, running and in-flight requests, freeing their blocks at once', async () => {
    const { loop, model } = start({ maxNumSeqs: 1 });
    model.delayMs = 5;
    const running = loop.submit({
      id: 'run',
      promptTokenIds: prompt(10, 1),
      sampling: params({ maxTokens: 100, ignoreEos: true }),
    });
    const waiting = loop.submit({
      id: 'wait',
      promptTokenIds: prompt(10, 2),
      sampling: params({ maxTokens: 100, ignoreEos: true }),
    });
    const it = running[Symbol.asyncIterator]();
    const first = await it.next(); // a step for 'run' is in flight again right after this
    expect(first.value.newTokenIds).toHaveLength(1);
    loop.abort('wait');
    loop.abort('run');
    expect(loop.stats()).toMatchObject({ numRunning: 0, numWaiting: 0, numFreeKvBlocks: 40 });
    const rest: RequestOutput[] = [];
    for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);
    expect(rest.at(-1)).toMatchObject({ finished: true, finishReason: 'abort' });
    expect(await collect(waiting)).toEqual([
      expect.objectContaining({ finished: true, finishReason: 'abort', newTokenIds: [] }),
    ]);
    // The loop goes on serving.
    const after = await collect(
      loop.submit({ id: 'next', promptTokenIds: prompt(5, 3), sampling: params({ maxTokens: 3, ignoreEos: true }) }),
    );
    expect(tokensOf(after)).toHaveLength(3);
    loop.abort('unknown-id'); // ignored
  });

  it('aborts a request whose consumer stops iterating', async () => {
    const { loop } = start();
    for await (const o of loop.submit({
      id: 'b',
      promptTokenIds: prompt(6, 1),
      sampling: params({ maxTokens: 100, ignoreEos: true }),
    })) {
      expect(o.finished).toBe(false);
      break;
    }
    expect(loop.stats()).toMatchObject({ numRunning: 0, numWaiting: 0, numFreeKvBlocks: 40 });
  });

  it('fails only the requests of a failed step, and keeps serving', async () => {
    const { loop, model } = start({ maxNumSeqs: 1 });
    const bad = prompt(7, 9);
    model.failWhen = (b) => b.tokenIds[0] === bad[0] && b.tokenIds.length === bad.length && b.tokenIds[1] === bad[1];
    const failing = collect(loop.submit({ id: 'bad', promptTokenIds: bad, sampling: params() }));
    const good = collect(
      loop.submit({ id: 'good', promptTokenIds: prompt(8, 2), sampling: params({ maxTokens: 4, ignoreEos: true }) }),
    );
    const f = await failing;
    expect(f).toEqual([
      expect.objectContaining({
        finished: true,
        finishReason: 'error',
        error: expect.stringContaining('injected step failure'),
      }),
    ]);
    expect(tokensOf(await good)).toHaveLength(4);
    expect(loop.stats().numFreeKvBlocks).toBe(40);
  });

  it('fails live requests instead of hanging when the loop itself faults, and goes on', async () => {
    const { loop } = start();
    const schedule = loop.scheduler.schedule.bind(loop.scheduler);
    let calls = 0;
    loop.scheduler.schedule = () => {
      if (++calls === 3) throw new Error('scheduler bug');
      return schedule();
    };
    const outs = await collect(
      loop.submit({ id: 'a', promptTokenIds: prompt(5, 1), sampling: params({ maxTokens: 50, ignoreEos: true }) }),
    );
    expect(outs.at(-1)).toMatchObject({ finishReason: 'error', error: expect.stringContaining('scheduler bug') });
    expect(tokensOf(outs)).toHaveLength(2);
    const again = await collect(
      loop.submit({ id: 'b', promptTokenIds: prompt(5, 2), sampling: params({ maxTokens: 3, ignoreEos: true }) }),
    );
    expect(tokensOf(again)).toHaveLength(3);
  });

  it('sleeps when idle and wakes up for new work', async () => {
    const { loop, model } = start();
    await collect(
      loop.submit({ id: 'a', promptTokenIds: prompt(5, 1), sampling: params({ maxTokens: 3, ignoreEos: true }) }),
    );
    const steps = model.steps;
    await new Promise((r) => setTimeout(r, 50));
    expect(model.steps).toBe(steps);
    const outs = await collect(
      loop.submit({ id: 'b', promptTokenIds: prompt(5, 2), sampling: params({ maxTokens: 2, ignoreEos: true }) }),
    );
    expect(tokensOf(outs)).toHaveLength(2);
  });

  it('rejects up front what can never run', () => {
    const { loop } = start({ maxModelLen: 32, numBlocks: 6 }); // the pool holds 24 tokens
    const sub =
      (p: number[], s: Partial<SamplingParams> = {}) =>
      () =>
        loop.submit({ id: `x${Math.random()}`, promptTokenIds: p, sampling: params(s) });
    expect(sub(prompt(32, 1))).toThrow(expect.objectContaining({ code: 'context_length_exceeded' }));
    expect(sub(prompt(20, 1), { maxTokens: 10 })).toThrow(
      expect.objectContaining({ code: 'invalid_request', message: expect.stringMatching(/KV cache/) }),
    );
    expect(sub([])).toThrow(EngineError);
    expect(sub([1, VOCAB])).toThrow(/vocabulary/);
    expect(sub([1, 2], { maxTokens: 0 })).toThrow(/max_tokens/);
    loop.submit({ id: 'dup', promptTokenIds: [1, 5], sampling: params({ maxTokens: 2 }) });
    expect(() => loop.submit({ id: 'dup', promptTokenIds: [1, 5], sampling: params() })).toThrow(/already running/);
    expect(sub(prompt(20, 1), { maxTokens: 4 })).not.toThrow();
  });

  it('returns logprobs aligned with the tokens, gives unseeded requests random seeds and counts seed steps', async () => {
    const { loop, model } = start();
    const [a, b, c] = await Promise.all([
      collect(
        loop.submit({
          id: 'a',
          promptTokenIds: prompt(6, 1),
          sampling: params({ maxTokens: 4, ignoreEos: true, logprobs: 2, seed: 77 }),
        }),
      ),
      collect(
        loop.submit({
          id: 'b',
          promptTokenIds: prompt(6, 2),
          sampling: params({ maxTokens: 4, ignoreEos: true, logprobs: 0 }),
        }),
      ),
      collect(
        loop.submit({ id: 'c', promptTokenIds: prompt(6, 3), sampling: params({ maxTokens: 4, ignoreEos: true }) }),
      ),
    ]);
    const la = a!.flatMap((o) => o.logprobs ?? []);
    expect(la.map((l) => l.tokenId)).toEqual(tokensOf(a!));
    for (const l of la)
      expect(l.top).toEqual([
        [l.tokenId, -0.5],
        [(l.tokenId + 1) % VOCAB, -1.5],
      ]);
    expect(b!.flatMap((o) => o.logprobs ?? []).map((l) => l.top)).toEqual([[], [], [], []]);
    expect(c!.some((o) => o.logprobs)).toBe(false);
    const rows = model.seen.filter((s) => s.seqs === 3);
    expect(rows.map((s) => s.seedSteps)).toEqual([
      [0, 0, 0],
      [1, 1, 1],
      [2, 2, 2],
      [3, 3, 3],
    ]);
    const seeds = rows[0]!.seeds;
    expect(seeds[0]).toBe(77);
    expect(new Set(rows.map((s) => s.seeds.join()))).toEqual(new Set([seeds.join()]));
    expect(seeds[1]).not.toBe(seeds[2]);
  });
});
