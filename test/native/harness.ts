// Test harness for the native engine: builds step-protocol batches for a few sequences with simple,
// disjoint block tables (sequence i owns blocks [i*maxBlocks, (i+1)*maxBlocks)), and drives generation.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { NativeEngine, NativeEngineOptions, StepBatch, StepResult } from '../../src/runner/binding.js';

export const storiesDir = resolve(import.meta.dirname, '..', '..', 'models', 'stories260K');

/** Compiles a test-case program from repository paths (its main first) with the C++ flags of the engine's own
 *  plain-C++ parts checked strictly: -std=c++17 -O1 -Wall -Werror, the repository root on the include path. */
export function compileCases(exe: string, sources: string[]): void {
  const repo = resolve(import.meta.dirname, '..', '..');
  execFileSync(process.env.CXX || 'c++', [
    '-std=c++17',
    '-O1',
    '-Wall',
    '-Werror',
    `-I${repo}`,
    '-o',
    exe,
    ...sources.map((s) => resolve(repo, s)),
  ]);
}

export interface Sampling {
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  presencePenalty: number;
  frequencyPenalty: number;
  repetitionPenalty: number;
  seed: number;
  numLogprobs: number;
  bias?: Array<[number, number]>;
  allowed?: number[]; // sent as the row's allowed-token bitmask
}

export const greedy: Sampling = {
  temperature: 0,
  topP: 1,
  topK: 0,
  minP: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  seed: 0,
  numLogprobs: -1,
};

/** One sequence's part of a step: tokens[start..start+n) of `all` are new; sample when `sample`. */
export interface SeqChunk {
  slot: number; // which block range the sequence owns
  all: number[]; // every token of the sequence so far (prompt + output)
  promptLen: number;
  start: number; // first new position
  count: number; // new tokens
  sample: boolean;
  sampling?: Sampling;
}

export function buildBatch(chunks: SeqChunk[], blockSize: number, maxBlocks: number, returnLogits = false): StepBatch {
  const tokenIds: number[] = [],
    positions: number[] = [],
    slotMapping: number[] = [],
    queryStart = [0];
  const contextLens: number[] = [],
    blockTables: number[] = [],
    sampleIndices: number[] = [];
  const rows: Array<{ s: Sampling; c: SeqChunk }> = [];
  for (const c of chunks) {
    for (let p = c.start; p < c.start + c.count; p++) {
      tokenIds.push(c.all[p]!);
      positions.push(p);
      slotMapping.push((c.slot * maxBlocks + Math.floor(p / blockSize)) * blockSize + (p % blockSize));
    }
    queryStart.push(tokenIds.length);
    contextLens.push(c.start + c.count);
    for (let j = 0; j < maxBlocks; j++) blockTables.push(c.slot * maxBlocks + j);
    if (c.sample) {
      sampleIndices.push(tokenIds.length - 1);
      rows.push({ s: c.sampling ?? greedy, c });
    }
  }
  const hasHistory = rows.some(
    ({ s }) => s.presencePenalty !== 0 || s.frequencyPenalty !== 0 || s.repetitionPenalty !== 1,
  );
  const hasBias = rows.some(({ s }) => (s.bias?.length ?? 0) > 0);
  const batch: StepBatch = {
    tokenIds: Int32Array.from(tokenIds),
    positions: Int32Array.from(positions),
    queryStart: Int32Array.from(queryStart),
    contextLens: Int32Array.from(contextLens),
    blockTables: Int32Array.from(blockTables),
    maxBlocksPerSeq: maxBlocks,
    slotMapping: Int32Array.from(slotMapping),
    sampleIndices: Int32Array.from(sampleIndices),
    temperature: Float32Array.from(rows.map(({ s }) => s.temperature)),
    topP: Float32Array.from(rows.map(({ s }) => s.topP)),
    topK: Int32Array.from(rows.map(({ s }) => s.topK)),
    minP: Float32Array.from(rows.map(({ s }) => s.minP)),
    presencePenalty: Float32Array.from(rows.map(({ s }) => s.presencePenalty)),
    frequencyPenalty: Float32Array.from(rows.map(({ s }) => s.frequencyPenalty)),
    repetitionPenalty: Float32Array.from(rows.map(({ s }) => s.repetitionPenalty)),
    seeds: Uint32Array.from(rows.map(({ s }) => s.seed)),
    seedSteps: Int32Array.from(rows.map(({ c }) => c.start + c.count - c.promptLen)),
    numLogprobs: Int32Array.from(rows.map(({ s }) => s.numLogprobs)),
    returnLogits,
  };
  if (hasHistory) {
    const start = [0],
      outStart: number[] = [],
      toks: number[] = [];
    for (const { c } of rows) {
      outStart.push(c.promptLen);
      toks.push(...c.all.slice(0, c.start + c.count));
      start.push(toks.length);
    }
    batch.historyStart = Int32Array.from(start);
    batch.historyOutputStart = Int32Array.from(outStart);
    batch.historyTokens = Int32Array.from(toks);
  }
  if (hasBias) {
    const start = [0],
      ids: number[] = [],
      vals: number[] = [];
    for (const { s } of rows) {
      for (const [id, v] of s.bias ?? []) {
        ids.push(id);
        vals.push(v);
      }
      start.push(ids.length);
    }
    batch.biasStart = Int32Array.from(start);
    batch.biasTokens = Int32Array.from(ids);
    batch.biasValues = Float32Array.from(vals);
  }
  if (rows.some(({ s }) => s.allowed)) {
    const vocab = 512; // stories260K's
    const words = Math.ceil(vocab / 32);
    const masked = rows.filter(({ s }) => s.allowed);
    const masks = new Int32Array(masked.length * words);
    let m = 0;
    batch.maskRow = Int32Array.from(rows, ({ s }) => {
      if (!s.allowed) return -1;
      for (const t of s.allowed) masks[m * words + (t >> 5)] |= 1 << (t & 31);
      return m++;
    });
    batch.masks = masks;
  }
  return batch;
}

