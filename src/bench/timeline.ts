// Output tokens and requests in flight over time, in fixed bins from the benchmark's start. Content chunks are
// placed at start + TTFT + the running sum of ITLs (the only token times a streaming client knows); a request
// whose chunks hold several tokens spreads its token count evenly over them, so the bins sum to the run's
// output tokens. With 1 s bins the maxima are vLLM's max_output_tokens_per_s and max_concurrent_requests.
import type { RequestOutput } from './types.js';

export interface Timeline {
  binS: number;
  /** output tokens that arrived in each bin */
  tokens: number[];
  /** successful requests active (sent, last content not yet in) at some point of each bin */
  concurrent: number[];
}

export function timeline(outputs: readonly RequestOutput[], outputLens: readonly number[], binS: number): Timeline {
  let end = 0;
  for (const o of outputs) if (o.success) end = Math.max(end, o.startTime + o.latency);
  const bins = Math.floor(end / binS) + 1;
  const tokens = new Array<number>(bins).fill(0);
  const concurrent = new Array<number>(bins).fill(0);
  outputs.forEach((o, i) => {
    if (!o.success || o.contentChunks === 0) return;
    const perChunk = outputLens[i]! / o.contentChunks;
    let t = o.startTime + o.ttft;
    tokens[bin(t, binS, bins)]! += perChunk;
    for (const gap of o.itl) {
      t += gap;
      tokens[bin(t, binS, bins)]! += perChunk;
    }
    const last = bin(o.startTime + o.latency, binS, bins);
    for (let b = bin(o.startTime, binS, bins); b <= last; b++) concurrent[b]!++;
  });
  return { binS, tokens, concurrent };
}

function bin(t: number, binS: number, bins: number): number {
  return Math.min(bins - 1, Math.max(0, Math.floor(t / binS)));
}
