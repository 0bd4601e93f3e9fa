// The HTML report of one run, rendered from the result JSON alone (so a saved file can be re-rendered and a
// vLLM result file renders too, less what vLLM does not save): the summary, the TTFT and ITL distributions,
// and output throughput and requests in flight over time. One file, inline CSS and SVG, no external URLs.
import { PEAK_BIN_S, timeline } from './metrics.js';
import { LATENCY_METRICS, numberField, type BenchResultJson } from './result-json.js';
import { histogramSvg, lineChartSvg, esc, PALETTE } from './svg-charts.js';
import { DEFINITIONS, failureLines } from './table.js';
import type { RequestOutput } from './types.js';

const CSS = `body{font-family:sans-serif;margin:24px;color:#111;max-width:1100px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:16px}.note{color:#555;font-size:13px}pre{font-size:12px;background:#f6f6f6;padding:8px}`;

export function htmlPage(title: string, body: string): string {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${CSS}</style></head><body><h1>${esc(title)}</h1>${body}</body></html>\n`;
}

/**
 * A run's settings as [label, text], from the result file alone (ours or vLLM's; absent fields are left out):
 * what a reader needs to know the numbers beside each other were measured alike, or how they were not.
 */
export function settingsRows(r: Record<string, unknown>): Array<[string, string]> {
  const k = r.kvserve_bench as { base_url?: string; endpoint?: string; dataset?: string } | undefined;
  const str = (v: unknown) => (v === undefined || v === null ? undefined : String(v));
  const rows: Array<[string, string | undefined]> = [
    ['Server', k?.base_url ? `${k.base_url.replace(/\/+$/, '')}${k.endpoint ?? ''}` : str(r.backend)],
    ['Model', str(r.model_id)],
    ['Date', str(r.date)],
    ['Dataset', k?.dataset],
    ['Prompts', str(r.num_prompts)],
    ['Request rate (req/s)', str(r.request_rate)],
    ['Burstiness', str(r.burstiness)],
    ['Max concurrency', r.max_concurrency === null ? 'unlimited' : str(r.max_concurrency)],
  ];
  return rows.filter((row): row is [string, string] => row[1] !== undefined);
}

/** Rows of [label, value]: the run's totals and every latency summary found in the file. */
export function summaryRows(r: Record<string, unknown>): Array<[string, number | string | undefined]> {
  const rows: Array<[string, number | string | undefined]> = [
    ['Successful requests', numberField(r, 'completed')],
    ['Failed requests', numberField(r, 'failed')],
    ['Benchmark duration (s)', numberField(r, 'duration')],
    ['Total input tokens', numberField(r, 'total_input_tokens')],
    ['Total generated tokens', numberField(r, 'total_output_tokens')],
    ['Request throughput (req/s)', numberField(r, 'request_throughput')],
    ['Request goodput (req/s)', numberField(r, 'request_goodput')],
    ['Output token throughput (tok/s)', numberField(r, 'output_throughput')],
    ['Peak output token throughput (tok/s)', numberField(r, 'max_output_tokens_per_s')],
    ['Total token throughput (tok/s)', numberField(r, 'total_token_throughput')],
  ];
  for (const name of LATENCY_METRICS) {
    const keys = Object.keys(r).filter((k) => new RegExp(`^(mean|median|std|p[0-9.]+)_${name}_ms$`).test(k));
    for (const k of keys) rows.push([`${k.split('_')[0]} ${name.toUpperCase()} (ms)`, numberField(r, k)]);
  }
  return rows.filter(([, v]) => v !== undefined);
}

export function fmtValue(v: number | string | undefined): string {
  if (v === undefined) return '–';
  if (typeof v === 'string') return esc(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/**
 * One column per run, settings first, then the summaries; rows are the union of what the files hold, so ours
 * and vLLM's line up by label. Two runs get a B / A column.
 */
export function sideBySideTable(headers: readonly string[], runs: readonly Record<string, unknown>[]): string {
  const maps = runs.map((r) => new Map<string, number | string | undefined>([...settingsRows(r), ...summaryRows(r)]));
  const labels = [...new Set(maps.flatMap((m) => [...m.keys()]))];
  const pair = runs.length === 2;
  const head = `<tr><th></th>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}${pair ? '<th>B / A</th>' : ''}</tr>`;
  const body = labels.map((l) => {
    const ratio = pair ? `<td>${ratioText(maps[0]!.get(l), maps[1]!.get(l))}</td>` : '';
    return `<tr><td>${esc(l)}</td>${maps.map((m) => `<td>${fmtValue(m.get(l))}</td>`).join('')}${ratio}</tr>`;
  });
  const defs = `<p class="note">${DEFINITIONS.map(esc).join('<br>')}</p>`;
  return `<table>${head}${body.join('')}</table>${defs}`;
}

/** b / a as "1.23×", or "–" when either is not a number or a is 0. */
export function ratioText(a: number | string | undefined, b: number | string | undefined): string {
  if (typeof a !== 'number' || typeof b !== 'number' || a === 0) return '–';
  return `${(b / a).toFixed(2)}×`;
}

export function renderRunHtml(r: BenchResultJson): string {
  const k = r.kvserve_bench;
  const describe: Array<[string, string]> = [
    ...settingsRows(r),
    ['Tokenizer', r.tokenizer_id ?? 'none'],
    ['ignore_eos', k ? String(k.ignore_eos) : ''],
  ];
  const parts: string[] = [];
  parts.push(`<table>${describe.map(([a, b]) => `<tr><td>${esc(a)}</td><td>${esc(b)}</td></tr>`).join('')}</table>`);
  parts.push('<h2>Summary</h2><table>');
  for (const [label, v] of summaryRows(r)) parts.push(`<tr><td>${esc(label)}</td><td>${fmtValue(v)}</td></tr>`);
  parts.push('</table>');
  parts.push(`<p class="note">${DEFINITIONS.map(esc).join('<br>')}</p>`);
  for (const note of k?.notes ?? []) parts.push(`<p class="note">note: ${esc(note)}</p>`);

  const ok = r.errors.map((e) => e === '');
  const ttftMs = r.ttfts.filter((_, i) => ok[i]).map((t) => t * 1000);
  const itlMs = r.itls
    .filter((_, i) => ok[i])
    .flat()
    .map((t) => t * 1000);
  parts.push('<h2>Latency distributions</h2><div class="grid">');
  parts.push(
    histogramSvg([{ name: 'TTFT', color: PALETTE[0]!, values: ttftMs }], {
      title: 'Time to first token',
      xLabel: 'ms',
      yLabel: 'requests',
    }),
  );
  parts.push(
    histogramSvg([{ name: 'ITL', color: PALETTE[1]!, values: itlMs }], {
      title: 'Inter-token latency',
      xLabel: 'ms',
      yLabel: 'gaps',
    }),
  );
  parts.push('</div>');

  if (k) {
    // The same bins as the table's peaks (metrics.ts), so the charts' maxima are the reported peaks.
    const t = timeline(outputsFromJson(r), r.output_lens, PEAK_BIN_S);
    const at = (i: number) => (i + 0.5) * t.binS;
    const peakTokens = t.tokens.reduce((a, b) => Math.max(a, b), 0) / t.binS;
    const peakConcurrent = t.concurrent.reduce((a, b) => Math.max(a, b), 0);
    parts.push(`<h2>Over time (${t.binS} s bins)</h2>`);
    parts.push(
      `<p class="note">Bin width ${t.binS} s, the bins of the summary's peaks: peak ${fmtValue(peakTokens)} output tok/s, peak ${peakConcurrent} requests in flight.</p><div class="grid">`,
    );
    parts.push(
      lineChartSvg(
        [{ name: 'output tok/s', color: PALETTE[2]!, points: t.tokens.map((n, i) => [at(i), n / t.binS]) }],
        {
          title: `Output token throughput (${t.binS} s bins)`,
          xLabel: 'seconds since start',
          yLabel: 'tokens / s',
        },
      ),
    );
    parts.push(
      lineChartSvg([{ name: 'in flight', color: PALETTE[3]!, points: t.concurrent.map((n, i) => [at(i), n]) }], {
        title: `Requests in flight (${t.binS} s bins)`,
        xLabel: 'seconds since start',
        yLabel: 'requests',
      }),
    );
    parts.push('</div>');
  }
  const failures = failureLines(r.errors);
  if (failures.length > 0) parts.push(`<h2>Failures</h2><pre>${esc(failures.slice(1).join('\n'))}</pre>`);
  return htmlPage(`kvserve bench: ${r.model_id}`, parts.join('\n'));
}

/** The per-request timings a result file holds, back in RequestOutput form for the timeline. */
function outputsFromJson(r: BenchResultJson): RequestOutput[] {
  const k = r.kvserve_bench!;
  return r.errors.map((error, i) => ({
    success: error === '',
    error,
    generatedText: '',
    promptLen: r.input_lens[i] ?? 0,
    usageOutputTokens: undefined,
    usagePromptTokens: undefined,
    ttft: r.ttfts[i] ?? 0,
    itl: r.itls[i] ?? [],
    latency: k.e2els[i] ?? 0,
    startTime: k.start_times[i] ?? 0,
    contentChunks: (r.itls[i]?.length ?? 0) + 1,
  }));
}
