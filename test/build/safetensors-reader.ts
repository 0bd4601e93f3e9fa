// A plain reader of safetensors files for the engine tests, written from the format's description (an 8-byte
// little-endian header length, a JSON header of name → {dtype, shape, data_offsets}, then the data), so the
// files the native writer makes are checked by code that shares nothing with it.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Buffer;
}

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** name → tensor of every safetensors file in `dir` (one file or shards). */
export function readTensors(dir: string): Map<string, RawTensor> {
  const out = new Map<string, RawTensor>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.safetensors'))) {
    const buf = readFileSync(join(dir, f));
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, Entry>;
    for (const [name, e] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      out.set(name, {
        dtype: e.dtype,
        shape: e.shape,
        bytes: buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]),
      });
    }
  }
  return out;
}

/** Where each tensor's data lies in the file (offsets from the start of the file), for damaging one. */
export function tensorOffsets(file: string): Map<string, { dtype: string; start: number; end: number }> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, Entry>;
  const out = new Map<string, { dtype: string; start: number; end: number }>();
  for (const [name, e] of Object.entries(header))
    if (name !== '__metadata__')
      out.set(name, { dtype: e.dtype, start: 8 + n + e.data_offsets[0], end: 8 + n + e.data_offsets[1] });
  return out;
}
