// Scheduler benchmark (a script, not a test): host time per decode step at 256 running sequences with
// 2,048-token contexts, with a zero-cost fake model. Measures what the engine loop does on the host
// between two native steps: schedule() + ModelRunner.prepare() (the StepBatch) + update() + building the
// RequestOutputs. A GPU decode step of an 8B model is about 6 ms; every host millisecond here is GPU idle.
//
// A second table runs the same workload through the whole EngineLoop (submit → async iterators, one
// awaited zero-cost native step per iteration) and reports wall time per step: the above plus Promise
// plumbing and 256 consumers taking their outputs.
//
//   npx tsx test/perf/scheduler.ts [--seqs 256] [--context 2048] [--steps 512] [--block-size 16] [--no-prefix-caching]
import { parseArgs } from 'node:util';
import { ModelRunner } from '../../src/runner/model-runner.js';
import { Request } from '../../src/scheduler/request.js';
import { Scheduler, type SchedulerConfig } from '../../src/scheduler/scheduler.js';
import { tokenOutput } from '../../src/engine/request-output.js';
import type { StepResult } from '../../src/runner/binding.js';
import type { SamplingParams } from '../../src/engine/types.js';
import { EngineLoop } from '../../src/engine/engine-loop.js';
import type { StepBatch } from '../../src/runner/binding.js';

const { values: args } = parseArgs({
  options: {
    seqs: { type: 'string', default: '256' },
    context: { type: 'string', default: '2048' },
    steps: { type: 'string', default: '512' },
    'block-size': { type: 'string', default: '16' },
    'no-prefix-caching': { type: 'boolean', default: false },
  },
});
const seqs = Number(args.seqs);
const context = Number(args.context);
const steps = Number(args.steps);
const blockSize = Number(args['block-size']);
// The EngineLoop run's prefill takes up to seqs * context / (2048 - seqs) steps (decode tokens share each step's
// budget with it); its sequences decode that much longer, so that every one still decodes once the last prompt is in.
const prefillSteps = Math.ceil((seqs * context) / Math.max(1, 2048 - seqs));
const maxModelLen = context + steps + prefillSteps + 64;

const config: SchedulerConfig = {
  maxNumBatchedTokens: 2048,
  maxNumSeqs: seqs,
  maxModelLen,
  blockSize,
  numBlocks: seqs * Math.ceil(maxModelLen / blockSize),
  enablePrefixCaching: !args['no-prefix-caching'],
};
const sampling: SamplingParams = {
  temperature: 0.8,
  topP: 0.95,
  topK: 50,
  minP: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  maxTokens: steps + 60,
  minTokens: 0,
  stopTokenIds: [],
  ignoreEos: true,
  logprobs: null,
};

const prompts: number[][] = [];
let x = 12345;
const nextToken = () => {
  x = (Math.imul(x, 1103515245) + 12345) >>> 0; // an LCG: the same prompts every run
  return (x >>> 8) % 32000;
};
for (let i = 0; i < seqs; i++) prompts.push(Array.from({ length: context - 1 }, nextToken));
const scheduler = new Scheduler(config);
const runner = new ModelRunner(config);
for (let i = 0; i < seqs; i++) {
  scheduler.add(
    new Request(`r${i}`, prompts[i]!, sampling, {
      priority: 0,
      arrivalSeq: i,
      arrivalTime: 0,
      seed: i,
      eosTokenIds: [2],
      blockSize,
    }),
  );
}

/** The zero-cost model: every sampled row gets token 42. */
function fakeStep(numSamples: number): StepResult {
  const tokens = new Int32Array(numSamples).fill(42);
  return {
    tokens,
    logprobs: new Float32Array(numSamples),
    topLogprobs: 0,
    topIds: new Int32Array(0),
    topValues: new Float32Array(0),
  };
}

// Prefill (not timed, no batch built) in one step with an unlimited budget, so every sequence starts
// decoding at the same context: context - 1 prompt tokens + 1 sampled.
config.maxNumBatchedTokens = seqs * context;
const prefill = scheduler.schedule();
scheduler.update(prefill, fakeStep(prefill.numSamples).tokens);
config.maxNumBatchedTokens = 2048;
if (scheduler.running.length !== seqs || scheduler.running.some((r) => r.numTokens !== context))
  throw new Error('prefill failed');

