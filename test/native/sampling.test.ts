// Native sampling against a small JS reference of the same formulas (sampler.h): log-softmax of the raw
// logits, logit bias, HF repetition penalty, OpenAI frequency/presence penalties, temperature/top-k/top-p/min-p.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative, type NativeEngine } from '../../src/runner/binding.js';
import { blockSize, buildBatch, engineOptions, generate, greedy, loadExpected, type Sampling } from './harness.js';

const prompts = loadExpected().map((e) => e.prompt_ids);
const maxBlocks = 8;

function logSoftmax(l: ArrayLike<number>): number[] {
  let m = -Infinity;
  for (let i = 0; i < l.length; i++) m = Math.max(m, l[i]!);
  let s = 0;
  for (let i = 0; i < l.length; i++) s += Math.exp(l[i]! - m);
  const lse = m + Math.log(s);
  return Array.from(l, (x) => x - lse);
}

/** The reference of sampler.cc's penalty stage: bias, then repetition, then frequency/presence. */
function penalised(raw: Float32Array, s: Sampling, history: number[], outputStart: number): number[] {
  const l = Array.from(raw);
  for (const [id, v] of s.bias ?? []) l[id] = Math.fround(l[id]! + v);
  for (const id of new Set(history)) l[id] = l[id]! > 0 ? l[id]! / s.repetitionPenalty : l[id]! * s.repetitionPenalty;
  const counts = new Map<number, number>();
  for (const id of history.slice(outputStart)) counts.set(id, (counts.get(id) ?? 0) + 1);
  for (const [id, n] of counts) l[id] = l[id]! - (s.frequencyPenalty * n + s.presencePenalty);
  return l;
}

function argmax(l: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < l.length; i++) if (l[i]! > l[best]!) best = i;
  return best;
}

/** Probabilities after temperature, top-k, top-p, min-p (the candidate set and its renormalised mass). */
function filteredProbs(l: number[], s: Sampling): Map<number, number> {
  const scaled = l.map((x) => x / s.temperature);
  const m = Math.max(...scaled);
  let ids = scaled.map((_, i) => i).sort((a, b) => scaled[b]! - scaled[a]! || a - b);
  const p = (i: number) => Math.exp(scaled[i]! - m);
  if (s.topK > 0) ids = ids.slice(0, s.topK);
  if (s.topP < 1) {
    const total = ids.reduce((a, i) => a + p(i), 0);
    let cum = 0,
      keep = ids.length;
    for (let j = 0; j < ids.length; j++) {
      cum += p(ids[j]!);
      if (cum >= s.topP * total) {
        keep = j + 1;
        break;
      }
    }
    ids = ids.slice(0, keep);
  }
  if (s.minP > 0) ids = ids.filter((i) => p(i) >= s.minP);
  const total = ids.reduce((a, i) => a + p(i), 0);
  return new Map(ids.map((i) => [i, p(i) / total]));
}

