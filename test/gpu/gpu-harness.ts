// Shared by the GPU suite: CUDA engine options, and a results file where each test appends the numbers it
// measured (KVSERVE_GPU_OUT=<dir> collects them for docs/cuda.md; without it nothing is written).
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
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

/** The tiny random bf16 models of make_bf16_references.py, with transformers' references, made on this GPU. */
export const bf16RefsDir = process.env.KVSERVE_BF16_REFS ?? resolve(repoRoot, 'build', 'bf16-refs');
export const BF16_MODELS = ['llama-d64-g4', 'qwen2-d128-g2-bias', 'qwen3-d128-g8-qknorm'];

/** Makes the bf16 models and references unless they are there already (the first GPU file that needs them). */
export function ensureBf16Refs(): void {
  if (BF16_MODELS.every((m) => existsSync(resolve(bf16RefsDir, m, 'expected.json')))) return;
  const r = spawnSync('python3', [resolve(import.meta.dirname, 'make_bf16_references.py'), bf16RefsDir], {
    encoding: 'utf8',
  });
  console.log(r.stdout, r.stderr.slice(-3000));
  if (r.status !== 0) throw new Error('make_bf16_references.py failed');
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
