// Structured outputs in the engine loop, over the fake paged model with scripted grammars: every sampled
// token lies inside the grammar's mask, a complete grammar ends the request ('stop'), a refused token or a
// failing grammar ends only its own request, unconstrained requests beside them run as they would alone
// (and carry no mask), and a grammar is disposed exactly once, never while its mask is being computed.
import { afterEach, describe, expect, it } from 'vitest';
import { EngineLoop, type EngineLoopConfig } from '../../src/engine/engine-loop.js';
import { onlyStops } from '../../src/engine/grammar-masks.js';
import type { RequestOutput, TokenConstraint } from '../../src/engine/types.js';
import { FakeModel, referenceGenerate } from '../scheduler/fake-model.js';
import { greedy } from './greedy.js';

const VOCAB = 64;
const EOS = 2;
const WORDS = Math.ceil(VOCAB / 32);
const loops: EngineLoop[] = [];

function start(): { loop: EngineLoop; model: FakeModel } {
  const config: EngineLoopConfig = {
    maxNumBatchedTokens: 32,
    maxNumSeqs: 6,
    maxModelLen: 256,
    blockSize: 4,
    numBlocks: 40,
    enablePrefixCaching: true,
    vocabSize: VOCAB,
    eosTokenIds: [EOS],
  };
  const model = new FakeModel(config.numBlocks, config.blockSize, VOCAB);
  const loop = new EngineLoop(config, model);
  loops.push(loop);
  return { loop, model };
}

afterEach(async () => {
  await Promise.all(loops.splice(0).map((l) => l.close()));
});

function maskOf(ids: number[]): Int32Array {
  const m = new Int32Array(WORDS);
  for (const t of ids) m[t >> 5] |= 1 << (t & 31);
  return m;
}

/** A grammar that allows, at output position i, the ids in choices[i] (then only EOS). */
class Scripted implements TokenConstraint {
  pos = 0;
  disposed = 0;
  pending = 0;
  disposedWhilePending = false;
  terminated = false;
  constructor(
    readonly choices: number[][],
    readonly opts: { delayMs?: number; failAt?: number; refuse?: boolean } = {},
  ) {}
  async nextMask(): Promise<Int32Array> {
    this.pending++;
    try {
      if (this.opts.delayMs) await new Promise((r) => setTimeout(r, this.opts.delayMs));
      if (this.pos === this.opts.failAt) throw new Error('boom');
      return maskOf(this.pos < this.choices.length ? this.choices[this.pos]! : [EOS]);
    } finally {
      this.pending--;
    }
  }
  accept(token: number): boolean {
    if (this.opts.refuse) return false;
    if (token === EOS) {
      this.terminated = true;
      return true;
    }
    if (!this.choices[this.pos]?.includes(token)) return false;
    this.pos++;
    return true;
  }
  isTerminated(): boolean {
    return this.terminated;
  }
  dispose(): void {
    if (this.pending > 0) this.disposedWhilePending = true;
    this.disposed++;
  }
}

async function collect(it: AsyncIterable<RequestOutput>): Promise<RequestOutput[]> {
  const outs: RequestOutput[] = [];
  for await (const o of it) outs.push(o);
  return outs;
}

const tokensOf = (outs: RequestOutput[]) => outs.flatMap((o) => o.newTokenIds);
const prompt = (salt: number) => [1, 5 + salt, 9, 17 + salt, 30];

