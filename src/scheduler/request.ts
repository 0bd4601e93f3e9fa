// A request as the scheduler sees it: its tokens, how many of them have KV (numComputedTokens), the blocks
// that hold that KV, and its place in line. vLLM v1's one rule drives everything: each step,
// numComputedTokens catches up with tokens.length as far as the token budget allows; a request whose
// computed count reaches its token count samples one more token.
import { BlockTable } from '../kv-cache/block-table.js';
import type { KvSequence } from '../kv-cache/kv-cache-manager.js';
import type { FinishReason, SamplingParams, TokenConstraint } from '../engine/types.js';

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
  /** sampling.logitBias as arrays (the record's keys are strings at run time): the bias that is the same at
   *  every step. */
  readonly logitBiasTokens: Int32Array;
  readonly logitBiasValues: Float32Array;
  /** sampling.allowedTokenIds as a bitmask of ceil(vocab / 32) words (bit t & 31 of word t >> 5 = t allowed). */
  readonly allowedMask: Int32Array | undefined;
  /** The grammar of structured outputs, which the engine loop advances token by token. */
  readonly constraint: TokenConstraint | undefined;
  /** The allowed-token mask of the next sample: allowedMask and the grammar's mask together; undefined = no
   *  mask. The runner sends it; the engine loop sets the grammar's part before every step that samples. */
  mask: Int32Array | undefined;
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
      constraint?: TokenConstraint;
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
    [this.logitBiasTokens, this.logitBiasValues] = fixedBias(sampling);
    this.allowedMask = sampling.allowedTokenIds ? allowedMask(sampling.allowedTokenIds, opts.vocabSize) : undefined;
    this.mask = this.allowedMask;
    this.constraint = opts.constraint;
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

  /** The grammar's mask for the next token, combined with allowedMask. */
  setGrammarMask(grammar: Int32Array): void {
    const fixed = this.allowedMask;
    if (!fixed) {
      this.mask = grammar;
      return;
    }
    const both = new Int32Array(fixed.length);
    for (let i = 0; i < both.length; i++) both[i] = fixed[i]! & grammar[i]!;
    this.mask = both;
  }

  /** True while stop ids must be masked (min_tokens not reached yet). */
  get masksStops(): boolean {
    return this.numOutputTokens < this.sampling.minTokens && this.stopIds.size > 0;
  }
}

/** logit_bias as arrays. */
function fixedBias(sampling: SamplingParams): [Int32Array, Float32Array] {
  const user = Object.entries(sampling.logitBias ?? {}).map(([t, v]) => [Number(t), v] as const);
  return [Int32Array.from(user, ([t]) => t), Float32Array.from(user, ([, v]) => v)];
}

/** allowed_token_ids as the sampler's bitmask: ceil(vocab / 32) words, where a 150k vocabulary takes 4.7k words
 *  per step instead of 150k bias entries. */
function allowedMask(ids: readonly number[], vocabSize: number | undefined): Int32Array {
  if (vocabSize === undefined) throw new Error('allowedTokenIds needs the vocabulary size');
  const mask = new Int32Array(Math.ceil(vocabSize / 32));
  for (const t of ids) mask[t >> 5] |= 1 << (t & 31);
  return mask;
}

/** Line order: priority, then arrival. Negative when a goes first. */
export function compareRequests(a: Request, b: Request): number {
  return a.priority - b.priority || a.arrivalSeq - b.arrivalSeq;
}
