// Inline SVG charts for the HTML reports: histograms and line charts drawn here as markup, so a report is one
// self-contained file (no scripts, no fonts, no URLs) that opens anywhere, offline, and archives well.
// Every function returns an <svg> string (inline SVG in HTML5 needs no namespace); all text goes through esc().
// Samples can be large (all ITLs of a run): extremes are found with loops, never Math.min(...xs).

export interface Series {
  name: string;
  color: string;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
}

const PAD = { left: 64, right: 16, top: 28, bottom: 44 };
export const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2'];

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round tick values from at or below lo to at or above hi: steps of 1, 2 or 5 × 10^k, about `count` steps. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  const first = Math.floor(lo / step + 1e-9) * step;
  const last = Math.ceil(hi / step - 1e-9) * step;
  for (let t = first; t <= last + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

interface Frame {
  svg: string[];
  x: (v: number) => number;
  y: (v: number) => number;
}

/** Axes, ticks, labels and title; returns scales for the plot area. */
function frame(o: ChartOptions, xr: [number, number], yr: [number, number]): Frame {
  const w = o.width ?? 640;
  const h = o.height ?? 300;
  const xt = niceTicks(xr[0], xr[1]);
  const yt = niceTicks(yr[0], yr[1]);
  const [x0, x1] = [Math.min(xr[0], xt[0]!), Math.max(xr[1], xt[xt.length - 1]!)];
  const [y0, y1] = [Math.min(yr[0], yt[0]!), Math.max(yr[1], yt[yt.length - 1]!)];
  const pw = w - PAD.left - PAD.right;
  const ph = h - PAD.top - PAD.bottom;
  // one decimal is finer than a pixel and keeps large reports small
  const x = (v: number) => Math.round((PAD.left + ((v - x0) / (x1 - x0 || 1)) * pw) * 10) / 10;
  const y = (v: number) => Math.round((PAD.top + ph - ((v - y0) / (y1 - y0 || 1)) * ph) * 10) / 10;
  const svg = [
    `<svg viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" font-family="sans-serif" font-size="11">`,
    `<text x="${w / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${esc(o.title)}</text>`,
    `<rect x="${PAD.left}" y="${PAD.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
  ];
  for (const t of xt) {
    svg.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${PAD.top + ph}" y2="${PAD.top + ph + 4}" stroke="#999"/>`);
    svg.push(`<text x="${x(t)}" y="${PAD.top + ph + 16}" text-anchor="middle">${fmtTick(t)}</text>`);
  }
  for (const t of yt) {
    svg.push(`<line x1="${PAD.left}" x2="${PAD.left + pw}" y1="${y(t)}" y2="${y(t)}" stroke="#eee"/>`);
    svg.push(`<text x="${PAD.left - 6}" y="${y(t) + 4}" text-anchor="end">${fmtTick(t)}</text>`);
  }
  svg.push(`<text x="${PAD.left + pw / 2}" y="${h - 8}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  svg.push(
    `<text transform="translate(14 ${PAD.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`,
  );
  return { svg, x, y };
}

function legend(series: readonly Series[], w: number): string {
  if (series.length < 2) return '';
  return series
    .map((s, i) => {
      const y = PAD.top + 12 + i * 14;
      const x = w - PAD.right - 150;
      return `<rect x="${x}" y="${y - 8}" width="10" height="10" fill="${s.color}"/><text x="${x + 14}" y="${y + 1}">${esc(s.name)}</text>`;
    })
    .join('');
}

