// The whole path (createEngine → loop → scheduler → runner → native CPU engine) on stories260K.
// References: transformers' greedy ids (expected.json) — a prompt extended by the first k greedy tokens
// must continue with the rest of them — and, for random prompts, the same request run alone.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultModelDir, engineDefaults, type EngineConfig } from '../../src/config.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import type { EngineRequest, RequestOutput } from '../../src/engine/types.js';
import { greedy } from './greedy.js';

const built = existsSync(join(import.meta.dirname, '..', '..', 'build', 'Release', 'kvserve.node'));
interface Expected {
  prompt_ids: number[];
  greedy_ids: number[];
}
const expected: Expected[] = JSON.parse(readFileSync(join(defaultModelDir, 'expected.json'), 'utf8'));

async function engine(over: Partial<EngineConfig>): Promise<Engine> {
  return createEngine({ ...engineDefaults(), device: 'cpu', threads: 1, ...over });
}

async function run(e: Engine, r: EngineRequest): Promise<{ tokens: number[]; last: RequestOutput }> {
  const tokens: number[] = [];
  let last: RequestOutput | undefined;
  for await (const o of e.client.submit(r)) {
    tokens.push(...o.newTokenIds);
    last = o;
  }
  return { tokens, last: last! };
}

/** Deterministic pseudo-random tokens (no BOS/EOS) from a seed. */
function randomTokens(n: number, seed: number): number[] {
  let x = seed * 2654435761 + 1;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return 3 + ((x >>> 8) % 509);
  });
}

interface Case {
  req: EngineRequest;
  want?: number[];
}

/** 64 requests: 48 continue expected.json prompts (sharing long prefixes), 16 random prompts behind one
 *  shared 120-token prefix; lengths from 5 to about 150 tokens. */
function workload(): Case[] {
  const cases: Case[] = [];
  for (let i = 0; i < 48; i++) {
    const ref = expected[i % 4]!;
    const k = (i * 7) % 50;
    const n = Math.min(80 - k, 8 + ((i * 13) % 30));
    cases.push({
      req: { id: `x${i}`, promptTokenIds: [...ref.prompt_ids, ...ref.greedy_ids.slice(0, k)], sampling: greedy(n) },
      want: ref.greedy_ids.slice(k, k + n),
    });
  }
  const shared = randomTokens(120, 7);
  for (let i = 0; i < 16; i++) {
    const prompt = [1, ...(i % 2 ? shared : shared.slice(0, 40)), ...randomTokens(1 + ((i * 5) % 23), 100 + i)];
    cases.push({ req: { id: `r${i}`, promptTokenIds: prompt, sampling: greedy(10 + ((i * 11) % 25)) } });
  }
  return cases;
}

describe.skipIf(!built)('engine on the CPU backend with stories260K', () => {
  it("reproduces transformers' greedy ids for each expected.json prompt alone", async () => {
    const e = await engine({});
    try {
      for (const [i, ref] of expected.entries()) {
        const { tokens, last } = await run(e, { id: `e${i}`, promptTokenIds: ref.prompt_ids, sampling: greedy(80) });
        expect(tokens).toEqual(ref.greedy_ids);
        expect(last).toMatchObject({ finished: true, finishReason: 'length', numOutputTokens: 80 });
      }
    } finally {
      await e.close();
    }
  });

  // References for the random prompts: each alone, one at a time, on an engine without prefix caching.
  let alone: Map<string, number[]> | undefined;
  async function aloneRefs(cases: Case[]): Promise<Map<string, number[]>> {
    if (alone) return alone;
    const e = await engine({ enablePrefixCaching: false, maxNumSeqs: 1 });
    alone = new Map();
    try {
      for (const c of cases) if (!c.want) alone.set(c.req.id, (await run(e, c.req)).tokens);
    } finally {
      await e.close();
    }
    return alone;
  }

  const variants: Array<[string, Partial<EngineConfig>, (e: Engine) => void]> = [
    [
      'prefix caching on, admissions spread over steps',
      { enablePrefixCaching: true, maxNumBatchedTokens: 256 },
      (e) => expect(e.client.stats().prefixCacheHits).toBeGreaterThan(1000),
    ],
    ['prefix caching off', { enablePrefixCaching: false }, (e) => expect(e.client.stats().prefixCacheHits).toBe(0)],
    [
      'a pool so small that requests are preempted, caching on',
      { numKvBlocks: 24, maxNumBatchedTokens: 128 },
      (e) => expect(e.client.stats().numPreemptions).toBeGreaterThan(0),
    ],
    [
      'a pool so small that requests are preempted, caching off',
      { numKvBlocks: 24, maxNumBatchedTokens: 64, enablePrefixCaching: false },
      (e) => expect(e.client.stats().numPreemptions).toBeGreaterThan(0),
    ],
  ];
  it.each(variants)('runs 64 concurrent requests to the same greedy ids as alone: %s', async (_name, over, check) => {
    const cases = workload();
    const refs = await aloneRefs(cases);
    const e = await engine(over);
    try {
      if (over.numKvBlocks) expect(e.info.numKvBlocks).toBe(over.numKvBlocks);
      const results = await Promise.all(cases.map((c) => run(e, c.req)));
      results.forEach(({ tokens, last }, i) => {
        const c = cases[i]!;
        expect(tokens, c.req.id).toEqual(c.want ?? refs.get(c.req.id));
        expect(last.finishReason).toBe('length');
      });
      check(e);
      // vLLM's prompt_tokens_total: every request's whole prompt once — cache hits and preemption recomputes
      // neither remove nor add any; generation counts every sampled token once.
      const promptTotal = cases.reduce((n, c) => n + c.req.promptTokenIds.length, 0);
      const outputTotal = results.reduce((n, r) => n + r.tokens.length, 0);
      expect(e.client.stats()).toMatchObject({
        numRunning: 0,
        numWaiting: 0,
        numFreeKvBlocks: e.info.numKvBlocks,
        promptTokens: promptTotal,
      });
      expect(e.client.stats().generationTokens).toBe(outputTotal);
    } finally {
      await e.close();
    }
  });
});
