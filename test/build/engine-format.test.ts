// The engine's files read by code independent of the native writer: model.safetensors follows the format
// (contiguous data, no holes, each tensor aligned to its element size) and holds the checkpoint's values
// (bitwise for float32, bf16 widened by a 16-bit shift when built as float32); the content hash is the one
// sha256sum gives; the target agrees with the kernel's /proc/cpuinfo.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readManifest } from '../../src/build/manifest.js';
import { hashModelFolder } from '../../src/build/model-hash.js';
import { loadNative } from '../../src/runner/binding.js';
import { buildInto, fixturesDir, storiesDir } from './engine-helpers.js';
import { readTensors } from './safetensors-reader.js';

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

describe('model.safetensors of an engine', () => {
  test("contiguous, aligned, and the checkpoint's float32 values bitwise (stories260K)", async () => {
    const engine = await buildInto(storiesDir);
    const buf = readFileSync(join(engine, 'model.safetensors'));
    const n = Number(buf.readBigUInt64LE(0));
    expect((8 + n) % 64).toBe(0);
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, Entry>;
    const entries = Object.entries(header)
      .filter(([k]) => k !== '__metadata__')
      .map(([, e]) => e)
      .sort((a, b) => a.data_offsets[0] - b.data_offsets[0]);
    let end = 0;
    for (const e of entries) {
      expect(e.data_offsets[0]).toBe(end); // no holes
      expect(e.data_offsets[0] % (e.dtype === 'F32' ? 4 : 2)).toBe(0);
      end = e.data_offsets[1];
    }
    expect(8 + n + end).toBe(buf.length);
    const source = readTensors(storiesDir);
    const built = readTensors(engine);
    expect([...built.keys()].sort()).toEqual(
      [...source.keys()].filter((k) => k !== 'lm_head.weight' || built.has(k)).sort(),
    );
    for (const [name, t] of built) {
      expect(t.shape, name).toEqual(source.get(name)!.shape);
      expect(t.bytes.equals(source.get(name)!.bytes), name).toBe(true);
    }
  });

  test('a bfloat16 checkpoint built as float32 holds each value widened exactly', async () => {
    const model = join(fixturesDir, 'llama-bf16-sharded');
    const engine = await buildInto(model, 'float32');
    expect(readManifest(engine).weights.dtype).toBe('float32');
    const source = readTensors(model);
    for (const [name, t] of readTensors(engine)) {
      const s = source.get(name)!;
      expect(s.dtype, name).toBe('BF16');
      expect(t.dtype, name).toBe('F32');
      const wide = Buffer.alloc(s.bytes.length * 2);
      for (let i = 0; i < s.bytes.length / 2; i++) wide.writeUInt32LE((s.bytes.readUInt16LE(2 * i) << 16) >>> 0, 4 * i);
      expect(t.bytes.equals(wide), name).toBe(true);
    }
  });
});

test("the content hash is sha256 over sha256sum's per-file digests in path order", async () => {
  const files = readdirSync(storiesDir)
    .filter((n) => !n.startsWith('.'))
    .sort();
  const lines = files
    .map((f) => {
      const digest = execFileSync('sha256sum', [join(storiesDir, f)], { encoding: 'utf8' }).split(' ')[0];
      return `${f}\t${readFileSync(join(storiesDir, f)).length}\t${digest}\n`;
    })
    .join('');
  const all = execFileSync('sha256sum', { input: lines, encoding: 'utf8' }).split(' ')[0];
  const h = await hashModelFolder(storiesDir);
  expect(h.contentHash).toBe(`sha256:${all}`);
  expect(h.files.map((f) => f.path)).toEqual(files);
});

test.runIf(process.arch === 'x64')("the target's CPU features are the ones /proc/cpuinfo lists", () => {
  const flags = new Set(/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))![1]!.trim().split(/\s+/));
  const cpuinfoName: Record<string, string> = {
    avx: 'avx',
    avx2: 'avx2',
    fma: 'fma',
    f16c: 'f16c',
    avx512f: 'avx512f',
    avx512bw: 'avx512bw',
    avx512vl: 'avx512vl',
    avx512vnni: 'avx512_vnni',
    avx512bf16: 'avx512_bf16',
    avx512fp16: 'avx512_fp16',
    'amx-tile': 'amx_tile',
  };
  const t = loadNative().engineTarget();
  expect(t.arch).toBe('x86_64');
  for (const [name, flag] of Object.entries(cpuinfoName))
    expect(t.hostFeatures.includes(name), name).toBe(flags.has(flag));
  // An engine built here runs here: the addon uses nothing this CPU lacks.
  for (const f of t.features) expect(t.hostFeatures).toContain(f);
});
