// `kvserve bench` flags, parsed with the project's one flag parser (config.ts) and validated once here, with a
// clear message for every bad value. Names follow vLLM's `bench serve` where it has the same option.
import { formatOptions } from '../cli-help.js';
import { ConfigError, parseFlags } from '../config.js';
import { parseGoodput, type GoodputSlo } from './metrics.js';
import type { Endpoint } from './stream-request.js';

export interface BenchOptions {
  baseUrl: string;
  /** two with `--base-url A --base-url B`: an A/B run (ab-run.ts); else [baseUrl] */
  baseUrls: string[];
  /** `--input-lens 128,512,...`: TTFT against prompt length (prefill-curve.ts) */
  inputLens: number[] | undefined;
  /** streams kept busy beside the measured request of a prefill curve */
  backgroundStreams: number;
  endpoint: Endpoint;
  model: string | undefined;
  apiKey: string | undefined;
  tokenizer: string | undefined;
  tokenizerRevision: string;
  /** 'random' or a ShareGPT JSON file */
  dataset: string;
  inputLen: number;
  /** undefined: 128 for random, the reference completion's length for ShareGPT */
  outputLen: number | undefined;
  rangeRatio: number;
  numPrompts: number;
  requestRate: number;
  burstiness: number;
  maxConcurrency: number | undefined;
  seed: number;
  ignoreEos: boolean;
  warmup: number;
  goodput: GoodputSlo | undefined;
  percentiles: number[];
  resultFile: string | undefined;
  html: string | undefined;
  sweepRates: number[] | undefined;
  compare: [string, string] | undefined;
}

const flags = {
  'base-url': {
    key: 'baseUrl',
    kind: 'string',
    help: 'server address (default http://127.0.0.1:8000); give it twice for an A/B run of two servers',
  },
  'input-lens': {
    key: 'inputLens',
    kind: 'string',
    help: 'L1,L2,...: TTFT against prompt length, one request at a time per length (random dataset)',
  },
  'background-streams': {
    key: 'backgroundStreams',
    kind: 'int',
    min: 0,
    help: 'with --input-lens: requests kept in flight beside the measured one (default 0)',
  },
  endpoint: {
    key: 'endpoint',
    kind: 'string',
    choices: ['/v1/completions', '/v1/chat/completions'],
    help: 'API to call (default /v1/completions)',
  },
  model: { key: 'model', kind: 'string', metavar: 'NAME', help: 'model id (default: the first of /v1/models)' },
  'api-key': { key: 'apiKey', kind: 'string', help: 'bearer key (default: $OPENAI_API_KEY or $KVSERVE_API_KEY)' },
  tokenizer: {
    key: 'tokenizer',
    kind: 'string',
    help: 'folder with tokenizer.json, or org/name on the Hub: exact prompt lengths, output tokens without usage',
  },
  'tokenizer-revision': {
    key: 'tokenizerRevision',
    kind: 'string',
    help: 'Hub branch, tag or commit of an org/name --tokenizer (default main)',
  },
  dataset: { key: 'dataset', kind: 'string', help: '"random" (default) or a ShareGPT-format JSON file' },
  'input-len': { key: 'inputLen', kind: 'int', min: 1, help: 'random dataset: prompt tokens (default 1024)' },
  'output-len': {
    key: 'outputLen',
    kind: 'int',
    min: 1,
    help: "max_tokens (default 128; ShareGPT: the reference reply's length)",
  },
  'range-ratio': {
    key: 'rangeRatio',
    kind: 'number',
    min: 0,
    max: 0.999999,
    help: 'random dataset: lengths uniform in L·[1−r, 1+r] (default 0)',
  },
  'num-prompts': { key: 'numPrompts', kind: 'int', min: 1, help: 'requests to send (default 1000)' },
  'request-rate': {
    key: 'requestRate',
    kind: 'string',
    help: 'Poisson arrivals per second, or inf to send all at once (default inf)',
  },
  burstiness: {
    key: 'burstiness',
    kind: 'number',
    min: 1e-6,
    help: 'gamma shape of the gaps; 1 = Poisson (default 1)',
  },
  'max-concurrency': {
    key: 'maxConcurrency',
    kind: 'int',
    min: 1,
    help: 'requests in flight at most (default unlimited)',
  },
  seed: { key: 'seed', kind: 'int', min: 0, help: 'seed of the dataset and the arrivals (default 0)' },
  'ignore-eos': { key: 'ignoreEos', kind: 'boolean', help: 'send ignore_eos: true so every request makes max_tokens' },
  warmup: {
    key: 'warmup',
    kind: 'int',
    min: 0,
    help: 'unmeasured requests first; all failing aborts the run (default 1)',
  },
  goodput: { key: 'goodput', kind: 'string', help: 'SLOs, e.g. ttft:500 tpot:50 e2el:10000 (ms)' },
  percentiles: { key: 'percentiles', kind: 'string', help: 'comma-separated percentiles to report (default 99)' },
  'result-file': {
    key: 'resultFile',
    kind: 'string',
    help: 'write the JSON result here and the HTML report beside it (.html)',
  },
  html: { key: 'html', kind: 'string', help: 'write the HTML report here (default: beside --result-file)' },
  'sweep-rates': {
    key: 'sweepRates',
    kind: 'string',
    help: 'r1,r2,...: one run per request rate, latency against throughput',
  },
  compare: { key: 'compare', kind: 'string', help: 'A.json B.json: render two result files side by side' },
} as const;

