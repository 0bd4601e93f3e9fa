// CPU engine throughput: prompt (prefill) tokens/s and generation tokens/s at batch 1 and a larger batch,
// for stories260K and dummy-weight presets, float or int8. Prints a table; it is a benchmark, not a test.
//   npx tsx test/perf/cpu-engine.ts [--threads N] [--models stories260K,llama-100m] [--batch 16]
//                                   [--prompt 128] [--gen 64] [--repeat 3]
//   npm run bench:int8   (= --models llama-100m-f32,llama-100m-int8: int8 against float32, with the ratio)
// Each cell is the best of --repeat runs: this machine's cores are shared, and the best run is the one
// least disturbed by other processes. An int8 model is an engine built first (`kvserve build --quantization
// int8` of the same dummy weights, calibrated on the shipped text) into a temporary folder.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildEngineFolder } from '../../src/build/build-engine.js';
import { loadNative, type NativeEngine, type NativeEngineOptions } from '../../src/runner/binding.js';
import { buildBatch, storiesDir, type SeqChunk } from '../native/harness.js';

const { values: args } = parseArgs({
  options: {
    threads: { type: 'string', default: '0' },
    models: { type: 'string', default: 'stories260K,llama-100m' },
    batch: { type: 'string', default: '16' },
    prompt: { type: 'string', default: '128' },
    gen: { type: 'string', default: '64' },
    repeat: { type: 'string', default: '3' },
  },
});
const repeat = Number(args.repeat),
  threads = Number(args.threads),
  bigBatch = Number(args.batch),
  promptLen = Number(args.prompt),
  gen = Number(args.gen);
const configs = resolve(import.meta.dirname, '..', '..', 'configs');
const blockSize = 16;

interface Model {
  name: string;
  model: string;
  dummy: boolean;
  dtype: NativeEngineOptions['dtype'];
  int8?: boolean; // built into an int8 engine first
}
const models: Record<string, Model> = {
  stories260K: { name: 'stories260K f32', model: storiesDir, dummy: false, dtype: 'auto' },
  'llama-100m': {
    name: 'llama-100m bf16 (dummy)',
    model: resolve(configs, 'llama-100m.json'),
    dummy: true,
    dtype: 'auto',
  },
  'llama-100m-f32': {
    name: 'llama-100m f32 (dummy)',
    model: resolve(configs, 'llama-100m.json'),
    dummy: true,
    dtype: 'float32',
  },
  'llama-100m-int8': {
    name: 'llama-100m int8 (dummy)',
    model: resolve(configs, 'llama-100m.json'),
    dummy: true,
    dtype: 'float32',
    int8: true,
  },
  'stories260K-int8': { name: 'stories260K int8', model: storiesDir, dummy: false, dtype: 'auto', int8: true },
};