describe('native sampling (stories260K)', () => {
  let engine: NativeEngine;
  beforeAll(async () => {
    engine = await loadNative().loadEngine(engineOptions({ maxNumSeqs: 512 }));
  });
  afterAll(() => engine?.dispose());

  const seeded = (seed: number): Sampling => ({ ...greedy, temperature: 1.0, seed });

  it('seeded sampling is reproducible and independent of the batch', async () => {
    const a = await generate(engine, [prompts[0]!], { maxTokens: 30, blockSize, maxBlocks, sampling: [seeded(7)] });
    const b = await generate(engine, [prompts[0]!], { maxTokens: 30, blockSize, maxBlocks, sampling: [seeded(7)] });
    const batch = await generate(engine, prompts, {
      maxTokens: 30,
      blockSize,
      maxBlocks,
      sampling: [seeded(7), seeded(1), seeded(2), seeded(3)],
      prefillChunk: 2,
    });
    const other = await generate(engine, [prompts[0]!], { maxTokens: 30, blockSize, maxBlocks, sampling: [seeded(8)] });
    expect(b).toEqual(a);
    expect(batch[0]).toEqual(a[0]);
    expect(other[0]).not.toEqual(a[0]); // the seed matters
  });

  it('top-k 1, top-p tiny and min-p 1 are greedy', async () => {
    const want = await generate(engine, prompts, { maxTokens: 20, blockSize, maxBlocks });
    for (const filter of [{ topK: 1 }, { topP: 1e-6 }, { minP: 1 }]) {
      const s = prompts.map((_, i) => ({ ...seeded(100 + i), temperature: 1.5, ...filter }));
      expect(await generate(engine, prompts, { maxTokens: 20, blockSize, maxBlocks, sampling: s })).toEqual(want);
    }
  });

  it('logprobs are the log-softmax of the raw logits', async () => {
    const all = prompts[2]!;
    const s = { ...seeded(3), temperature: 0.7, repetitionPenalty: 1.3, numLogprobs: 6 };
    const batch = buildBatch(
      [{ slot: 0, all, promptLen: all.length, start: 0, count: all.length, sample: true, sampling: s }],
      blockSize,
      maxBlocks,
      true,
    );
    const r = await engine.step(batch);
    const ls = logSoftmax(r.logits!);
    expect(ls.reduce((a, x) => a + Math.exp(x), 0)).toBeCloseTo(1, 5);
    expect(r.topLogprobs).toBe(6);
    const top = ls
      .map((_, i) => i)
      .sort((a, b) => ls[b]! - ls[a]! || a - b)
      .slice(0, 6);
    expect(Array.from(r.topIds)).toEqual(top);
    for (let j = 0; j < 6; j++) expect(r.topValues[j]).toBeCloseTo(ls[top[j]!]!, 4);
    expect(r.logprobs[0]).toBeCloseTo(ls[r.tokens[0]!]!, 4);
  });

  it('with a logit bias, logprobs are the log-softmax of the biased logits (a banned token reads -inf)', async () => {
    const all = prompts[1]!;
    const probe = await engine.step(
      buildBatch(
        [
          {
            slot: 0,
            all,
            promptLen: all.length,
            start: 0,
            count: all.length,
            sample: true,
            sampling: { ...greedy, numLogprobs: 3 },
          },
        ],
        blockSize,
        maxBlocks,
        true,
      ),
    );
    const [first, second] = Array.from(probe.topIds);
    const bias: Array<[number, number]> = [
      [first!, -Infinity],
      [second!, -1.5],
      [7, 4],
    ];
    const s = { ...seeded(5), temperature: 0.9, repetitionPenalty: 1.2, numLogprobs: 4, bias };
    const r = await engine.step(
      buildBatch(
        [{ slot: 0, all, promptLen: all.length, start: 0, count: all.length, sample: true, sampling: s }],
        blockSize,
        maxBlocks,
        true,
      ),
    );
    const biased = Array.from(r.logits!, (x) => Math.fround(x));
    for (const [id, v] of bias) biased[id] = Math.fround(biased[id]! + v);
    const ls = logSoftmax(biased);
    const top = ls
      .map((_, i) => i)
      .sort((a, b) => ls[b]! - ls[a]! || a - b)
      .slice(0, 4);
    expect(top).not.toContain(first);
    expect(Array.from(r.topIds)).toEqual(top);
    for (let j = 0; j < 4; j++) expect(r.topValues[j]).toBeCloseTo(ls[top[j]!]!, 4);
    expect(r.tokens[0]).not.toBe(first);
    expect(r.logprobs[0]).toBeCloseTo(ls[r.tokens[0]!]!, 4);
  });

  it('bias and penalties change the greedy choice exactly as the reference formula says', async () => {
    const settings: Sampling[] = [
      { ...greedy, repetitionPenalty: 3 },
      { ...greedy, frequencyPenalty: 2.5 },
      { ...greedy, presencePenalty: 4, frequencyPenalty: 0.5 },
      {
        ...greedy,
        repetitionPenalty: 1.5,
        bias: [
          [432, -20],
          [261, 5],
        ],
      },
    ];
    let changed = 0;
    for (const s of settings) {
      const all = [...prompts[0]!];
      for (let step = 0; step < 25; step++) {
        const batch = buildBatch(
          [{ slot: 0, all, promptLen: prompts[0]!.length, start: 0, count: all.length, sample: true, sampling: s }],
          blockSize,
          maxBlocks,
          true,
        );
        const r = await engine.step(batch);
        const want = argmax(penalised(r.logits!, s, all, prompts[0]!.length));
        if (want !== argmax(r.logits!)) changed++;
        expect(r.tokens[0]).toBe(want);
        all.push(r.tokens[0]!);
      }
    }
    expect(changed).toBeGreaterThan(5); // the penalties really were in play
  });

  it('temperature / top-k / top-p sampling follows the filtered distribution', async () => {
    const n = 400;
    const all = prompts[0]!;
    for (const filter of [{ topK: 4 }, { topP: 0.9 }, { minP: 0.05 }]) {
      const s = (seed: number): Sampling => ({ ...greedy, temperature: 2, seed, ...filter });
      const chunks = Array.from({ length: n }, (_, i) => ({
        slot: i,
        all,
        promptLen: all.length,
        start: 0,
        count: all.length,
        sample: true,
        sampling: s(1000 + i),
      }));
      const r = await engine.step(buildBatch(chunks, blockSize, 1, true));
      const probs = filteredProbs(Array.from(r.logits!.subarray(0, 512)), s(0));
      const freq = new Map<number, number>();
      for (const t of r.tokens) freq.set(t, (freq.get(t) ?? 0) + 1);
      for (const t of freq.keys()) expect(probs.has(t), `token ${t} outside the filtered set`).toBe(true);
      for (const [t, p] of probs) expect(Math.abs((freq.get(t) ?? 0) / n - p)).toBeLessThan(0.08);
    }
  });
});