describe('EngineLoop with grammars', () => {
  it('samples inside the grammar, ends when only a stop token may follow, and leaves other requests alone', async () => {
    const { loop, model } = start();
    const script = [[10], [20, 21, 22], [33], [40, 41]];
    const g = new Scripted(script);
    const constrained = collect(
      loop.submit({ id: 'g', promptTokenIds: prompt(0), sampling: greedy(50, { ignoreEos: false }), constraint: g }),
    );
    const free = Array.from({ length: 3 }, (_, i) =>
      collect(loop.submit({ id: `f${i}`, promptTokenIds: prompt(i + 1), sampling: greedy(8) })),
    );
    const outs = await constrained;
    const toks = tokensOf(outs);
    expect(toks).toHaveLength(script.length);
    for (const [i, t] of toks.entries()) expect(script[i]).toContain(t);
    expect(outs.at(-1)).toMatchObject({ finished: true, finishReason: 'stop' });
    expect(outs.at(-1)!.stopTokenId).toBeUndefined(); // ended by the grammar, no EOS sampled
    const frees = await Promise.all(free);
    frees.forEach((o, i) => {
      const ref = referenceGenerate(prompt(i + 1), {
        maxTokens: 8,
        minTokens: 0,
        stopIds: [],
        maxModelLen: 256,
        vocab: VOCAB,
      });
      expect(tokensOf(o)).toEqual(ref);
    });
    expect(g.disposed).toBe(1);
    expect(Math.max(...model.seen.map((s) => s.masked))).toBe(1); // only the constrained row carried a mask
  });

  it('a batch without grammars sends no masks', async () => {
    const { loop, model } = start();
    await collect(loop.submit({ id: 'a', promptTokenIds: prompt(0), sampling: greedy(5) }));
    expect(model.seen.every((s) => s.masked === 0)).toBe(true);
  });

  it('a grammar that refuses a token, or fails to give a mask, fails its request only', async () => {
    const { loop } = start();
    const refusing = new Scripted([[10], [11]], { refuse: true });
    const failing = new Scripted([[10], [11], [12]], { failAt: 2 });
    const [a, b, c] = await Promise.all([
      collect(loop.submit({ id: 'r', promptTokenIds: prompt(0), sampling: greedy(9), constraint: refusing })),
      collect(loop.submit({ id: 'f', promptTokenIds: prompt(1), sampling: greedy(9), constraint: failing })),
      collect(loop.submit({ id: 'ok', promptTokenIds: prompt(2), sampling: greedy(6) })),
    ]);
    expect(a.at(-1)).toMatchObject({
      finishReason: 'error',
      error: 'the sampled token 10 does not follow the grammar',
    });
    expect(b.at(-1)).toMatchObject({ finishReason: 'error', error: expect.stringContaining('boom') });
    expect(tokensOf(b)).toEqual([10]); // the step whose mask failed is not delivered: the request ends in error
    expect(c.at(-1)!.finishReason).toBe('length');
    expect(tokensOf(c)).toHaveLength(6);
    expect([refusing.disposed, failing.disposed]).toEqual([1, 1]);
  });

  it('a grammar that accepts EOS among other choices ends at the EOS the model samples', async () => {
    const { loop } = start();
    // The fake model samples v % VOCAB skipping masked ids: allow EOS and one more id, and let it choose.
    const g = new Scripted([
      [EOS, 50],
      [EOS, 51],
      [EOS, 52],
      [EOS, 53],
      [EOS, 54],
      [EOS, 55],
    ]);
    const outs = await collect(
      loop.submit({ id: 'e', promptTokenIds: prompt(3), sampling: greedy(20, { ignoreEos: false }), constraint: g }),
    );
    const toks = tokensOf(outs);
    for (const [i, t] of toks.entries()) expect([EOS, 50 + i]).toContain(t);
    expect(outs.at(-1)!.finishReason).toBe('stop');
    expect(g.disposed).toBe(1);
  });

  it('an abort while the masks are computed disposes the grammar after they are done', async () => {
    const { loop } = start();
    const g = new Scripted(
      Array.from({ length: 30 }, (_, i) => [10 + (i % 20)]),
      { delayMs: 15 },
    );
    const it = loop.submit({ id: 'slow', promptTokenIds: prompt(0), sampling: greedy(30), constraint: g });
    setTimeout(() => loop.abort('slow'), 40);
    const outs = await collect(it);
    expect(outs.at(-1)!.finishReason).toBe('abort');
    await new Promise((r) => setTimeout(r, 40));
    expect(g.disposed).toBe(1);
    expect(g.disposedWhilePending).toBe(false);
  });

  it('onlyStops: a mask allowing nothing but stop ids', () => {
    expect(onlyStops(maskOf([EOS]), new Set([EOS]))).toBe(true);
    expect(onlyStops(maskOf([]), new Set([EOS]))).toBe(true);
    expect(onlyStops(maskOf([EOS, 63]), new Set([EOS]))).toBe(false);
    expect(onlyStops(maskOf([31, 32]), new Set([31, 32]))).toBe(true);
  });
});
