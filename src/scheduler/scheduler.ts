// Continuous batching as vLLM v1 does it. There are no prefill and decode phases: each step, every request's
// numComputedTokens catches up with its token count under a token budget (maxNumBatchedTokens) and a cap on
// running sequences (maxNumSeqs). Running requests go first, in line order (priority, then arrival); then
// waiting ones are admitted, their prompts chunked to the budget that is left. When blocks run out, the
// running request last in line gives its blocks back and waits to be recomputed (keeping its tokens).
// Pure and synchronous: no I/O, no Promises.
import { KvCacheManager } from '../kv-cache/kv-cache-manager.js';
import { compareRequests, type Request } from './request.js';
import { RequestQueue } from './request-queue.js';
import type { SchedulerOutput } from './scheduler-output.js';
import { checkStop } from './stop-check.js';
import type { FinishReason } from '../engine/types.js';

/** A SchedulerOutput while schedule() fills it in. */
type Building = { -readonly [K in keyof SchedulerOutput]: SchedulerOutput[K] };

export interface SchedulerConfig {
  maxNumBatchedTokens: number;
  maxNumSeqs: number;
  maxModelLen: number;
  blockSize: number;
  numBlocks: number;
  enablePrefixCaching: boolean;
}

export class Scheduler {
  readonly kv: KvCacheManager;
  readonly waiting = new RequestQueue();
  /** Admitted requests in line order; the last one is the next preemption victim. */
  readonly running: Request[] = [];
  numPreemptions = 0;
  promptTokensComputed = 0; // prompt tokens run through the model (cache hits excluded, recomputes included)
  promptTokens = 0; // each request's whole prompt, once, at its first token (vLLM's prompt_tokens_total)
  generationTokens = 0;
  private readonly cachedScratch: number[] = [];

  constructor(readonly config: SchedulerConfig) {
    this.kv = new KvCacheManager(config);
  }

  /** Queues a request (new, or preempted). Hashes its prompt's blocks now, off the scheduling path. */
  add(req: Request): void {
    this.kv.hashLookupBlocks(req);
    req.status = 'waiting';
    this.waiting.push(req);
  }

  hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > 0;
  }

  schedule(): SchedulerOutput {
    const out: Building = {
      requests: [],
      numNewTokens: [],
      sampleRows: [],
      numTokens: 0,
      numSamples: 0,
      preempted: [],
    };
    let budget = this.config.maxNumBatchedTokens;
    const running = this.running;
    for (let i = 0; i < running.length && budget > 0; i++) {
      const req = running[i]!;
      let n = req.numTokens - req.numComputedTokens;
      if (n <= 0) continue;
      // Keep one token for each request behind this one, so a long prefill chunk never stalls the decodes.
      n = Math.min(n, budget - Math.min(running.length - i - 1, budget - 1));
      if (!this.allocateOrPreempt(req, req.numComputedTokens + n, out.preempted)) break;
      this.emit(out, req, n);
      budget -= n;
    }
    // Admitting while blocks are short would only preempt the newcomers again next step.
    if (out.preempted.length > 0) return out;
    const cached = this.cachedScratch;
    while (budget > 0 && running.length < this.config.maxNumSeqs) {
      const req = this.waiting.peek();
      if (!req) break;
      const numCached = this.kv.findCachedPrefix(req, cached);
      const n = Math.min(req.numTokens - numCached, budget);
      if (!this.kv.allocateSlots(req, numCached + n, cached)) break;
      this.waiting.pop();
      this.admit(req, numCached);
      this.emit(out, req, n);
      budget -= n;
    }
    return out;
  }

  /**
   * Applies a step's sampled ids ([R], row order of out.sampleRows). Advances computed counts, caches newly
   * full blocks, appends tokens, runs the stop checks and finishes (frees) what ended. Requests that ended
   * while the step was in flight (abort) are skipped. Returns the indices into out.requests that got a token.
   */
  update(out: SchedulerOutput, sampled: Int32Array): number[] {
    const got: number[] = [];
    const { requests, numNewTokens, sampleRows } = out;
    for (let k = 0; k < requests.length; k++) {
      const req = requests[k]!;
      if (req.status !== 'running') continue;
      const before = req.numComputedTokens;
      const after = before + numNewTokens[k]!;
      req.numComputedTokens = after;
      if (before < req.numPromptTokens) this.promptTokensComputed += Math.min(after, req.numPromptTokens) - before;
      this.kv.cacheComputedBlocks(req);
      const row = sampleRows[k]!;
      if (row < 0) continue;
      const token = sampled[row]!;
      if (req.tokens.length === req.numPromptTokens) this.promptTokens += req.numPromptTokens;
      req.tokens.push(token);
      this.generationTokens++;
      if (checkStop(req, token, this.config.maxModelLen)) this.finish(req, req.finishReason!);
      got.push(k);
    }
    return got;
  }

  /** Ends a request wherever it is (waiting, running, or in the step in flight) and frees its blocks now.
   *  Safe while a step is in flight: freed blocks are only handed out by the next schedule(), which runs
   *  after that step's result. */
  finish(req: Request, reason: FinishReason): void {
    if (req.status === 'finished') return;
    if (req.status === 'waiting') this.waiting.remove(req);
    else {
      const i = this.running.indexOf(req);
      if (i >= 0) this.running.splice(i, 1);
    }
    this.kv.free(req);
    req.status = 'finished';
    req.finishReason ??= reason;
  }

  private emit(out: Building, req: Request, n: number): void {
    out.requests.push(req);
    out.numNewTokens.push(n);
    out.sampleRows.push(req.numComputedTokens + n === req.numTokens ? out.numSamples++ : -1);
    out.numTokens += n;
  }

  /** Allocates for req, preempting from the back of the line until it fits. False if req itself was
   *  preempted. */
  private allocateOrPreempt(req: Request, numTotal: number, preempted: Request[]): boolean {
    while (!this.kv.allocateSlots(req, numTotal)) {
      const victim = this.running.pop()!;
      this.preempt(victim);
      preempted.push(victim);
      if (victim === req) return false;
    }
    return true;
  }

  private preempt(req: Request): void {
    this.kv.free(req);
    req.numComputedTokens = 0;
    req.numPreemptions++;
    this.numPreemptions++;
    this.add(req);
  }

  private admit(req: Request, numCached: number): void {
    req.numComputedTokens = numCached;
    req.status = 'running';
    this.kv.recordPrefixLookup(req.numTokens, numCached);
    if (req.firstScheduledTime < 0) {
      req.firstScheduledTime = performance.now();
      req.numCachedPromptTokens = numCached;
    }
    // Binary insertion keeps running in line order (admissions are rare next to steps).
    const running = this.running;
    let lo = 0;
    let hi = running.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareRequests(running[mid]!, req) <= 0) lo = mid + 1;
      else hi = mid;
    }
    running.splice(lo, 0, req);
  }
}
