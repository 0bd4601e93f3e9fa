// One typed config, validated once at start-up. Every flag has a default and a clear error.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The demo model shipped in the repository: models/stories260K. */
export const defaultModelDir = resolve(repoRoot, 'models', 'stories260K');

export interface EngineConfig {
  model: string;
  revision: string; // Hub revision when model is an org/name repo id
  tokenizer: string; // folder with tokenizer.json; defaults to model (or its folder for a config.json path)
  engine: string; // an engine folder made by `kvserve build` ('' = load --model)
  engineCache: string; // folder of engines built from --model on first start ('' = none)
  loadFormat: 'auto' | 'private' | 'dummy';
  device: 'cpu' | 'cuda' | 'auto';
  dtype: 'auto' | 'float32' | 'bfloat16' | 'float16';
  threads: number; // 0 = all cores
  blockSize: number;
  numKvBlocks: number; // 0 = from the backend's budget
  kvCacheMemoryGiB: number; // cpu KV budget; 0 = default
  gpuMemoryUtilization: number;
  maxNumBatchedTokens: number;
  maxNumSeqs: number;
  maxModelLen: number; // 0 = from config.json
  enablePrefixCaching: boolean;
  seed: number;
  batchInvariant: boolean; // cuda: results bitwise independent of the batch (slower GEMMs)
  quantization: 'none' | 'fp8' | 'int8'; // cuda: quantizes the layer matrices at load (an engine: as it was built)
  kvCacheDtype: 'auto' | 'fp8' | 'fp8_e4m3'; // auto = the compute dtype; fp8 (= fp8_e4m3): cuda, half the bytes
}

export interface ServerConfig extends EngineConfig {
  host: string;
  port: number;
  servedModelName: string; // default: the model folder's name
  apiKey: string | undefined;
  chatTemplate: string | undefined; // a file overriding tokenizer_config.json's template
  toolCallParser: 'auto' | 'hermes' | 'llama3_json' | 'mistral'; // how the model writes tool calls
  maxQueue: number; // waiting sequences (prompts × n) before 503; 0 = unbounded
  bodyLimitBytes: number;
  maxPromptBytes: number; // 0 = derived from the context length and the tokenizer's longest token
  tokenizerWorkers: number; // threads that tokenize prompts and render chat templates
  headerTimeout: number; // seconds for a request's headers to arrive; 0 = none
  requestBodyTimeout: number; // seconds for a whole request (headers and body) to arrive; 0 = none
  keepAliveTimeout: number; // seconds an idle keep-alive connection stays open
  drainTimeout: number; // seconds in-flight requests get to finish after SIGTERM/SIGINT
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'silent';
  allowedOrigins: string; // CORS: comma-separated origins, or *; '' = CORS off
  logFormat: 'auto' | 'json' | 'pretty'; // auto: pretty when stdout is a terminal, else json
  modelsFile: string; // a YAML or JSON list of models to serve ('' = none)
  adminApiKey: string | undefined; // turns the admin API on, behind this bearer key
  restartBackoff: number; // seconds before a failed engine is loaded again (doubling for failures in a row)
  maxRestarts: number; // failures in a row after which a model stays failed
}

