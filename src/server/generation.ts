// One API request's engine work: n choices per prompt, each its own engine request, run concurrently.
// Per choice: incremental detokenization → stop strings → deltas; logprobs and latency metrics on the way.
// The HTTP layer only formats what this yields; it holds no engine or text logic.
import {
  EngineError,
  type EngineClient,
  type EngineRequest,
  type RequestOutput,
  type SamplingParams,
  type TokenConstraint,
  type TokenLogprob,
} from '../engine/types.js';
import type { ModelMetrics } from '../metrics/metrics.js';
import { IncrementalDetokenizer } from '../tokenizer/detokenizer.js';
import type { TextTokenizer } from '../tokenizer/tokenizer.js';
import { ApiError } from './errors.js';
import { StopStringMatcher } from './stop-strings.js';
import { TokenTexts, type TokenText } from './token-text.js';

export interface ChoiceSpec {
  promptIds: number[];
  sampling: SamplingParams;
  priority?: number; // lower runs first
  /** Structured outputs: the grammar this choice follows (the engine owns it once submitted). */
  constraint?: TokenConstraint;
}

export interface TextOptions {
  stops: string[];
  includeStopStr: boolean;
  skipSpecialTokens: boolean;
}

/** A logprob entry with its token texts resolved. */
export interface LogprobEntry {
  token: TokenText;
  logprob: number;
  top: Array<{ token: TokenText; logprob: number }>;
}

export interface ChoiceDelta {
  text: string;
  logprobs: LogprobEntry[]; // the tokens behind this text (empty unless logprobs were asked)
  /** The choice's counts so far, for usage on every chunk (continuous_usage_stats). */
  counts: Pick<ChoiceResult, 'numPromptTokens' | 'numCachedTokens' | 'numOutputTokens'>;
}

export interface ChoiceResult {
  text: string;
  logprobs: LogprobEntry[];
  finishReason: 'stop' | 'length'; // what OpenAI's enum allows; a choice the server stopped is an error instead
  stopReason: string | number | null; // the stop string or stop token id, as vLLM reports it
  numPromptTokens: number;
  numCachedTokens: number;
  numOutputTokens: number;
}

export interface ChoiceHandlers {
  delta?: (index: number, delta: ChoiceDelta) => void;
  finish?: (index: number, result: ChoiceResult) => void;
  /** Back-pressure: awaited after each delta. While the client reads slowly, the engine's outputs for this
   *  choice merge in its output stream (bounded by its tokens) instead of piling up as text in the socket. */
  writable?: () => Promise<void>;
}

export interface GenerationDeps {
  client: EngineClient;
  tokenizer: TextTokenizer;
  metrics: ModelMetrics;
}

export class Generation {
  private readonly streams: AsyncIterable<RequestOutput>[] = [];
  private readonly ids: string[];
  private finished = false;
  private cutError: ApiError | undefined;

  /** Submits every choice now, so that a request the engine refuses fails before any reply is sent. */
  constructor(
    private readonly deps: GenerationDeps,
    requestId: string,
    private readonly choices: ChoiceSpec[],
    private readonly textOptions: TextOptions,
    private readonly arrival: number, // performance.now() when the HTTP request arrived
  ) {
    this.ids = choices.map((_, i) => `${requestId}-${i}`);
    try {
      choices.forEach((c, i) => {
        const req: EngineRequest = {
          id: this.ids[i]!,
          promptTokenIds: c.promptIds,
          sampling: c.sampling,
          priority: c.priority,
          arrivalTime: arrival,
        };
        if (c.constraint) req.constraint = c.constraint;
        this.streams.push(deps.client.submit(req));
      });
    } catch (e) {
      this.abortAll();
      // The engine owns the grammars it accepted (and frees them as it aborts them); the rest are ours.
      for (const c of choices.slice(this.streams.length)) c.constraint?.dispose();
      throw e; // the route's error handler maps it (an EngineError refusal is a 400)
    }
  }

  /** Client gone or request cancelled: every engine request stops and frees its KV blocks. */
  abortAll(): void {
    for (const id of this.ids.slice(0, this.streams.length)) this.deps.client.abort(id);
  }

  /** The server stops this generation (the drain timeout ran out): every choice fails with `err`. */
  cut(err: ApiError): void {
    this.cutError ??= err;
    this.abortAll();
  }

  /** Runs every choice to its end; `on.delta` sees text as it becomes final, `on.finish` each choice's end. */
  async run(on: ChoiceHandlers = {}): Promise<ChoiceResult[]> {
    try {
      return await Promise.all(
        this.choices.map(async (c, i) => {
          const r = await this.runChoice(i, c, on);
          on.finish?.(i, r);
          return r;
        }),
      );
    } catch (e) {
      this.abortAll();
      throw e;
    } finally {
      this.finished = true;
    }
  }

  get done(): boolean {
    return this.finished;
  }

