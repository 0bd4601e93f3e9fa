// The layout arithmetic of the wgmma GEMM (kernels/gemm_wgmma_layout.h), which this machine cannot run on its
// GPU instructions, against the definitions it relies on written out on their own in gemm_wgmma_layout_cases.cc:
// the PTX ISA's matrix descriptor fields, TMA's 128-byte swizzle, wgmma's K-major 128B canonical layout (every
// element of every wgmma of every tile shape and stage reads what TMA wrote there), the m64nNk16 float32
// accumulator fragment, the k-partitions, the tile and split choice and its workspace bound, the CTA order.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { compileCases } from './harness.js';

interface Result {
  check: string;
  cases: number;
  failures: number;
  first: string;
}

describe('kernels/gemm_wgmma_layout.h', () => {
  const results = new Map<string, Result>();
  beforeAll(() => {
    const exe = join(mkdtempSync(join(tmpdir(), 'kvserve-wgmma-')), 'gemm_wgmma_layout_cases');
    compileCases(exe, ['test/native/gemm_wgmma_layout_cases.cc']);
    for (const line of execFileSync(exe, { encoding: 'utf8' }).trim().split('\n')) {
      const r = JSON.parse(line) as Result;
      results.set(r.check, r);
    }
  });

  test.each([
    'descriptor fields',
    'tma swizzle',
    'wgmma reads what tma wrote',
    'accumulator fragment',
    'tile geometry',
    'k-partitions',
    'choice',
    'tile order',
  ])('%s', (name) => {
    const r = results.get(name);
    expect(r, `${name} ran`).toBeDefined();
    expect(r!.cases).toBeGreaterThan(0);
    expect(r!.first).toBe('');
    expect(r!.failures).toBe(0);
  });

  // The read model must see a wrong descriptor: a stride of 512 bytes between 8-row groups, and no swizzle.
  test.each(['control: stride byte offset 512', 'control: no swizzle'])('%s is caught', (name) => {
    const r = results.get(name);
    expect(r, `${name} ran`).toBeDefined();
    expect(r!.failures).toBeGreaterThan(r!.cases / 2);
  });
});
