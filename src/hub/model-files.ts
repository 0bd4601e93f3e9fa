// Which files of a Hub repository kvserve needs: what the engine and the tokenizer read, nothing else. A repo
// often holds the same weights several times (pytorch_model.bin, *.pth, *.gguf, onnx/, consolidated.safetensors
// beside the sharded ones); only the safetensors the engine opens are fetched — model.safetensors, or the
// shards model.safetensors.index.json names.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HubError } from './hub-errors.js';

/** A file of the repo as its tree listing gives it. */
export interface RepoFile {
  path: string;
  size: number;
  /** blob name in the cache: the LFS sha256, else the git blob sha1 */
  etag: string;
  /** how the content is checked: sha256 of the bytes (LFS) or git's sha1 of "blob <size>\0" + bytes */
  hash: 'sha256' | 'git-sha1';
}

/** What a command needs: a model to run, a tokenizer alone (bench), or a config for --load-format dummy. */
export type FileSet = 'model' | 'tokenizer' | 'config';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_WEIGHTS = 'model.safetensors';

/** Read by src/tokenizer/tokenizer.ts (special tokens, EOS ids, chat template). */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja'];
const REQUIRED_TOKENIZER = ['tokenizer.json'];
const CONFIG_FILES = ['config.json', 'generation_config.json'];

/** The files besides the weights, in fetch order; `required` are the ones whose absence is an error. */
export function metadataFiles(set: FileSet): { wanted: string[]; required: string[] } {
  if (set === 'tokenizer') return { wanted: [...TOKENIZER_FILES, ...CONFIG_FILES], required: REQUIRED_TOKENIZER };
  return {
    wanted: [...CONFIG_FILES, ...TOKENIZER_FILES],
    required: set === 'model' ? ['config.json', ...REQUIRED_TOKENIZER] : ['config.json'],
  };
}

/** The tree listing's entry for one file, as a RepoFile (undefined for folders). */
export function repoFile(entry: {
  type: string;
  path: string;
  size: number;
  oid?: string;
  lfs?: { oid: string; size: number };
}): RepoFile | undefined {
  if (entry.type !== 'file') return undefined;
  if (entry.lfs) return { path: entry.path, size: entry.lfs.size, etag: entry.lfs.oid, hash: 'sha256' };
  if (!entry.oid) return undefined;
  return { path: entry.path, size: entry.size, etag: entry.oid, hash: 'git-sha1' };
}

/** The shard file names an index's weight_map lists, each once, in first-seen order. */
export function shardsOf(indexText: string, where: string): string[] {
  let index: { weight_map?: Record<string, unknown> };
  try {
    index = JSON.parse(indexText) as typeof index;
  } catch (e) {
    throw new HubError(`${where}: not valid JSON (${(e as Error).message})`);
  }
  const map = index.weight_map;
  if (!map || typeof map !== 'object') throw new HubError(`${where}: missing "weight_map"`);
  const shards = new Set<string>();
  for (const f of Object.values(map)) {
    if (typeof f !== 'string' || f.includes('/') || f.includes('\\') || f === '..' || !f.endsWith('.safetensors')) {
      throw new HubError(`${where}: shard name ${JSON.stringify(f)} is not a plain .safetensors file name`);
    }
    shards.add(f);
  }
  if (shards.size === 0) throw new HubError(`${where}: weight_map is empty`);
  return [...shards];
}

/** The weights entry point: the index when there is one (the engine prefers it too), else model.safetensors. */
export function weightsEntry(files: ReadonlyMap<string, RepoFile>, repo: string): string {
  if (files.has(INDEX_FILE)) return INDEX_FILE;
  if (files.has(SINGLE_WEIGHTS)) return SINGLE_WEIGHTS;
  const others = [...files.keys()].filter((f) => /\.(bin|pth|pt|gguf|onnx|h5|msgpack|safetensors)$/.test(f));
  throw new HubError(
    `${repo} has no ${SINGLE_WEIGHTS} or ${INDEX_FILE} at its top level` +
      (others.length
        ? ` (it has ${others.slice(0, 3).join(', ')}${others.length > 3 ? ', …' : ''}; kvserve loads Hugging Face safetensors only)`
        : ''),
  );
}

/**
 * What a local snapshot folder lacks of `set` (empty: complete). A cache that another tool filled may hold
 * more; one whose download was cut holds less.
 */
export function missingFrom(dir: string, set: FileSet): string[] {
  const missing = metadataFiles(set).required.filter((f) => !existsSync(join(dir, f)));
  if (set !== 'model') return missing;
  if (existsSync(join(dir, INDEX_FILE))) {
    const shards = shardsOf(readFileSync(join(dir, INDEX_FILE), 'utf8'), join(dir, INDEX_FILE));
    return [...missing, ...shards.filter((f) => !existsSync(join(dir, f)))];
  }
  return existsSync(join(dir, SINGLE_WEIGHTS)) ? missing : [...missing, SINGLE_WEIGHTS];
}
