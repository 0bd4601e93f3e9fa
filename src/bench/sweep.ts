// `--sweep-rates r1,r2,...`: the same prompts at several request rates, one run after another, to trace the
// latency–throughput curve. The result file holds `{ "sweep": [run, run, ...] }`, each run a full vLLM-style
// result; the HTML report plots TTFT and TPOT/ITL against output throughput, one point per rate.
import type { BenchResultJson } from './result-json.js';
import { htmlPage, sideBySideTable } from './html-report.js';
import { esc, lineChartSvg, PALETTE } from './svg-charts.js';

export interface SweepJson {
  sweep: BenchResultJson[];
}

const COLUMNS: Array<[string, (r: BenchResultJson) => number | string]> = [
  ['rate', (r) => r.request_rate],
  ['req/s', (r) => r.request_throughput],
  ['out tok/s', (r) => r.output_throughput],
  ['mean TTFT', (r) => r.mean_ttft_ms as number],
  ['median TTFT', (r) => r.median_ttft_ms as number],
  ['mean TPOT', (r) => r.mean_tpot_ms as number],
  ['mean ITL', (r) => r.mean_itl_ms as number],
  ['mean E2EL', (r) => r.mean_e2el_ms as number],
  ['failed', (r) => r.failed],
];

/** One line per rate, latencies in ms. */
export function formatSweepTable(runs: readonly BenchResultJson[]): string {
  const cells = [COLUMNS.map(([h]) => h), ...runs.map((r) => COLUMNS.map(([, f]) => cell(f(r))))];
  const widths = COLUMNS.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
  const lines = cells.map((row) => row.map((v, c) => v.padStart(widths[c]!)).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return ['Sweep (latencies in ms):', ...lines].join('\n');
}

export function renderSweepHtml(runs: readonly BenchResultJson[]): string {
  const x = (r: BenchResultJson) => r.output_throughput;
  const labels = runs.map((r) => `${r.request_rate}`);
  const pts = (key: string): Array<[number, number]> => runs.map((r) => [x(r), (r[key] as number | undefined) ?? 0]);
  const pKey = Object.keys(runs[0] ?? {}).find((k) => /^p[0-9.]+_ttft_ms$/.test(k));
  const ttftSeries = [{ name: 'mean TTFT', color: PALETTE[0]!, points: pts('mean_ttft_ms'), labels }];
  if (pKey)
    ttftSeries.push({
      name: pKey.replace(/_ms$/, '').replace('_', ' '),
      color: PALETTE[1]!,
      points: pts(pKey),
      labels,
    });
  const parts = [
    `<p>${esc(runs[0]?.model_id ?? '')} — ${runs.length} rates; each point is labelled with its request rate (req/s).</p>`,
    '<div class="grid">',
    lineChartSvg(ttftSeries, {
      title: 'TTFT against throughput',
      xLabel: 'output tokens / s',
      yLabel: 'ms',
      dots: true,
    }),
    lineChartSvg(
      [
        { name: 'mean TPOT', color: PALETTE[2]!, points: pts('mean_tpot_ms'), labels },
        { name: 'mean ITL', color: PALETTE[3]!, points: pts('mean_itl_ms') },
      ],
      { title: 'TPOT and ITL against throughput', xLabel: 'output tokens / s', yLabel: 'ms', dots: true },
    ),
    '</div><h2>Runs</h2>',
    sideBySideTable(
      runs.map((r) => `rate ${r.request_rate}`),
      runs,
    ),
  ];
  return htmlPage('kvserve bench: rate sweep', parts.join('\n'));
}

function cell(v: number | string): string {
  if (typeof v === 'string') return v;
  if (v === undefined || Number.isNaN(v)) return '–';
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}
