// One revision of a Hub model into the cache: @huggingface/hub resolves the revision to a commit (modelInfo),
// lists its files (listFiles) and finds where each file's bytes are (fileDownloadInfo, which follows the
// Hub's redirect to its CDN). The library's own downloadFileToCacheDir neither resumes nor reports progress,
// names a snapshot by each file's last commit rather than the revision's, and logs with console.debug onto
// stdout (where `generate` writes its text), so the bytes are fetched here:
// appended to blobs/<etag>.incomplete, a cut transfer continued with `Range: bytes=N-`, hashed as it arrives
// and checked against the tree's hash, then renamed to the blob and linked into snapshots/<commit>/.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileDownloadInfo, listFiles, modelInfo } from '@huggingface/hub';
import type { DownloadProgress } from './download-progress.js';
import { RepoCache } from './hub-cache.js';
import { describeHubFailure, HubError, hubFetch, networkCode, type HubContext } from './hub-errors.js';
import type { HubSettings } from './hub-settings.js';
import {
  INDEX_FILE,
  metadataFiles,
  repoFile,
  shardsOf,
  weightsEntry,
  type FileSet,
  type RepoFile,
} from './model-files.js';

/** Attempts at one file within a run, as long as each attempt moved some bytes; then the next run resumes. */
const MAX_ATTEMPTS = 5;

interface Session {
  ctx: HubContext;
  cache: RepoCache;
  settings: HubSettings;
  fetch: typeof fetch;
  lib: { hubUrl: string; accessToken: string | undefined; fetch: typeof fetch };
}

/** Fetches what `set` needs of `repo` at `revision` into the cache; returns snapshots/<commit>. */
export async function downloadSnapshot(
  repo: string,
  revision: string,
  set: FileSet,
  settings: HubSettings,
  progress: DownloadProgress,
): Promise<string> {
  const ctx: HubContext = {
    endpoint: settings.endpoint,
    repo,
    revision,
    tokenSent: settings.token !== undefined,
    cacheDir: settings.cacheDir,
  };
  const f = hubFetch(ctx);
  const s: Session = {
    ctx,
    cache: new RepoCache(settings.cacheDir, repo),
    settings,
    fetch: f,
    lib: { hubUrl: settings.endpoint, accessToken: settings.token, fetch: f },
  };
  try {
    const { sha: commit } = await modelInfo({ ...s.lib, name: repo, revision, additionalFields: ['sha'] });
    if (typeof commit !== 'string')
      throw new HubError(`the Hub at ${settings.endpoint} gave no commit for ${repo} at ${revision}`);
    await s.cache.writeRef(revision, commit);
    const files = new Map<string, RepoFile>();
    for await (const entry of listFiles({ ...s.lib, repo, revision: commit })) {
      const file = repoFile(entry);
      if (file) files.set(file.path, file);
    }
    const plan = planFiles(files, set, repo);
    if (set === 'model' && files.has(INDEX_FILE)) {
      // The index says which shards the engine opens; it is small, so it comes first, without progress.
      await fetchFiles(s, commit, [files.get(INDEX_FILE)!], undefined);
      const indexText = await readFile(join(s.cache.snapshot(commit), INDEX_FILE), 'utf8');
      for (const shard of shardsOf(indexText, `${repo}/${INDEX_FILE}`)) {
        const file = files.get(shard);
        if (!file)
          throw new HubError(
            `${repo}/${INDEX_FILE} names ${shard}, which ${repo} at ${commit.slice(0, 7)} does not have`,
          );
        plan.push(file);
      }
    }
    await fetchFiles(s, commit, plan, progress);
    return s.cache.snapshot(commit);
  } catch (e) {
    throw describeHubFailure(ctx, e);
  }
}

/** The files of `set` the repo has, required ones checked; the sharded weights are added once the index is read. */
function planFiles(files: ReadonlyMap<string, RepoFile>, set: FileSet, repo: string): RepoFile[] {
  const { wanted, required } = metadataFiles(set);
  const missing = required.filter((f) => !files.has(f));
  if (missing.length)
    throw new HubError(
      `${repo} has no ${missing.join(' or ')} at its top level: not a Hugging Face Transformers model`,
    );
  const plan = wanted.filter((f) => files.has(f)).map((f) => files.get(f)!);
  if (set === 'model' && weightsEntry(files, repo) !== INDEX_FILE) plan.push(files.get(weightsEntry(files, repo))!);
  return plan;
}

/** Links what the cache already holds, downloads the rest, with one progress total over the downloads. */
async function fetchFiles(
  s: Session,
  commit: string,
  plan: RepoFile[],
  progress: DownloadProgress | undefined,
): Promise<void> {
  const todo = plan.filter((f) => !s.cache.hasFile(commit, f.path));
  const downloads = todo.filter((f, i) => !s.cache.hasBlob(f.etag) && todo.findIndex((g) => g.etag === f.etag) === i);
  const total = downloads.reduce((n, f) => n + f.size, 0);
  const label = s.ctx.revision === 'main' ? s.ctx.repo : `${s.ctx.repo}@${s.ctx.revision}`;
  // Started once the first file's location is known, so a refusal (gated, private) is the only line printed.
  let started = false;
  const reporter = progress && {
    ...progress,
    file(path: string, size: number, resumeAt: number) {
      if (!started) progress.start(label, downloads.length, total);
      started = true;
      progress.file(path, size, resumeAt);
    },
  };
  let before = 0;
  for (const f of todo) {
    if (!s.cache.hasBlob(f.etag)) {
      await fetchBlob(s, commit, f, (done) => progress?.bytes(before + done), reporter);
      before += f.size;
    }
    await s.cache.link(commit, f.path, f.etag);
  }
  if (started) progress?.finish();
}

