// Runs the kernel test program (test/gpu/native, built by `npm run build` where cuBLASLt exists): every kernel
// against a naive CPU reference over the grid documented in each suite, and the GEMM batch-invariance check.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect, test } from 'vitest';
import { repoRoot } from './gpu-harness.js';

test('kernels match their naive references (kvserve_kernel_tests)', () => {
  const exe = resolve(repoRoot, 'build', 'Release', 'kvserve_kernel_tests');
  expect(existsSync(exe), `${exe} (built only where nvcc and cuBLASLt are found)`).toBe(true);
  const outDir = process.env.KVSERVE_GPU_OUT ?? resolve(repoRoot, 'build');
  mkdirSync(outDir, { recursive: true });
  const r = spawnSync(exe, [resolve(outDir, 'kernel-tests.tsv')], { encoding: 'utf8', timeout: 280_000 });
  console.log(
    r.stdout
      .split('\n')
      .filter((l) => !l.startsWith('  '))
      .join('\n'),
  );
  if (r.status !== 0) console.log(r.stdout.slice(-4000), r.stderr);
  expect(r.status).toBe(0);
}, 300_000);
