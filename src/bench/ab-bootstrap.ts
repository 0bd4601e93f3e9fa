// B / A ratios of an A/B run with a 95 % confidence interval from a paired bootstrap over requests: request i
// went to both servers with the same prompt, so the pairs (a_i, b_i) are resampled together, which keeps the
// prompt-to-prompt variation out of the interval. The statistic is mean(b) / mean(a) over the resample; the
// interval is the 2.5th and 97.5th percentiles of RESAMPLES of it. The resampling is seeded, so the same
// result files give the same report.
import { outputTokens } from './metrics.js';
import { Rng } from './rng.js';
import { mean, percentileSorted } from './stats.js';
import type { BenchTokenizer, RequestOutput } from './types.js';

export const RESAMPLES = 2000;
export const BOOTSTRAP_SEED = 20240601;

export interface RatioCi {
  ratio: number;
  lo: number;
  hi: number;
  /** pairs in which both requests succeeded (and, for TPOT, made more than one token) */
  pairs: number;
}

/** mean(b) / mean(a) and its bootstrap interval; NaNs when there are no pairs or mean(a) is 0. */
export function bootstrapRatio(a: readonly number[], b: readonly number[], seed = BOOTSTRAP_SEED): RatioCi {
  if (a.length !== b.length) throw new Error(`bootstrapRatio: ${a.length} values of A against ${b.length} of B`);
  const n = a.length;
  const ratio = mean(b) / mean(a);
  if (n === 0 || !Number.isFinite(ratio)) return { ratio: Number.NaN, lo: Number.NaN, hi: Number.NaN, pairs: n };
  const rng = new Rng(seed);
  const stats = new Array<number>(RESAMPLES);
  for (let r = 0; r < RESAMPLES; r++) {
    let sa = 0;
    let sb = 0;
    for (let k = 0; k < n; k++) {
      const i = rng.int(0, n - 1);
      sa += a[i]!;
      sb += b[i]!;
    }
    stats[r] = sb / sa;
  }
  stats.sort((x, y) => x - y);
  return { ratio, lo: percentileSorted(stats, 2.5), hi: percentileSorted(stats, 97.5), pairs: n };
}

export type PairedMetric = 'ttft' | 'tpot' | 'itl' | 'e2el';

/** Per-request values (ms) of one metric for the pairs where both sides have it; ITL is the request's mean gap. */
export function pairedValues(
  metric: PairedMetric,
  a: readonly RequestOutput[],
  b: readonly RequestOutput[],
  tokenizer: BenchTokenizer | undefined,
): [number[], number[]] {
  const va: number[] = [];
  const vb: number[] = [];
  for (let i = 0; i < a.length; i++) {
    const x = value(metric, a[i]!, tokenizer);
    const y = value(metric, b[i]!, tokenizer);
    if (x === undefined || y === undefined) continue;
    va.push(x);
    vb.push(y);
  }
  return [va, vb];
}

function value(metric: PairedMetric, o: RequestOutput, tokenizer: BenchTokenizer | undefined): number | undefined {
  if (!o.success) return undefined;
  if (metric === 'ttft') return o.ttft * 1000;
  if (metric === 'e2el') return o.latency * 1000;
  if (metric === 'itl') return o.itl.length === 0 ? undefined : mean(o.itl) * 1000;
  const [tokens] = outputTokens(o, tokenizer);
  return tokens > 1 ? ((o.latency - o.ttft) / (tokens - 1)) * 1000 : undefined;
}
