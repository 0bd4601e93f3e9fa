// Drives one sequence through the native step protocol directly (no scheduler): a prefill step, then one
// decode step per token, through the harness's batch builder (slot 0: blocks 0, 1, 2, ...). Engine-level
// tests only; the CPU fixture tests and the GPU engine tests use it.
import type { NativeEngine } from '../../src/runner/binding.js';
import { buildBatch } from './harness.js';

/**
 * Greedy decoding of `steps` tokens after `prompt`; with `force`, feeds those tokens instead of the sampled
 * ones (teacher forcing). Returns the sampled ids and the logits row of each step.
 */
export async function greedyRun(engine: NativeEngine, prompt: number[], steps: number, force?: number[]) {
  const { blockSize, numKvBlocks } = engine.info();
  const maxBlocks = Math.min(numKvBlocks, Math.ceil((prompt.length + steps) / blockSize) + 1);
  const all = [...prompt];
  const ids: number[] = [];
  const logits: Float32Array[] = [];
  let start = 0;
  for (let s = 0; s < steps; s++) {
    const count = all.length - start;
    const batch = buildBatch(
      [{ slot: 0, all, promptLen: prompt.length, start, count, sample: true }],
      blockSize,
      maxBlocks,
      true,
    );
    const r = await engine.step(batch);
    start += count;
    ids.push(r.tokens[0]!);
    logits.push(r.logits!.slice());
    all.push(force ? force[s]! : r.tokens[0]!);
  }
  return { ids, logits };
}
