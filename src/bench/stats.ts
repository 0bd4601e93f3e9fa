// Summary statistics with numpy's conventions, so numbers match vLLM's result files for the same samples:
// std is the population std (ddof = 0), percentiles interpolate linearly between order statistics
// (numpy's default 'linear' method), and an empty sample summarises to zeros (vLLM's `np.mean(x or 0)`).

export interface Summary {
  mean: number;
  median: number;
  std: number;
  /** [percentile, value] in the order asked */
  percentiles: Array<[number, number]>;
}

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

export function std(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return Math.sqrt(s / xs.length);
}

/** `p` in [0, 100] of an ascending-sorted sample. */
export function percentileSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

/** Summary of `xs` multiplied by `scale` (1000 turns seconds into milliseconds). */
export function summarize(xs: readonly number[], percentiles: readonly number[], scale = 1): Summary {
  const sorted = xs.map((x) => x * scale).sort((a, b) => a - b);
  return {
    mean: mean(sorted),
    median: percentileSorted(sorted, 50),
    std: std(sorted),
    percentiles: percentiles.map((p) => [p, percentileSorted(sorted, p)]),
  };
}

/** vLLM's key for a percentile: 99 → "99", 99.9 → "99.9" (Python's str(int(p)) or str(p); JS's String agrees). */
export function percentileKey(p: number): string {
  return String(p);
}