/**
 * blobs/<etag>.incomplete as it grows: its length and the hash of exactly the bytes on disk, so that a
 * resumed part is hashed once (its old bytes when opened, each new chunk after it is written).
 */
class Part {
  private hash: Hash;
  private constructor(
    readonly path: string,
    private readonly f: RepoFile,
    public length: number,
  ) {
    this.hash = Part.newHash(f);
  }

  static newHash(f: RepoFile): Hash {
    const h = createHash(f.hash === 'sha256' ? 'sha256' : 'sha1');
    if (f.hash === 'git-sha1') h.update(`blob ${f.size}\0`);
    return h;
  }

  static async open(path: string, f: RepoFile, length: number): Promise<Part> {
    if (length > f.size) {
      await rm(path);
      length = 0;
    }
    const part = new Part(path, f, length);
    if (length > 0) for await (const chunk of createReadStream(path)) part.hash.update(chunk as Buffer);
    return part;
  }

  /** A server ignored the Range request and sends the file from its first byte. */
  restart(): void {
    this.hash = Part.newHash(this.f);
    this.length = 0;
  }

  written(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.length += chunk.length;
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

/** blobs/<etag> from the Hub, continuing an .incomplete part; verified before it is renamed into place. */
async function fetchBlob(
  s: Session,
  commit: string,
  f: RepoFile,
  onBytes: (done: number) => void,
  progress: DownloadProgress | undefined,
): Promise<void> {
  const info = await fileDownloadInfo({ ...s.lib, repo: s.ctx.repo, path: f.path, revision: commit });
  if (!info) throw new HubError(`${s.ctx.repo} lists ${f.path} at ${commit.slice(0, 7)}, but the Hub has no such file`);
  if (info.size !== f.size)
    throw new HubError(`${s.ctx.repo}/${f.path}: the Hub lists ${f.size} bytes but serves ${info.size}`);
  const path = s.cache.incomplete(f.etag);
  await mkdir(dirname(path), { recursive: true });
  const part = await Part.open(path, f, s.cache.incompleteSize(f.etag));
  progress?.file(f.path, f.size, part.length);
  onBytes(part.length);
  for (let attempt = 1; part.length < f.size; attempt++) {
    const moved = await transfer(s, info.url, part, f, onBytes);
    if (part.length >= f.size) break;
    if (moved === 0 || attempt === MAX_ATTEMPTS) {
      throw new HubError(
        `download of ${s.ctx.repo}/${f.path} cut at ${part.length} of ${f.size} bytes; run again to resume from ${path}`,
      );
    }
    await new Promise((r) => setTimeout(r, 250 * attempt));
  }
  if (part.length !== f.size || part.digest() !== f.etag) {
    await rm(path, { force: true });
    throw new HubError(
      `${s.ctx.repo}/${f.path}: the downloaded bytes do not match the Hub's ${f.hash} ${f.etag}; the partial file was removed, run again`,
    );
  }
  await s.cache.commitBlob(f.etag);
}

/** One HTTP transfer appended to the part from its current length; returns the bytes it moved before it ended. */
async function transfer(
  s: Session,
  url: string,
  part: Part,
  f: RepoFile,
  onBytes: (done: number) => void,
): Promise<number> {
  const headers: Record<string, string> = {};
  const have = part.length;
  if (have > 0) headers.Range = `bytes=${have}-`;
  // The token goes to the Hub only; a CDN URL it redirected to is already signed.
  if (s.settings.token && new URL(url).origin === new URL(s.settings.endpoint).origin)
    headers.Authorization = `Bearer ${s.settings.token}`;
  const res = await s.fetch(url, { headers });
  if (!res.ok) throw new HubError(`${s.ctx.repo}/${f.path}: the Hub answered HTTP ${res.status}`);
  // A server that ignores Range sends the whole file again: start the part over rather than append it.
  const append = have > 0 && res.status === 206;
  if (append && !(res.headers.get('content-range') ?? '').startsWith(`bytes ${have}-`)) {
    await res.body?.cancel();
    throw new HubError(
      `${s.ctx.repo}/${f.path}: asked for bytes from ${have}, the server sent ${res.headers.get('content-range') ?? 'no Content-Range'}`,
    );
  }
  if (!append) part.restart();
  const fh = await open(part.path, append ? 'a' : 'w');
  let got = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (part.length + chunk.length > f.size)
        throw new HubError(`${s.ctx.repo}/${f.path}: the server sent more than the ${f.size} bytes the Hub lists`);
      await fh.write(chunk);
      part.written(chunk);
      got += chunk.length;
      onBytes(part.length);
    }
  } catch (e) {
    if (e instanceof HubError || (networkCode(e) === undefined && !(e instanceof TypeError))) throw e;
    // The connection dropped mid-body: what arrived is on disk (and hashed), the next attempt resumes after it.
  } finally {
    await fh.close();
  }
  return got;
}
