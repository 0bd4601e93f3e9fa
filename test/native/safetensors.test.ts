// A malformed or truncated safetensors file is refused at load with a message naming the file (and the
// tensor), never a crash or a silently accepted header.
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/runner/binding.js';
import { engineOptions, storiesDir } from './harness.js';

const native = loadNative();
const work = mkdtempSync(join(tmpdir(), 'kvserve-safetensors-'));

/** [u64 LE header length][header][data], as the format lays it out. */
function safetensors(header: string, data = Buffer.alloc(0)): Buffer {
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

/** A folder with the stories260K config.json and `file` as its model.safetensors. */
function folderWith(name: string, file: Buffer): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(storiesDir, 'config.json'), join(dir, 'config.json'));
  writeFileSync(join(dir, 'model.safetensors'), file);
  return dir;
}

const load = (dir: string) => native.loadEngine(engineOptions({ model: dir }));
const tensor = (entry: object) => JSON.stringify({ 'model.embed_tokens.weight': entry });

describe('safetensors header validation', () => {
  it('a file shorter than its length prefix', async () => {
    await expect(load(folderWith('short', Buffer.from([1, 2, 3])))).rejects.toThrow(
      /not a safetensors file \(too short\)/,
    );
  });
  it('a header length beyond the end of the file', async () => {
    const file = safetensors('{}');
    file.writeBigUInt64LE(1000n);
    await expect(load(folderWith('long-header', file))).rejects.toThrow(/header length 1000 exceeds the file size/);
  });
  it('a header that is not JSON, or not an object', async () => {
    await expect(load(folderWith('bad-json', safetensors('{"a": ')))).rejects.toThrow(/malformed safetensors header/);
    await expect(load(folderWith('not-object', safetensors('[1]')))).rejects.toThrow(/header is not a JSON object/);
  });
  it('data_offsets outside the data, or not matching the shape', async () => {
    const outside = tensor({ dtype: 'F32', shape: [2], data_offsets: [0, 8] });
    await expect(load(folderWith('outside', safetensors(outside, Buffer.alloc(4))))).rejects.toThrow(
      /tensor model.embed_tokens.weight: data_offsets \[0, 8\) lie outside the file's 4 data bytes/,
    );
    const mismatch = tensor({ dtype: 'F32', shape: [3], data_offsets: [0, 8] });
    await expect(load(folderWith('mismatch', safetensors(mismatch, Buffer.alloc(8))))).rejects.toThrow(
      /holds 8 bytes but its shape needs 12/,
    );
  });
  it('a negative dimension or an unsupported dtype', async () => {
    const negative = tensor({ dtype: 'F32', shape: [-1], data_offsets: [0, 0] });
    await expect(load(folderWith('negative', safetensors(negative)))).rejects.toThrow(/negative dimension/);
    const f64 = tensor({ dtype: 'F64', shape: [1], data_offsets: [0, 8] });
    await expect(load(folderWith('f64', safetensors(f64, Buffer.alloc(8))))).rejects.toThrow(
      /unsupported dtype F64 \(supported: F32, BF16, F16, I8, I32\)/,
    );
  });
  it('a shape whose byte size overflows 64 bits is refused, not wrapped around to match the data', async () => {
    // 2^62 * 4 elements * 4 bytes wrap to 0 in 64 bits, and 0 bytes match data_offsets [0, 0]. (Written out:
    // JSON.stringify would print 2^62 as 4611686018427388000.)
    const huge =
      '{"model.embed_tokens.weight": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}}';
    await expect(load(folderWith('overflow', safetensors(huge)))).rejects.toThrow(
      /model.safetensors: tensor model.embed_tokens.weight: shape \[4611686018427387904, 4\] is too large/,
    );
    // The element count fits, the byte count (x4) does not.
    const bytes =
      '{"model.embed_tokens.weight": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}}';
    await expect(load(folderWith('overflow-bytes', safetensors(bytes)))).rejects.toThrow(/is too large/);
  });
});
