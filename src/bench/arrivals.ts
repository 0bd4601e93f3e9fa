// When each request is sent, as offsets from the benchmark's start. vLLM sends the first request at once and
// then waits Gamma(burstiness, 1/(rate·burstiness)) between requests: burstiness 1 is a Poisson process
// (exponential gaps, mean 1/rate); smaller is burstier, larger is more regular. rate = Infinity sends all at 0.
// Offsets are absolute so that timer lateness on a busy machine does not accumulate over a long run.
import { Rng } from './rng.js';

export function arrivalOffsets(n: number, requestRate: number, burstiness: number, seed: number): number[] {
  if (!(requestRate > 0)) throw new Error(`--request-rate must be > 0 or inf, got ${requestRate}`);
  if (!(burstiness > 0)) throw new Error(`--burstiness must be > 0, got ${burstiness}`);
  const offsets = new Array<number>(n).fill(0);
  if (requestRate === Number.POSITIVE_INFINITY) return offsets;
  // A stream apart from the dataset's, so that changing the rate never changes the prompts.
  const rng = new Rng((seed ^ 0x5bd1e995) >>> 0);
  const scale = 1 / (requestRate * burstiness);
  for (let i = 1; i < n; i++) {
    const gap = burstiness === 1 ? rng.exponential(scale) : rng.gamma(burstiness, scale);
    offsets[i] = offsets[i - 1]! + gap;
  }
  return offsets;
}
