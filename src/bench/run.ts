// A run from start to finish: the setup everything needs before the first request (model id, tokenizer,
// dataset; a sweep builds one per rate, seed + i, so no rate is served from the prefix cache of another), one measured
// run at one request rate to metrics and result JSON, and the writing of result files.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { resolveModelDir } from '../hub/resolve-model.js';
import { TextTokenizer } from '../tokenizer/tokenizer.js';
import { runBenchmark } from './benchmark.js';
import { randomDataset } from './dataset-random.js';
import { loadShareGpt } from './dataset-sharegpt.js';
import { computeMetrics, type BenchMetrics } from './metrics.js';
import type { BenchOptions } from './options.js';
import { resultJson, type BenchResultJson, type RunInfo } from './result-json.js';
import { authHeaders, endpointUrl, type EndpointConfig } from './stream-request.js';
import type { BenchTokenizer, Dataset } from './types.js';

export interface BenchSetup {
  endpoint: EndpointConfig;
  tokenizer: BenchTokenizer | undefined;
  dataset: Dataset;
  /** how the dataset is described in reports */
  datasetLabel: string;
}

export async function prepareBench(o: BenchOptions): Promise<BenchSetup> {
  const model = o.model ?? (await firstModel(o.baseUrl, o.apiKey));
  const tokenizer = o.tokenizer
    ? await TextTokenizer.load(
        await resolveModelDir(o.tokenizer, { set: 'tokenizer', revision: o.tokenizerRevision, progress: true }),
      )
    : undefined;
  let dataset: Dataset;
  let datasetLabel: string;
  if (o.dataset === 'random') {
    const outputLen = o.outputLen ?? 128;
    dataset = randomDataset(
      { numPrompts: o.numPrompts, inputLen: o.inputLen, outputLen, rangeRatio: o.rangeRatio, seed: o.seed },
      tokenizer,
    );
    datasetLabel = `random (input ${o.inputLen}, output ${outputLen}, range ratio ${o.rangeRatio})`;
  } else {
    dataset = await loadShareGpt(
      o.dataset,
      { numPrompts: o.numPrompts, outputLen: o.outputLen, seed: o.seed },
      tokenizer,
    );
    datasetLabel = `ShareGPT ${o.dataset}${o.outputLen ? ` (output ${o.outputLen})` : ''}`;
  }
  return {
    endpoint: { baseUrl: o.baseUrl, endpoint: o.endpoint, model, apiKey: o.apiKey, ignoreEos: o.ignoreEos },
    tokenizer,
    dataset,
    datasetLabel,
  };
}

/** The first model id the server lists; a clear error when it lists none or cannot be reached. */
export async function firstModel(baseUrl: string, apiKey: string | undefined): Promise<string> {
  const url = endpointUrl(baseUrl, '/v1/models');
  let res: Response;
  try {
    res = await fetch(url, { headers: authHeaders(apiKey) });
  } catch (e) {
    const cause = (e as { cause?: { message?: string } }).cause?.message;
    throw new Error(
      `cannot reach ${url} to pick a model: ${cause ?? (e as Error).message} (is the server up? or pass --model)`,
    );
  }
  if (!res.ok) throw new Error(`GET ${url} answered HTTP ${res.status}; pass --model (and --api-key if it needs one)`);
  const body = (await res.json().catch(() => undefined)) as { data?: Array<{ id?: unknown }> } | undefined;
  const id = body?.data?.[0]?.id;
  if (typeof id !== 'string') throw new Error(`GET ${url} listed no model; pass --model`);
  return id;
}

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
  return `${o.resultFile.replace(/\.json$/i, '')}.html`;
}

export async function writeText(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}
