// CPU engine throughput: prompt (prefill) tokens/s and generation tokens/s at batch 1 and a larger batch,
// for stories260K and dummy-weight presets. Prints a table; it is a benchmark, not a test.
//   npx tsx test/perf/cpu-engine.ts [--threads N] [--models stories260K,llama-100m] [--batch 16]
//                                   [--prompt 128] [--gen 64] [--repeat 3]
// Each cell is the best of --repeat runs: this machine's cores are shared, and the best run is the one
// least disturbed by other processes.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
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
};

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
for (const key of args.models!.split(',')) {
  const m = models[key];
  if (!m) throw new Error(`unknown model ${key} (known: ${Object.keys(models).join(', ')})`);
  const engine = await loadNative().loadEngine({
    model: m.model,
    dummyWeights: m.dummy,
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
  for (const B of [1, bigBatch]) {
    const runs = [];
    for (let i = 0; i < repeat; i++) runs.push(await run(engine, B));
    const r = {
      prefillTps: Math.max(...runs.map((x) => x.prefillTps)),
      decodeTps: Math.max(...runs.map((x) => x.decodeTps)),
      stepMs: Math.min(...runs.map((x) => x.stepMs)),
    };
    rows.push([m.name, String(B), r.prefillTps.toFixed(0), r.decodeTps.toFixed(1), r.stepMs.toFixed(2)]);
  }
  engine.dispose();
}

const head = ['model', 'batch', 'prefill tok/s', 'decode tok/s', 'decode step ms'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(
  `threads ${threads || 'all'}, prompt ${promptLen} tokens, ${gen} generated tokens per sequence, best of ${repeat}`,
);
console.log(line(head));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const r of rows) console.log(line(r));
