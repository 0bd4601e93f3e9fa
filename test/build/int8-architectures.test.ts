// int8 across the Llama family's variants (the fixtures: q/k/v biases, q/k norms, tied embeddings, bfloat16
// and float16 checkpoints whose float parts stay in their dtype, sharded weights): each builds, keeps its
// embedding and norms' dtype, and computes logits close to the unquantized model's on the same tokens
// (relative error of the logits, teacher-forced, under 6 %).
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadNative, type NativeEngineOptions } from '../../src/runner/binding.js';
import { greedyRun } from '../native/native-run.js';
import { buildInt8Into, fixturesDir, nativeOptions } from './engine-helpers.js';

const native = loadNative();
const prompt = [1, 5, 9, 13, 17, 21, 25, 29];
const forced = [33, 37, 41, 45, 49, 53, 57, 61];

async function logits(opts: NativeEngineOptions): Promise<Float32Array[]> {
  const engine = await native.loadEngine(opts);
  try {
    return (await greedyRun(engine, prompt, forced.length, forced)).logits;
  } finally {
    engine.dispose();
  }
}

describe('int8 engines of every fixture architecture', () => {
  test.each([
    ['qwen2-bias', 'float32'],
    ['qwen3-qknorm', 'float32'],
    ['llama-linear-ropeparams-tied', 'float32'],
    ['llama-llama3rope-headdim', 'float32'],
    ['llama-bf16-sharded', 'bfloat16'],
    ['llama-f16', 'float16'],
  ])('%s', async (name, dtype) => {
    const model = join(fixturesDir, name);
    const { dir, manifest } = await buildInt8Into(model);
    expect(manifest.weights.dtype).toBe(dtype);
    const engine = await native.loadEngine(nativeOptions({ engine: dir }));
    expect(engine.info().dtype).toBe(dtype);
    engine.dispose();
    const ref = await logits(nativeOptions({ model }));
    const q = await logits(nativeOptions({ engine: dir }));
    let num = 0,
      den = 0;
    for (const [i, row] of ref.entries())
      for (const [v, x] of row.entries()) {
        num += (q[i]![v]! - x) ** 2;
        den += x ** 2;
      }
    // Random weights have no outliers for smoothing to help with: each int8 projection adds about 1 %, and
    // these come to 3.5–4.8 % over two layers. A wrong fold, bias or dtype would be far above.
    expect(Math.sqrt(num / den)).toBeLessThan(0.06);
  });
});