const phases = ['schedule', 'prepare', 'update', 'outputs', 'total'] as const;
const times: Record<(typeof phases)[number], number[]> = {
  schedule: [],
  prepare: [],
  update: [],
  outputs: [],
  total: [],
};
let sink = 0;
for (let s = 0; s < steps + 50; s++) {
  const t0 = performance.now();
  const out = scheduler.schedule();
  const t1 = performance.now();
  const batch = runner.prepare(out);
  const t2 = performance.now();
  const result = fakeStep(out.numSamples);
  const got = scheduler.update(out, result.tokens);
  const t3 = performance.now();
  for (const k of got) sink += tokenOutput(out.requests[k]!, result, out.sampleRows[k]!).numOutputTokens;
  const t4 = performance.now();
  if (batch.sampleIndices.length !== seqs || out.numTokens !== seqs)
    throw new Error(`step ${s}: ${out.numTokens} tokens, ${batch.sampleIndices.length} rows`);
  if (s < 50) continue; // warm-up: let V8 optimize
  times.schedule.push(t1 - t0);
  times.prepare.push(t2 - t1);
  times.update.push(t3 - t2);
  times.outputs.push(t4 - t3);
  times.total.push(t4 - t0);
}

const pct = (a: number[], p: number) =>
  a.slice().sort((u, v) => u - v)[Math.min(a.length - 1, Math.floor(p * a.length))]!;
const fmt = (ms: number) => (ms * 1000).toFixed(1).padStart(9);
console.log(
  `scheduler host time per decode step: ${seqs} sequences, contexts ${context}..${context + steps}, block size ${blockSize}, ` +
    `prefix caching ${config.enablePrefixCaching ? 'on' : 'off'}, ${steps} steps (node ${process.version})`,
);
console.log(
  `${'phase'.padEnd(10)}${'mean µs'.padStart(9)}${'p50 µs'.padStart(9)}${'p99 µs'.padStart(9)}${'max µs'.padStart(9)}`,
);
for (const p of phases) {
  const a = times[p];
  const mean = a.reduce((u, v) => u + v, 0) / a.length;
  console.log(`${p.padEnd(10)}${fmt(mean)}${fmt(pct(a, 0.5))}${fmt(pct(a, 0.99))}${fmt(Math.max(...a))}`);
}
if (sink < 0) console.log(sink);

// The whole loop. The fake native step completes in a later macrotask (as a worker-thread step does); the
// gap from its completion to the next step() call is the host time on the critical path (GPU idle): update,
// schedule and batch building. Delivering outputs to the 256 iterators happens after the next launch, so
// it overlaps the step and is not in the gap. Prefill goes through the loop too (chunked at 2048 tokens a
// step); gaps are recorded once every sequence decodes.
async function loopBench(): Promise<void> {
  let doneAt = -1;
  let fullSteps = 0;
  const gaps: number[] = [];
  const native = {
    step(batch: StepBatch): Promise<StepResult> {
      const full = batch.tokenIds.length === seqs && batch.sampleIndices.length === seqs;
      if (full && doneAt >= 0 && fullSteps++ >= 50) gaps.push(performance.now() - doneAt);
      const R = batch.sampleIndices.length;
      return new Promise((resolve) =>
        setImmediate(() => {
          doneAt = performance.now();
          resolve(fakeStep(R));
        }),
      );
    },
  };
  const loop = new EngineLoop({ ...config, maxNumBatchedTokens: 2048, vocabSize: 32000, eosTokenIds: [2] }, native);
  let received = 0;
  const t0 = performance.now();
  await Promise.all(
    prompts.map(async (p, i) => {
      const sp = { ...sampling, maxTokens: steps + prefillSteps + 60 };
      for await (const o of loop.submit({ id: `l${i}`, promptTokenIds: p, sampling: sp }))
        received += o.newTokenIds.length;
    }),
  );
  const wall = performance.now() - t0;
  await loop.close();
  const mean = gaps.reduce((u, v) => u + v, 0) / gaps.length;
  console.log(
    `\nthrough EngineLoop: ${gaps.length} full decode steps timed, ${received} tokens to ${seqs} async iterators in ${wall.toFixed(0)} ms`,
  );
  console.log(
    `${'phase'.padEnd(10)}${'mean µs'.padStart(9)}${'p50 µs'.padStart(9)}${'p99 µs'.padStart(9)}${'max µs'.padStart(9)}`,
  );
  console.log(
    `${'idle gap'.padEnd(10)}${fmt(mean)}${fmt(pct(gaps, 0.5))}${fmt(pct(gaps, 0.99))}${fmt(Math.max(...gaps))}`,
  );
}
await loopBench();
