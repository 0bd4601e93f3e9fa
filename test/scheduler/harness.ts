// Drives Scheduler + ModelRunner + FakeModel synchronously over a workload and checks the invariants after
// every schedule and every update. Used by the property tests.
import { expect } from 'vitest';
import { ModelRunner } from '../../src/runner/model-runner.js';
import { Request } from '../../src/scheduler/request.js';
import { Scheduler, type SchedulerConfig } from '../../src/scheduler/scheduler.js';
import type { SchedulerOutput } from '../../src/scheduler/scheduler-output.js';
import type { SamplingParams } from '../../src/engine/types.js';
import { FakeModel } from './fake-model.js';

export const EOS = 2;

export interface WorkItem {
  prompt: number[];
  maxTokens: number;
  minTokens: number;
  stopTokenIds: number[];
  ignoreEos: boolean;
  priority: number;
  arriveAtStep: number;
  /** Abort before this step's schedule (>= 0), or mid-step (between schedule and update) when midStep. */
  abortAtStep: number;
  abortMidStep: boolean;
}

export function sampling(w: Pick<WorkItem, 'maxTokens' | 'minTokens' | 'stopTokenIds' | 'ignoreEos'>): SamplingParams {
  return {
    temperature: 0,
    topP: 1,
    topK: 0,
    minP: 0,
    presencePenalty: 0,
    frequencyPenalty: 0,
    repetitionPenalty: 1,
    maxTokens: w.maxTokens,
    minTokens: w.minTokens,
    stopTokenIds: w.stopTokenIds,
    ignoreEos: w.ignoreEos,
    logprobs: null,
  };
}

/** Every block's refcount equals the number of table entries naming it; no table names a block twice;
 *  only cached blocks are shared; free blocks are exactly those with refcount 0; waiting requests hold none. */
export function checkBlocks(s: Scheduler, live: Request[]): void {
  // Plain checks, not expect(): this runs for every block after every step of hundreds of workloads.
  const fail = (msg: string): never => {
    throw new Error(msg);
  };
  const pool = s.kv.pool;
  const owners = new Int32Array(pool.numBlocks);
  for (const r of live) {
    const seen = new Set<number>();
    for (const b of r.blockTable.view()) {
      if (seen.has(b)) fail(`request ${r.id} holds block ${b} twice`);
      seen.add(b);
      owners[b]!++;
    }
    if (r.status !== 'running' && r.blockTable.length !== 0) fail(`${r.status} request ${r.id} holds blocks`);
  }
  const free = new Set(pool.freeBlocks());
  if (free.size !== pool.numFree) fail(`free list has ${free.size} blocks, numFree says ${pool.numFree}`);
  for (let b = 0; b < pool.numBlocks; b++) {
    if (pool.refCount[b] !== owners[b]) fail(`block ${b}: refcount ${pool.refCount[b]}, owners ${owners[b]}`);
    if (free.has(b) !== (owners[b] === 0)) fail(`block ${b}: free list membership disagrees with its owners`);
    if (owners[b]! > 1 && !pool.isCached(b)) fail(`block ${b} is shared but not cached`);
  }
}

export function checkBudgets(s: Scheduler, out: SchedulerOutput): void {
  const c = s.config;
  expect(out.numTokens).toBeLessThanOrEqual(c.maxNumBatchedTokens);
  expect(out.requests.length).toBeLessThanOrEqual(c.maxNumSeqs);
  expect(s.running.length).toBeLessThanOrEqual(c.maxNumSeqs);
  expect(new Set(out.requests).size).toBe(out.requests.length);
  let total = 0;
  let rows = 0;
  out.requests.forEach((r, k) => {
    const n = out.numNewTokens[k]!;
    total += n;
    expect(n).toBeGreaterThanOrEqual(1);
    expect(r.numComputedTokens + n).toBeLessThanOrEqual(r.numTokens);
    expect(r.blockTable.length).toBe(Math.ceil((r.numComputedTokens + n) / c.blockSize));
    expect(r.status).toBe('running');
    const samples = r.numComputedTokens + n === r.numTokens;
    expect(out.sampleRows[k]).toBe(samples ? rows++ : -1);
  });
  expect(total).toBe(out.numTokens);
  expect(rows).toBe(out.numSamples);
}

export interface SimResult {
  tokens: Map<number, number[]>; // work index → generated tokens
  finish: Map<number, string>;
  scheduler: Scheduler;
  steps: number;
}

export function simulate(work: WorkItem[], config: SchedulerConfig, vocab: number): SimResult {
  const s = new Scheduler(config);
  const runner = new ModelRunner(config);
  const model = new FakeModel(config.numBlocks, config.blockSize, vocab);
  const reqs = work.map(
    (w, i) =>
      new Request(String(i), w.prompt, sampling(w), {
        priority: w.priority,
        arrivalSeq: i,
        arrivalTime: 0,
        seed: i,
        eosTokenIds: [EOS],
        blockSize: config.blockSize,
      }),
  );
  const arrived: Request[] = [];
  let step = 0;
  const lastArrival = Math.max(...work.map((w) => w.arriveAtStep));
  for (; step < 100_000; step++) {
    work.forEach((w, i) => {
      if (w.arriveAtStep === step) {
        s.add(reqs[i]!);
        arrived.push(reqs[i]!);
      }
      if (w.abortAtStep === step && !w.abortMidStep && reqs[i]!.status !== 'finished' && arrived.includes(reqs[i]!))
        s.finish(reqs[i]!, 'abort');
    });
    if (!s.hasWork() && step > lastArrival) break;
    const out = s.schedule();
    checkBudgets(s, out);
    checkBlocks(s, arrived);
    if (out.requests.length === 0) {
      expect(s.hasWork(), 'nothing scheduled although there is work').toBe(false);
      continue;
    }
    const result = model.stepSync(runner.prepare(out));
    work.forEach((w, i) => {
      if (w.abortAtStep === step && w.abortMidStep && arrived.includes(reqs[i]!)) s.finish(reqs[i]!, 'abort');
    });
    s.update(out, result.tokens);
    checkBlocks(s, arrived);
  }
  expect(s.hasWork()).toBe(false);
  const tokens = new Map<number, number[]>();
  const finish = new Map<number, string>();
  reqs.forEach((r, i) => {
    tokens.set(i, r.tokens.slice(r.numPromptTokens));
    finish.set(i, r.finishReason ?? 'none');
  });
  return { tokens, finish, scheduler: s, steps: step };
}
