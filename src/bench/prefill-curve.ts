// `--input-lens L1,L2,...`: time to first token against prompt length. For each length, --num-prompts random
// prompts of that length are sent one at a time (concurrency 1), so TTFT is the server's prefill of that
// prompt plus its fixed overhead, optionally beside --background-streams requests kept in flight (prompts of
// --input-len) to see prefill under decode load. Each length draws prompts of its own (seed + i), so no length
// is served from a prefix cache another filled. The implied prefill rate is L / median TTFT (overhead
// included) and, between consecutive lengths, ΔL / Δ median TTFT (the overhead cancels: the marginal rate).
import { runBenchmark, warmUp } from './benchmark.js';
import { randomDataset } from './dataset-random.js';
import { htmlPage } from './html-report.js';
import type { BenchOptions } from './options.js';
import { prepareBench, type BenchSetup } from './run.js';
import { percentileSorted } from './stats.js';
import { streamRequest } from './stream-request.js';
import { esc, lineChartSvg, PALETTE } from './svg-charts.js';

export interface PrefillPoint {
  input_len: number;
  completed: number;
  failed: number;
  mean_ttft_ms: number;
  p50_ttft_ms: number;
  p90_ttft_ms: number;
  p99_ttft_ms: number;
  /** input_len / p50 TTFT, tokens per second */
  prefill_tok_s: number;
  /** (L − L_prev) / (p50 − p50_prev), tokens per second; null for the shortest length */
  marginal_prefill_tok_s: number | null;
}

export interface PrefillCurveJson {
  prefill_curve: {
    date: string;
    base_url: string;
    endpoint: string;
    model_id: string;
    num_prompts: number;
    output_len: number;
    background_streams: number;
    background_input_len: number;
    exact_lengths: boolean;
    points: PrefillPoint[];
    errors: string[];
  };
}

export async function prefillCurve(o: BenchOptions, log: (t: string) => void): Promise<PrefillCurveJson> {
  const lens = [...o.inputLens!].sort((a, b) => a - b);
  const outputLen = o.outputLen ?? 128;
  const base = await prepareBench({ ...o, inputLen: lens[0]!, outputLen });
  const model = base.endpoint.model;
  const setupFor = (inputLen: number, seed: number, numPrompts = o.numPrompts): Promise<BenchSetup> =>
    prepareBench({ ...o, model, inputLen, outputLen, seed, numPrompts });
  log(`kvserve bench: TTFT against prompt length ${lens.join(', ')} (${o.numPrompts} prompts each) → ${o.baseUrl}`);
  if (o.warmup > 0) {
    const warm = await setupFor(lens[0]!, o.seed + 1_000_003, o.warmup);
    await warmUp(base.endpoint, warm.dataset.requests, o.warmup, 1);
  }
  const background = o.backgroundStreams > 0 ? startBackground(o, base) : undefined;
  const points: PrefillPoint[] = [];
  const errors: string[] = [];
  try {
    for (const [i, len] of lens.entries()) {
      const s = i === 0 ? base : await setupFor(len, o.seed + i);
      const run = await runBenchmark({
        endpoint: s.endpoint,
        requests: s.dataset.requests,
        requestRate: Number.POSITIVE_INFINITY,
        burstiness: 1,
        maxConcurrency: 1,
        seed: o.seed,
        label: `input ${len}`,
      });
      const ok = run.outputs.filter((r) => r.success);
      for (const r of run.outputs) if (!r.success) errors.push(`input ${len}: ${r.error}`);
      points.push(
        point(
          len,
          ok.map((r) => r.ttft * 1000),
          run.outputs.length - ok.length,
          points.at(-1),
        ),
      );
    }
  } finally {
    await background?.stop();
  }
  return {
    prefill_curve: {
      date: new Date().toISOString(),
      base_url: o.baseUrl,
      endpoint: o.endpoint,
      model_id: model,
      num_prompts: o.numPrompts,
      output_len: outputLen,
      background_streams: o.backgroundStreams,
      background_input_len: o.inputLen,
      exact_lengths: base.dataset.exactLengths,
      points,
      errors,
    },
  };
}

export function point(len: number, ttftMs: number[], failed: number, prev: PrefillPoint | undefined): PrefillPoint {
  const sorted = [...ttftMs].sort((a, b) => a - b);
  const p50 = percentileSorted(sorted, 50);
  const dt = prev ? p50 - prev.p50_ttft_ms : 0;
  return {
    input_len: len,
    completed: sorted.length,
    failed,
    mean_ttft_ms: sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : 0,
    p50_ttft_ms: p50,
    p90_ttft_ms: percentileSorted(sorted, 90),
    p99_ttft_ms: percentileSorted(sorted, 99),
    prefill_tok_s: p50 > 0 ? len / (p50 / 1000) : Number.NaN,
    marginal_prefill_tok_s: prev ? (dt > 0 ? (len - prev.input_len) / (dt / 1000) : Number.NaN) : null,
  };
}