export interface GenerateOptions {
  maxTokens: number;
  blockSize: number;
  maxBlocks: number;
  prefillChunk?: number; // split prompts into chunks of this many tokens (default: whole prompt)
  sampling?: Sampling[]; // per prompt (default greedy)
  onStep?: (result: StepResult, batch: StepBatch) => void;
}

/** Generates for all prompts together, one step per iteration (prefill chunks and decodes mixed). */
export async function generate(engine: NativeEngine, prompts: number[][], o: GenerateOptions): Promise<number[][]> {
  const seqs = prompts.map((p, i) => ({ slot: i, all: [...p], promptLen: p.length, computed: 0 }));
  const chunk = o.prefillChunk ?? Number.MAX_SAFE_INTEGER;
  while (seqs.some((s) => s.all.length - s.promptLen < o.maxTokens)) {
    const chunks: SeqChunk[] = [];
    for (const [i, s] of seqs.entries()) {
      if (s.all.length - s.promptLen >= o.maxTokens) continue;
      const count = Math.min(chunk, s.all.length - s.computed);
      const sample = s.computed + count === s.all.length;
      chunks.push({
        slot: s.slot,
        all: s.all,
        promptLen: s.promptLen,
        start: s.computed,
        count,
        sample,
        sampling: o.sampling?.[i],
      });
    }
    const batch = buildBatch(chunks, o.blockSize, o.maxBlocks);
    const result = await engine.step(batch);
    o.onStep?.(result, batch);
    let r = 0;
    for (const c of chunks) {
      const s = seqs[c.slot]!;
      s.computed += c.count;
      if (c.sample) s.all.push(result.tokens[r++]!);
    }
  }
  return seqs.map((s) => s.all.slice(s.promptLen));
}

export const blockSize = 16;

/** Engine options for tests: stories260K on the CPU, 2 threads. */
export function engineOptions(overrides: Partial<NativeEngineOptions> = {}): NativeEngineOptions {
  return {
    model: storiesDir,
    dummyWeights: false,
    device: 'cpu',
    dtype: 'auto',
    numThreads: 2,
    blockSize,
    numKvBlocks: 0,
    kvCacheBytes: 0,
    gpuMemoryUtilization: 0.9,
    maxNumBatchedTokens: 2048,
    maxNumSeqs: 16,
    maxModelLen: 0,
    seed: 0,
    ...overrides,
  };
}

export interface Expected {
  prompt: string;
  prompt_ids: number[];
  greedy_ids: number[];
  top5_ids: number[];
  top5_logits: number[];
}

export function loadExpected(): Expected[] {
  return JSON.parse(readFileSync(resolve(storiesDir, 'expected.json'), 'utf8')) as Expected[];
}