type Kind = 'string' | 'int' | 'number' | 'boolean';
export interface FlagSpec {
  key: string;
  kind: Kind;
  help: string;
  metavar?: string; // the value's placeholder in --help (cli-help.ts picks one otherwise)
  choices?: readonly string[];
  min?: number;
  max?: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const engineFlags: Record<string, FlagSpec> = {
  model: {
    key: 'model',
    kind: 'string',
    help: 'model folder, or org/name on the Hugging Face Hub (default: the stories260K demo)',
  },
  revision: {
    key: 'revision',
    kind: 'string',
    help: 'Hub branch, tag or commit of an org/name --model (default main)',
  },
  tokenizer: {
    key: 'tokenizer',
    kind: 'string',
    help: "folder with tokenizer.json, or org/name on the Hub (default: the model's)",
  },
  engine: {
    key: 'engine',
    kind: 'string',
    metavar: 'DIR',
    help: 'serve an engine folder made by kvserve build (instead of --model)',
  },
  'engine-cache': {
    key: 'engineCache',
    kind: 'string',
    metavar: 'DIR',
    help: 'build an engine of --model into this folder on first start and reuse it afterwards',
  },
  'load-format': {
    key: 'loadFormat',
    kind: 'string',
    choices: ['auto', 'private', 'dummy'],
    help: 'auto = mmap the safetensors; private = read them into private memory (a file changed on disk cannot hurt the server); dummy = random weights from config.json alone',
  },
  device: {
    key: 'device',
    kind: 'string',
    choices: ['cpu', 'cuda', 'auto'],
    help: 'auto picks cuda when a GPU is there',
  },
  dtype: {
    key: 'dtype',
    kind: 'string',
    choices: ['auto', 'float32', 'bfloat16', 'float16'],
    help: "weight and compute dtype (auto = the checkpoint's)",
  },
  threads: { key: 'threads', kind: 'int', min: 0, max: 1024, help: 'cpu threads (0 = all cores)' },
  'block-size': { key: 'blockSize', kind: 'int', choices: ['8', '16', '32', '64', '128'], help: 'tokens per KV block' },
  'num-kv-blocks': {
    key: 'numKvBlocks',
    kind: 'int',
    min: 0,
    help: 'KV blocks (0 = as many as the memory budget allows)',
  },
  'kv-cache-memory': {
    key: 'kvCacheMemoryGiB',
    kind: 'number',
    min: 0,
    help: 'cpu KV-cache budget in GiB (0 = default)',
  },
  'gpu-memory-utilization': {
    key: 'gpuMemoryUtilization',
    kind: 'number',
    min: 0.05,
    max: 1,
    help: 'fraction of GPU memory to use',
  },
  'max-num-batched-tokens': { key: 'maxNumBatchedTokens', kind: 'int', min: 1, help: 'token budget of one step' },
  'max-num-seqs': {
    key: 'maxNumSeqs',
    kind: 'int',
    min: 1,
    max: 4096,
    help: "running sequences at most; also caps one request's prompts × n",
  },
  'max-model-len': { key: 'maxModelLen', kind: 'int', min: 0, help: 'context length (0 = from config.json)' },
  'prefix-caching': {
    key: 'enablePrefixCaching',
    kind: 'boolean',
    help: 'automatic prefix caching (--no-prefix-caching to disable)',
  },
  'dummy-seed': { key: 'seed', kind: 'int', min: 0, help: 'seed of the random weights of --load-format dummy' },
  'batch-invariant': {
    key: 'batchInvariant',
    kind: 'boolean',
    help: 'cuda: greedy ids and logprobs bitwise the same whatever else is batched (slower GEMMs; the CPU always is)',
  },
  quantization: {
    key: 'quantization',
    kind: 'string',
    choices: ['none', 'fp8', 'int8'],
    help:
      'cuda: fp8 = the layer matrices as fp8 E4M3 with a scale per output channel, activations quantized per token, FP8 GEMMs; ' +
      'int8 = SmoothQuant W8A8, calibrated on the shipped calibration text as kvserve build does. Quantized at load; ' +
      'with --engine-cache an engine is built once',
  },
  'kv-cache-dtype': {
    key: 'kvCacheDtype',
    kind: 'string',
    choices: ['auto', 'fp8', 'fp8_e4m3'],
    help:
      'KV cache element type: auto = the compute dtype; fp8 (or fp8_e4m3) = e4m3 with one scale per layer for K ' +
      'and V (1.0 unless the engine was calibrated): half the bytes, twice the tokens in the same memory (cuda only)',
  },
};

export const serverFlags: Record<string, FlagSpec> = {
  ...engineFlags,
  host: { key: 'host', kind: 'string', help: 'address to listen on' },
  port: { key: 'port', kind: 'int', min: 0, max: 65535, help: 'port to listen on' },
  'served-model-name': { key: 'servedModelName', kind: 'string', help: 'model id in the API (default: folder name)' },
  'api-key': { key: 'apiKey', kind: 'string', help: 'require this bearer key (also KVSERVE_API_KEY)' },
  'chat-template': { key: 'chatTemplate', kind: 'string', help: "Jinja chat template file overriding the model's" },
  'tool-call-parser': {
    key: 'toolCallParser',
    kind: 'string',
    choices: ['auto', 'hermes', 'llama3_json', 'mistral'],
    help: 'the format the model writes tool calls in; auto: from the chat template (hermes when it shows none)',
  },
  'max-queue': {
    key: 'maxQueue',
    kind: 'int',
    min: 0,
    help: "waiting sequences (prompts × n) before 503; also caps one request's (0 = unbounded)",
  },
  'body-limit': { key: 'bodyLimitBytes', kind: 'int', min: 1024, help: 'largest request body in bytes' },
  'max-prompt-bytes': {
    key: 'maxPromptBytes',
    kind: 'int',
    min: 0,
    help: 'longest prompt text in UTF-8 bytes, refused before tokenizing (0 = what can fit the context)',
  },
  'tokenizer-workers': {
    key: 'tokenizerWorkers',
    kind: 'int',
    min: 1,
    max: 64,
    help: 'threads that tokenize prompts and render chat templates',
  },
  'header-timeout': {
    key: 'headerTimeout',
    kind: 'number',
    min: 0,
    help: "seconds for a request's headers to arrive (0 = no limit)",
  },
  'request-body-timeout': {
    key: 'requestBodyTimeout',
    kind: 'number',
    min: 0,
    help: 'seconds for a whole request, headers and body, to arrive (0 = no limit); responses are not limited',
  },
  'keep-alive-timeout': {
    key: 'keepAliveTimeout',
    kind: 'number',
    min: 0,
    help: 'seconds an idle keep-alive connection stays open',
  },
  'drain-timeout': {
    key: 'drainTimeout',
    kind: 'number',
    min: 0,
    help: 'seconds in-flight requests get to finish after SIGTERM/SIGINT',
  },
  'allowed-origins': {
    key: 'allowedOrigins',
    kind: 'string',
    metavar: 'ORIGINS',
    help: 'browser origins allowed to call the API (CORS), comma-separated, or * for any (default: CORS off)',
  },
  'models-file': {
    key: 'modelsFile',
    kind: 'string',
    metavar: 'FILE',
    help:
      'serve several models, listed in a YAML or JSON file: name, model or engine, and settings of its own ' +
      '(the flags of this list, e.g. max-num-seqs, max-queue, gpu-memory-utilization); see docs/deployment.md',
  },
  'admin-api-key': {
    key: 'adminApiKey',
    kind: 'string',
    metavar: 'KEY',
    help: 'turn on the admin API (/admin/models: load, switch, unload models) behind this bearer key (also KVSERVE_ADMIN_API_KEY)',
  },
  'restart-backoff': {
    key: 'restartBackoff',
    kind: 'number',
    min: 0,
    help: 'seconds before a model whose engine failed is loaded again; doubles with each failure in a row, up to 60',
  },
  'max-restarts': {
    key: 'maxRestarts',
    kind: 'int',
    min: 0,
    help: 'engine failures in a row after which a model stays failed (and /livez answers 503)',
  },
  'log-level': {
    key: 'logLevel',
    kind: 'string',
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'silent'],
    help: 'log level: info has start-up, loading progress and request records; warn and above leave them out',
  },
  'log-format': {
    key: 'logFormat',
    kind: 'string',
    choices: ['auto', 'json', 'pretty'],
    help:
      'the log on stdout: json (one pino object a line: level, time, msg and fields), pretty (one readable line ' +
      'a record), or auto: pretty when stdout is a terminal, else json',
  },
};

