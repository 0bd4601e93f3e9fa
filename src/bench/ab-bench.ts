// An A/B run from flags to report: both servers' model ids, one dataset, warm-up on both, the interleaved
// run (ab-run.ts), then each side's metrics as a full result of its own, and the B / A ratios with their
// bootstrap intervals (ab-bootstrap.ts) as a table on stdout, a result file `{ "ab": ... }` and an HTML page.
import {
  BOOTSTRAP_SEED,
  bootstrapRatio,
  pairedValues,
  RESAMPLES,
  type PairedMetric,
  type RatioCi,
} from './ab-bootstrap.js';
import { runAb } from './ab-run.js';
import { warmUp } from './benchmark.js';
import { htmlPage, sideBySideTable } from './html-report.js';
import { computeMetrics } from './metrics.js';
import type { BenchOptions } from './options.js';
import { resultJson, type BenchResultJson, type RunInfo } from './result-json.js';
import { firstModel, prepareBench } from './run.js';
import type { EndpointConfig } from './stream-request.js';
import { esc, histogramSvg, PALETTE } from './svg-charts.js';
import { formatResultTable } from './table.js';

export interface AbRatioJson {
  metric: string;
  a_ms: number;
  b_ms: number;
  ratio: number;
  ci95_lo: number;
  ci95_hi: number;
  pairs: number;
}

export interface AbResultJson {
  ab: {
    a: BenchResultJson;
    b: BenchResultJson;
    /** mean per-request values and B / A with a paired bootstrap 95 % interval */
    ratios: AbRatioJson[];
    bootstrap: { resamples: number; seed: number };
    /** "A" / "B" in the order the requests were sent */
    send_order: string[];
  };
}

const PAIRED: Array<[PairedMetric, string]> = [
  ['ttft', 'mean TTFT'],
  ['tpot', 'mean TPOT'],
  ['itl', 'mean ITL (per-request mean gap)'],
  ['e2el', 'mean E2EL'],
];

export async function abBench(o: BenchOptions, log: (t: string) => void): Promise<AbResultJson> {
  const [urlA, urlB] = o.baseUrls as [string, string];
  const setup = await prepareBench({ ...o, baseUrl: urlA });
  const endpointB: EndpointConfig = {
    ...setup.endpoint,
    baseUrl: urlB,
    model: o.model ?? (await firstModel(urlB, o.apiKey)),
  };
  const endpoints: [EndpointConfig, EndpointConfig] = [setup.endpoint, endpointB];
  log(`kvserve bench: A/B, ${setup.dataset.requests.length} prompts (${setup.datasetLabel}) → A ${urlA}, B ${urlB}`);
  if (o.warmup > 0) {
    const warm = await prepareBench({
      ...o,
      baseUrl: urlA,
      model: setup.endpoint.model,
      seed: o.seed + 1_000_003,
      numPrompts: o.warmup,
    });
    for (const e of endpoints) await warmUp(e, warm.dataset.requests, o.warmup, o.maxConcurrency);
  }
  const date = new Date();
  const run = await runAb({
    endpoints,
    requests: setup.dataset.requests,
    requestRate: o.requestRate,
    burstiness: o.burstiness,
    maxConcurrency: o.maxConcurrency,
    seed: o.seed,
  });
  const sides = endpoints.map((e, side) => {
    const outputs = run.outputs[side]!;
    const metrics = computeMetrics({
      outputs,
      durationS: run.durationS,
      percentiles: o.percentiles,
      goodput: o.goodput,
      tokenizer: setup.tokenizer,
      exactInputLens: setup.dataset.exactLengths,
    });
    const info: RunInfo = {
      date,
      endpoint: e.endpoint,
      baseUrl: e.baseUrl,
      modelId: e.model,
      tokenizerId: o.tokenizer,
      dataset: setup.datasetLabel,
      numPrompts: outputs.length,
      requestRate: o.requestRate,
      burstiness: o.burstiness,
      maxConcurrency: o.maxConcurrency,
      ignoreEos: o.ignoreEos,
      goodput: o.goodput,
      notes: [
        ...setup.dataset.notes,
        'A/B run: requests to A and B interleaved; throughputs divide by the one shared duration',
      ],
    };
    return { info, metrics, json: resultJson(info, metrics, outputs, o.percentiles) };
  });
  const ratios = PAIRED.map(([metric, label]) => {
    const [va, vb] = pairedValues(metric, run.outputs[0], run.outputs[1], setup.tokenizer);
    return ratioJson(label, va, vb, bootstrapRatio(va, vb));
  });
  for (const [side, s] of sides.entries())
    log(`${side === 0 ? 'A' : 'B'}:\n${formatResultTable(s.info, s.metrics, s.json.errors)}`);
  return {
    ab: {
      a: sides[0]!.json,
      b: sides[1]!.json,
      ratios,
      bootstrap: { resamples: RESAMPLES, seed: BOOTSTRAP_SEED },
      send_order: run.sendOrder.map((s) => (s === 0 ? 'A' : 'B')),
    },
  };
}

