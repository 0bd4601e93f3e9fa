// The content hash of a model folder, what an engine is keyed by: sha256 of every regular file (hidden
// names aside), then sha256 over "path\tbytes\tsha256\n" lines in byte order of the paths. A file renamed,
// added, removed or changed in one byte changes it; where the folder lies does not. A memo of earlier digests
// (the engine cache keeps one per model folder) skips reading a file whose size, inode, mtime and ctime are
// all unchanged; ctime moves on every write and cannot be set back, so an in-place rewrite is hashed again.
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { SourceFile } from './manifest.js';

export type HashMemo = Record<string, { bytes: number; ino: number; mtimeMs: number; ctimeMs: number; sha256: string }>;

export interface ModelHash {
  contentHash: string; // "sha256:<hex>"
  files: SourceFile[];
}

function hashFile(path: string, onBytes: (n: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path, { highWaterMark: 4 << 20 })
      .on('data', (chunk) => {
        h.update(chunk);
        onBytes(chunk.length);
      })
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/**
 * Top-level files only: a Hugging Face model folder (or Hub snapshot, whose entries are links) is flat.
 * `only` restricts it to those names (a dummy-weight build hashes its config.json alone).
 */
export async function hashModelFolder(
  dir: string,
  progress?: (fraction: number) => void,
  memo?: HashMemo,
  only?: string[],
): Promise<ModelHash> {
  const names = readdirSync(dir)
    .filter((n) => !n.startsWith('.') && (!only || only.includes(n)) && statSync(join(dir, n)).isFile())
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const stats = names.map((n) => statSync(join(dir, n)));
  const total = stats.reduce((a, st) => a + st.size, 0) || 1;
  let done = 0;
  const files: SourceFile[] = [];
  for (const [i, name] of names.entries()) {
    const st = stats[i]!;
    const known = memo?.[name];
    let sha256: string;
    if (
      known &&
      known.bytes === st.size &&
      known.ino === st.ino &&
      known.mtimeMs === st.mtimeMs &&
      known.ctimeMs === st.ctimeMs
    ) {
      sha256 = known.sha256;
      done += st.size;
      progress?.(Math.min(1, done / total));
    } else {
      sha256 = await hashFile(join(dir, name), (n) => {
        done += n;
        progress?.(Math.min(1, done / total));
      });
      if (memo) memo[name] = { bytes: st.size, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, sha256 };
    }
    files.push({ path: name, bytes: st.size, sha256 });
  }
  if (memo) for (const k of Object.keys(memo)) if (!names.includes(k)) delete memo[k];
  progress?.(1);
  const all = createHash('sha256');
  for (const f of files) all.update(`${f.path}\t${f.bytes}\t${f.sha256}\n`);
  return { contentHash: `sha256:${all.digest('hex')}`, files };
}
