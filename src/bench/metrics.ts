// From per-request measurements to the run's metrics, by vLLM's `calculate_metrics` rules:
// - output tokens of a request: usage.completion_tokens when the server sent it, else the tokenizer's count of
//   the generated text, else (no tokenizer) the number of content chunks — the report says which was used;
// - TPOT = (E2EL − TTFT) / (output tokens − 1), only for requests with more than one output token; for goodput
//   a request with one token has TPOT 0;
// - ITL pools the gaps of all requests; throughputs divide by the run's wall duration;
// - goodput counts completed requests meeting every given SLO (value ≤ SLO), per second.
import { summarize, type Summary } from './stats.js';
import type { BenchTokenizer, RequestOutput } from './types.js';

export interface GoodputSlo {
  ttft?: number; // ms
  tpot?: number; // ms
  e2el?: number; // ms
}

export type TokenSource = 'usage' | 'tokenizer' | 'chunks';

export interface BenchMetrics {
  completed: number;
  failed: number;
  totalInput: number;
  totalOutput: number;
  durationS: number;
  requestThroughput: number;
  requestGoodput: number | undefined;
  outputThroughput: number;
  totalTokenThroughput: number;
  ttft: Summary; // ms
  tpot: Summary; // ms
  itl: Summary; // ms
  e2el: Summary; // ms
  maxOutputTokensPerS: number;
  maxConcurrentRequests: number;
  /** per request, in dataset order; 0 for failures */
  outputLens: number[];
  inputLens: number[];
  /** how many successful requests had their output tokens counted each way */
  tokenSources: Record<TokenSource, number>;
  /** successful requests whose input length came from the server's usage.prompt_tokens */
  inputFromUsage: number;
}

export interface MetricsInput {
  outputs: RequestOutput[];
  durationS: number;
  percentiles: number[];
  goodput: GoodputSlo | undefined;
  tokenizer: BenchTokenizer | undefined;
  /** the dataset's prompt lengths are tokenizer-exact; when not, usage.prompt_tokens is preferred */
  exactInputLens: boolean;
}

export function computeMetrics(m: MetricsInput): BenchMetrics {
  const ttfts: number[] = [];
  const tpots: number[] = [];
  const allTpots: number[] = [];
  const itls: number[] = [];
  const e2els: number[] = [];
  const outputLens: number[] = [];
  const inputLens: number[] = [];
  const tokenSources: Record<TokenSource, number> = { usage: 0, tokenizer: 0, chunks: 0 };
  let inputFromUsage = 0;
  let totalInput = 0;
  let completed = 0;

  for (const o of m.outputs) {
    let inputLen = o.promptLen;
    if (!m.exactInputLens && o.usagePromptTokens !== undefined) {
      inputLen = o.usagePromptTokens;
      if (o.success) inputFromUsage++;
    }
    inputLens.push(inputLen);
    if (!o.success) {
      outputLens.push(0);
      continue;
    }
    const [outputLen, source] = outputTokens(o, m.tokenizer);
    tokenSources[source]++;
    outputLens.push(outputLen);
    totalInput += inputLen;
    let tpot = 0;
    if (outputLen > 1) {
      tpot = (o.latency - o.ttft) / (outputLen - 1);
      tpots.push(tpot);
    }
    allTpots.push(tpot);
    for (const gap of o.itl) itls.push(gap);
    ttfts.push(o.ttft);
    e2els.push(o.latency);
    completed++;
  }

  const totalOutput = outputLens.reduce((a, b) => a + b, 0);
  const d = m.durationS > 0 ? m.durationS : Number.NaN;
  const perSecond = timeline(m.outputs, outputLens, PEAK_BIN_S);
  return {
    completed,
    failed: m.outputs.length - completed,
    totalInput,
    totalOutput,
    durationS: m.durationS,
    requestThroughput: completed / d,
    requestGoodput: m.goodput ? goodCount(m.goodput, ttfts, allTpots, e2els) / d : undefined,
    outputThroughput: totalOutput / d,
    totalTokenThroughput: (totalInput + totalOutput) / d,
    ttft: summarize(ttfts, m.percentiles, 1000),
    tpot: summarize(tpots, m.percentiles, 1000),
    itl: summarize(itls, m.percentiles, 1000),
    e2el: summarize(e2els, m.percentiles, 1000),
    maxOutputTokensPerS: perSecond.tokens.reduce((a, b) => Math.max(a, b), 0) / PEAK_BIN_S,
    maxConcurrentRequests: perSecond.concurrent.reduce((a, b) => Math.max(a, b), 0),
    outputLens,
    inputLens,
    tokenSources,
    inputFromUsage,
  };
}

/** A request's output tokens and where the count came from. */
export function outputTokens(o: RequestOutput, tokenizer: BenchTokenizer | undefined): [number, TokenSource] {
  if (o.usageOutputTokens) return [o.usageOutputTokens, 'usage'];
  if (tokenizer) return [tokenizer.encode(o.generatedText, false).length, 'tokenizer'];
  return [o.contentChunks, 'chunks'];
}

/** Requests meeting every SLO; the arrays are in seconds and aligned by successful request. */
function goodCount(slo: GoodputSlo, ttfts: number[], tpots: number[], e2els: number[]): number {
  let good = 0;
  for (let i = 0; i < ttfts.length; i++) {
    if (slo.ttft !== undefined && ttfts[i]! * 1000 > slo.ttft) continue;
    if (slo.tpot !== undefined && tpots[i]! * 1000 > slo.tpot) continue;
    if (slo.e2el !== undefined && e2els[i]! * 1000 > slo.e2el) continue;
    good++;
  }
  return good;
}

/** `ttft:500 tpot:50` or `ttft:500,tpot:50` → SLOs in ms; a clear error for anything else. */
export function parseGoodput(spec: string): GoodputSlo {
  const slo: GoodputSlo = {};
  for (const part of spec.split(/[\s,]+/).filter(Boolean)) {
    const m = /^(ttft|tpot|e2el):(.+)$/.exec(part);
    const v = m ? Number(m[2]) : Number.NaN;
    if (!m || !Number.isFinite(v) || v < 0) {
      throw new Error(`--goodput: "${part}" is not KEY:MS with KEY one of ttft, tpot, e2el and MS a number ≥ 0`);
    }
    slo[m[1] as keyof GoodputSlo] = v;
  }
  if (Object.keys(slo).length === 0) throw new Error('--goodput needs at least one of ttft:MS tpot:MS e2el:MS');
  return slo;
}

// Output tokens and requests in flight over time, in fixed bins from the benchmark's start. Content chunks are
// placed at start + TTFT + the running sum of ITLs (the only token times a streaming client knows); a request
// whose chunks hold several tokens spreads its token count evenly over them, so the bins sum to the run's
// output tokens. With 1 s bins the maxima are vLLM's max_output_tokens_per_s and max_concurrent_requests.
/** The one bin width of the peaks and of the HTML's over-time charts: vLLM's 1 s, so peaks compare across tools. */
export const PEAK_BIN_S = 1;

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