export const benchHelp = `Usage: kvserve bench [options]

Benchmarks an OpenAI-compatible server with streamed requests: time to first token, inter-token latency,
time per output token, end-to-end latency and throughput, with vLLM's definitions and result-file fields.

${formatOptions(flags)}

Examples:
  kvserve bench --base-url http://127.0.0.1:8000 --tokenizer MODEL_DIR --input-len 256 --output-len 128 \\
      --num-prompts 200 --request-rate 8 --result-file run.json
  kvserve bench --dataset ShareGPT_V3.json --tokenizer MODEL_DIR --sweep-rates 1,2,4,8 --result-file sweep.json
  kvserve bench --input-lens 32,64,128,256 --output-len 16 --num-prompts 10 --tokenizer MODEL_DIR
  kvserve bench --base-url http://127.0.0.1:8000 --base-url http://127.0.0.1:8001 --input-len 128 --output-len 64
  kvserve bench --compare a.json b.json --html compare.html`;

/** Flags that take several words (vLLM's nargs): `--goodput ttft:500 tpot:50`, `--compare A.json B.json`. */
function joinMultiWord(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--goodput') {
      const words: string[] = [];
      while (i + 1 < argv.length && /^[a-z0-9_]+:/i.test(argv[i + 1]!)) words.push(argv[++i]!);
      out.push(arg, words.join(','));
    } else if (arg === '--compare') {
      const words = argv.slice(i + 1, i + 3);
      if (words.length < 2 || words.some((w) => w.startsWith('--')))
        throw new ConfigError('--compare needs two result files: --compare A.json B.json');
      i += 2;
      out.push(`--compare=${words.join('\n')}`);
    } else {
      out.push(arg);
    }
  }
  return out;
}

export function parseBenchArgs(argv: string[]): BenchOptions {
  const defaults = {
    baseUrl: 'http://127.0.0.1:8000',
    inputLens: undefined as string | undefined,
    backgroundStreams: 0,
    endpoint: '/v1/completions',
    model: undefined as string | undefined,
    apiKey: process.env.OPENAI_API_KEY || process.env.KVSERVE_API_KEY || undefined,
    tokenizer: undefined as string | undefined,
    tokenizerRevision: 'main',
    dataset: 'random',
    inputLen: 1024,
    outputLen: undefined as number | undefined,
    rangeRatio: 0,
    numPrompts: 1000,
    requestRate: 'inf',
    burstiness: 1,
    maxConcurrency: undefined as number | undefined,
    seed: 0,
    ignoreEos: false,
    warmup: 1,
    goodput: undefined as string | undefined,
    percentiles: '99',
    resultFile: undefined as string | undefined,
    html: undefined as string | undefined,
    sweepRates: undefined as string | undefined,
    compare: undefined as string | undefined,
  };
  const { config: c, rest } = parseFlags(joinMultiWord(argv), flags, defaults);
  if (rest.length > 0) throw new ConfigError(`unexpected argument "${rest[0]}" (see --help)`);
  const baseUrls = baseUrlValues(argv);
  if (baseUrls.length === 0) baseUrls.push(c.baseUrl);
  if (baseUrls.length > 2) throw new ConfigError(`--base-url: at most two servers (A and B), got ${baseUrls.length}`);
  for (const url of baseUrls) {
    try {
      new URL(url);
    } catch {
      throw new ConfigError(`--base-url must be a URL such as http://127.0.0.1:8000, got "${url}"`);
    }
  }
  const inputLens = c.inputLens === undefined ? undefined : parseLengths(c.inputLens);
  if (inputLens && baseUrls.length > 1) throw new ConfigError('--input-lens takes one --base-url');
  if (c.backgroundStreams > 0 && !inputLens) throw new ConfigError('--background-streams needs --input-lens');
  if ((inputLens || baseUrls.length > 1) && (c.sweepRates !== undefined || c.dataset !== 'random'))
    throw new ConfigError('--input-lens and two --base-url take the random dataset and no --sweep-rates');
  return {
    ...c,
    baseUrls,
    inputLens,
    endpoint: c.endpoint as Endpoint,
    requestRate: parseRate('--request-rate', c.requestRate),
    goodput: c.goodput === undefined ? undefined : wrap(() => parseGoodput(c.goodput!)),
    percentiles: parsePercentiles(c.percentiles),
    sweepRates:
      c.sweepRates === undefined ? undefined : c.sweepRates.split(',').map((r) => parseRate('--sweep-rates', r.trim())),
    compare: c.compare === undefined ? undefined : (c.compare.split('\n') as [string, string]),
  };
}

/** Every value of --base-url in order (the flag parser keeps only the last). */
function baseUrlValues(argv: string[]): string[] {
  const urls: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith('--base-url=')) urls.push(arg.slice('--base-url='.length));
    else if (arg === '--base-url' && i + 1 < argv.length) urls.push(argv[++i]!);
  }
  return urls;
}

function parseLengths(raw: string): number[] {
  const lens = raw.split(',').map((s) => Number(s.trim()));
  if (raw.trim() === '' || lens.some((l) => !Number.isInteger(l) || l < 1))
    throw new ConfigError(`--input-lens must be positive integers separated by commas, got "${raw}"`);
  return lens;
}

export function parseRate(flag: string, raw: string): number {
  if (raw === 'inf') return Number.POSITIVE_INFINITY;
  const r = Number(raw);
  if (raw.trim() === '' || !(r > 0) || !Number.isFinite(r))
    throw new ConfigError(`${flag}: "${raw}" is not a positive number or inf`);
  return r;
}

function parsePercentiles(raw: string): number[] {
  const ps = raw.split(',').map((s) => Number(s.trim()));
  if (raw.trim() === '' || ps.some((p) => !(p > 0 && p <= 100)))
    throw new ConfigError(`--percentiles must be numbers in (0, 100], got "${raw}"`);
  return ps;
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}
