// Shared by the GPU suite: CUDA engine options, and a results file where each test appends the numbers it
// measured (KVSERVE_GPU_OUT=<dir> collects them for docs/cuda.md; without it nothing is written).
import { appendFileSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { NativeEngineOptions } from '../../src/runner/binding.js';

export const repoRoot = resolve(import.meta.dirname, '..', '..');

export function cudaOptions(model: string, overrides: Partial<NativeEngineOptions> = {}): NativeEngineOptions {
  return {
    model,
    dummyWeights: false,
    device: 'cuda',
    dtype: 'auto',
    numThreads: 0,
    blockSize: 16,
    numKvBlocks: 0,
    kvCacheBytes: 0,
    gpuMemoryUtilization: 0.9,
    maxNumBatchedTokens: 2048,
    maxNumSeqs: 64,
    maxModelLen: 0,
    seed: 0,
    batchInvariant: false,
    ...overrides,
  };
}

export function record(name: string, values: Record<string, unknown>): void {
  const dir = process.env.KVSERVE_GPU_OUT;
  console.log(`[gpu] ${name}: ${JSON.stringify(values)}`);
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  appendFileSync(resolve(dir, 'gpu-results.jsonl'), `${JSON.stringify({ name, ...values })}\n`);
}

export function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}
