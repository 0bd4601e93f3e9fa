// The engine loop: schedule → step → update while there is work, asleep (awaiting a wake-up) when idle.
// One native step is in flight at a time. As soon as a step returns, its result is applied (synchronously),
// the next step is scheduled, built and launched, and only then are the finished step's outputs handed to
// the request streams: consumers (detokenizing, SSE writes) run on the event loop while the native step
// computes. abort() takes effect at once: the request leaves the scheduler and frees its blocks, and the
// result of a step in flight for it is dropped (update() skips finished requests). A fault the native side
// pins on some sequences of a step ends those requests only (step-faults.ts); the rest of the step stands.
// Structured outputs (grammar-masks.ts): a constrained request's grammar accepts each token in the update, and
// the masks of the requests that moved are computed before the next launch; a batch without constrained
// requests does none of that.
import type { NativeEngine, StepResult } from '../runner/binding.js';
import { ModelRunner } from '../runner/model-runner.js';
import { Request } from '../scheduler/request.js';
import { Scheduler, type SchedulerConfig } from '../scheduler/scheduler.js';
import type { SchedulerOutput } from '../scheduler/scheduler-output.js';
import { OutputStream } from './output-stream.js';
import { endOutput, tokenOutput } from './request-output.js';
import { validateRequest } from './request-validation.js';
import { GrammarMasks } from './grammar-masks.js';
import { faultedRows, refusedRequests, withoutFinished } from './step-faults.js';
import {
  EngineError,
  type EngineClient,
  type EngineRequest,
  type EngineStats,
  type RequestOutput,
  type StepObserver,
} from './types.js';

export interface EngineLoopConfig extends SchedulerConfig {
  vocabSize: number;
  eosTokenIds: readonly number[];
}

interface Live {
  req: Request;
  stream: OutputStream;
}

interface InFlight {
  out: SchedulerOutput;
  result: Promise<StepResult>;
  launchedAt: number; // performance.now() when the step was handed to the native side
}

export class EngineLoop implements EngineClient {
  readonly scheduler: Scheduler;
  private readonly runner: ModelRunner;
  private readonly live = new Map<string, Live>();
  private readonly grammars: GrammarMasks;
  private arrivalSeq = 0;
  private wake: (() => void) | undefined;
  private closed = false;
  private readonly done: Promise<void>;
  onStep: StepObserver | undefined;
  onFault: ((err: unknown) => void) | undefined;

  constructor(
    readonly config: EngineLoopConfig,
    engine: Pick<NativeEngine, 'step'>,
  ) {
    this.scheduler = new Scheduler(config);
    this.runner = new ModelRunner(config, engine as NativeEngine);
    this.grammars = new GrammarMasks(new Set(config.eosTokenIds));
    this.done = this.run();
  }

  submit(request: EngineRequest): AsyncIterable<RequestOutput> {
    if (this.closed) throw new EngineError('the engine is shut down', 'engine_fault');
    if (this.live.has(request.id))
      throw new EngineError(`request id ${request.id} is already running`, 'invalid_request');
    const c = this.config;
    validateRequest(request, {
      maxModelLen: c.maxModelLen,
      blockSize: c.blockSize,
      numBlocks: c.numBlocks,
      vocabSize: c.vocabSize,
    });
    const req = new Request(request.id, request.promptTokenIds, request.sampling, {
      priority: request.priority ?? 0,
      arrivalSeq: this.arrivalSeq++,
      arrivalTime: request.arrivalTime ?? performance.now(),
      seed: request.sampling.seed ?? Math.floor(Math.random() * 0x100000000),
      eosTokenIds: c.eosTokenIds,
      vocabSize: c.vocabSize,
      blockSize: c.blockSize,
      constraint: request.constraint,
    });
    const stream = new OutputStream(() => this.abort(request.id));
    this.live.set(request.id, { req, stream });
    if (req.constraint) this.grammars.add(req);
    this.scheduler.add(req);
    this.wakeUp();
    return stream;
  }

  abort(id: string): void {
    const entry = this.live.get(id);
    if (!entry) return;
    this.end(entry, 'abort');
  }

