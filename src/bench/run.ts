// One measured run at one request rate, from the prepared setup to the metrics and the result JSON;
// and writing a result file with its HTML report beside it.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { runBenchmark } from './benchmark.js';
import { computeMetrics, type BenchMetrics } from './metrics.js';
import type { BenchOptions } from './options.js';
import { resultJson, type BenchResultJson, type RunInfo } from './result-json.js';
import type { BenchSetup } from './setup.js';

export interface RunReport {
  info: RunInfo;
  metrics: BenchMetrics;
  json: BenchResultJson;
}

export async function measureRun(o: BenchOptions, s: BenchSetup, requestRate: number): Promise<RunReport> {
  const date = new Date();
  const rateLabel = Number.isFinite(requestRate) ? `${requestRate} req/s` : 'all at once';
  const { outputs, durationS } = await runBenchmark({
    endpoint: s.endpoint,
    requests: s.dataset.requests,
    requestRate,
    burstiness: o.burstiness,
    maxConcurrency: o.maxConcurrency,
    seed: o.seed,
    label: rateLabel,
  });
  const metrics = computeMetrics({
    outputs,
    durationS,
    percentiles: o.percentiles,
    goodput: o.goodput,
    tokenizer: s.tokenizer,
    exactInputLens: s.dataset.exactLengths,
  });
  const info: RunInfo = {
    date,
    endpoint: s.endpoint.endpoint,
    baseUrl: s.endpoint.baseUrl,
    modelId: s.endpoint.model,
    tokenizerId: o.tokenizer,
    dataset: s.datasetLabel,
    numPrompts: s.dataset.requests.length,
    requestRate,
    burstiness: o.burstiness,
    maxConcurrency: o.maxConcurrency,
    ignoreEos: o.ignoreEos,
    goodput: o.goodput,
    notes: s.dataset.notes,
  };
  return { info, metrics, json: resultJson(info, metrics, outputs, o.percentiles) };
}

/** The HTML report's path: --html, else the result file's name with .html, else none. */
export function htmlPath(o: BenchOptions): string | undefined {
  if (o.html) return o.html;
  if (!o.resultFile) return undefined;
  return o.resultFile.replace(/\.json$/i, '') + '.html';
}

export async function writeText(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}
