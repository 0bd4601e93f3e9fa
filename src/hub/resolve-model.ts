// A --model (or --tokenizer) argument as a local folder. A path that exists locally is used as it is, and the
// network is never touched for it; `org/name` that is not a local path names a Hugging Face Hub repository,
// fetched into the shared cache (or, with HF_HUB_OFFLINE=1, found there) and used as its snapshot folder.
import { existsSync } from 'node:fs';
import type { EngineConfig } from '../config.js';
import type { InfoLog } from '../load-progress.js';
import {
  logDownloadProgress,
  noDownloadProgress,
  stderrDownloadProgress,
  type DownloadProgress,
} from './download-progress.js';
import { COMMIT_HASH, RepoCache } from './hub-cache.js';
import { downloadSnapshot } from './hub-download.js';
import { HubError } from './hub-errors.js';
import { hubSettingsFromEnv, type HubSettings } from './hub-settings.js';
import { missingFrom, type FileSet } from './model-files.js';

export interface ResolveOptions {
  /** branch, tag or commit (default main) */
  revision?: string;
  /** what the caller will read (default: a whole model) */
  set?: FileSet;
  /** download progress and cache notes (on stderr, or to `log`) */
  progress?: boolean;
  /** where progress and notes go as info records instead of stderr (`kvserve serve`) */
  log?: InfoLog;
  /** default: from HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE, HF_HUB_CACHE / HF_HOME */
  settings?: HubSettings;
  /** default: stderr (or `log`) when `progress` */
  sink?: DownloadProgress;
}

// The Hub's repo id rules: letters, digits, '-', '_', '.'; no '--' or '..'; not starting or ending in '-' or '.'.
const NAME = '[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?';
const REPO_ID = new RegExp(`^${NAME}/${NAME}$`);

/** `org/name` that is no local path (a missing `dir/config.json` is a typo, not a repository). */
export function isHubModelId(arg: string): boolean {
  return REPO_ID.test(arg) && !arg.includes('--') && !arg.includes('..') && !arg.endsWith('.json') && !existsSync(arg);
}

function checkRevision(revision: string): void {
  // It becomes a path under refs/: keep it a plain name (branches like refs/pr/1 included).
  if (!/^[\w.-]+(\/[\w.-]+)*$/.test(revision) || revision.split('/').some((p) => p === '.' || p === '..')) {
    throw new HubError(`--revision "${revision}" is not a branch, tag or commit name`);
  }
}

/** The folder to load: `arg` itself when it is no Hub id, else the cached (and, online, completed) snapshot. */
export async function resolveModelDir(arg: string, opts: ResolveOptions = {}): Promise<string> {
  if (!isHubModelId(arg)) return arg;
  const revision = opts.revision || 'main';
  checkRevision(revision);
  const set = opts.set ?? 'model';
  const settings = opts.settings ?? hubSettingsFromEnv();
  const quiet = !opts.progress || settings.noProgress;
  const note = (line: string) => {
    if (quiet) return;
    if (opts.log) opts.log.info({ repo: arg, revision }, line);
    else process.stderr.write(`kvserve: ${line}\n`);
  };
  const cache = new RepoCache(settings.cacheDir, arg);
  const cached = cache.commitOf(revision);
  const at = revision === 'main' ? '' : ` (revision ${revision})`;

  if (settings.offline) {
    if (cached === undefined) {
      throw new HubError(
        `${arg}${at} is not in the Hugging Face cache at ${settings.cacheDir}, and HF_HUB_OFFLINE=1 forbids downloading it ` +
          `(unset HF_HUB_OFFLINE to fetch it from ${settings.endpoint})`,
      );
    }
    const dir = completeSnapshot(cache, cached, set);
    note(`${arg}${at} from the cache, offline (${dir})`);
    return dir;
  }
  // A commit never changes: when its snapshot is complete there is nothing to ask the Hub.
  if (
    COMMIT_HASH.test(revision) &&
    cached !== undefined &&
    existsSync(cache.snapshot(cached)) &&
    missingFrom(cache.snapshot(cached), set).length === 0
  ) {
    note(`${arg}${at} from the cache (${cache.snapshot(cached)})`);
    return cache.snapshot(cached);
  }
  const sink =
    opts.sink ?? (quiet ? noDownloadProgress : opts.log ? logDownloadProgress(opts.log) : stderrDownloadProgress());
  const dir = await downloadSnapshot(arg, revision, set, settings, sink);
  const missing = missingFrom(dir, set);
  if (missing.length) throw new HubError(`${arg}${at}: ${dir} still lacks ${missing.join(', ')} after the download`);
  return dir;
}

/** snapshots/<commit> when it holds everything `set` needs; a clear error when a cut download left it short. */
function completeSnapshot(cache: RepoCache, commit: string, set: FileSet): string {
  const dir = cache.snapshot(commit);
  const missing = existsSync(dir) ? missingFrom(dir, set) : ['everything'];
  if (missing.length) {
    throw new HubError(
      `the cached snapshot ${dir} of ${cache.repo} lacks ${missing.join(', ')} (an interrupted download?); ` +
        'unset HF_HUB_OFFLINE to finish it',
    );
  }
  return dir;
}

/**
 * The hook of `serve` and `generate`, before finishEngineConfig: --model and --tokenizer that name Hub
 * repositories become snapshot folders, and a server's model id defaults to the repo id rather than the
 * snapshot's commit hash. A separate --tokenizer repo is taken at its main revision.
 */
export async function resolveHubModels<T extends EngineConfig & { servedModelName?: string }>(
  c: T,
  opts: { progress: boolean; log?: InfoLog },
): Promise<T> {
  const out = { ...c };
  if (isHubModelId(c.model)) {
    out.model = await resolveModelDir(c.model, {
      revision: c.revision,
      set: c.loadFormat === 'dummy' ? 'config' : 'model',
      progress: opts.progress,
      log: opts.log,
    });
    if (out.servedModelName === '') out.servedModelName = c.model;
  }
  if (c.tokenizer && isHubModelId(c.tokenizer)) {
    out.tokenizer = await resolveModelDir(c.tokenizer, {
      revision: c.tokenizer === c.model ? c.revision : 'main',
      set: 'tokenizer',
      progress: opts.progress,
      log: opts.log,
    });
  }
  return out;
}
