// Everything a run needs before the first request: the model id (asked of /v1/models when not given), the
// tokenizer, the dataset and the endpoint settings. Built once and shared by every rate of a sweep, so that
// all rates send the same prompts.
import { TextTokenizer } from '../tokenizer/tokenizer.js';
import { randomDataset } from './dataset-random.js';
import { loadShareGpt } from './dataset-sharegpt.js';
import type { BenchOptions } from './options.js';
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
  const tokenizer = o.tokenizer ? await TextTokenizer.load(o.tokenizer) : undefined;
  let dataset: Dataset;
  let datasetLabel: string;
  if (o.dataset === 'random') {
    const outputLen = o.outputLen ?? 128;
    dataset = randomDataset({ numPrompts: o.numPrompts, inputLen: o.inputLen, outputLen, rangeRatio: o.rangeRatio, seed: o.seed }, tokenizer);
    datasetLabel = `random (input ${o.inputLen}, output ${outputLen}, range ratio ${o.rangeRatio})`;
  } else {
    dataset = await loadShareGpt(o.dataset, { numPrompts: o.numPrompts, outputLen: o.outputLen, seed: o.seed }, tokenizer);
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
    throw new Error(`cannot reach ${url} to pick a model: ${cause ?? (e as Error).message} (is the server up? or pass --model)`);
  }
  if (!res.ok) throw new Error(`GET ${url} answered HTTP ${res.status}; pass --model (and --api-key if it needs one)`);
  const body = (await res.json().catch(() => undefined)) as { data?: Array<{ id?: unknown }> } | undefined;
  const id = body?.data?.[0]?.id;
  if (typeof id !== 'string') throw new Error(`GET ${url} listed no model; pass --model`);
  return id;
}