/**
 * `n` loops each sending one request after another (prompts of --input-len, cycled) until stopped; stop()
 * resolves when the requests in flight have ended. Bounded: a loop sends nothing once stopped.
 */
function startBackground(o: BenchOptions, base: BenchSetup): { stop: () => Promise<void> } {
  let stopped = false;
  const prompts = randomDataset(
    { numPrompts: 64, inputLen: o.inputLen, outputLen: o.outputLen ?? 128, rangeRatio: 0, seed: o.seed + 7_000_001 },
    base.tokenizer,
  ).requests;
  const loops = Array.from({ length: o.backgroundStreams }, async (_, k) => {
    for (let i = k; !stopped; i += o.backgroundStreams)
      await streamRequest(base.endpoint, prompts[i % prompts.length]!, performance.now());
  });
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

const f1 = (v: number | null) => (v === null ? '' : Number.isFinite(v) ? v.toFixed(1) : '–');

const COLUMNS: Array<[string, (p: PrefillPoint) => string]> = [
  ['input len', (p) => String(p.input_len)],
  ['ok', (p) => String(p.completed)],
  ['failed', (p) => String(p.failed)],
  ['p50 TTFT', (p) => f1(p.p50_ttft_ms)],
  ['p90 TTFT', (p) => f1(p.p90_ttft_ms)],
  ['p99 TTFT', (p) => f1(p.p99_ttft_ms)],
  ['len/p50 tok/s', (p) => f1(p.prefill_tok_s)],
  ['ΔL/Δp50 tok/s', (p) => f1(p.marginal_prefill_tok_s)],
];

export function formatPrefillTable(r: PrefillCurveJson): string {
  const c = r.prefill_curve;
  const cells = [COLUMNS.map(([h]) => h), ...c.points.map((p) => COLUMNS.map(([, f]) => f(p)))];
  const widths = COLUMNS.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  const lines = cells.map((row) => row.map((v, i) => v.padStart(widths[i]!)).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  const bg = c.background_streams
    ? `, ${c.background_streams} background streams of ${c.background_input_len} tokens`
    : '';
  return [
    `TTFT against prompt length (ms; concurrency 1${bg}; ${c.num_prompts} prompts per length, output ${c.output_len}):`,
    ...lines,
    ...(c.exact_lengths ? [] : ['note: no --tokenizer: prompt lengths are approximate (one token per word)']),
    ...c.errors.slice(0, 5).map((e) => `failed: ${e}`),
  ].join('\n');
}

export function renderPrefillHtml(r: PrefillCurveJson): string {
  const c = r.prefill_curve;
  const series = (['p50', 'p90', 'p99'] as const).map((p, i) => ({
    name: `${p} TTFT`,
    color: PALETTE[i]!,
    points: c.points.map((pt) => [pt.input_len, pt[`${p}_ttft_ms`]] as [number, number]),
  }));
  const settings: Array<[string, string]> = [
    ['Server', `${c.base_url.replace(/\/+$/, '')}${c.endpoint}`],
    ['Model', c.model_id],
    ['Date', c.date],
    ['Prompts per length', String(c.num_prompts)],
    ['Output tokens', String(c.output_len)],
    ['Concurrency', '1'],
    ['Background streams', c.background_streams ? `${c.background_streams} × ${c.background_input_len} tokens` : '0'],
  ];
  const head = `<tr>${COLUMNS.map(([h]) => `<th>${esc(h)}</th>`).join('')}</tr>`;
  const rows = c.points.map((p) => `<tr>${COLUMNS.map(([, f]) => `<td>${esc(f(p))}</td>`).join('')}</tr>`);
  const parts = [
    `<table>${settings.map(([a, b]) => `<tr><td>${esc(a)}</td><td>${esc(b)}</td></tr>`).join('')}</table>`,
    lineChartSvg(series, { title: 'TTFT against prompt length', xLabel: 'prompt tokens', yLabel: 'ms', dots: true }),
    `<h2>Per length (ms)</h2><table>${head}${rows.join('')}</table>`,
    '<p class="note">len/p50: prompt tokens over the median TTFT (fixed overhead included); ΔL/Δp50: the slope between consecutive lengths, the marginal prefill rate.</p>',
  ];
  return htmlPage('kvserve bench: TTFT against prompt length', parts.join('\n'));
}
