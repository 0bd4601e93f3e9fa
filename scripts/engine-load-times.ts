// Load times of a model folder against an engine built from it (kvserve build), printed as a table:
// loading (to a ready engine) and the first step after it (a 16-token prefill, which pays for any weight
// pages not read yet), each the median of --runs fresh loads. Not a test: numbers depend on the machine.
//
//   npx tsx scripts/engine-load-times.ts --model DIR [--dtype float32] [--runs 3] [--threads N]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildEngineFolder } from '../src/build/build-engine.js';
import { loadNative, type DTypeName, type NativeEngineOptions } from '../src/runner/binding.js';
import { buildBatch } from '../test/native/harness.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    dtype: { type: 'string', default: 'auto' },
    runs: { type: 'string', default: '3' },
    threads: { type: 'string', default: '0' },
  },
});
if (!values.model) throw new Error('--model DIR is required');
const model = resolve(values.model);
const dtype = values.dtype as 'auto' | DTypeName;
const runs = Number(values.runs);
const threads = Number(values.threads);
const native = loadNative();

const options = (o: Partial<NativeEngineOptions>): NativeEngineOptions => ({
  model: '',
  dummyWeights: false,
  device: 'cpu',
  dtype: 'auto',
  numThreads: threads,
  blockSize: 16,
  numKvBlocks: 64,
  kvCacheBytes: 0,
  gpuMemoryUtilization: 0.9,
  maxNumBatchedTokens: 256,
  maxNumSeqs: 4,
  maxModelLen: 0,
  seed: 0,
  ...o,
});

async function time(o: NativeEngineOptions): Promise<[number, number]> {
  const t0 = performance.now();
  const engine = await native.loadEngine(o);
  const t1 = performance.now();
  const prompt = Array.from({ length: 16 }, (_, i) => 1 + i);
  await engine.step(buildBatch([{ slot: 0, all: prompt, promptLen: 16, start: 0, count: 16, sample: true }], 16, 4));
  const t2 = performance.now();
  engine.dispose();
  return [(t1 - t0) / 1000, (t2 - t1) / 1000];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measure(o: NativeEngineOptions): Promise<[number, number]> {
  const loads: number[] = [],
    steps: number[] = [];
  for (let i = 0; i < runs; i++) {
    const [l, s] = await time(o);
    loads.push(l);
    steps.push(s);
  }
  return [median(loads), median(steps)];
}

const work = mkdtempSync(join(tmpdir(), 'kvserve-engine-times-'));
try {
  const out = join(work, 'engine');
  const m = await buildEngineFolder({
    model,
    modelDir: model,
    revision: null,
    out,
    device: 'cpu',
    dtype,
    quantization: 'none',
    threads,
    profile: { maxNumSeqs: 4, maxNumBatchedTokens: 256, maxModelLen: 0 },
  });
  const direct = await measure(options({ model, dtype }));
  const engine = await measure(options({ engine: out }));
  const f = (s: number) => s.toFixed(3).padStart(9);
  console.log(
    `model ${model}, dtype ${dtype} -> engine ${m.weights.dtype} (${(m.weights.bytes / 2 ** 20).toFixed(0)} MiB), median of ${runs}`,
  );
  console.log(
    `build: ${Object.entries(m.timings)
      .map(([k, v]) => `${k} ${v.toFixed(3)} s`)
      .join(', ')}`,
  );
  console.log('| from          |   load s | 1st step s |');
  console.log('|---------------|----------|------------|');
  console.log(`| model folder  |${f(direct[0])} | ${f(direct[1])}  |`);
  console.log(`| engine folder |${f(engine[0])} | ${f(engine[1])}  |`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