  stats(): EngineStats {
    const s = this.scheduler;
    return {
      numRunning: s.running.length,
      numWaiting: s.waiting.length,
      kvCacheUsage: s.kv.usage,
      numKvBlocks: s.kv.numBlocks,
      numFreeKvBlocks: s.kv.pool.numFree,
      prefixCacheQueries: s.kv.prefixQueries,
      prefixCacheHits: s.kv.prefixHits,
      numPreemptions: s.numPreemptions,
      promptTokens: s.promptTokens,
      generationTokens: s.generationTokens,
    };
  }

  /** Stops the loop after the step in flight and aborts every request still live. */
  async close(): Promise<void> {
    this.closed = true;
    this.wakeUp();
    await this.done;
    for (const entry of [...this.live.values()]) this.end(entry, 'abort');
  }

  /** Whether close() has begun: submit() refuses from then on. */
  get isClosed(): boolean {
    return this.closed;
  }

  private async run(): Promise<void> {
    let pending: InFlight | undefined;
    while (!this.closed) {
      try {
        pending = await this.iterate(pending);
      } catch (err) {
        // A bug in scheduling or batch building: fail what is live rather than hang it, and go on.
        pending = undefined;
        this.onFault?.(err);
        this.failAll(err);
      }
    }
    // Let a step still in flight settle before the caller disposes the native engine.
    if (pending) await pending.result.catch(() => undefined);
  }

  /** One turn of the loop: sleep, or launch, or finish the step in flight (and launch the next one
   *  before delivering its outputs). Returns the step now in flight. */
  private async iterate(pending: InFlight | undefined): Promise<InFlight | undefined> {
    if (!pending) {
      if (this.grammars.due) return this.launchAfterMasks(new Set());
      if (this.scheduler.hasWork()) return this.launch();
      await new Promise<void>((resolve) => (this.wake = resolve));
      return undefined;
    }
    let res: StepResult;
    try {
      res = await pending.result;
    } catch (err) {
      return this.retryWithout(pending.out, err);
    }
    const stepMs = performance.now() - pending.launchedAt;
    for (const { req, message } of faultedRows(pending.out, res)) this.failRequest(req, message);
    const got = this.scheduler.update(pending.out, res.tokens);
    this.advanceGrammars(pending.out, got, res);
    this.onStep?.(pending.out.numTokens, stepMs, res.nativeMs);
    let next: InFlight | undefined;
    let fault: unknown;
    try {
      if (!this.closed && this.grammars.due)
        next = await this.launchAfterMasks(new Set(got.map((k) => pending.out.requests[k]!)));
      else if (!this.closed && this.scheduler.hasWork()) next = this.launch();
    } catch (err) {
      fault = err; // deliver what this step produced before failing the rest
    }
    this.deliver(pending.out, got, res);
    if (fault !== undefined) throw fault;
    return next;
  }

  /** Each constrained request that got a token this step: its grammar takes the token. A token the grammar
   *  refuses fails the request; a stop token the grammar took ends it ('stop'). */
  private advanceGrammars(out: SchedulerOutput, got: number[], res: StepResult): void {
    for (const k of got) {
      const req = out.requests[k]!;
      if (!req.constraint || req.status === 'finished') continue;
      const token = res.tokens[out.sampleRows[k]!]!;
      const verdict = this.grammars.accept(req, token);
      if (verdict === 'rejected') this.failRequest(req, `the sampled token ${token} does not follow the grammar`);
      else if (verdict === 'terminated') this.scheduler.finish(req, 'stop');
    }
  }

  /** Computes the due grammar masks, ends the requests whose grammar is complete ('stop': those in
   *  `delivering` report it with this step's token), then launches. */
  private async launchAfterMasks(delivering: Set<Request>): Promise<InFlight | undefined> {
    const { complete, failed } = await this.grammars.refresh();
    for (const { req, message } of failed) this.failRequest(req, message);
    for (const req of complete) {
      const entry = this.live.get(req.id);
      if (!entry || entry.req !== req) continue;
      this.scheduler.finish(req, 'stop');
      if (delivering.has(req)) continue;
      this.retire(entry);
      entry.stream.push(endOutput(req, 'stop'));
    }
    if (this.closed || !this.scheduler.hasWork()) return undefined;
    return this.launch();
  }

