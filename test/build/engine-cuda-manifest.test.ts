// CUDA engines as the parts without a GPU see them: engine-info prints a CUDA manifest (the GPU, driver and
// cuBLASLt it was built for, its tuned GEMMs), a CUDA engine given to --device cpu is refused in one line,
// --quantization with --device cuda says it is not implemented, and the engine cache keys CUDA engines by
// what their load is checked against (GPU model, driver major, cuBLASLt major.minor) and by nothing finer.
// The CUDA manifests are a CPU engine's with a CUDA target and tuned list written in: the GPU suite
// (test/gpu/engine-cuda*.test.ts) builds real ones.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { engineCacheKey } from '../../src/build/engine-cache.js';
import type { EngineManifest } from '../../src/build/manifest.js';
import { loadNative, type NativeModule, type NativeTarget } from '../../src/runner/binding.js';
import { kvserve } from '../cli/helpers/run-kvserve.js';
import { buildInto, buildOptions, nativeOptions, storiesDir, tempDir } from './engine-helpers.js';

const h200: NativeTarget = {
  device: 'cuda',
  arch: 'sm_90',
  features: [],
  hostFeatures: [],
  gpuName: 'NVIDIA H200',
  computeCapability: '9.0',
  smCount: 132,
  driverVersion: '580.159.04',
  cudaDriverVersion: '13.0',
  cudaRuntimeVersion: '13.0',
  cublasLtVersion: '13.1.0',
  cudaArchs: '90',
};
const algo = '00000000000000420000000000000014'.padEnd(128, '0');

let cudaEngine: string;
beforeAll(async () => {
  const cpu = await buildInto(storiesDir);
  cudaEngine = join(tempDir(), 'engine');
  cpSync(cpu, cudaEngine, { recursive: true });
  const path = join(cudaEngine, 'manifest.json');
  const m = JSON.parse(readFileSync(path, 'utf8')) as EngineManifest;
  m.target = h200;
  m.tunedGemms = [
    { weight: 'qkv_proj', n: 192, k: 64, mMin: 1, mMax: 1, kernel: 'gemv', rowsPerCta: 4 },
    { weight: 'qkv_proj', n: 192, k: 64, mMin: 2, mMax: 8, kernel: 'gemv_even' },
    {
      weight: 'qkv_proj',
      n: 192,
      k: 64,
      mMin: 9,
      mMax: 2048,
      kernel: 'cublasLt',
      algo,
      algoId: 66,
      tile: 20,
      stages: 35,
      splitK: 1,
      workspace: 0,
    },
  ];
  m.rebuild = m.rebuild.map((a) => (a === 'cpu' ? 'cuda' : a));
  writeFileSync(path, JSON.stringify(m));
});

test('engine-info prints the GPU, driver and cuBLASLt, and every tuned GEMM range', async () => {
  const r = await kvserve(['engine-info', cudaEngine]);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(
    /^target {9}cuda sm_90: NVIDIA H200 \(compute capability 9\.0, 132 SMs\), driver 580\.159\.04, CUDA runtime 13\.0, cuBLASLt 13\.1\.0, kernels for 90$/m,
  );
  expect(r.stdout).toMatch(/^tuned GEMMs {4}3 M ranges$/m);
  expect(r.stdout).toMatch(/^ {2}qkv_proj \[192, 64\] M 1\.\.1: GEMV kernel, 4 rows of W per CTA$/m);
  expect(r.stdout).toMatch(/^ {2}qkv_proj \[192, 64\] M 2\.\.8: GEMV kernel, W cut evenly over one wave of CTAs$/m);
  expect(r.stdout).toMatch(/^ {2}qkv_proj \[192, 64\] M 9\.\.2048: cuBLASLt algo 66, tile 20, stages 35, split-K 1$/m);
});

describe('a CUDA engine where there is no CUDA to run it', () => {
  test('--device cpu: refused in one line naming both devices, before a weight is read', async () => {
    const e = await native()
      .loadEngine(nativeOptions({ engine: cudaEngine, device: 'cpu' }))
      .then(
        () => undefined,
        (err: Error) => err,
      );
    expect(e?.message).toBe(
      `engine ${cudaEngine} was built for device cuda; this load asked for device cpu: serve it with --device cuda, ` +
        `or rebuild with kvserve build --model ${storiesDir} --device cuda --dtype auto --quantization none ` +
        `--max-num-seqs 16 --max-num-batched-tokens 2048 --max-model-len 0 --out ${cudaEngine} --device cpu`,
    );
  });

  test.runIf(!loadNative().builtWithCuda())(
    'kvserve generate --engine: the engine asks for cuda, one line',
    async () => {
      const r = await kvserve(['generate', '--engine', cudaEngine, '--prompt', 'Once upon a time', '--quiet']);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(
        'kvserve: device cuda: this build has no CUDA backend (it was built without nvcc and cuBLASLt, or with ' +
          'KVSERVE_CUDA=OFF); rebuild where the CUDA toolkit is, or use --device cpu',
      );
    },
  );
});

test.each<[string, { KVSERVE_CUDA_INT8?: string }]>([
  ['fp8', {}],
  ['int8', {}],
  ['int8', { KVSERVE_CUDA_INT8: '1' }],
])('build --quantization %s --device cuda here (%o): refused in one line', async (q, env) => {
  const r = await kvserve(
    ['build', '--model', storiesDir, '--device', 'cuda', '--quantization', q, '--out', join(tempDir(), 'e')],
    { ...process.env, KVSERVE_CUDA_INT8: undefined, ...env },
  );
  expect(r.code).toBe(1);
  // GPU int8 is behind its variable until a GPU run verifies it; past it (and for fp8) the build needs CUDA,
  // which this machine's build has not.
  expect(r.stderr.trim()).toBe(
    q === 'int8' && !env.KVSERVE_CUDA_INT8
      ? 'kvserve: --quantization int8 with --device cuda is not yet verified on a GPU: set KVSERVE_CUDA_INT8=1 to use it (int8 engines build for --device cpu; on cuda: fp8)'
      : 'kvserve: --device cuda: this build has no CUDA backend (built without nvcc and cuBLASLt); build for --device cpu',
  );
});

function native(target?: Partial<NativeTarget>): NativeModule {
  const real = loadNative();
  if (!target) return real;
  return { ...real, engineTarget: () => ({ ...h200, ...target, formatVersion: real.engineTarget().formatVersion }) };
}

test('the engine cache keys CUDA engines by GPU model, compute capability, driver major and cuBLASLt major.minor', () => {
  const { out: _, ...o } = { ...buildOptions(storiesDir, '/unused'), device: 'cuda' as const };
  const hash = { contentHash: 'sha256:0', files: [] };
  const key = (t: Partial<NativeTarget>) => engineCacheKey(o, hash, native(t));
  const base = key({});
  for (const same of [
    { driverVersion: '580.65.06' },
    { cublasLtVersion: '13.1.9' },
    { smCount: 114 },
    { cudaRuntimeVersion: '13.1' },
  ])
    expect(key(same), JSON.stringify(same)).toBe(base);
  const others = [
    { gpuName: 'NVIDIA H100 80GB HBM3' },
    { arch: 'sm_80', computeCapability: '8.0' },
    { driverVersion: '570.124.06' },
    { cublasLtVersion: '13.2.0' },
    { driverVersion: '', cudaDriverVersion: '13.0' },
  ];
  const keys = others.map(key);
  expect(new Set([base, ...keys]).size).toBe(others.length + 1);
  // A CPU engine of the same model and options is another engine.
  expect(engineCacheKey({ ...o, device: 'cpu' }, hash, loadNative())).not.toBe(base);
});
