// An engine folder appears whole or not at all: it is written into a temporary folder beside its destination
// (same file system, so the final rename is atomic) and renamed into place once complete. A build killed
// midway leaves only its temporary folder, named after the destination and the builder's pid; the next build
// of that destination removes every such folder whose process is gone.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { MANIFEST } from './manifest.js';

const tempPrefix = (base: string) => `.${base}.kvserve-`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** Temporary folders of `dest` left by builds that no longer run (".NAME.kvserve-build-PID-XXXXXX"). */
export function staleTempFolders(dest: string): string[] {
  const parent = dirname(resolve(dest));
  const prefix = tempPrefix(basename(dest));
  if (!existsSync(parent)) return [];
  return readdirSync(parent)
    .filter((n) => n.startsWith(prefix))
    .filter((n) => {
      const pid = Number(/^(?:build|old)-(\d+)-/.exec(n.slice(prefix.length))?.[1]);
      return !Number.isInteger(pid) || pid === 0 || !alive(pid);
    })
    .map((n) => join(parent, n));
}

/** Calls fill(tmp) on a fresh temporary folder and renames it to `dest`; on any failure nothing is at dest. */
export async function writeFolderAtomically<T>(dest: string, fill: (tmp: string) => Promise<T>): Promise<T> {
  dest = resolve(dest);
  const parent = dirname(dest);
  mkdirSync(parent, { recursive: true });
  for (const stale of staleTempFolders(dest)) rmSync(stale, { recursive: true, force: true });
  if (existsSync(dest) && !replaceable(dest)) {
    throw new Error(`${dest} exists and is not an engine folder (no ${MANIFEST}); refusing to replace it`);
  }
  const prefix = join(parent, tempPrefix(basename(dest)));
  const tmp = mkdtempSync(`${prefix}build-${process.pid}-`);
  chmodSync(tmp, 0o755); // mkdtemp makes it private; the engine is as readable as any model folder
  let result: T;
  try {
    result = await fill(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  // An engine already there is moved aside first: rename(2) does not replace a non-empty folder.
  const old = existsSync(dest) ? mkdtempSync(`${prefix}old-${process.pid}-`) : undefined;
  if (old) renameSync(dest, join(old, 'engine'));
  renameSync(tmp, dest);
  if (old) rmSync(old, { recursive: true, force: true });
  return result;
}

function replaceable(dest: string): boolean {
  if (!statSync(dest).isDirectory()) return false;
  return existsSync(join(dest, MANIFEST)) || readdirSync(dest).length === 0;
}
