// Prometheus metrics under vLLM's names and labels (`vllm:…`, each with `model_name`), so that vLLM's
// Grafana dashboards and autoscaling rules read kvserve unchanged. The earlier `kvserve_…` names are kept
// beside them as deprecated aliases (same values) until their users have moved. One registry per server
// (tests build several apps in one process), one series per served model. Latencies and per-request token
// counts are observed by the server as requests run, step sizes by the engine loop (onStep); engine-wide
// figures (running, waiting, KV usage, token and cache counters) are read from each model's stats at scrape
// time, so they can never drift from the engines' own bookkeeping.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineStats, FinishReason } from '../engine/types.js';

const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
];
const ITL_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80,
];
const REQUEST_BUCKETS = [
  0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680,
];
const STEP_BUCKETS = [
  0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5,
];
const STEP_TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];
/** 1, 2, 5, 10, 20, 50, … up to a million tokens (vLLM's 1-2-5 series, without its context-length cap). */
const TOKEN_BUCKETS = Array.from({ length: 19 }, (_, i) => [1, 2, 5][i % 3]! * 10 ** Math.floor(i / 3));

/** Returns undefined while the model is still loading (every engine figure then reads 0). */
export type StatsSource = () => EngineStats | undefined;
/** Every served model's figures, by name. */
export type ModelsStatsSource = () => Iterable<[name: string, stats: EngineStats | undefined]>;

type CumulativeField =
  | 'promptTokens'
  | 'generationTokens'
  | 'prefixCacheQueries'
  | 'prefixCacheHits'
  | 'numPreemptions';

/** One observation, recorded under every name of the metric. */
export interface Observer {
  observe(value: number): void;
}

/** What a request and an engine of one model record. */
export interface ModelMetrics {
  readonly timeToFirstToken: Observer;
  readonly interTokenLatency: Observer;
  readonly e2eRequestLatency: Observer;
  readonly requestQueueTime: Observer;
  readonly requestPromptTokens: Observer;
  readonly requestGenerationTokens: Observer;
  readonly iterationTokens: Observer;
  readonly engineStepTime: Observer;
  readonly engineNativeStepTime: Observer;
  recordFinish(reason: FinishReason): void;
}

type Labelled = Histogram<'model_name'>;
const FINISH_REASONS = ['stop', 'length', 'abort', 'error'] as const;

export class ServerMetrics implements ModelMetrics {
  readonly registry = new Registry();
  private readonly histograms = new Map<keyof Omit<ModelMetrics, 'recordFinish'>, Labelled[]>();
  private readonly requestSuccess: Array<Counter<'model_name' | 'finished_reason'>>;
  private readonly models = new Map<string, ModelMetrics>();
  private readonly stats: ModelsStatsSource;
  private readonly defaultModel: ModelMetrics;

