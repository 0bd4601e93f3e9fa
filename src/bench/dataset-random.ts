// The random dataset: prompts of chosen token lengths, as vLLM's `--dataset-name random`.
// Lengths are drawn uniformly from [floor(L·(1−r)), ceil(L·(1+r))] for input and output (output at least 1).
// With a tokenizer a prompt is random token ids decoded to text, then re-encoded and adjusted until the text
// encodes (without special tokens) to exactly the drawn length. Without one it is random words and the
// lengths are estimates (one token per word), which the report says.
import { Rng } from './rng.js';
import type { BenchRequest, BenchTokenizer, Dataset } from './types.js';

export interface RandomDatasetOptions {
  numPrompts: number;
  inputLen: number;
  outputLen: number;
  /** in [0, 1) */
  rangeRatio: number;
  seed: number;
}

/** Rounds of decode → encode → adjust before a prompt is drawn afresh; a handful suffice in practice. */
const MAX_ADJUST_ROUNDS = 16;
const MAX_FRESH_DRAWS = 8;

export function randomDataset(opts: RandomDatasetOptions, tokenizer: BenchTokenizer | undefined): Dataset {
  if (!(opts.rangeRatio >= 0 && opts.rangeRatio < 1))
    throw new Error(`--range-ratio must be in [0, 1), got ${opts.rangeRatio}`);
  const rng = new Rng(opts.seed);
  const inLo = Math.max(1, Math.floor(opts.inputLen * (1 - opts.rangeRatio)));
  const inHi = Math.max(inLo, Math.ceil(opts.inputLen * (1 + opts.rangeRatio)));
  const outLo = Math.max(1, Math.floor(opts.outputLen * (1 - opts.rangeRatio)));
  const outHi = Math.max(outLo, Math.ceil(opts.outputLen * (1 + opts.rangeRatio)));
  const allowed = tokenizer ? promptTokenIds(tokenizer) : [];
  const requests: BenchRequest[] = [];
  for (let i = 0; i < opts.numPrompts; i++) {
    const promptLen = rng.int(inLo, inHi);
    const outputLen = rng.int(outLo, outHi);
    const prompt = tokenizer ? exactPrompt(tokenizer, allowed, promptLen, rng) : wordPrompt(promptLen, rng);
    requests.push({ prompt, promptLen, outputLen });
  }
  const notes = tokenizer
    ? []
    : ['random prompts are words without --tokenizer: input lengths are approximate (one token per word assumed)'];
  return { requests, exactLengths: tokenizer !== undefined, notes };
}

/**
 * Ids a random prompt may use: not special (they decode to ''), and decoding to printable text on their own.
 * Byte-fallback pieces are left out: alone they are invalid UTF-8 (U+FFFD) or control characters, which makes
 * lengths unstable under re-encoding and which some servers reject.
 */
export function promptTokenIds(tokenizer: BenchTokenizer): number[] {
  const ids: number[] = [];
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    let text: string;
    try {
      text = tokenizer.decode([id], true);
    } catch {
      continue; // a hole in the id space
    }
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this keeps out of prompts
    if (text.trim() !== '' && !/[\u0000-\u001f\u007f\ufffd]/.test(text)) ids.push(id);
  }
  if (ids.length === 0) throw new Error('the tokenizer has no printable tokens to build random prompts from');
  return ids;
}

/** Text that encodes (without special tokens) to exactly `target` tokens. Throws if none is found. */
export function exactPrompt(tokenizer: BenchTokenizer, allowed: number[], target: number, rng: Rng): string {
  const pick = (): number => allowed[rng.int(0, allowed.length - 1)]!;
  for (let draw = 0; draw < MAX_FRESH_DRAWS; draw++) {
    let ids = Array.from({ length: target }, pick);
    for (let round = 0; round < MAX_ADJUST_ROUNDS; round++) {
      // Decoding and re-encoding merges or splits pieces at the seams; repeat until the text is a fixed point
      // of the length. The returned text is the one whose encoding was measured, so the length is exact.
      const text = tokenizer.decode(ids, true);
      ids = tokenizer.encode(text, false);
      if (ids.length === target) return text;
      if (ids.length > target) ids = ids.slice(0, target);
      else while (ids.length < target) ids.push(pick());
    }
  }
  throw new Error(`could not build a prompt of exactly ${target} tokens with this tokenizer`);
}

/** Common short English words: most are one token in BPE vocabularies of 32k and more. */
const WORDS = (
  'the of and to in is you that it he was for on are as with his they at be this have from or one had by word ' +
  'but not what all were we when your can said there use an each which she do how their if will up other about ' +
  'out many then them these so some her would make like him into time has look two more write go see number no ' +
  'way could people my than first water been call who oil its now find long down day did get come made may part ' +
  'over new sound take only little work know place year live me back give most very after thing our just name ' +
  'good sentence man think say great where help through much before line right too mean old any same tell boy ' +
  'follow came want show also around form three small set put end does another well large must big even such'
).split(' ');

function wordPrompt(words: number, rng: Rng): string {
  return Array.from({ length: words }, () => WORDS[rng.int(0, WORDS.length - 1)]!).join(' ');
}
