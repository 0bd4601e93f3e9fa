// A request as the scheduler sees it: its tokens, how many of them have KV (numComputedTokens), the blocks
// that hold that KV, and its place in line. vLLM v1's one rule drives everything: each step,
// numComputedTokens catches up with tokens.length as far as the token budget allows; a request whose
// computed count reaches its token count samples one more token.
import { BlockTable } from '../kv-cache/block-table.js';
import type { KvSequence } from '../kv-cache/kv-cache-manager.js';
import type { FinishReason, SamplingParams } from '../engine/types.js';

export type RequestStatus = 'waiting' | 'running' | 'finished';

export class Request implements KvSequence {
  readonly tokens: number[];
  readonly numPromptTokens: number;
  numComputedTokens = 0;
  readonly blockTable: BlockTable;
  readonly blockHashes: number[] = [];
  numCachedBlocks = 0;

  status: RequestStatus = 'waiting';
  /** Order in line: lower priority first, then lower arrivalSeq (FCFS). */
  readonly priority: number;
  readonly arrivalSeq: number;
  readonly arrivalTime: number;
  /** performance.now() when first scheduled; -1 before. */
  firstScheduledTime = -1;
  /** Prompt tokens found in the prefix cache at first admission; -1 before. */
  numCachedPromptTokens = -1;
  numPreemptions = 0;

  readonly seed: number;
  /** EOS ids that stop it (empty under ignoreEos) and its stop token ids, as one set for the stop check. */
  readonly stopIds: ReadonlySet<number>;
  readonly eosIds: ReadonlySet<number>;
  /** sampling.logitBias as arrays (the record's keys are strings at run time), plus -inf on every token
   *  outside sampling.allowedTokenIds: the bias that is the same at every step. */
  readonly logitBiasTokens: Int32Array;
  readonly logitBiasValues: Float32Array;
  /** sampling.badWords: the bias that depends on the output so far (bad-words.ts). */
  readonly badWords: readonly number[][];
  /** Some penalty is on: the runner sends this request's token history. */
  readonly hasPenalties: boolean;
  finishReason: FinishReason | undefined;
  stopTokenId: number | undefined;

  constructor(
    readonly id: string,
    promptTokenIds: readonly number[],
    readonly sampling: SamplingParams,
    opts: {
      priority: number;
      arrivalSeq: number;
      arrivalTime: number;
      seed: number;
      eosTokenIds: readonly number[];
      blockSize: number;
      vocabSize?: number; // needed for allowedTokenIds
    },
  ) {
    this.tokens = promptTokenIds.slice();
    this.numPromptTokens = promptTokenIds.length;
    this.priority = opts.priority;
    this.arrivalSeq = opts.arrivalSeq;
    this.arrivalTime = opts.arrivalTime;
    this.seed = opts.seed;
    this.eosIds = new Set(sampling.ignoreEos ? [] : opts.eosTokenIds);
    this.stopIds = new Set([...this.eosIds, ...sampling.stopTokenIds]);
    [this.logitBiasTokens, this.logitBiasValues] = fixedBias(sampling, opts.vocabSize);
    this.badWords = sampling.badWords ?? [];
    this.hasPenalties =
      sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0 || sampling.repetitionPenalty !== 1;
    const maxLen = promptTokenIds.length + sampling.maxTokens;
    this.blockTable = new BlockTable(Math.ceil(Math.min(maxLen, 1 << 16) / opts.blockSize));
  }

  get numTokens(): number {
    return this.tokens.length;
  }

  get numOutputTokens(): number {
    return this.tokens.length - this.numPromptTokens;
  }

  /** True while stop ids must be masked (min_tokens not reached yet). */
  get masksStops(): boolean {
    return this.numOutputTokens < this.sampling.minTokens && this.stopIds.size > 0;
  }
}

/**
 * logit_bias as arrays; with allowedTokenIds, -inf on every other id instead (a bias on those is moot). Built
 * in one pass over typed arrays: for a 150k vocabulary this runs on the event loop at every submit.
 */
function fixedBias(sampling: SamplingParams, vocabSize: number | undefined): [Int32Array, Float32Array] {
  const user = Object.entries(sampling.logitBias ?? {}).map(([t, v]) => [Number(t), v] as const);
  if (!sampling.allowedTokenIds) return [Int32Array.from(user, ([t]) => t), Float32Array.from(user, ([, v]) => v)];
  if (vocabSize === undefined) throw new Error('allowedTokenIds needs the vocabulary size');
  const allowed = new Uint8Array(vocabSize);
  for (const t of sampling.allowedTokenIds) allowed[t] = 1;
  const tokens = new Int32Array(vocabSize);
  const values = new Float32Array(vocabSize);
  let k = 0;
  for (let t = 0; t < vocabSize; t++) {
    if (allowed[t]) continue;
    tokens[k] = t;
    values[k++] = -Infinity;
  }
  for (const [t, v] of user) {
    if (!allowed[t]) continue;
    tokens[k] = t;
    values[k++] = v;
  }
  return [tokens.subarray(0, k), values.subarray(0, k)];
}

/** Line order: priority, then arrival. Negative when a goes first. */
export function compareRequests(a: Request, b: Request): number {
  return a.priority - b.priority || a.arrivalSeq - b.arrivalSeq;
}
