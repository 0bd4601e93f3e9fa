// CUDA engines as the parts without a GPU see them: engine-info prints a CUDA manifest (the GPU, driver and
// cuBLASLt it was built for, its tuned GEMMs; an int8 engine's layers, kernels and int8 GEMM ranges), a CUDA
// engine given to --device cpu is refused in one line naming its rebuild, a quantized build for cuda gets as
// far as needing the CUDA backend this build lacks, and the engine cache keys CUDA engines by what their load
// is checked against (GPU model, driver major, cuBLASLt major.minor) and by nothing finer.
// The CUDA manifests are a CPU engine's with a CUDA target and tuned list written in: the GPU suite
// (test/gpu/engine-cuda*.test.ts, engine-fp8.test.ts, engine-int8.test.ts) builds real ones.
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { engineCacheKey } from '../../src/build/engine-cache.js';
import type { EngineManifest, Int8Quantization } from '../../src/build/manifest.js';
import { loadNative, type NativeModule, type NativeTarget } from '../../src/runner/binding.js';
import { kvserve } from '../cli/helpers/run-kvserve.js';
import { buildInt8Into, buildInto, buildOptions, nativeOptions, storiesDir, tempDir } from './engine-helpers.js';

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

/** A copy of the CPU engine `cpu` with the H200 target, `tunedGemms` and --device cuda in its rebuild written
 *  into its manifest, after `edit`. */
function asCudaEngine(cpu: string, tunedGemms: EngineManifest['tunedGemms'], edit = (_: EngineManifest) => {}) {
  const dir = join(tempDir(), 'engine');
  cpSync(cpu, dir, { recursive: true });
  const path = join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(path, 'utf8')) as EngineManifest;
  m.target = h200;
  m.tunedGemms = tunedGemms;
  m.rebuild = m.rebuild.map((a) => (a === 'cpu' ? 'cuda' : a));
  edit(m);
  writeFileSync(path, JSON.stringify(m));
  return dir;
}

let cudaEngine: string;
beforeAll(async () => {
  cudaEngine = asCudaEngine(await buildInto(storiesDir), [
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
  ]);
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

describe('a CUDA int8 engine', () => {
  let int8Engine: string;
  beforeAll(async () => {
    const cpu = (await buildInt8Into(storiesDir)).dir;
    int8Engine = asCudaEngine(
      cpu,
      [
        { weight: 'qkv_proj', n: 192, k: 64, mMin: 1, mMax: 16, kernel: 'gemv_int8', rowsPerCta: 16 },
        {
          weight: 'qkv_proj',
          n: 192,
          k: 64,
          mMin: 17,
          mMax: 2048,
          kernel: 'cublasLt_int8',
          algo,
          algoId: 39,
          tile: 20,
          stages: 36,
          splitK: 1,
          workspace: 0,
        },
      ],
      (m) => {
        (m.quantization as Int8Quantization).kernel =
          'cuda: gemv_int8 (mma.sync s8, M <= 16) or cuBLASLt IMMA + dequant, per tuned M range';
      },
    );
  });

  test('engine-info prints its int8 layers, the kernels they run on and its int8 GEMM ranges', async () => {
    const r = await kvserve(['engine-info', int8Engine]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^target {9}cuda sm_90: NVIDIA H200 /m);
    expect(r.stdout).toMatch(/^quantization {3}int8$/m);
    expect(r.stdout).toMatch(
      /^ {2}int8 \(cuda: gemv_int8 \(mma\.sync s8, M <= 16\) or cuBLASLt IMMA \+ dequant, per tuned M range\): \d+ of 36 linear layers; /m,
    );
    expect(r.stdout).toMatch(/^ {2}qkv_proj \[192, 64\] M 1\.\.16: int8 GEMV kernel, 16 rows of W per CTA$/m);
    expect(r.stdout).toMatch(
      /^ {2}qkv_proj \[192, 64\] M 17\.\.2048: cuBLASLt int8 algo 39, tile 20, stages 36, split-K 1$/m,
    );
    expect(r.stdout).toMatch(
      /^rebuild +kvserve build --model \S+ --device cuda --dtype auto --quantization int8 --calib-data /m,
    );
  });

  test('--device cpu: refused in one line, the rebuild keeping its int8 options', async () => {
    const e = await native()
      .loadEngine(nativeOptions({ engine: int8Engine, device: 'cpu' }))
      .then(
        () => undefined,
        (err: Error) => err,
      );
    expect(e?.message).toMatch(
      new RegExp(
        `^engine ${int8Engine} was built for device cuda; this load asked for device cpu: serve it with --device cuda, ` +
          `or rebuild with kvserve build --model ${storiesDir} --device cuda --dtype auto --quantization int8 ` +
          `--calib-data \\S+ --calib-samples 128 .* --out ${int8Engine} --device cpu$`,
      ),
    );
  });
});

// fp8 and int8 build for cuda as any other cuda build: with the CUDA backend, which this build has not.
test.runIf(!loadNative().builtWithCuda()).each(['fp8', 'int8'])(
  'build --quantization %s --device cuda here: refused in one line, nothing written',
  async (q) => {
    const out = join(tempDir(), 'e');
    const r = await kvserve(['build', '--model', storiesDir, '--device', 'cuda', '--quantization', q, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      'kvserve: --device cuda: this build has no CUDA backend (built without nvcc and cuBLASLt); build for --device cpu',
    );
    expect(existsSync(out)).toBe(false);
  },
);

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
