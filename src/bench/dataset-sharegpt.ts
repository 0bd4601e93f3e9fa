// ShareGPT-format datasets, read as vLLM reads them: a JSON array of conversations
// `{ "conversations": [{ "from": "human", "value": ... }, { "from": "gpt", "value": ... }, ...] }`;
// the first turn is the prompt and the second is the reference completion, whose length is the output length
// unless --output-len fixes it. Conversations are shuffled with the seed and filtered like vLLM's
// `is_valid_sequence`: prompt and completion at least 4 tokens, prompt at most 1024, both together at most 2048.
import { readFile } from 'node:fs/promises';
import { Rng } from './rng.js';
import type { BenchRequest, BenchTokenizer, Dataset } from './types.js';

export interface ShareGptOptions {
  numPrompts: number;
  /** fixes every request's max_tokens; undefined = the reference completion's length */
  outputLen: number | undefined;
  seed: number;
}

const MIN_LEN = 4;
const MAX_PROMPT_LEN = 1024;
const MAX_TOTAL_LEN = 2048;

interface Turn {
  from?: unknown;
  value?: unknown;
}

export async function loadShareGpt(
  path: string,
  opts: ShareGptOptions,
  tokenizer: BenchTokenizer | undefined,
): Promise<Dataset> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`--dataset ${path}: cannot read it as JSON (${(e as Error).message})`);
  }
  return shareGptDataset(raw, path, opts, tokenizer);
}

/** The parsing and selection, apart from the file read so tests can feed objects. */
export function shareGptDataset(
  raw: unknown,
  source: string,
  opts: ShareGptOptions,
  tokenizer: BenchTokenizer | undefined,
): Dataset {
  if (!Array.isArray(raw)) throw new Error(`--dataset ${source}: expected a JSON array of conversations`);
  const pairs: Array<[string, string]> = [];
  for (const entry of raw) {
    const turns =
      (entry as { conversations?: unknown; conversation?: unknown } | null)?.conversations ??
      (entry as { conversation?: unknown } | null)?.conversation;
    if (!Array.isArray(turns) || turns.length < 2) continue;
    const [first, second] = turns as Turn[];
    if (typeof first?.value !== 'string' || typeof second?.value !== 'string') continue;
    pairs.push([first.value, second.value]);
  }
  if (pairs.length === 0) throw new Error(`--dataset ${source}: no conversation with at least two turns`);

  const count = tokenizer ? (t: string) => tokenizer.encode(t, false).length : approxTokens;
  const rng = new Rng(opts.seed);
  rng.shuffle(pairs);
  const requests: BenchRequest[] = [];
  for (const [prompt, completion] of pairs) {
    if (requests.length === opts.numPrompts) break;
    const promptLen = count(prompt);
    const outputLen = opts.outputLen ?? count(completion);
    if (promptLen < MIN_LEN || (opts.outputLen === undefined && outputLen < MIN_LEN)) continue;
    if (promptLen > MAX_PROMPT_LEN || promptLen + outputLen > MAX_TOTAL_LEN) continue;
    requests.push({ prompt, promptLen, outputLen });
  }
  if (requests.length === 0) throw new Error(`--dataset ${source}: every conversation was filtered out (lengths)`);

  const notes: string[] = [];
  if (!tokenizer) notes.push('ShareGPT lengths are estimated as characters / 4 without --tokenizer');
  if (requests.length < opts.numPrompts) {
    // Too few valid conversations: cycle through them, as vLLM oversamples, and say so.
    notes.push(
      `only ${requests.length} valid conversations in ${source}; they are repeated to make ${opts.numPrompts} prompts`,
    );
    const valid = requests.length;
    for (let i = 0; requests.length < opts.numPrompts; i++) requests.push({ ...requests[i % valid]! });
  }
  return { requests, exactLengths: tokenizer !== undefined, notes };
}

/** The usual rule of thumb for English with BPE vocabularies: about four characters per token. */
export function approxTokens(text: string): number {
  return Math.ceil(text.length / 4);
}
