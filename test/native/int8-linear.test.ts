// The int8 GEMM of the CPU backend against a naive reference (int8_linear_cases.cc), compiled for each of its
// three code paths: AVX-512 VNNI (vpdpbusd with the +128 offset), AVX2 (maddubs with the sign trick) and
// scalar. Each must match the reference bitwise over the grid of shapes, and all three must give the same
// output bits (integer sums are exact, so no path may differ). A path this CPU cannot run is skipped.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';

const repo = resolve(__dirname, '..', '..');
const scratch = mkdtempSync(join(tmpdir(), 'kvserve-int8-'));
const cpuFlags = new Set(
  (/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/),
);
const x86 = process.arch === 'x64';

const paths: Array<{ isa: string; flags: string[]; needs: string[] }> = [
  {
    isa: 'avx512-vnni',
    flags: ['-mavx2', '-mfma', '-mf16c', '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512vnni'],
    needs: ['avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni'],
  },
  { isa: 'avx2', flags: ['-mavx2', '-mfma', '-mf16c'], needs: ['avx2', 'fma', 'f16c'] },
  { isa: 'scalar', flags: [], needs: [] },
];

const hashes = new Map<string, string>();

describe('int8 GEMM against a naive reference', () => {
  test.each(paths)('$isa', ({ isa, flags, needs }) => {
    if (isa !== 'scalar' && (!x86 || !needs.every((f) => cpuFlags.has(f)))) return; // this CPU cannot run it
    const exe = join(scratch, `int8-${isa}`);
    execFileSync(process.env.CXX || 'c++', [
      '-std=c++17',
      '-O2',
      '-ffp-contract=off',
      ...flags,
      `-I${repo}`,
      join(repo, 'test', 'native', 'int8_linear_cases.cc'),
      join(repo, 'engines', 'cpu', 'int8_linear.cc'),
      join(repo, 'engines', 'cpu', 'thread_pool.cc'),
      '-o',
      exe,
      '-lpthread',
    ]);
    const out = execFileSync(exe, { encoding: 'utf8' }).trim();
    const m = /^ok (\S+) (\d+) ([0-9a-f]{16})$/.exec(out);
    expect(m, out).not.toBeNull();
    expect(m![1]).toBe(isa); // the compiled path is the one asked for
    expect(Number(m![2])).toBeGreaterThan(1000);
    hashes.set(isa, m![3]!);
  });

  test('every path gives the same output bits', () => {
    expect(hashes.size).toBeGreaterThan(0);
    expect(new Set(hashes.values()).size).toBe(1);
  });
});
