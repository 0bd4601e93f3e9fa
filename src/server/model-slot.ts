// One served model name and what serves it now. The server listens before any model is there (so /health can
// answer 503 while loading), so a slot starts empty and is filled once its engine is up. Afterwards its
// instance can change underneath the name (the admin API switches it, the server restarts an engine that
// failed: model-registry.ts), while the old instance finishes the requests it holds (model-instance.ts).
// The slot holds the name's own limits (its queue) and counts its engines' figures across those changes.
import type { FastifyReply } from 'fastify';
import type { Engine } from '../engine/engine.js';
import type { EngineClient, EngineStats, StepObserver } from '../engine/types.js';
import type { NativeEngineInfo } from '../runner/binding.js';
import type { ChatTemplate } from '../tokenizer/chat-template.js';
import type { TextTokenizer } from '../tokenizer/tokenizer.js';
import type { TokenizerPool } from '../tokenizer/tokenizer-pool.js';
import { ApiError } from './errors.js';
import { ModelInstance } from './model-instance.js';

export interface LoadedModel {
  client: EngineClient;
  /** On the main thread: incremental detokenization and token texts, cheap per token. */
  tokenizer: TextTokenizer;
  /** Off the main thread: prompt tokenization and chat-template rendering. */
  prompts: TokenizerPool;
  /** Longer prompt text (UTF-8 bytes) is refused before tokenizing (prompt-bound.ts). */
  maxPromptBytes: number;
  /** undefined when the model has none and no --chat-template was given (chat requests get a 400). */
  chatTemplate: ChatTemplate | undefined;
  maxModelLen: number;
  vocabSize: number;
  /** The engine's --max-num-seqs: the most sequences (prompts × n) one request may ask for. */
  maxNumSeqs: number;
  /** What frees it when the server owns it (models it loaded itself): the engine first (the memory a
   *  restart needs), then the tokenizer threads. Absent: the caller owns it. */
  release?: { engine: () => Promise<void>; threads: () => Promise<void> };
  /** The native engine, when there is one. */
  engine?: Engine;
  info?: NativeEngineInfo;
  /** --tool-call-parser: the format of tool calls; absent = auto (from the chat template). */
  toolCallParser?: 'auto' | 'hermes' | 'llama3_json' | 'mistral';
}

/** What a route gets for a request: the model, under its name, held until the reply closes. */
export interface ServedModel extends LoadedModel {
  readonly name: string;
  readonly slot: ModelSlot;
  readonly instance: ModelInstance;
}

/** loading: its first engine is not up yet; ready: it serves; draining: unloading, its name no longer routes;
 *  unhealthy: its engine failed and restarts; failed: it could not be loaded (or restarted), nothing serves. */
export type ModelState = 'loading' | 'ready' | 'draining' | 'unhealthy' | 'failed';

export interface SlotOptions {
  name?: string;
  /** Waiting sequences (prompts × n) of this model before 503; 0 = unbounded. */
  maxQueue?: number;
}

type Counted = 'promptTokens' | 'generationTokens' | 'prefixCacheQueries' | 'prefixCacheHits' | 'numPreemptions';
const COUNTED: Counted[] = [
  'promptTokens',
  'generationTokens',
  'prefixCacheQueries',
  'prefixCacheHits',
  'numPreemptions',
];

export class ModelSlot {
  name: string;
  maxQueue: number;
  /** Sequences admitted (admission.ts) whose prompts are still being prepared, not yet in an engine. */
  admittedSequences = 0;
  state: ModelState;
  stage = 'starting';
  fraction = 0;
  /** Why the last load, switch or engine of this name failed (the admin API shows it). */
  error: string | undefined;
  /** While unhealthy: when the next restart begins (ms since the epoch). */
  retryAt: number | undefined;
  /** Engine restarts after faults, in all. */
  restarts = 0;
  /** Named at start-up: /health is 503 until its first load is done. */
  startup = false;
  /** Unix seconds; what /v1/models reports as `created`. */
  readonly created = Math.floor(Date.now() / 1000);
  /** Instances replaced or unloaded that still finish their requests. */
  readonly retiring = new Set<ModelInstance>();
  private active: ModelInstance | undefined;
  private served: ServedModel | undefined;
  private stepObserver: StepObserver | undefined;
  /** The counters of the instances already freed, so that the name's counters never go back. */
  private readonly counted: Record<Counted, number> = {
    promptTokens: 0,
    generationTokens: 0,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    numPreemptions: 0,
  };

  constructor(model?: LoadedModel, opts: SlotOptions = {}) {
    this.name = opts.name ?? '';
    this.maxQueue = opts.maxQueue ?? 0;
    this.state = 'loading';
    if (model) this.ready(model);
  }