  /** `stats`: one model's figures (it is `modelName`), or every served model's by name. */
  constructor(modelName: string, stats: StatsSource | { models: ModelsStatsSource }) {
    this.stats = typeof stats === 'function' ? () => [[modelName, stats()]] : stats.models;
    this.histogram(
      'timeToFirstToken',
      ['vllm:time_to_first_token_seconds', 'kvserve_time_to_first_token_seconds'],
      'Time from arrival to the first generated token, per request.',
      TTFT_BUCKETS,
    );
    // vLLM's dashboards still read the older name of the same figure.
    this.histogram(
      'interTokenLatency',
      ['vllm:inter_token_latency_seconds', 'vllm:time_per_output_token_seconds', 'kvserve_inter_token_latency_seconds'],
      'Time between consecutive generated tokens of a request.',
      ITL_BUCKETS,
    );
    this.histogram(
      'e2eRequestLatency',
      ['vllm:e2e_request_latency_seconds', 'kvserve_e2e_request_latency_seconds'],
      'Time from arrival to the last token, per finished request.',
      REQUEST_BUCKETS,
    );
    this.histogram(
      'requestQueueTime',
      ['vllm:request_queue_time_seconds', 'kvserve_request_queue_time_seconds'],
      'Time a request waited in the queue before it was first scheduled.',
      REQUEST_BUCKETS,
    );
    this.histogram(
      'requestPromptTokens',
      ['vllm:request_prompt_tokens'],
      'Prompt tokens of each finished request.',
      TOKEN_BUCKETS,
    );
    this.histogram(
      'requestGenerationTokens',
      ['vllm:request_generation_tokens'],
      'Generated tokens of each finished request.',
      TOKEN_BUCKETS,
    );
    this.histogram(
      'iterationTokens',
      ['vllm:iteration_tokens_total'],
      'Tokens computed per engine step (prefill and decode).',
      STEP_TOKEN_BUCKETS,
    );
    // No vLLM name: what the engine's part of TTFT and ITL is, next to the request latencies above.
    this.histogram(
      'engineStepTime',
      ['kvserve_engine_step_seconds'],
      'Wall time of one engine step, from its launch to its result (forward pass, sampling, thread hand-offs).',
      STEP_BUCKETS,
    );
    // The same step on the engine's own thread: what kvserve_engine_step_seconds adds to it is the hand-offs.
    this.histogram(
      'engineNativeStepTime',
      ['kvserve_engine_native_step_seconds'],
      'Time of one engine step on the engine thread (forward pass and sampling), without the thread hand-offs.',
      STEP_BUCKETS,
    );
    this.requestSuccess = ['vllm:request_success_total', 'kvserve_request_success_total'].map(
      (name) =>
        new Counter({
          name,
          help: 'Finished engine requests (one per choice), by finish reason.',
          labelNames: ['model_name', 'finished_reason'],
          registers: [this.registry],
        }),
    );
    this.gauge(
      ['vllm:num_requests_running', 'kvserve_num_requests_running'],
      'Requests in the running batch.',
      (s) => s.numRunning,
    );
    this.gauge(
      ['vllm:num_requests_waiting', 'kvserve_num_requests_waiting'],
      'Requests waiting to be scheduled.',
      (s) => s.numWaiting,
    );
    this.gauge(
      ['vllm:kv_cache_usage_perc', 'kvserve_kv_cache_usage_perc'],
      'Fraction of KV-cache blocks in use (0..1).',
      (s) => s.kvCacheUsage,
    );
    this.counter(
      ['vllm:prompt_tokens_total', 'kvserve_prompt_tokens_total'],
      'Prompt tokens of requests that started generating, prefix-cache hits included (as vLLM counts them).',
      'promptTokens',
    );
    this.counter(
      ['vllm:generation_tokens_total', 'kvserve_generation_tokens_total'],
      'Tokens generated.',
      'generationTokens',
    );
    this.counter(
      ['vllm:prefix_cache_queries_total', 'kvserve_prefix_cache_queries_total'],
      'Prompt tokens looked up in the prefix cache.',
      'prefixCacheQueries',
    );
    this.counter(
      ['vllm:prefix_cache_hits_total', 'kvserve_prefix_cache_hits_total'],
      'Prompt tokens found in the prefix cache.',
      'prefixCacheHits',
    );
    this.counter(
      ['vllm:num_preemptions_total', 'kvserve_num_preemptions_total'],
      'Requests preempted to free KV-cache blocks.',
      'numPreemptions',
    );
    // The standard process metric, so memory growth under load can be watched (and tested) from a scrape.
    new Gauge({
      name: 'process_resident_memory_bytes',
      help: 'Resident memory size in bytes.',
      registers: [this.registry],
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
    this.defaultModel = this.forModel(modelName);
  }

  /** The observers of one model's series (made on first use; every series then exists from the next scrape,
   *  so rate() sees the first request of each kind). */
  forModel(name: string): ModelMetrics {
    let m = this.models.get(name);
    if (m) return m;
    const model_name = name;
    for (const reason of FINISH_REASONS)
      for (const c of this.requestSuccess) c.inc({ model_name, finished_reason: reason }, 0);
    for (const hs of this.histograms.values()) for (const h of hs) h.zero({ model_name });
    const observer = (key: keyof Omit<ModelMetrics, 'recordFinish'>): Observer => {
      const children = this.histograms.get(key)!.map((h) => h.labels({ model_name }));
      return {
        observe: (v) => {
          for (const h of children) h.observe(v);
        },
      };
    };
    m = {
      timeToFirstToken: observer('timeToFirstToken'),
      interTokenLatency: observer('interTokenLatency'),
      e2eRequestLatency: observer('e2eRequestLatency'),
      requestQueueTime: observer('requestQueueTime'),
      requestPromptTokens: observer('requestPromptTokens'),
      requestGenerationTokens: observer('requestGenerationTokens'),
      iterationTokens: observer('iterationTokens'),
      engineStepTime: observer('engineStepTime'),
      engineNativeStepTime: observer('engineNativeStepTime'),
      recordFinish: (reason) => {
        for (const c of this.requestSuccess) c.inc({ model_name, finished_reason: reason });
      },
    };
    this.models.set(name, m);
    return m;
  }

  /** A model unloaded for good: its series go (a model loaded later under the name starts anew). */
  forget(name: string): void {
    this.models.delete(name);
    for (const hs of this.histograms.values()) for (const h of hs) h.remove({ model_name: name });
    for (const c of this.requestSuccess)
      for (const reason of FINISH_REASONS) c.remove({ model_name: name, finished_reason: reason });
  }

  // The first model's observers, for the single-model server (and tests that build a Generation alone).
  get timeToFirstToken(): Observer {
    return this.defaultModel.timeToFirstToken;
  }
  get interTokenLatency(): Observer {
    return this.defaultModel.interTokenLatency;
  }
  get e2eRequestLatency(): Observer {
    return this.defaultModel.e2eRequestLatency;
  }
  get requestQueueTime(): Observer {
    return this.defaultModel.requestQueueTime;
  }
  get requestPromptTokens(): Observer {
    return this.defaultModel.requestPromptTokens;
  }
  get requestGenerationTokens(): Observer {
    return this.defaultModel.requestGenerationTokens;
  }
  get iterationTokens(): Observer {
    return this.defaultModel.iterationTokens;
  }
  get engineStepTime(): Observer {
    return this.defaultModel.engineStepTime;
  }
  get engineNativeStepTime(): Observer {
    return this.defaultModel.engineNativeStepTime;
  }
  recordFinish(reason: FinishReason): void {
    this.defaultModel.recordFinish(reason);
  }

  private histogram(
    key: keyof Omit<ModelMetrics, 'recordFinish'>,
    names: string[],
    help: string,
    buckets: number[],
  ): void {
    this.histograms.set(
      key,
      names.map(
        (name) => new Histogram({ name, help, buckets, labelNames: ['model_name'], registers: [this.registry] }),
      ),
    );
  }

  private gauge(names: string[], help: string, read: (s: EngineStats) => number): void {
    const stats = this.stats;
    for (const name of names) {
      new Gauge({
        name,
        help,
        labelNames: ['model_name'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [model_name, s] of stats()) this.set({ model_name }, s ? read(s) : 0);
        },
      });
    }
  }

  /** A counter mirroring a cumulative engine figure: each scrape adds what the engine counted since. */
  private counter(names: string[], help: string, field: CumulativeField): void {
    const stats = this.stats;
    for (const name of names) {
      const seen = new Map<string, number>();
      new Counter({
        name,
        help,
        labelNames: ['model_name'],
        registers: [this.registry],
        collect() {
          const names = new Set<string>();
          for (const [model_name, s] of stats()) {
            names.add(model_name);
            const now = s?.[field] ?? 0;
            const before = seen.get(model_name);
            if (before === undefined) this.inc({ model_name }, 0);
            if (now > (before ?? 0)) this.inc({ model_name }, now - (before ?? 0));
            seen.set(model_name, Math.max(before ?? 0, now));
          }
          for (const model_name of [...seen.keys()]) {
            if (names.has(model_name)) continue;
            seen.delete(model_name);
            this.remove({ model_name });
          }
        },
      });
    }
  }
}
