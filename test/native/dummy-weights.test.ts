// --load-format dummy: random weights from a config alone, deterministic in the seed.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/runner/binding.js';
import { blockSize, buildBatch, engineOptions, storiesDir } from './harness.js';

const configs = resolve(import.meta.dirname, '..', '..', 'configs');
const prompt = [1, 15, 300, 4000, 77, 9];

async function firstLogits(model: string, seed: number, dtype: 'auto' | 'float32' = 'auto') {
  const engine = await loadNative().loadEngine(
    engineOptions({ model, dummyWeights: true, seed, dtype, maxModelLen: 256 }),
  );
  try {
    const vocab = engine.info().vocabSize;
    const ids = prompt.map((t) => t % vocab);
    const r = await engine.step(
      buildBatch(
        [{ slot: 0, all: ids, promptLen: ids.length, start: 0, count: ids.length, sample: true }],
        blockSize,
        4,
        true,
      ),
    );
    return { info: engine.info(), logits: r.logits!, token: r.tokens[0]! };
  } finally {
    engine.dispose();
  }
}

describe('dummy weights', () => {
  it('a ~100M Llama from configs/llama-100m.json loads and runs a step', async () => {
    const { info, logits, token } = await firstLogits(resolve(configs, 'llama-100m.json'), 1);
    expect(info).toMatchObject({
      hiddenSize: 768,
      numLayers: 12,
      numHeads: 12,
      vocabSize: 32000,
      dtype: 'bfloat16',
      maxModelLen: 256,
    });
    // embed + lm_head 2·32000·768, 12 layers of 4·768² + 3·768·2048, in bf16
    expect(info.weightBytes).toBeGreaterThan(2 * (2 * 32000 * 768 + 12 * (4 * 768 * 768 + 3 * 768 * 2048)));
    expect(logits.length).toBe(32000);
    expect(logits.every(Number.isFinite)).toBe(true);
    expect(token).toBeGreaterThanOrEqual(0);
  });

  it('a folder with config.json works too, and the values depend only on the seed', async () => {
    const a = await firstLogits(storiesDir, 5, 'float32');
    const b = await firstLogits(storiesDir, 5, 'float32');
    const c = await firstLogits(storiesDir, 6, 'float32');
    expect(a.info.dtype).toBe('float32');
    expect(Array.from(b.logits)).toEqual(Array.from(a.logits));
    expect(Array.from(c.logits)).not.toEqual(Array.from(a.logits));
  });
});
