// An engine folder computes exactly what loading its model directly computes: the same greedy tokens and
// bitwise the same logits at every step, on stories260K (which also holds transformers' greedy ids) and on
// the fixtures (float32, bfloat16 kept as stored or converted to float32, float16, tied embeddings, q/k/v
// biases, q/k norms). And it is used in place: its model.safetensors is mapped by the running engine.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readManifest } from '../../src/build/manifest.js';
import { loadNative, type DTypeName, type NativeEngine } from '../../src/runner/binding.js';
import { greedyRun } from '../native/native-run.js';
import { buildInto, fixturesDir, nativeOptions, storiesDir } from './engine-helpers.js';

const native = loadNative();

async function run(engine: NativeEngine, prompt: number[], steps: number) {
  try {
    return await greedyRun(engine, prompt, steps);
  } finally {
    engine.dispose();
  }
}

function bytes(rows: Float32Array[]): Buffer {
  return Buffer.concat(rows.map((r) => Buffer.from(r.buffer, r.byteOffset, r.byteLength)));
}

const cases: Array<[string, string, 'auto' | DTypeName]> = [
  ['stories260K', storiesDir, 'auto'],
  ['llama-llama3rope-headdim', join(fixturesDir, 'llama-llama3rope-headdim'), 'auto'],
  ['llama-linear-ropeparams-tied', join(fixturesDir, 'llama-linear-ropeparams-tied'), 'auto'],
  ['qwen2-bias', join(fixturesDir, 'qwen2-bias'), 'auto'],
  ['qwen3-qknorm', join(fixturesDir, 'qwen3-qknorm'), 'auto'],
  ['llama-bf16-sharded', join(fixturesDir, 'llama-bf16-sharded'), 'auto'],
  ['llama-bf16-sharded as float32', join(fixturesDir, 'llama-bf16-sharded'), 'float32'],
  ['llama-f16', join(fixturesDir, 'llama-f16'), 'auto'],
];

describe('an engine computes what its model computes, bitwise', () => {
  test.each(cases)('%s', async (_, modelDir, dtype) => {
    const engineDir = await buildInto(modelDir, dtype);
    const manifest = readManifest(engineDir);
    const prompt = [1, 5, 9, 13, 17, 21, 25, 29];
    const direct = await run(await native.loadEngine(nativeOptions({ model: modelDir, dtype })), prompt, 12);
    const engine = await native.loadEngine(nativeOptions({ engine: engineDir }));
    expect(engine.info().dtype).toBe(manifest.weights.dtype);
    expect(manifest.weights.dtype).toBe(dtype === 'auto' ? engine.info().dtype : dtype);
    // Mapped in place, not read into memory: the running engine maps the engine's weights file.
    expect(readFileSync('/proc/self/maps', 'utf8')).toContain(join(engineDir, 'model.safetensors'));
    const built = await run(engine, prompt, 12);
    expect(built.ids).toEqual(direct.ids);
    expect(bytes(built.logits).equals(bytes(direct.logits))).toBe(true);
  });

  test("stories260K from an engine gives transformers' greedy ids", async () => {
    const expected = JSON.parse(readFileSync(join(storiesDir, 'expected.json'), 'utf8')) as Array<{
      prompt_ids: number[];
      greedy_ids: number[];
    }>;
    const engineDir = await buildInto(storiesDir);
    for (const e of expected.slice(0, 2)) {
      const { ids } = await run(await native.loadEngine(nativeOptions({ engine: engineDir })), e.prompt_ids, 40);
      expect(ids).toEqual(e.greedy_ids.slice(0, 40));
    }
  });
});
