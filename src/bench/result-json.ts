// The result file, with vLLM `bench serve --save-result` field names so that existing tooling reads it and runs
// compare across servers: run description (date, backend, model_id, ...), totals and throughputs, per-request
// arrays (input_lens, output_lens, ttfts and itls in seconds, generated_texts, errors), and for each of
// ttft / tpot / itl / e2el: mean_X_ms, median_X_ms, std_X_ms and pP_X_ms per chosen percentile.
// What vLLM lacks but the HTML report needs (start times, latencies, notes) sits under `kvserve_bench`.
import type { BenchMetrics, GoodputSlo } from './metrics.js';
import { percentileKey, type Summary } from './stats.js';
import type { RequestOutput } from './types.js';

export interface RunInfo {
  date: Date;
  endpoint: string;
  baseUrl: string;
  modelId: string;
  tokenizerId: string | undefined;
  dataset: string;
  numPrompts: number;
  requestRate: number;
  burstiness: number;
  maxConcurrency: number | undefined;
  ignoreEos: boolean;
  goodput: GoodputSlo | undefined;
  notes: string[];
}

export const LATENCY_METRICS = ['ttft', 'tpot', 'itl', 'e2el'] as const;
export type LatencyMetric = (typeof LATENCY_METRICS)[number];

export interface BenchResultJson {
  date: string;
  backend: string;
  model_id: string;
  tokenizer_id: string | null;
  num_prompts: number;
  request_rate: number | 'inf';
  burstiness: number;
  max_concurrency: number | null;
  duration: number;
  completed: number;
  failed: number;
  total_input_tokens: number;
  total_output_tokens: number;
  request_throughput: number;
  request_goodput: number | null;
  output_throughput: number;
  total_token_throughput: number;
  max_output_tokens_per_s: number;
  max_concurrent_requests: number;
  input_lens: number[];
  output_lens: number[];
  ttfts: number[];
  itls: number[][];
  generated_texts: string[];
  errors: string[];
  kvserve_bench?: {
    base_url: string;
    endpoint: string;
    dataset: string;
    ignore_eos: boolean;
    goodput: GoodputSlo | null;
    percentiles: number[];
    start_times: number[];
    e2els: number[];
    notes: string[];
  };
  [metricKey: string]: unknown;
}

export function resultJson(
  info: RunInfo,
  m: BenchMetrics,
  outputs: RequestOutput[],
  percentiles: number[],
): BenchResultJson {
  const json: BenchResultJson = {
    date: formatDate(info.date),
    backend: info.endpoint === '/v1/chat/completions' ? 'openai-chat' : 'openai',
    model_id: info.modelId,
    tokenizer_id: info.tokenizerId ?? null,
    num_prompts: info.numPrompts,
    request_rate: Number.isFinite(info.requestRate) ? info.requestRate : 'inf',
    burstiness: info.burstiness,
    max_concurrency: info.maxConcurrency ?? null,
    duration: m.durationS,
    completed: m.completed,
    failed: m.failed,
    total_input_tokens: m.totalInput,
    total_output_tokens: m.totalOutput,
    request_throughput: m.requestThroughput,
    request_goodput: m.requestGoodput ?? null,
    output_throughput: m.outputThroughput,
    total_token_throughput: m.totalTokenThroughput,
    max_output_tokens_per_s: m.maxOutputTokensPerS,
    max_concurrent_requests: m.maxConcurrentRequests,
    input_lens: m.inputLens,
    output_lens: m.outputLens,
    ttfts: outputs.map((o) => o.ttft),
    itls: outputs.map((o) => o.itl),
    generated_texts: outputs.map((o) => o.generatedText),
    errors: outputs.map((o) => o.error),
  };
  for (const name of LATENCY_METRICS) Object.assign(json, metricFields(name, m[name]));
  json.kvserve_bench = {
    base_url: info.baseUrl,
    endpoint: info.endpoint,
    dataset: info.dataset,
    ignore_eos: info.ignoreEos,
    goodput: info.goodput ?? null,
    percentiles,
    start_times: outputs.map((o) => o.startTime),
    e2els: outputs.map((o) => o.latency),
    notes: info.notes,
  };
  return json;
}

/** mean_X_ms, median_X_ms, std_X_ms, pP_X_ms. */
export function metricFields(name: LatencyMetric, s: Summary): Record<string, number> {
  const f: Record<string, number> = {
    [`mean_${name}_ms`]: s.mean,
    [`median_${name}_ms`]: s.median,
    [`std_${name}_ms`]: s.std,
  };
  for (const [p, v] of s.percentiles) f[`p${percentileKey(p)}_${name}_ms`] = v;
  return f;
}

/** A number field of a result file (ours or vLLM's), or undefined when absent. */
export function numberField(json: Record<string, unknown>, key: string): number | undefined {
  const v = json[key];
  return typeof v === 'number' ? v : undefined;
}

/** vLLM writes `%Y%m%d-%H%M%S`. */
function formatDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}
