// Datasets: random prompts of exact token lengths with a tokenizer (stories260K's, from models/), word
// prompts with a note without one, and ShareGPT files parsed, filtered and sampled as vLLM does.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { randomDataset } from '../../src/bench/dataset-random.js';
import { loadShareGpt, shareGptDataset } from '../../src/bench/dataset-sharegpt.js';
import { scratchDir, storiesDir } from './run-cli.js';

describe('random dataset', () => {
  it('with --tokenizer, every prompt encodes to exactly its drawn length', async () => {
    const tok = await TextTokenizer.load(storiesDir);
    for (const [inputLen, rangeRatio] of [
      [1, 0],
      [2, 0],
      [64, 0.5],
      [300, 0.9],
    ] as const) {
      const d = randomDataset({ numPrompts: 40, inputLen, outputLen: 16, rangeRatio, seed: 11 }, tok);
      expect(d.exactLengths).toBe(true);
      expect(d.notes).toEqual([]);
      for (const r of d.requests) {
        expect(tok.encode(r.prompt, false)).toHaveLength(r.promptLen);
        expect(r.promptLen).toBeGreaterThanOrEqual(Math.max(1, Math.floor(inputLen * (1 - rangeRatio))));
        expect(r.promptLen).toBeLessThanOrEqual(Math.ceil(inputLen * (1 + rangeRatio)));
        expect(r.outputLen).toBeGreaterThanOrEqual(Math.max(1, Math.floor(16 * (1 - rangeRatio))));
        expect(r.outputLen).toBeLessThanOrEqual(Math.ceil(16 * (1 + rangeRatio)));
      }
      if (rangeRatio > 0) expect(new Set(d.requests.map((r) => r.promptLen)).size).toBeGreaterThan(5);
    }
  });

  it('is reproducible from the seed', async () => {
    const tok = await TextTokenizer.load(storiesDir);
    const a = randomDataset({ numPrompts: 5, inputLen: 32, outputLen: 8, rangeRatio: 0.5, seed: 3 }, tok);
    const b = randomDataset({ numPrompts: 5, inputLen: 32, outputLen: 8, rangeRatio: 0.5, seed: 3 }, tok);
    const c = randomDataset({ numPrompts: 5, inputLen: 32, outputLen: 8, rangeRatio: 0.5, seed: 4 }, tok);
    expect(a).toEqual(b);
    expect(a.requests.map((r) => r.prompt)).not.toEqual(c.requests.map((r) => r.prompt));
  });

  it('without a tokenizer: words, lengths in words, and a note that they are approximate', () => {
    const d = randomDataset({ numPrompts: 3, inputLen: 10, outputLen: 4, rangeRatio: 0, seed: 0 }, undefined);
    expect(d.exactLengths).toBe(false);
    expect(d.notes.join()).toMatch(/approximate/);
    for (const r of d.requests) expect(r.prompt.split(' ')).toHaveLength(10);
  });

  it('rejects a range ratio outside [0, 1)', () => {
    expect(() =>
      randomDataset({ numPrompts: 1, inputLen: 4, outputLen: 4, rangeRatio: 1, seed: 0 }, undefined),
    ).toThrow(/range-ratio/);
  });
});

const conv = (human: string, gpt: string) => ({
  id: 'x',
  conversations: [
    { from: 'human', value: human },
    { from: 'gpt', value: gpt },
  ],
});
const long = (words: number) => Array.from({ length: words }, (_, i) => `word${i}`).join(' ');

describe('ShareGPT', () => {
  const raw = [
    conv('Tell me a story about a cat.', 'Once upon a time there was a cat named Tom who liked milk.'),
    conv('What is two plus two, please?', 'Two plus two is four, my friend.'),
    conv('hi', 'Hello there! How can I help you today?'), // prompt too short (< 4 tokens)
    conv('Say something short to me.', 'ok'), // completion too short
    { id: 'one-turn', conversations: [{ from: 'human', value: 'only a question here' }] }, // < 2 turns
    {
      id: 'alt-key',
      conversation: [
        { from: 'human', value: 'Another question, with the singular key?' },
        { from: 'gpt', value: 'Yes, that key is read too.' },
      ],
    },
    conv(long(1200), 'A long prompt that vLLM filters out for being over 1024 tokens.'),
    { id: 'bad', conversations: 'not a list' },
  ];

  it('first turn is the prompt, the second sets the output length; short, long and malformed entries are dropped', async () => {
    const tok = await TextTokenizer.load(storiesDir);
    const d = shareGptDataset(raw, 'test', { numPrompts: 3, outputLen: undefined, seed: 1 }, tok);
    expect(d.exactLengths).toBe(true);
    const prompts = d.requests.map((r) => r.prompt).sort();
    expect(prompts).toEqual([
      'Another question, with the singular key?',
      'Tell me a story about a cat.',
      'What is two plus two, please?',
    ]);
    for (const r of d.requests) {
      expect(r.promptLen).toBe(tok.encode(r.prompt, false).length);
      const reply = raw
        .flatMap(
          (e) =>
            ((e as { conversations?: unknown }).conversations ??
              (e as { conversation?: unknown }).conversation) as Array<{ value: string }>,
        )
        .find((_, i, all) => all[i - 1]?.value === r.prompt);
      expect(r.outputLen).toBe(tok.encode(reply!.value, false).length);
    }
  });

  it('--output-len fixes max_tokens (and then short replies are kept); too few valid entries repeat with a note', () => {
    const d = shareGptDataset(raw, 'test', { numPrompts: 6, outputLen: 32, seed: 2 }, undefined);
    expect(d.requests).toHaveLength(6);
    expect(d.requests.every((r) => r.outputLen === 32)).toBe(true);
    expect(d.requests.map((r) => r.prompt)).toContain('Say something short to me.');
    expect(d.notes.join()).toMatch(/only 4 valid conversations/);
    expect(d.notes.join()).toMatch(/characters \/ 4/);
  });

  it('the seed decides the order', () => {
    const order = (seed: number) =>
      shareGptDataset(raw, 't', { numPrompts: 4, outputLen: 8, seed }, undefined).requests.map((r) => r.prompt);
    expect(order(5)).toEqual(order(5));
    expect([1, 2, 3, 4, 6, 7].some((s) => JSON.stringify(order(s)) !== JSON.stringify(order(5)))).toBe(true);
  });

  it('reads a file, and says clearly what is wrong with a bad one', async () => {
    const dir = scratchDir();
    const good = join(dir, 'sg.json');
    writeFileSync(good, JSON.stringify(raw));
    const d = await loadShareGpt(good, { numPrompts: 2, outputLen: undefined, seed: 0 }, undefined);
    expect(d.requests).toHaveLength(2);
    const notJson = join(dir, 'bad.json');
    writeFileSync(notJson, '{ nope');
    await expect(loadShareGpt(notJson, { numPrompts: 2, outputLen: undefined, seed: 0 }, undefined)).rejects.toThrow(
      /cannot read it as JSON/,
    );
    expect(() => shareGptDataset({ a: 1 }, 'obj', { numPrompts: 1, outputLen: undefined, seed: 0 }, undefined)).toThrow(
      /JSON array/,
    );
    expect(() => shareGptDataset([raw[4]], 'one', { numPrompts: 1, outputLen: undefined, seed: 0 }, undefined)).toThrow(
      /at least two turns/,
    );
  });
});