/** Histograms of one or more samples over shared bins (outlined steps, so overlaid series stay readable). */
export function histogramSvg(
  series: ReadonlyArray<Series & { values: readonly number[] }>,
  o: ChartOptions,
  bins = 40,
): string {
  const all = series.flatMap((s) => [...s.values]).sort((a, b) => a - b);
  if (all.length === 0) return emptyChart(o);
  let lo = all[0]!;
  let hi = all[all.length - 1]!;
  // A few stragglers would squash the distribution into one bar: past 2 × p99 they share the last bin.
  const p99 = all[Math.floor(0.99 * (all.length - 1))]!;
  let title = o.title;
  if (hi > 2 * p99 && p99 > lo) {
    hi = 2 * p99;
    title += ` (values above ${fmtTick(hi)} in the last bin)`;
  }
  if (hi === lo) [lo, hi] = [lo - 0.5, hi + 0.5];
  const width = (hi - lo) / bins;
  const counts = series.map((s) => {
    const c = new Array<number>(bins).fill(0);
    for (const v of s.values) c[Math.min(bins - 1, Math.floor((v - lo) / width))]!++;
    return c;
  });
  const f = frame({ ...o, title }, [lo, hi], [0, Math.max(1, ...counts.flat())]);
  counts.forEach((c, si) => {
    const pts: string[] = [];
    for (const [b, n] of c.entries())
      pts.push(`${f.x(lo + b * width)},${f.y(n)}`, `${f.x(lo + (b + 1) * width)},${f.y(n)}`);
    const base = `${f.x(hi)},${f.y(0)} ${f.x(lo)},${f.y(0)}`;
    const color = series[si]!.color;
    f.svg.push(
      `<polygon points="${pts.join(' ')} ${base}" fill="${color}" fill-opacity="${series.length > 1 ? 0.15 : 0.35}" stroke="${color}"/>`,
    );
  });
  f.svg.push(legend(series, o.width ?? 640), '</svg>');
  return f.svg.join('');
}

/** Lines through (x, y) points, optionally with a dot per point and a label beside it. */
export function lineChartSvg(
  series: ReadonlyArray<Series & { points: ReadonlyArray<[number, number]>; labels?: readonly string[] }>,
  o: ChartOptions & { dots?: boolean },
): string {
  const pts = series.flatMap((s) => [...s.points]);
  if (pts.length === 0) return emptyChart(o);
  const [xlo, xhi] = extent(pts.map((p) => p[0]));
  const [ylo, yhi] = extent(pts.map((p) => p[1]));
  const f = frame(o, [xlo, xhi], [Math.min(0, ylo), yhi]);
  for (const s of series) {
    const path = s.points.map(([x, y]) => `${f.x(x)},${f.y(y)}`).join(' ');
    f.svg.push(`<polyline points="${path}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`);
    if (o.dots) {
      s.points.forEach(([x, y], i) => {
        f.svg.push(`<circle cx="${f.x(x)}" cy="${f.y(y)}" r="3" fill="${s.color}"/>`);
        const label = s.labels?.[i];
        if (!label) return;
        // Right of the dot, or left of it in the plot's right quarter, and below it at the top edge: inside
        // the frame, so labels are never clipped by the SVG's bounds.
        const w = o.width ?? 640;
        const right = f.x(x) > PAD.left + 0.75 * (w - PAD.left - PAD.right);
        const ly = f.y(y) - 5 < PAD.top + 10 ? f.y(y) + 14 : f.y(y) - 5;
        f.svg.push(
          `<text x="${right ? f.x(x) - 5 : f.x(x) + 5}" y="${ly}" text-anchor="${right ? 'end' : 'start'}" fill="${s.color}">${esc(label)}</text>`,
        );
      });
    }
  }
  f.svg.push(legend(series, o.width ?? 640), '</svg>');
  return f.svg.join('');
}

function emptyChart(o: ChartOptions): string {
  const w = o.width ?? 640;
  return `<svg viewBox="0 0 ${w} 60" width="${w}" height="60" font-family="sans-serif" font-size="12"><text x="8" y="20" font-weight="bold">${esc(o.title)}</text><text x="8" y="42">no data</text></svg>`;
}

function extent(xs: readonly number[]): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const x of xs) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}

function fmtTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}