export function engineDefaults(): EngineConfig {
  return {
    model: defaultModelDir,
    revision: 'main',
    tokenizer: '',
    engine: '',
    engineCache: '',
    loadFormat: 'auto',
    device: 'auto',
    dtype: 'auto',
    threads: 0,
    blockSize: 16,
    numKvBlocks: 0,
    kvCacheMemoryGiB: 0,
    gpuMemoryUtilization: 0.9,
    maxNumBatchedTokens: 2048,
    maxNumSeqs: 256,
    maxModelLen: 0,
    enablePrefixCaching: true,
    seed: 0,
    batchInvariant: false,
    quantization: 'none',
    kvCacheDtype: 'auto',
  };
}

export function serverDefaults(): ServerConfig {
  return {
    ...engineDefaults(),
    host: '127.0.0.1',
    port: 8000,
    servedModelName: '',
    apiKey: process.env.KVSERVE_API_KEY || undefined,
    chatTemplate: undefined,
    toolCallParser: 'auto',
    maxQueue: 1024,
    bodyLimitBytes: 8 * 1024 * 1024,
    maxPromptBytes: 0,
    tokenizerWorkers: 2,
    headerTimeout: 10,
    requestBodyTimeout: 30,
    keepAliveTimeout: 5, // vLLM's (uvicorn's) default
    drainTimeout: 10,
    logLevel: 'info',
    allowedOrigins: '',
    logFormat: 'auto',
    modelsFile: '',
    adminApiKey: process.env.KVSERVE_ADMIN_API_KEY || undefined,
    restartBackoff: 1,
    maxRestarts: 5,
  };
}