  /** Schedules and starts one step; undefined if nothing could be scheduled. */
  private launch(): InFlight | undefined {
    let out = this.scheduler.schedule();
    // A step that only preempted admits nothing; the next try schedules what now fits.
    if (out.requests.length === 0 && out.preempted.length > 0) out = this.scheduler.schedule();
    if (out.requests.length === 0) {
      // Cannot happen for requests that passed validation (any one of them fits the empty pool); fail the
      // head of the line rather than spin.
      const head = this.scheduler.waiting.peek();
      const entry = head && this.live.get(head.id);
      if (!entry) throw new Error('the scheduler has work but scheduled nothing');
      this.end(entry, 'error', 'the scheduler could not fit this request');
      return undefined;
    }
    return this.start(out);
  }

  private start(out: SchedulerOutput): InFlight {
    const launchedAt = performance.now();
    let result: Promise<StepResult>;
    try {
      result = this.runner.execute(out);
    } catch (err) {
      result = Promise.reject(err);
    }
    result.catch(() => undefined); // handled in run(); avoid an unhandled rejection while we deliver
    return { out, result, launchedAt };
  }

  /** A rejected step: fails the requests the native batch check pinned it on and runs the same step again
   *  for the others (nothing of it ran), or fails all of its requests when the fault is not pinned on any. */
  private retryWithout(out: SchedulerOutput, err: unknown): InFlight | undefined {
    const refused = refusedRequests(out, err);
    if (!refused) {
      // The engine failed as a whole (a CUDA error, a native exception): its owner hears first, so that it can
      // end the requests its own way (the server: a 503 and a restart) before they fail here.
      this.onFault?.(err);
      this.failStep(out, err);
      return undefined;
    }
    for (const { req, message } of refused) this.failRequest(req, message);
    const rest = withoutFinished(out);
    return rest && !this.closed ? this.start(rest) : undefined;
  }

  private deliver(out: SchedulerOutput, got: number[], res: StepResult): void {
    for (const k of got) {
      const req = out.requests[k]!;
      const entry = this.live.get(req.id);
      if (!entry || entry.req !== req) continue;
      const output = tokenOutput(req, res, out.sampleRows[k]!);
      if (output.finished) this.retire(entry);
      entry.stream.push(output);
    }
  }

  private failStep(out: SchedulerOutput, err: unknown): void {
    const message = `engine step failed: ${err instanceof Error ? err.message : String(err)}`;
    for (const req of out.requests) this.failRequest(req, message);
  }

  /** Ends `req` with an error (freeing its blocks) if it is still the live request of its id. */
  private failRequest(req: Request, message: string): void {
    const entry = this.live.get(req.id);
    if (entry && entry.req === req) this.end(entry, 'error', message);
  }

  private failAll(err: unknown): void {
    const message = `engine fault: ${err instanceof Error ? err.message : String(err)}`;
    for (const entry of [...this.live.values()]) {
      try {
        this.end(entry, 'error', message);
      } catch {
        this.retire(entry);
        entry.stream.push(endOutput(entry.req, 'error', message));
      }
    }
    // Nothing may stay behind that is not live (it would keep the loop from ever sleeping).
    for (const req of [...this.scheduler.running, ...this.scheduler.waiting.values()]) {
      try {
        this.scheduler.finish(req, 'error');
      } catch {
        // already inconsistent; what matters is that the loop lives on
      }
    }
  }

  private end(entry: Live, reason: 'abort' | 'error', error?: string): void {
    this.scheduler.finish(entry.req, reason);
    this.retire(entry);
    entry.stream.push(endOutput(entry.req, reason, error));
  }

  /** A request leaves the loop: no longer live, and its grammar (if any) is freed. */
  private retire(entry: Live): void {
    this.live.delete(entry.req.id);
    this.grammars.release(entry.req);
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}
