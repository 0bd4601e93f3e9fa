// Drives one sequence through the native step protocol directly (no scheduler): a prefill step, then one
// decode step per token, with a block table of consecutive blocks. For engine-level tests only.
import type { NativeEngine, StepBatch } from '../../src/runner/binding.js';

/** One sequence whose block table is blocks 0, 1, 2, ...: the slot of position p is p itself. */
function oneRowBatch(tokens: number[], start: number, maxBlocks: number): StepBatch {
  const T = tokens.length;
  const blockTables = Int32Array.from({ length: maxBlocks }, (_, i) => i);
  return {
    tokenIds: Int32Array.from(tokens),
    positions: Int32Array.from({ length: T }, (_, i) => start + i),
    queryStart: Int32Array.from([0, T]),
    contextLens: Int32Array.from([start + T]),
    blockTables,
    maxBlocksPerSeq: maxBlocks,
    slotMapping: Int32Array.from({ length: T }, (_, i) => start + i),
    sampleIndices: Int32Array.from([T - 1]),
    temperature: Float32Array.from([0]),
    topP: Float32Array.from([1]),
    topK: Int32Array.from([0]),
    minP: Float32Array.from([0]),
    presencePenalty: Float32Array.from([0]),
    frequencyPenalty: Float32Array.from([0]),
    repetitionPenalty: Float32Array.from([1]),
    seeds: Uint32Array.from([0]),
    seedSteps: Int32Array.from([0]),
    numLogprobs: Int32Array.from([-1]),
    returnLogits: true,
  };
}

/**
 * Greedy decoding of `steps` tokens after `prompt`; with `force`, feeds those tokens instead of the sampled
 * ones (teacher forcing). Returns the sampled ids and the logits row of each step.
 */
export async function greedyRun(engine: NativeEngine, prompt: number[], steps: number, force?: number[]) {
  const { blockSize, numKvBlocks } = engine.info();
  const maxBlocks = Math.min(numKvBlocks, Math.ceil((prompt.length + steps) / blockSize) + 1);
  const ids: number[] = [];
  const logits: Float32Array[] = [];
  let pending = prompt;
  let pos = 0;
  for (let s = 0; s < steps; s++) {
    const r = await engine.step(oneRowBatch(pending, pos, maxBlocks));
    pos += pending.length;
    ids.push(r.tokens[0]!);
    logits.push(r.logits!.slice());
    if (s + 1 < steps) pending = [force ? force[s]! : r.tokens[0]!];
  }
  return { ids, logits };
}