  private async runChoice(index: number, spec: ChoiceSpec, on: ChoiceHandlers): Promise<ChoiceResult> {
    const { tokenizer, metrics, client } = this.deps;
    const { sampling } = spec;
    const detok = new IncrementalDetokenizer(tokenizer, spec.promptIds, this.textOptions.skipSpecialTokens);
    // After this turn, whose microtasks launch the first step: its decode is then done while the step runs.
    setImmediate(() => detok.prime());
    const matcher = new StopStringMatcher(this.textOptions.stops, this.textOptions.includeStopStr);
    const texts = sampling.logprobs === null ? undefined : new TokenTexts(tokenizer, spec.promptIds);
    const result: ChoiceResult = {
      text: '',
      logprobs: [],
      finishReason: 'length',
      stopReason: null,
      numPromptTokens: spec.promptIds.length,
      numCachedTokens: 0,
      numOutputTokens: 0,
    };
    let pending: LogprobEntry[] = [];
    let stopString: string | undefined;
    let lastTokenAt: number | undefined;
    // An output's latencies, taken as it arrives and recorded once its text is handed on (the client waits for
    // the text, not for the metrics).
    let tokenAt: number | undefined;
    let queueMs: number | undefined;
    const recordLatencies = () => {
      if (queueMs !== undefined) metrics.requestQueueTime.observe(queueMs / 1000);
      if (tokenAt !== undefined) {
        if (lastTokenAt === undefined) metrics.timeToFirstToken.observe((tokenAt - this.arrival) / 1000);
        else metrics.interTokenLatency.observe((tokenAt - lastTokenAt) / 1000);
        lastTokenAt = tokenAt;
      }
      tokenAt = queueMs = undefined;
    };

    // Once per output that is not drained after a stop.
    const emit = (text: string, force: boolean) => {
      if (text || (force && pending.length > 0)) {
        result.text += text;
        result.logprobs.push(...pending);
        const { numPromptTokens, numCachedTokens, numOutputTokens } = result;
        on.delta?.(index, { text, logprobs: pending, counts: { numPromptTokens, numCachedTokens, numOutputTokens } });
        pending = [];
      }
      recordLatencies();
    };

    for await (const out of this.streams[index]!) {
      queueMs = out.queueTimeMs;
      result.numPromptTokens = out.numPromptTokens;
      result.numCachedTokens = out.numCachedPromptTokens;
      if (stopString !== undefined) {
        if (out.finished) break;
        continue; // draining what the engine produced before our abort reached it
      }
      if (out.newTokenIds.length > 0) tokenAt = performance.now();
      result.numOutputTokens = out.numOutputTokens;
      if (texts && out.logprobs) pending.push(...out.logprobs.map((lp) => describe(texts, lp)));

      const piece = detok.push(out.newTokenIds) + (out.finished ? detok.flush() : '');
      const match = matcher.push(piece, out.numOutputTokens >= sampling.minTokens);
      if (match.stop !== undefined) {
        stopString = match.stop;
        emit(match.text, true);
        result.finishReason = 'stop';
        result.stopReason = match.stop;
        if (!out.finished) client.abort(this.ids[index]!);
        else break;
        continue;
      }
      if (!out.finished) {
        emit(match.text, false);
        if (on.writable) await on.writable();
        continue;
      }
      emit(match.text + matcher.flush(), true);
      if (out.finishReason === 'error') {
        metrics.recordFinish('error');
        // The detail (possibly about the whole batch) goes to the log, not to the client: see toApiError.
        throw new EngineError(`engine failed: ${out.error ?? 'unknown error'}`, 'engine_fault');
      }
      if (out.finishReason === 'abort') {
        // Only the server aborts (a client that left sees nothing of this): never a 200 with "abort".
        metrics.recordFinish('abort');
        throw (
          this.cutError ??
          new ApiError('server_shutting_down', 'the server stopped this request before it finished; retry it', null, 1)
        );
      }
      result.finishReason = out.finishReason === 'stop' ? 'stop' : 'length';
      if (out.stopTokenId !== undefined && sampling.stopTokenIds.includes(out.stopTokenId))
        result.stopReason = out.stopTokenId;
    }
    metrics.e2eRequestLatency.observe((performance.now() - this.arrival) / 1000);
    metrics.requestPromptTokens.observe(result.numPromptTokens);
    metrics.requestGenerationTokens.observe(result.numOutputTokens);
    metrics.recordFinish(result.finishReason);
    return result;
  }
}

/** A token the bias banned has logprob -inf, which JSON cannot carry: vLLM's floor stands in for it. */
const LOGPROB_FLOOR = -9999;
const floored = (x: number) => Math.max(x, LOGPROB_FLOOR);

function describe(texts: TokenTexts, lp: TokenLogprob): LogprobEntry {
  const entry: LogprobEntry = {
    token: texts.describe(lp.tokenId),
    logprob: floored(lp.logprob),
    top: lp.top.map(([id, logprob]) => ({ token: texts.describe(id), logprob: floored(logprob) })),
  };
  texts.advance(lp.tokenId);
  return entry;
}
