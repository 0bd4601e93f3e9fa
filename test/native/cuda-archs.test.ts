// Which GPUs a CUDA build is for, on both sides:
// - build: cmake/cuda_archs.cmake picks the arch list (KVSERVE_CUDA_ARCHS, else the visible GPU, else
//   80;86;89;90), run in CMake's script mode with stand-ins for nvcc and nvidia-smi;
// - start-up: engines/cuda/cuda_archs.cc decides whether a GPU runs that list, compiled on its own (it has no
//   CUDA dependency). The expected verdicts are CUDA's compatibility rules as NVIDIA's CUDA C++ Programming
//   Guide states them (binary compatibility: same major, same or higher minor; PTX: any newer GPU; `a`
//   arch-specific code only on its own GPU; `f` family code within its major).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { compileCases } from './harness.js';

const repo = resolve(__dirname, '..', '..');
const scratch = mkdtempSync(join(tmpdir(), 'kvserve-archs-'));

function script(name: string, body: string): string {
  const path = join(scratch, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

describe('cmake/cuda_archs.cmake: the arch list of a build', () => {
  // nvcc 12.8-like: knows sm_75 .. sm_120, not sm_130.
  const nvcc = script('nvcc', 'printf "sm_75\\nsm_80\\nsm_86\\nsm_87\\nsm_89\\nsm_90\\nsm_100\\nsm_120\\n"');
  const noGpu = join(scratch, 'no-nvidia-smi');

  function pick(opts: { smi?: string; env?: string; define?: string }): {
    ok: boolean;
    archs?: string;
    source?: string;
    wgmma?: string;
    output: string;
  } {
    const args = [`-DKVSERVE_NVCC=${nvcc}`, `-DKVSERVE_NVIDIA_SMI=${opts.smi ?? noGpu}`];
    if (opts.define !== undefined) args.push(`-DKVSERVE_CUDA_ARCHS=${opts.define}`);
    const env = { ...process.env };
    delete env.KVSERVE_CUDA_ARCHS;
    if (opts.env !== undefined) env.KVSERVE_CUDA_ARCHS = opts.env;
    const r = spawnSync('cmake', [...args, '-P', join(repo, 'cmake', 'cuda_archs.cmake')], { env, encoding: 'utf8' });
    const raw = r.stdout + r.stderr;
    return {
      ok: r.status === 0,
      archs: /^-- archs=(.*)$/m.exec(raw)?.[1],
      source: /^-- source=(.*)$/m.exec(raw)?.[1],
      wgmma: /^-- wgmma=(.*)$/m.exec(raw)?.[1],
      output: raw.replace(/\s+/g, ' '), // CMake wraps its messages
    };
  }
  const smi = (caps: string) => script(`smi-${caps.replace(/\W/g, '_')}`, `printf "${caps}"`);

  test('no GPU visible: the documented default list', () => {
    expect(pick({})).toMatchObject({ ok: true, archs: '80;86;89;90', source: 'default: no GPU visible' });
  });
  test('a failing nvidia-smi counts as no GPU', () => {
    expect(pick({ smi: script('smi-broken', 'echo "NVIDIA-SMI has failed" >&2; exit 9') })).toMatchObject({
      ok: true,
      archs: '80;86;89;90',
    });
  });
  test('visible GPUs: their distinct compute capabilities', () => {
    expect(pick({ smi: smi('9.0\\n9.0\\n') })).toMatchObject({ ok: true, archs: '90', source: 'the visible GPU' });
    expect(pick({ smi: smi('8.6\\n9.0\\n8.6\\n') })).toMatchObject({ ok: true, archs: '86;90' });
    expect(pick({ smi: smi('12.0\\n') })).toMatchObject({ ok: true, archs: '120' });
  });
  test('a visible GPU this nvcc cannot compile for: the default list, with a warning', () => {
    const r = pick({ smi: smi('13.0\\n') });
    expect(r).toMatchObject({ ok: true, archs: '80;86;89;90' });
    expect(r.output).toMatch(/sm_130, which this nvcc cannot compile for/);
  });
  test('KVSERVE_CUDA_ARCHS wins over the visible GPU, from cmake or the environment; commas read as semicolons', () => {
    expect(pick({ smi: smi('9.0\\n'), env: '90a' })).toMatchObject({ ok: true, archs: '90a' });
    expect(pick({ env: '80,90-real' })).toMatchObject({ ok: true, archs: '80;90-real' });
    expect(pick({ env: '80', define: '100-virtual;120' })).toMatchObject({
      ok: true,
      archs: '100-virtual;120',
      source: 'KVSERVE_CUDA_ARCHS',
    });
  });
  test('KVSERVE_CUDA_ARCHS=native: the visible GPU, and an error when there is none', () => {
    expect(pick({ smi: smi('8.9\\n'), env: 'native' })).toMatchObject({ ok: true, archs: '89' });
    const r = pick({ env: 'native' });
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/native but nvidia-smi sees no GPU/);
  });
  // kernels/gemm_wgmma.cu's own list: wgmma exists only in sm_90a code.
  test.each([
    ['80;86;89;90', '80;86;89;90a'],
    ['90', '90a'],
    ['90a', '90a'],
    ['90;90a', '90a'],
    ['80,90-real', '80;90a-real'],
    ['90-virtual;100', '90a-virtual;100'],
    ['86', '86'], // no 9.0 entry: the file's kernels compile empty and the runner refuses wgmma
  ])('KVSERVE_CUDA_ARCHS=%s: gemm_wgmma.cu builds for %s', (value, wgmma) => {
    expect(pick({ env: value })).toMatchObject({ ok: true, wgmma });
  });
  test.each([
    ['sm_90', /"sm_90" is not a CUDA architecture/],
    ['90b', /"90b" is not a CUDA architecture/],
    ['130', /this nvcc cannot compile for 130 \(it knows sm_75, sm_80/],
  ])('KVSERVE_CUDA_ARCHS=%s is refused at configure time', (value, message) => {
    const r = pick({ env: value });
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(message);
  });
});

describe('engines/cuda/cuda_archs.cc: does a GPU run the compiled archs', () => {
  const exe = join(scratch, 'cuda_archs_cases');
  beforeAll(() => {
    compileCases(exe, ['test/native/cuda_archs_cases.cc', 'engines/cuda/cuda_archs.cc']);
  });

  interface Verdict {
    coverage?: 'code' | 'ptx' | 'none';
    described?: string;
    error?: string;
    note?: string;
    parseError?: string;
  }
  function check(archs: string, cc: string, driver = 13000, build = 13000): Verdict {
    const [major, minor] = cc.split('.');
    const out = execFileSync(exe, { input: `${archs} ${major} ${minor} ${driver} ${build}\n`, encoding: 'utf8' });
    return JSON.parse(out) as Verdict;
  }

  test.each([
    // archs, GPU, verdict: why
    ['80,86,89,90', '9.0', 'code'], // sm_90 itself
    ['80,86,89,90', '8.7', 'code'], // sm_86 code runs on 8.7 (same major, higher minor)
    ['80', '8.9', 'code'], // sm_80 code runs on all of 8.x
    ['86', '8.0', 'none'], // never on a lower minor, and PTX never JITs for an older GPU
    ['80,86,89,90', '12.0', 'ptx'], // no 12.x code: compute_90 PTX JITs for a newer GPU
    ['80-real,90-real', '12.0', 'none'], // code only, no PTX: nothing runs on another major
    ['90-virtual', '9.0', 'ptx'],
    ['90-virtual', '8.9', 'none'],
    ['90a', '9.0', 'code'],
    ['90a', '10.0', 'none'], // arch-specific code and PTX run on 9.0 only
    ['100f', '10.3', 'code'], // family code: 10.x with x >= 0
    ['100f', '12.0', 'none'], // family PTX stays within its major
    ['120', '12.1', 'code'],
  ])('%s on compute capability %s: %s', (archs, cc, verdict) => {
    expect(check(archs, cc).coverage).toBe(verdict);
  });

  test('an uncovered GPU: one line naming the build, the GPU and the rebuild', () => {
    const v = check('80-real,90-real', '12.0');
    expect(v.error).toBe(
      "this build's CUDA kernels cover sm_80, sm_90; the GPU is sm_120 (Test GPU): rebuild with KVSERVE_CUDA_ARCHS=120",
    );
    expect(check('90a', '10.0').error).toMatch(
      /cover sm_90a \(\+ PTX compute_90a\); the GPU is sm_100 \(Test GPU\): rebuild with KVSERVE_CUDA_ARCHS=100$/,
    );
  });
  test('a GPU older than compute capability 8.0 is refused whatever the build holds', () => {
    expect(check('75', '7.5').error).toMatch(
      /sm_75 \(Test GPU\); kvserve's CUDA kernels need compute capability 8.0 or newer/,
    );
  });
  test('reached through PTX: runs with a note, unless the driver is older than the PTX', () => {
    const jit = check('80,90', '12.0', 13000, 13000);
    expect(jit.error).toBe('');
    expect(jit.note).toMatch(
      /the GPU is sm_120 \(Test GPU\): the driver JIT-compiles the PTX on first use \(rebuild with KVSERVE_CUDA_ARCHS=120 for native code\)/,
    );
    const old = check('80,90', '12.0', 12040, 13000);
    expect(old.note).toBe('');
    expect(old.error).toMatch(
      /the driver \(CUDA 12\.4\) cannot compile PTX of CUDA 13\.0: rebuild with KVSERVE_CUDA_ARCHS=120 or update the driver/,
    );
    // Native code needs no JIT, so an older driver of the same major is fine (CUDA's minor-version compatibility).
    expect(check('80,120', '12.0', 12040, 12080)).toMatchObject({ coverage: 'code', error: '', note: '' });
  });
  test('the list as the build describes it', () => {
    expect(check('80,86-real,90-virtual', '8.0').described).toBe('sm_80, sm_86 (+ PTX compute_80, compute_90)');
    expect(check('90-virtual', '9.0').described).toBe('PTX compute_90 only');
  });
  test.each(['sm_90', '90b', '9', '90-realistic', '80,,x'])('"%s" is not an arch list', (archs) => {
    expect(check(archs, '9.0').parseError).toMatch(/is not a CUDA architecture/);
  });
});