/**
 * Parses `--flag value`, `--flag=value`, `--flag` / `--no-flag` (booleans) against `specs` into `defaults`.
 * Unknown flags and bad values throw ConfigError naming the flag. Returns the config and the positionals.
 */
export function parseFlags<T extends object>(
  argv: string[],
  specs: Record<string, FlagSpec>,
  defaults: T,
): { config: T; rest: string[] } {
  const config = { ...defaults } as Record<string, unknown>;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      rest.push(arg);
      continue;
    }
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    let spec = specs[name];
    if (!spec && name.startsWith('no-') && specs[name.slice(3)]?.kind === 'boolean') {
      spec = specs[name.slice(3)]!;
      if (value !== undefined) throw new ConfigError(`--${name} takes no value`);
      config[spec.key] = false;
      continue;
    }
    if (!spec) throw new ConfigError(`unknown option --${name} (see --help)`);
    if (spec.kind === 'boolean') {
      if (value === undefined) config[spec.key] = true;
      else if (value === 'true' || value === 'false') config[spec.key] = value === 'true';
      else throw new ConfigError(`--${name} must be true or false, got "${value}"`);
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new ConfigError(`--${name} needs a value`);
    }
    config[spec.key] = parseValue(name, spec, value);
  }
  return { config: config as T, rest };
}

export function parseValue(name: string, spec: FlagSpec, raw: string): string | number {
  if (spec.choices && !spec.choices.includes(raw)) {
    throw new ConfigError(`--${name} must be one of ${spec.choices.join(', ')}, got "${raw}"`);
  }
  if (spec.kind === 'string') return raw;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || (spec.kind === 'int' && !Number.isInteger(n))) {
    throw new ConfigError(`--${name} must be ${spec.kind === 'int' ? 'an integer' : 'a number'}, got "${raw}"`);
  }
  if (spec.min !== undefined && n < spec.min) throw new ConfigError(`--${name} must be at least ${spec.min}, got ${n}`);
  if (spec.max !== undefined && n > spec.max) throw new ConfigError(`--${name} must be at most ${spec.max}, got ${n}`);
  return n;
}

/** Cross-field checks and derived defaults, once, after parsing. */
export function finishEngineConfig<T extends EngineConfig>(c: T): T {
  const model = resolve(c.model);
  if (!existsSync(model)) throw new ConfigError(`model not found: ${model}`);
  const tokenizer = c.tokenizer ? resolve(c.tokenizer) : model.endsWith('.json') ? dirname(model) : model;
  if (c.loadFormat !== 'dummy' && model.endsWith('.json')) {
    throw new ConfigError(
      `--model ${model} is a file; give the model folder (a config.json alone needs --load-format dummy)`,
    );
  }
  if (c.kvCacheDtype !== 'auto' && c.device === 'cpu') {
    throw new ConfigError(
      `--kv-cache-dtype ${c.kvCacheDtype} needs the CUDA backend (--device cuda); the CPU backend keeps the KV cache in float32`,
    );
  }
  if (c.maxNumBatchedTokens < c.blockSize) {
    throw new ConfigError(
      `--max-num-batched-tokens (${c.maxNumBatchedTokens}) must be at least --block-size (${c.blockSize})`,
    );
  }
  return { ...c, model, tokenizer };
}

/** finishEngineConfig plus the server's own cross-field checks. */
export function finishServerConfig(c: ServerConfig): ServerConfig {
  // Node refuses a headers timeout above the request timeout (the latter includes the headers).
  if (c.headerTimeout > 0 && c.requestBodyTimeout > 0 && c.headerTimeout > c.requestBodyTimeout) {
    throw new ConfigError(
      `--header-timeout (${c.headerTimeout}) must not exceed --request-body-timeout (${c.requestBodyTimeout}), which includes the headers`,
    );
  }
  corsOrigins(c.allowedOrigins);
  return finishEngineConfig(c);
}

/** --allowed-origins as a list ('*' alone for any origin), each origin as a browser sends it. */
export function corsOrigins(flag: string): string[] {
  const list = flag
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  for (const o of list) {
    if (o !== '*' && !/^[a-z][a-z0-9+.-]*:\/\/[^/\s]+$/i.test(o)) {
      throw new ConfigError(`--allowed-origins: "${o}" is not an origin (scheme://host[:port], no path) or *`);
    }
  }
  if (list.includes('*') && list.length > 1)
    throw new ConfigError('--allowed-origins: * allows every origin; list origins or give * alone');
  return list;
}

export function defaultThreads(): number {
  return availableParallelism();
}