  /** Names a slot made without one (buildApp's, from its deps). */
  adopt(o: { name: string; maxQueue: number }): void {
    if (!this.name) this.name = o.name;
    if (!this.maxQueue) this.maxQueue = o.maxQueue;
    if (this.active) this.served = { ...this.active.model, name: this.name, slot: this, instance: this.active };
  }

  get loaded(): LoadedModel | undefined {
    return this.active?.model;
  }

  get instance(): ModelInstance | undefined {
    return this.active;
  }

  progress(stage: string, fraction: number): void {
    this.stage = stage;
    this.fraction = fraction;
  }

  /** `model` serves the name from now on; returns the instance it replaces (for the caller to retire). */
  ready(model: LoadedModel, source = ''): ModelInstance | undefined {
    const previous = this.active;
    this.active = new ModelInstance(model, source);
    this.served = { ...model, name: this.name, slot: this, instance: this.active };
    this.state = 'ready';
    this.stage = 'ready';
    this.fraction = 1;
    this.retryAt = undefined;
    if (this.stepObserver) model.client.onStep = this.stepObserver;
    return previous;
  }

  /** Nothing serves the name from now on (its engine failed, or it unloads); returns what served it. */
  detach(state: 'unhealthy' | 'draining' | 'failed'): ModelInstance | undefined {
    const previous = this.active;
    this.active = undefined;
    this.served = undefined;
    this.state = state;
    return previous;
  }

  /** `inst` finishes its requests and is freed by `done`; its counters then join the name's. */
  retire(inst: ModelInstance, done: Promise<void>): Promise<void> {
    this.retiring.add(inst);
    return done.finally(() => {
      this.retiring.delete(inst);
      const s = inst.model.client.stats();
      for (const k of COUNTED) this.counted[k] += s[k];
    });
  }

  /** Sees every engine step's token count, wall time and native time, of the model there now and of those that
   *  come later. */
  observeSteps(fn: StepObserver): void {
    this.stepObserver = fn;
    if (this.active) this.active.model.client.onStep = fn;
  }

  /** The model for a request, or a 503 (with Retry-After) saying why there is none now. */
  require(): ServedModel {
    if (this.served) return this.served;
    const which = this.name ? `the model \`${this.name}\`` : 'the model';
    switch (this.state) {
      case 'unhealthy': {
        const wait = Math.max(1, Math.ceil(((this.retryAt ?? Date.now()) - Date.now()) / 1000) + 1);
        throw new ApiError(
          'model_unhealthy',
          `${which} is restarting after an engine failure; retry in a few seconds`,
          null,
          wait,
        );
      }
      case 'failed':
        throw new ApiError('model_unavailable', `${which} is not available: ${this.error ?? 'it failed to load'}`);
      case 'draining':
        throw new ApiError('model_not_found', `The model \`${this.name}\` does not exist`, 'model');
      default:
        throw new ApiError(
          'model_loading',
          `${which} is still loading (${this.stage}, ${Math.round(this.fraction * 100)}%)`,
          null,
          5,
        );
    }
  }

  /** require(), held until `reply` closes: the instance it names is not freed before. */
  acquire(reply: FastifyReply): ServedModel {
    const served = this.require();
    reply.raw.once('close', served.instance.lease());
    return served;
  }

  /** The name's figures over every instance of it: what runs and waits now, what was counted ever. */
  stats(): EngineStats | undefined {
    const live = [...(this.active ? [this.active] : []), ...this.retiring].map((i) => i.model.client.stats());
    if (live.length === 0 && !COUNTED.some((k) => this.counted[k] > 0)) return undefined;
    const sum = (f: (s: EngineStats) => number) => live.reduce((a, s) => a + f(s), 0);
    const blocks = sum((s) => s.numKvBlocks);
    const used = sum((s) => s.kvCacheUsage * s.numKvBlocks);
    const out: EngineStats = {
      numRunning: sum((s) => s.numRunning),
      numWaiting: sum((s) => s.numWaiting),
      kvCacheUsage: live.length === 1 ? live[0]!.kvCacheUsage : blocks > 0 ? used / blocks : 0,
      numKvBlocks: blocks,
      numFreeKvBlocks: sum((s) => s.numFreeKvBlocks),
      prefixCacheQueries: 0,
      prefixCacheHits: 0,
      numPreemptions: 0,
      promptTokens: 0,
      generationTokens: 0,
    };
    for (const k of COUNTED) out[k] = this.counted[k] + sum((s) => s[k]);
    return out;
  }
}