/** An int8 engine of m in a temporary folder (removed at exit). */
async function buildInt8(m: Model): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'kvserve-bench-int8-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'engine');
  const t0 = performance.now();
  await buildEngineFolder({
    model: m.model,
    modelDir: m.model,
    revision: null,
    out,
    device: 'cpu',
    dtype: m.dtype,
    quantization: 'int8',
    threads,
    profile: { maxNumSeqs: Math.max(bigBatch, 1), maxNumBatchedTokens: 2048, maxModelLen: 0 },
    ...(m.dummy ? { dummy: { seed: 0 } } : {}),
  });
  console.error(`built ${m.name} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return out;
}

/** B sequences of `promptLen` pseudo-random tokens: prefill in one step each chunk, then `gen` decode steps. */
async function run(engine: NativeEngine, B: number) {
  const vocab = engine.info().vocabSize;
  const maxBlocks = Math.ceil((promptLen + gen) / blockSize);
  const seqs = Array.from({ length: B }, (_, s) =>
    Array.from({ length: promptLen }, (_, i) => (i === 0 ? 1 : (s * 7919 + i * 104729) % vocab)),
  );
  const chunk = (s: number, start: number, count: number, sample: boolean): SeqChunk => ({
    slot: s,
    all: seqs[s]!,
    promptLen,
    start,
    count,
    sample,
  });

  // Prefill: as many whole prompts per step as fit in 2048 tokens.
  const perStep = Math.max(1, Math.floor(2048 / promptLen));
  const t0 = performance.now();
  for (let s0 = 0; s0 < B; s0 += perStep) {
    const chunks = [];
    for (let s = s0; s < Math.min(B, s0 + perStep); s++) chunks.push(chunk(s, 0, promptLen, true));
    const r = await engine.step(buildBatch(chunks, blockSize, maxBlocks));
    for (const [i, c] of chunks.entries()) seqs[c.slot]!.push(r.tokens[i]!);
  }
  const prefillMs = performance.now() - t0;

  const t1 = performance.now();
  for (let g = 1; g < gen; g++) {
    const chunks = seqs.map((all, s) => chunk(s, all.length - 1, 1, true));
    const r = await engine.step(buildBatch(chunks, blockSize, maxBlocks));
    for (const [i, c] of chunks.entries()) seqs[c.slot]!.push(r.tokens[i]!);
  }
  const decodeMs = performance.now() - t1;
  return {
    prefillTps: (B * promptLen) / (prefillMs / 1000),
    decodeTps: (B * (gen - 1)) / (decodeMs / 1000),
    stepMs: decodeMs / (gen - 1),
  };
}

const rows: string[][] = [];
const steps = new Map<string, number>(); // "model/batch" → decode step ms
const keys = args.models!.split(',');
// Every engine is loaded first and the repeats go round them in turn (A B A B …), so a burst of load from
// other processes on this shared machine falls on all of them alike rather than on one model's runs.
const engines: Array<{ key: string; m: Model; engine: NativeEngine }> = [];
for (const key of keys) {
  const m = models[key];
  if (!m) throw new Error(`unknown model ${key} (known: ${Object.keys(models).join(', ')})`);
  const engineDir = m.int8 ? await buildInt8(m) : undefined;
  const engine = await loadNative().loadEngine({
    model: m.model,
    ...(engineDir ? { engine: engineDir } : {}),
    dummyWeights: m.dummy && !engineDir,
    device: 'cpu',
    dtype: m.dtype,
    numThreads: threads,
    blockSize,
    numKvBlocks: 0,
    kvCacheBytes: 0,
    gpuMemoryUtilization: 0.9,
    maxNumBatchedTokens: 2048,
    maxNumSeqs: Math.max(bigBatch, 1),
    maxModelLen: Math.max(promptLen + gen, 256),
    seed: 0,
  });
  await run(engine, 1); // warm-up: page in weights, grow buffers
  engines.push({ key, m, engine });
}
for (const B of [1, bigBatch]) {
  const runs = engines.map(() => [] as Array<Awaited<ReturnType<typeof run>>>);
  for (let i = 0; i < repeat; i++) for (const [e, { engine }] of engines.entries()) runs[e]!.push(await run(engine, B));
  for (const [e, { key, m }] of engines.entries()) {
    const r = {
      prefillTps: Math.max(...runs[e]!.map((x) => x.prefillTps)),
      decodeTps: Math.max(...runs[e]!.map((x) => x.decodeTps)),
      stepMs: Math.min(...runs[e]!.map((x) => x.stepMs)),
    };
    steps.set(`${key}/${B}`, r.stepMs);
    rows.push([m.name, String(B), r.prefillTps.toFixed(0), r.decodeTps.toFixed(1), r.stepMs.toFixed(2)]);
  }
}
for (const { engine } of engines) engine.dispose();
rows.sort((a, b) => engines.findIndex((e) => e.m.name === a[0]) - engines.findIndex((e) => e.m.name === b[0]));

const head = ['model', 'batch', 'prefill tok/s', 'decode tok/s', 'decode step ms'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(
  `threads ${threads || 'all'}, prompt ${promptLen} tokens, ${gen} generated tokens per sequence, best of ${repeat}`,
);
console.log(line(head));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const r of rows) console.log(line(r));
// int8 against its float counterpart (same weights before quantization), where both ran.
for (const key of keys.filter((k) => models[k]?.int8)) {
  const base = key === 'llama-100m-int8' ? 'llama-100m-f32' : key.replace(/-int8$/, '');
  for (const B of [1, bigBatch]) {
    const a = steps.get(`${base}/${B}`),
      b = steps.get(`${key}/${B}`);
    if (a && b)
      console.log(
        `${models[key]!.name} vs ${models[base]!.name}, batch ${B}: ${(a / b).toFixed(2)}× faster decode step`,
      );
  }
}
