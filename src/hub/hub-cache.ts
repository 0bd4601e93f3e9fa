// The Hugging Face cache layout, as Python's huggingface_hub writes and reads it, so either tool reuses what
// the other downloaded:
//
//   <cacheDir>/models--<org>--<name>/
//     blobs/<etag>                     file contents, named by the LFS sha256 or, for plain git files, the
//                                      git blob sha1 (what the Hub sends as X-Linked-Etag / ETag)
//     blobs/<etag>.incomplete          a download in progress; resumed with an HTTP Range request
//     refs/<revision>                  the commit hash a branch or tag pointed at, no newline
//     snapshots/<commit>/<file>        relative symlink -> ../../blobs/<etag>
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { getRepoFolderName } from '@huggingface/hub';

export const COMMIT_HASH = /^[0-9a-f]{40}$/;

export class RepoCache {
  /** models--org--name */
  readonly folder: string;

  constructor(
    readonly cacheDir: string,
    readonly repo: string,
  ) {
    this.folder = join(cacheDir, getRepoFolderName({ type: 'model', name: repo }));
  }

  blob(etag: string): string {
    return join(this.folder, 'blobs', etag);
  }

  incomplete(etag: string): string {
    return `${this.blob(etag)}.incomplete`;
  }

  snapshot(commit: string): string {
    return join(this.folder, 'snapshots', commit);
  }

  /** snapshots/<commit>/<file>, present when the link resolves to a blob (a dangling link counts as absent). */
  hasFile(commit: string, file: string): boolean {
    return existsSync(join(this.snapshot(commit), file));
  }

  hasBlob(etag: string): boolean {
    return existsSync(this.blob(etag));
  }

  /** Bytes of a download in progress, 0 when there is none. */
  incompleteSize(etag: string): number {
    try {
      return statSync(this.incomplete(etag)).size;
    } catch {
      return 0;
    }
  }

  /** The commit a revision names: itself when it is a hash, else what refs/<revision> holds (undefined: never fetched). */
  commitOf(revision: string): string | undefined {
    if (COMMIT_HASH.test(revision)) return revision;
    const ref = join(this.folder, 'refs', revision);
    if (!existsSync(ref)) return undefined;
    const commit = readFileSync(ref, 'utf8').trim();
    return COMMIT_HASH.test(commit) ? commit : undefined;
  }

  /** refs/<revision> := commit, as huggingface_hub does for every revision that is not itself a commit hash. */
  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    const ref = join(this.folder, 'refs', revision);
    try {
      if ((await readFile(ref, 'utf8')) === commit) return;
    } catch {
      // no ref yet
    }
    await mkdir(dirname(ref), { recursive: true });
    await atomicWrite(ref, commit);
  }

  /** snapshots/<commit>/<file> -> ../../blobs/<etag>, replacing whatever link was there. */
  async link(commit: string, file: string, etag: string): Promise<void> {
    const dst = join(this.snapshot(commit), file);
    await mkdir(dirname(dst), { recursive: true });
    const tmp = `${dst}.${process.pid}.link`;
    await rm(tmp, { force: true });
    await symlink(relative(dirname(dst), this.blob(etag)), tmp);
    await rename(tmp, dst);
  }

  /** A finished, verified download becomes the blob in one rename, so a blob is never partial. */
  async commitBlob(etag: string): Promise<void> {
    await rename(this.incomplete(etag), this.blob(etag));
  }
}

async function atomicWrite(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}