describe('native sampling with allowed-token bitmasks (stories260K)', () => {
  let engine: NativeEngine;
  beforeAll(async () => {
    engine = await loadNative().loadEngine(engineOptions({ maxNumSeqs: 64 }));
  });
  afterAll(() => engine?.dispose());

  const one = (s: Sampling, all = prompts[0]!) =>
    buildBatch(
      [{ slot: 0, all, promptLen: all.length, start: 0, count: all.length, sample: true, sampling: s }],
      blockSize,
      maxBlocks,
      true,
    );

  it('greedy picks the best allowed id, and logprobs are the log-softmax over the allowed ids (the rest -inf)', async () => {
    const free = await engine.step(one({ ...greedy, numLogprobs: 5 }));
    // Allow ids the model does not prefer: the 3 best are out, so the mask must change the choice.
    const best = Array.from(free.topIds.subarray(0, 3));
    const allowed = [7, 100, 300, 301, 450].filter((t) => !best.includes(t));
    const r = await engine.step(one({ ...greedy, numLogprobs: 3, allowed }));
    const masked = Array.from(r.logits!, (x, i) => (allowed.includes(i) ? Math.fround(x) : -Infinity));
    const ls = logSoftmax(masked);
    expect(r.tokens[0]).toBe(argmax(masked));
    expect(allowed).toContain(r.tokens[0]);
    expect(r.logprobs[0]).toBeCloseTo(ls[r.tokens[0]!]!, 4);
    const top = allowed
      .slice()
      .sort((a, b) => ls[b]! - ls[a]! || a - b)
      .slice(0, 3);
    expect(Array.from(r.topIds)).toEqual(top);
    for (let j = 0; j < 3; j++) expect(r.topValues[j]).toBeCloseTo(ls[top[j]!]!, 4);
  });

  it('seeded draws stay inside the mask, rows without one in the same step are unchanged, and bias adds on top', async () => {
    const all = prompts[1]!;
    const allowed = [5, 6, 259, 260, 261, 262, 263];
    const plain = { ...greedy, temperature: 1.5, seed: 3 };
    const alone = await engine.step(
      buildBatch(
        [{ slot: 1, all, promptLen: all.length, start: 0, count: all.length, sample: true, sampling: plain }],
        blockSize,
        maxBlocks,
      ),
    );
    const chunks = Array.from({ length: 40 }, (_, i) => ({
      slot: i,
      all,
      promptLen: all.length,
      start: 0,
      count: all.length,
      sample: true,
      sampling:
        i === 1 ? plain : { ...plain, seed: 100 + i, allowed, bias: [[262, -Infinity]] as Array<[number, number]> },
    }));
    const r = await engine.step(buildBatch(chunks, blockSize, 1));
    for (let i = 0; i < 40; i++) {
      if (i === 1) continue;
      expect(allowed).toContain(r.tokens[i]);
      expect(r.tokens[i]).not.toBe(262);
    }
    expect(r.tokens[1]).toBe(alone.tokens[0]);
    expect(new Set(Array.from(r.tokens).filter((_, i) => i !== 1)).size).toBeGreaterThan(2); // it did sample
  });

  it('a mask row beyond the masks sent fails that sequence only; masks that are not whole rows fail the batch', async () => {
    const batch = one({ ...greedy, allowed: [3] });
    batch.maskRow = Int32Array.from([1]);
    await expect(engine.step(batch)).rejects.toMatchObject({
      faults: [{ seq: 0, message: expect.stringMatching(/maskRow\[0\] = 1 is beyond the masks sent/) }],
    });
    const ragged = one({ ...greedy, allowed: [3] });
    ragged.masks = new Int32Array(5);
    await expect(engine.step(ragged)).rejects.toThrow(/masks has 5 words, not a multiple of ceil\(vocab \/ 32\) = 16/);
  });
});
