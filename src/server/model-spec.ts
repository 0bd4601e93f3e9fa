// What one served model is: its name, what it loads (a model folder or Hub id, or an engine folder) and its own
// settings over the server's flags. The same keys come from three places, checked the same way: repeated
// `--model NAME=DIR` flags, a `--models-file` (YAML or JSON), and the admin API's bodies. Keys are the serve
// flags' names (`max-num-seqs`, or `max_num_seqs` as JSON usually spells them); values keep the flags' bounds.
import { existsSync, readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError, engineDefaults, engineFlags, parseValue, serverFlags, type ServerConfig } from '../config.js';

export interface ModelSpec {
  name: string;
  /** The server's flags with this model's settings over them (Hub ids not resolved yet: the loader does). */
  config: ServerConfig;
  /** Its gpu-memory-utilization: the fraction of the GPU's memory its engine may hold (weights, activations, KV). */
  gpuShare: number;
  /** What it loads, as given: a model folder, a Hub id or an engine folder. */
  source: string;
}

/** A bad value, naming the key (the admin API's `param`). */
export class SpecError extends ConfigError {
  constructor(
    message: string,
    readonly param: string | null,
  ) {
    super(message);
  }
}

/** Settings a model has of its own: every engine flag and the per-model server ones. */
const MODEL_FLAGS = [
  ...Object.keys(engineFlags),
  'chat-template',
  'max-queue',
  'max-prompt-bytes',
  'tokenizer-workers',
].filter((k) => k !== 'model' && k !== 'engine');
export const MODEL_KEYS = ['name', 'model', 'engine', ...MODEL_FLAGS];

/** Names appear in URLs (/admin/models/NAME) and in `model` fields: no spaces or control characters. */
const NAME = /^[A-Za-z0-9][\w.:/-]{0,127}$/;

/** `--model NAME=DIR` → { name, model }; a plain `--model DIR` (or a path that exists as given) has no name. */
export function namedModelArg(arg: string): { name?: string; model: string } {
  const eq = arg.indexOf('=');
  if (eq <= 0 || existsSync(arg)) return { model: arg };
  const name = arg.slice(0, eq);
  if (!NAME.test(name) || name.includes('/')) return { model: arg };
  const model = arg.slice(eq + 1);
  if (!model) throw new ConfigError(`--model ${arg}: give a model folder or Hub id after ${name}=`);
  return { name, model };
}

/** The entries of a models file: `models: [...]` or a list at the top, in YAML or JSON. */
export function readModelsFile(path: string): unknown[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`--models-file ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = extname(path) === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError(
      `--models-file ${path} is not valid ${extname(path) === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message}`,
    );
  }
  const list = Array.isArray(doc) ? doc : (doc as { models?: unknown } | null)?.models;
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError(
      `--models-file ${path}: expected a list of models (or "models:" with one), each with a name and a model or engine`,
    );
  }
  return list;
}

/**
 * One model's spec from an object of settings over `base` (the server's parsed flags). `where` starts each
 * error ("models file entry 2"); `share` is its gpu-memory-utilization unless it names its own.
 */
export function modelSpec(entry: unknown, base: ServerConfig, where: string, share: number): ModelSpec {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new SpecError(`${where}: expected an object with a name and a model or engine`, null);
  }
  const fields = new Map<string, unknown>();
  for (const [k, v] of Object.entries(entry)) fields.set(k.replaceAll('_', '-'), v);
  const name = fields.get('name');
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new SpecError(
      `${where}: "name" must be a string of letters, digits and . _ : / - (at most 128, starting with a letter or digit)`,
      'name',
    );
  }
  const at = `${where} ("${name}")`;
  const model = fields.get('model');
  const engine = fields.get('engine');
  if ((model === undefined) === (engine === undefined)) {
    throw new SpecError(
      `${at}: give either "model" (a folder or Hub id) or "engine" (a kvserve build folder)`,
      'model',
    );
  }
  for (const [key, v] of [
    ['model', model],
    ['engine', engine],
  ] as const) {
    if (v !== undefined && (typeof v !== 'string' || v === ''))
      throw new SpecError(`${at}: "${key}" must be a path`, key);
  }
  const config: Record<string, unknown> = {
    ...base,
    servedModelName: name,
    model: typeof model === 'string' ? model : engineDefaults().model,
    engine: typeof engine === 'string' ? engine : '',
    gpuMemoryUtilization: share,
  };
  for (const [key, value] of fields) {
    if (key === 'name' || key === 'model' || key === 'engine') continue;
    const flag = serverFlags[key];
    if (!flag || !MODEL_FLAGS.includes(key)) {
      throw new SpecError(`${at}: unknown setting "${key}" (a model's own: ${MODEL_FLAGS.join(', ')})`, key);
    }
    config[flag.key] = settingValue(at, key, value);
  }
  const gpuShare = config.gpuMemoryUtilization as number;
  return { name, config: config as unknown as ServerConfig, gpuShare, source: (engine ?? model) as string };
}

function settingValue(at: string, key: string, value: unknown): string | number | boolean {
  const flag = serverFlags[key]!;
  if (flag.kind === 'boolean') {
    if (typeof value !== 'boolean') throw new SpecError(`${at}: "${key}" must be true or false`, key);
    return value;
  }
  const ok = flag.kind === 'string' ? typeof value === 'string' : typeof value === 'number';
  if (!ok) throw new SpecError(`${at}: "${key}" must be ${flag.kind === 'string' ? 'a string' : 'a number'}`, key);
  try {
    return parseValue(key, flag, String(value));
  } catch (e) {
    // parseValue names the flag (--max-num-seqs); here it is a setting of the entry.
    throw new SpecError(`${at}: ${(e as Error).message.replace(/^--/, '')}`, key);
  }
}

/** A served name for a model given without one: --served-model-name, else the folder's name. */
export function defaultModelName(config: ServerConfig): string {
  return config.servedModelName || basename(config.model).replace(/\.json$/, '');
}
