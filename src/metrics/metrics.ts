// Prometheus metrics under vLLM's names and labels (`vllm:…`, each with `model_name`), so that vLLM's
// Grafana dashboards and autoscaling rules read kvserve unchanged. The earlier `kvserve_…` names are kept
// beside them as deprecated aliases (same values) until their users have moved. One registry per server
// (tests build several apps in one process). Latencies and per-request token counts are observed by the
// server as requests run, step sizes by the engine loop (onStep); engine-wide figures (running, waiting, KV
// usage, token and cache counters) are read from EngineClient.stats() at scrape time, so they can never
// drift from the engine's own bookkeeping.
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
const STEP_TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];
/** 1, 2, 5, 10, 20, 50, … up to a million tokens (vLLM's 1-2-5 series, without its context-length cap). */
const TOKEN_BUCKETS = Array.from({ length: 19 }, (_, i) => [1, 2, 5][i % 3]! * 10 ** Math.floor(i / 3));

/** Returns undefined while the model is still loading (every engine figure then reads 0). */
export type StatsSource = () => EngineStats | undefined;

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

export class ServerMetrics {
  readonly registry = new Registry();
  readonly timeToFirstToken: Observer;
  readonly interTokenLatency: Observer;
  readonly e2eRequestLatency: Observer;
  readonly requestQueueTime: Observer;
  readonly requestPromptTokens: Observer;
  readonly requestGenerationTokens: Observer;
  readonly iterationTokens: Observer;
  private readonly requestSuccess: Array<Counter<'finished_reason'>>;

  constructor(
    modelName: string,
    private readonly stats: StatsSource,
  ) {
    this.registry.setDefaultLabels({ model_name: modelName });
    this.timeToFirstToken = this.histogram(
      ['vllm:time_to_first_token_seconds', 'kvserve_time_to_first_token_seconds'],
      'Time from arrival to the first generated token, per request.',
      TTFT_BUCKETS,
    );
    // vLLM's dashboards still read the older name of the same figure.
    this.interTokenLatency = this.histogram(
      ['vllm:inter_token_latency_seconds', 'vllm:time_per_output_token_seconds', 'kvserve_inter_token_latency_seconds'],
      'Time between consecutive generated tokens of a request.',
      ITL_BUCKETS,
    );
    this.e2eRequestLatency = this.histogram(
      ['vllm:e2e_request_latency_seconds', 'kvserve_e2e_request_latency_seconds'],
      'Time from arrival to the last token, per finished request.',
      REQUEST_BUCKETS,
    );
    this.requestQueueTime = this.histogram(
      ['vllm:request_queue_time_seconds', 'kvserve_request_queue_time_seconds'],
      'Time a request waited in the queue before it was first scheduled.',
      REQUEST_BUCKETS,
    );
    this.requestPromptTokens = this.histogram(
      ['vllm:request_prompt_tokens'],
      'Prompt tokens of each finished request.',
      TOKEN_BUCKETS,
    );
    this.requestGenerationTokens = this.histogram(
      ['vllm:request_generation_tokens'],
      'Generated tokens of each finished request.',
      TOKEN_BUCKETS,
    );
    this.iterationTokens = this.histogram(
      ['vllm:iteration_tokens_total'],
      'Tokens computed per engine step (prefill and decode).',
      STEP_TOKEN_BUCKETS,
    );
    this.requestSuccess = ['vllm:request_success_total', 'kvserve_request_success_total'].map(
      (name) =>
        new Counter({
          name,
          help: 'Finished engine requests (one per choice), by finish reason.',
          labelNames: ['finished_reason'],
          registers: [this.registry],
        }),
    );
    // Every series exists from the first scrape, so rate() sees the first request of each kind.
    for (const reason of ['stop', 'length', 'abort', 'error'] as const)
      for (const c of this.requestSuccess) c.inc({ finished_reason: reason }, 0);
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
  }

  recordFinish(reason: FinishReason): void {
    for (const c of this.requestSuccess) c.inc({ finished_reason: reason });
  }

  private histogram(names: string[], help: string, buckets: number[]): Observer {
    const all = names.map((name) => new Histogram({ name, help, buckets, registers: [this.registry] }));
    return {
      observe: (v) => {
        for (const h of all) h.observe(v);
      },
    };
  }

  private gauge(names: string[], help: string, read: (s: EngineStats) => number): void {
    const stats = this.stats;
    for (const name of names) {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const s = stats();
          this.set(s ? read(s) : 0);
        },
      });
    }
  }

  /** A counter mirroring a cumulative engine figure: each scrape adds what the engine counted since. */
  private counter(names: string[], help: string, field: CumulativeField): void {
    const stats = this.stats;
    for (const name of names) {
      let seen = 0;
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          const now = stats()?.[field] ?? 0;
          if (now > seen) this.inc(now - seen);
          seen = Math.max(seen, now);
        },
      });
    }
  }
}
