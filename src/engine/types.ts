// What the server (and `kvserve generate`) hands the engine, and what comes back. No HTTP, no native types.

export interface SamplingParams {
  temperature: number; // 0 = greedy
  topP: number; // 1 = off
  topK: number; // <= 0 = off
  minP: number; // 0 = off
  presencePenalty: number; // 0 = off
  frequencyPenalty: number; // 0 = off
  repetitionPenalty: number; // 1 = off
  seed?: number; // uint32; absent = a random seed chosen at submit
  maxTokens: number; // >= 1 (the server clamps to what fits in the context)
  minTokens: number; // EOS and stopTokenIds are masked until this many tokens exist
  stopTokenIds: number[]; // besides the model's EOS ids
  ignoreEos: boolean;
  logitBias?: Record<number, number>;
  allowedTokenIds?: number[]; // only these may be sampled (vLLM's allowed_token_ids)
  badWords?: number[][]; // token sequences never generated (vLLM's bad_words, already tokenized)
  logprobs: number | null; // null = none; 0 = the sampled token's logprob; k = also the top k
}

/**
 * A grammar the output must follow (structured outputs): before each sample the engine asks which tokens may
 * come next, and tells it every token sampled. The engine owns it once submit() accepts the request, and
 * disposes of it when the request ends.
 */
export interface TokenConstraint {
  /** The tokens allowed next, as ceil(vocab / 32) int32 words (bit t & 31 of word t >> 5 set = t allowed). */
  nextMask(): Promise<Int32Array>;
  /** Advances past a sampled token; false when the grammar does not accept it. */
  accept(token: number): boolean;
  /** True once the grammar has accepted a stop token: nothing may follow. */
  isTerminated(): boolean;
  /** Frees the grammar state; called once, never while a nextMask() is pending. */
  dispose(): void;
}

export interface EngineRequest {
  id: string;
  promptTokenIds: number[];
  sampling: SamplingParams;
  /** Structured outputs: the grammar every sampled token must follow. A request whose grammar is complete
   *  (nothing but a stop token may follow) ends with finishReason 'stop'. */
  constraint?: TokenConstraint;
  priority?: number; // lower runs first (vLLM's convention); default 0
  arrivalTime?: number; // performance.now() at arrival; default: at submit
}

export type FinishReason = 'stop' | 'length' | 'abort' | 'error';

export interface TokenLogprob {
  tokenId: number;
  logprob: number;
  top: Array<[tokenId: number, logprob: number]>; // descending; empty when logprobs = 0
}

/** One per step in which the request produced tokens, and always a last one with `finished`. */
export interface RequestOutput {
  id: string;
  newTokenIds: number[]; // tokens produced since the previous output
  logprobs?: TokenLogprob[]; // aligned with newTokenIds when asked
  finished: boolean;
  finishReason?: FinishReason;
  stopTokenId?: number; // the EOS / stop token that ended it (not in newTokenIds when it is EOS)
  error?: string; // with finishReason 'error'
  numPromptTokens: number;
  numCachedPromptTokens: number; // prefix-cache hit, known from the first output on
  numOutputTokens: number; // total so far
  queueTimeMs?: number; // arrival → first scheduled, on the first output
}

export interface EngineStats {
  numRunning: number;
  numWaiting: number;
  kvCacheUsage: number; // fraction of blocks in use by running requests, 0..1
  numKvBlocks: number;
  numFreeKvBlocks: number;
  prefixCacheQueries: number; // tokens looked up (cumulative)
  prefixCacheHits: number; // tokens found (cumulative)
  numPreemptions: number; // cumulative
  promptTokens: number; // cumulative: each request's prompt once, at its first token (cache hits included)
  generationTokens: number; // cumulative tokens generated
}

export type StepObserver = (numTokens: number, ms: number, nativeMs: number | undefined) => void;

export interface EngineClient {
  /** Starts a request; the iterator ends after the output with `finished`. Throws synchronously on a
   *  request that can never run (longer than the context or the whole KV pool), with an EngineError. */
  submit(request: EngineRequest): AsyncIterable<RequestOutput>;
  /** Aborts a request at any point; its last output has finishReason 'abort'. Unknown ids are ignored. */
  abort(id: string): void;
  stats(): EngineStats;
  /** Called after every engine step with the tokens it computed (prefill chunks and decodes), what
   *  vllm:iteration_tokens_total counts, its wall time in ms from launch to result (the native forward pass
   *  and sampling with the thread hand-offs both ways), and the native part alone when the engine reports it.
   *  Optional: an engine that cannot say leaves it unset. */
  onStep?: StepObserver | undefined;
  /** Called when the engine fails as a whole: a step rejected without pinning its fault on sequences (a CUDA
   *  error, a native exception), or the loop itself failed. The step's requests fail right after it returns,
   *  unless the callee ended them first. Optional, as onStep. */
  onFault?: ((err: unknown) => void) | undefined;
}

export class EngineError extends Error {
  constructor(
    message: string,
    readonly code: 'context_length_exceeded' | 'invalid_request' | 'engine_fault',
  ) {
    super(message);
    this.name = 'EngineError';
  }
}