function ratioJson(metric: string, a: number[], b: number[], ci: RatioCi): AbRatioJson {
  const m = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : Number.NaN);
  return { metric, a_ms: m(a), b_ms: m(b), ratio: ci.ratio, ci95_lo: ci.lo, ci95_hi: ci.hi, pairs: ci.pairs };
}

const f2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : '–');

/** The ratio table: per metric, A, B, B / A and its interval. */
export function formatAbTable(r: AbResultJson): string {
  const rows = [
    ['', 'A (ms)', 'B (ms)', 'B / A', '95% CI', 'pairs'],
    ...r.ab.ratios.map((x) => [
      x.metric,
      f2(x.a_ms),
      f2(x.b_ms),
      `${f2(x.ratio)}×`,
      `${f2(x.ci95_lo)}–${f2(x.ci95_hi)}`,
      String(x.pairs),
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const lines = rows.map((row) =>
    row.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  '),
  );
  return [
    `A/B: A = ${r.ab.a.kvserve_bench?.base_url} (${r.ab.a.model_id}), B = ${r.ab.b.kvserve_bench?.base_url} (${r.ab.b.model_id})`,
    ...lines,
    `95% CI: paired bootstrap over requests, ${r.ab.bootstrap.resamples} resamples, seed ${r.ab.bootstrap.seed}`,
  ].join('\n');
}

export function renderAbHtml(r: AbResultJson): string {
  const { a, b } = r.ab;
  const ok = (x: BenchResultJson) => x.ttfts.filter((_, i) => x.errors[i] === '').map((t) => t * 1000);
  const head = '<tr><th></th><th>A (ms)</th><th>B (ms)</th><th>B / A</th><th>95% CI</th><th>pairs</th></tr>';
  const rows = r.ab.ratios.map(
    (x) =>
      `<tr><td>${esc(x.metric)}</td><td>${f2(x.a_ms)}</td><td>${f2(x.b_ms)}</td><td>${f2(x.ratio)}×</td><td>${f2(x.ci95_lo)}–${f2(x.ci95_hi)}</td><td>${x.pairs}</td></tr>`,
  );
  const parts = [
    `<p>A = ${esc(a.kvserve_bench?.base_url ?? '')} (${esc(a.model_id)}); B = ${esc(b.kvserve_bench?.base_url ?? '')} (${esc(b.model_id)}); requests interleaved pair by pair, A B B A A B…</p>`,
    `<h2>B / A</h2><table>${head}${rows.join('')}</table>`,
    `<p class="note">95% CI: paired bootstrap over requests, ${r.ab.bootstrap.resamples} resamples, seed ${r.ab.bootstrap.seed}.</p>`,
    '<h2>Both runs</h2>',
    sideBySideTable(['A', 'B'], [a, b]),
    '<div class="grid">',
    histogramSvg(
      [
        { name: 'A', color: PALETTE[0]!, values: ok(a) },
        { name: 'B', color: PALETTE[1]!, values: ok(b) },
      ],
      { title: 'Time to first token', xLabel: 'ms', yLabel: 'requests' },
    ),
    '</div>',
  ];
  return htmlPage('kvserve bench: A/B', parts.join('\n'));
}
