// The content hash of a model folder, what an engine is keyed by: sha256 of every regular file (hidden
// names aside), then sha256 over "path\tbytes\tsha256\n" lines in byte order of the paths. A file renamed,
// added, removed or changed in one byte changes it; where the folder lies does not.
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { SourceFile } from './manifest.js';

export interface ModelHash {
  contentHash: string;           // "sha256:<hex>"
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

/** Top-level files only: a Hugging Face model folder (or Hub snapshot, whose entries are links) is flat. */
export async function hashModelFolder(dir: string, progress?: (fraction: number) => void): Promise<ModelHash> {
  const names = readdirSync(dir)
    .filter((n) => !n.startsWith('.') && statSync(join(dir, n)).isFile())
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const sizes = names.map((n) => statSync(join(dir, n)).size);
  const total = sizes.reduce((a, b) => a + b, 0) || 1;
  let done = 0;
  const files: SourceFile[] = [];
  for (const [i, name] of names.entries()) {
    const sha256 = await hashFile(join(dir, name), (n) => {
      done += n;
      progress?.(Math.min(1, done / total));
    });
    files.push({ path: name, bytes: sizes[i]!, sha256 });
  }
  progress?.(1);
  const all = createHash('sha256');
  for (const f of files) all.update(`${f.path}\t${f.bytes}\t${f.sha256}\n`);
  return { contentHash: `sha256:${all.digest('hex')}`, files };
}
