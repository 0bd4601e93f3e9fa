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

/**
 * With --goodput a rate meets the SLOs when at least SLO_ATTAINMENT of its requests (failures count against)
 * meet every one of them; the sweep reports the highest such rate, the usual capacity-under-SLO figure.
 */
export const SLO_ATTAINMENT = 0.9;

/** Share of a run's prompts that completed within every SLO; undefined without --goodput. */
export function sloAttainment(r: BenchResultJson): number | undefined {
  if (r.request_goodput === null || r.request_goodput === undefined || !(r.num_prompts > 0)) return undefined;
  return (r.request_goodput * r.duration) / r.num_prompts;
}

/** The highest request rate whose attainment is ≥ SLO_ATTAINMENT, 'inf', or undefined when none (or no SLOs). */
export function highestRateMeetingSlo(runs: readonly BenchResultJson[]): number | 'inf' | undefined {
  let best: number | 'inf' | undefined;
  for (const r of runs) {
    const a = sloAttainment(r);
    if (a === undefined || a < SLO_ATTAINMENT - 1e-9) continue;
    const rate = r.request_rate === 'inf' ? Number.POSITIVE_INFINITY : r.request_rate;
    const cur = best === 'inf' ? Number.POSITIVE_INFINITY : (best ?? Number.NEGATIVE_INFINITY);
    if (rate > cur) best = r.request_rate;
  }
  return best;
}

/** One line per rate, latencies in ms; with --goodput also goodput, SLO attainment and the best rate. */
export function formatSweepTable(runs: readonly BenchResultJson[]): string {
  const withSlo = runs.some((r) => sloAttainment(r) !== undefined);
  const columns: typeof COLUMNS = withSlo
    ? [
        ...COLUMNS,
        ['goodput', (r) => r.request_goodput ?? Number.NaN],
        ['in SLO %', (r) => 100 * (sloAttainment(r) ?? Number.NaN)],
      ]
    : COLUMNS;
  const cells = [columns.map(([h]) => h), ...runs.map((r) => columns.map(([, f]) => cell(f(r))))];
  const widths = columns.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
  const lines = cells.map((row) => row.map((v, c) => v.padStart(widths[c]!)).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  if (withSlo) lines.push(sloLine(runs));
  return ['Sweep (latencies in ms):', ...lines].join('\n');
}

function sloLine(runs: readonly BenchResultJson[]): string {
  const slo = runs[0]?.kvserve_bench?.goodput;
  const spec = slo
    ? Object.entries(slo)
        .map(([k, v]) => `${k} ≤ ${v} ms`)
        .join(', ')
    : 'the SLOs';
  const best = highestRateMeetingSlo(runs);
  const pct = `${Math.round(SLO_ATTAINMENT * 100)} %`;
  return best === undefined
    ? `No rate meets ${spec} for ${pct} of requests.`
    : `Highest request rate meeting ${spec} for ${pct} of requests: ${best} req/s`;
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
    '</div>',
    ...(runs.some((r) => sloAttainment(r) !== undefined)
      ? [
          lineChartSvg(
            [
              {
                name: 'goodput',
                color: PALETTE[4]!,
                points: runs.map((r) => [r.request_throughput, r.request_goodput ?? 0] as [number, number]),
                labels,
              },
            ],
            { title: 'Goodput against throughput', xLabel: 'requests / s', yLabel: 'good requests / s', dots: true },
          ),
          `<p>${esc(sloLine(runs))}</p>`,
        ]
      : []),
    '<h2>Runs</h2>',
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
