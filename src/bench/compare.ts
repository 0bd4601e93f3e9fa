// `--compare A.json B.json`: two single-run result files (ours or vLLM's `--save-result`) side by side: a table
// on stdout with B relative to A, and optionally an HTML page with both summaries and the TTFT and ITL
// distributions overlaid.
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { htmlPage, ratioText, settingsRows, sideBySideTable, summaryRows } from './html-report.js';
import { esc, histogramSvg, PALETTE } from './svg-charts.js';
import { DEFINITIONS } from './table.js';

export type ResultFile = Record<string, unknown>;

export async function loadResultFile(path: string): Promise<ResultFile> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`--compare: cannot read ${path} as JSON (${(e as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw new Error(`--compare: ${path} is not a result file (not an object)`);
  if ('sweep' in json) throw new Error(`--compare: ${path} is a sweep; compare takes single-run result files`);
  if (typeof (json as ResultFile).completed !== 'number')
    throw new Error(`--compare: ${path} has no "completed" field; is it a bench result file?`);
  return json as ResultFile;
}

export function formatCompareTable(nameA: string, a: ResultFile, nameB: string, b: ResultFile): string {
  const ma = new Map<string, number | string | undefined>([...settingsRows(a), ...summaryRows(a)]);
  const mb = new Map<string, number | string | undefined>([...settingsRows(b), ...summaryRows(b)]);
  const labels = [...new Set([...ma.keys(), ...mb.keys()])];
  const rows = [
    ['', nameA, nameB, 'B / A'],
    ...labels.map((l) => [l, num(ma.get(l)), num(mb.get(l)), ratioText(ma.get(l), mb.get(l))]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return [
    ...rows.map((r) => r.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  ')),
    ...DEFINITIONS,
  ].join('\n');
}

export function renderCompareHtml(nameA: string, a: ResultFile, nameB: string, b: ResultFile): string {
  const ttfts = (r: ResultFile) => okValues(r, 'ttfts').map((t) => (t as number) * 1000);
  const itls = (r: ResultFile) => (okValues(r, 'itls') as number[][]).flat().map((t) => t * 1000);
  const series = (f: (r: ResultFile) => number[]) => [
    { name: nameA, color: PALETTE[0]!, values: f(a) },
    { name: nameB, color: PALETTE[1]!, values: f(b) },
  ];
  const parts = [
    `<p>A = ${esc(nameA)} (${esc(String(a.model_id ?? ''))}, ${esc(String(a.date ?? ''))}); B = ${esc(nameB)} (${esc(String(b.model_id ?? ''))}, ${esc(String(b.date ?? ''))})</p>`,
    sideBySideTable([`A: ${nameA}`, `B: ${nameB}`], [a, b]),
    '<h2>Latency distributions</h2><div class="grid">',
    histogramSvg(series(ttfts), { title: 'Time to first token', xLabel: 'ms', yLabel: 'requests' }),
    histogramSvg(series(itls), { title: 'Inter-token latency', xLabel: 'ms', yLabel: 'gaps' }),
    '</div>',
  ];
  return htmlPage(`kvserve bench: ${nameA} vs ${nameB}`, parts.join('\n'));
}

export function runName(path: string): string {
  return basename(path).replace(/\.json$/i, '');
}

/** The per-request array `key` of successful requests only (errors[i] === ''), [] when the file lacks it. */
function okValues(r: ResultFile, key: string): unknown[] {
  const values = Array.isArray(r[key]) ? (r[key] as unknown[]) : [];
  const errors = Array.isArray(r.errors) ? (r.errors as unknown[]) : [];
  return values.filter((_, i) => !errors[i]);
}

function num(v: number | string | undefined): string {
  if (v === undefined) return '–';
  if (typeof v === 'string') return v;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}
