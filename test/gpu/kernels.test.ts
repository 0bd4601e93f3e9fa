// Runs the kernel test program (test/gpu/native, built by `npm run build` where cuBLASLt exists): every kernel
// against a naive CPU reference over the grid documented in each suite, and the GEMM batch-invariance checks.
// One test per suite (`kvserve_kernel_tests --list`), each with its own time limit and results file.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect, test } from 'vitest';
import { repoRoot } from './gpu-harness.js';

const exe = resolve(repoRoot, 'build', 'Release', 'kvserve_kernel_tests');
const outDir = process.env.KVSERVE_GPU_OUT ?? resolve(repoRoot, 'build');
const suites = existsSync(exe)
  ? spawnSync(exe, ['--list'], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter((l) => l.length > 0)
  : [];

test('the kernel test program is built and names its suites', () => {
  expect(existsSync(exe), `${exe} (built only where nvcc and cuBLASLt are found)`).toBe(true);
  expect(suites).toEqual(expect.arrayContaining(['layers', 'attention', 'sampling', 'gemm', 'fp8']));
});

test.each(suites)(
  'kernel suite %s matches its naive references',
  (suite) => {
    mkdirSync(outDir, { recursive: true });
    const r = spawnSync(exe, [resolve(outDir, `kernel-tests-${suite}.tsv`), suite], {
      encoding: 'utf8',
      timeout: 290_000,
    });
    console.log(
      r.stdout
        .split('\n')
        .filter((l) => !l.startsWith('  '))
        .join('\n'),
    );
    if (r.status !== 0) console.log(r.stdout.slice(-4000), r.stderr, r.error ?? '');
    expect(r.status).toBe(0);
  },
  300_000,
);
