// The readable summary on stdout, laid out like vLLM's so the two read side by side, plus what vLLM leaves
// out: std, failures grouped by message, and how output tokens were counted.
import type { BenchMetrics } from './metrics.js';
import { LATENCY_METRICS, type LatencyMetric, type RunInfo } from './result-json.js';
import type { Summary } from './stats.js';

const WIDTH = 50;
const TITLES: Record<LatencyMetric, [string, string]> = {
  ttft: ['Time to First Token', 'TTFT'],
  tpot: ['Time per Output Token (excl. 1st token)', 'TPOT'],
  itl: ['Inter-token Latency', 'ITL'],
  e2el: ['End-to-end Latency', 'E2EL'],
};

/** What TPOT and ITL mean: they are easily taken for one another, and differ when chunks hold several tokens. */
export const DEFINITIONS = [
  'TTFT: request sent → first content chunk.',
  'TPOT: per request (E2EL − TTFT) / (output tokens − 1), then averaged over requests: time per token after the first.',
  'ITL: gaps between consecutive content chunks, pooled over all requests: per chunk, not per token.',
  'E2EL: request sent → last content chunk.',
];

export function formatResultTable(info: RunInfo, m: BenchMetrics, errors: readonly string[]): string {
  const lines: string[] = [];
  const row = (label: string, value: string | number) => lines.push(`${label.padEnd(40)} ${fmt(value)}`);
  lines.push(center(' Serving Benchmark Result ', '='));
  row('Model:', info.modelId);
  row('Endpoint:', `${info.baseUrl.replace(/\/+$/, '')}${info.endpoint}`);
  row('Request rate (req/s):', Number.isFinite(info.requestRate) ? info.requestRate : 'inf');
  row('Max concurrency:', info.maxConcurrency ?? 'unlimited');
  row('Successful requests:', m.completed);
  row('Failed requests:', m.failed);
  row('Benchmark duration (s):', m.durationS);
  row('Total input tokens:', m.totalInput);
  row('Total generated tokens:', m.totalOutput);
  row('Request throughput (req/s):', m.requestThroughput);
  if (m.requestGoodput !== undefined) row('Request goodput (req/s):', m.requestGoodput);
  row('Output token throughput (tok/s):', m.outputThroughput);
  row('Peak output token throughput (tok/s):', m.maxOutputTokensPerS);
  row('Peak concurrent requests:', m.maxConcurrentRequests);
  row('Total Token throughput (tok/s):', m.totalTokenThroughput);
  for (const name of LATENCY_METRICS) {
    const [title, short] = TITLES[name];
    lines.push(center(title, '-'));
    summaryRows(short, m[name], row);
  }
  lines.push('='.repeat(WIDTH));
  lines.push(...DEFINITIONS);
  for (const note of [...info.notes, ...tokenNotes(m)]) lines.push(`note: ${note}`);
  lines.push(...failureLines(errors));
  return lines.join('\n');
}

function summaryRows(short: string, s: Summary, row: (l: string, v: number) => void): void {
  row(`Mean ${short} (ms):`, s.mean);
  row(`Median ${short} (ms):`, s.median);
  row(`Std ${short} (ms):`, s.std);
  for (const [p, v] of s.percentiles) row(`P${p} ${short} (ms):`, v);
}

/** Says how output tokens were counted when it was not all from usage. */
export function tokenNotes(m: BenchMetrics): string[] {
  const notes: string[] = [];
  const { tokenizer, chunks } = m.tokenSources;
  if (tokenizer > 0)
    notes.push(
      `output tokens of ${tokenizer} of ${m.completed} requests counted with the tokenizer (no usage chunk from the server)`,
    );
  if (chunks > 0) {
    notes.push(
      `output tokens of ${chunks} of ${m.completed} requests = number of content chunks (no usage chunk and no --tokenizer): ` +
        'TPOT and token throughputs are exact only if the server sends one token per chunk',
    );
  }
  if (m.inputFromUsage > 0)
    notes.push(
      `input tokens of ${m.inputFromUsage} requests taken from the server's usage.prompt_tokens (includes special tokens and any chat template)`,
    );
  return notes;
}

/** Failures grouped by message, most frequent first. */
export function failureLines(errors: readonly string[]): string[] {
  const counts = new Map<string, number>();
  for (const e of errors) if (e) counts.set(e, (counts.get(e) ?? 0) + 1);
  if (counts.size === 0) return [];
  const sorted = [...counts].sort((a, b) => b[1] - a[1]);
  return ['Failures:', ...sorted.map(([msg, n]) => `  ${String(n).padStart(5)} × ${msg}`)];
}

function center(title: string, fill: string): string {
  const left = Math.max(0, Math.floor((WIDTH - title.length) / 2));
  return `${fill.repeat(left)}${title}${fill.repeat(Math.max(0, WIDTH - left - title.length))}`;
}

function fmt(v: string | number): string {
  if (typeof v === 'string') return v;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}
