// The knobs of an int8 build and what they do to the engine: --keep-precision keeps the named layers in float
// (written as float tensors, recorded with the reason), the per-layer error bound sends the layers above it
// back to float, a fixed α and observer are the only ones used; each engine still loads and runs.
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { buildEngineFolder } from '../../src/build/build-engine.js';
import type { Int8Quantization } from '../../src/build/manifest.js';
import { loadNative } from '../../src/runner/binding.js';
import { greedyRun } from '../native/native-run.js';
import { buildInt8Into, buildOptions, nativeOptions, storiesDir, tempDir } from './engine-helpers.js';
import { readTensors } from './safetensors-reader.js';

const native = loadNative();

async function build(int8: Parameters<typeof buildInt8Into>[1]) {
  const { dir, manifest } = await buildInt8Into(storiesDir, int8);
  const engine = await native.loadEngine(nativeOptions({ engine: dir }));
  try {
    const { ids } = await greedyRun(engine, [1, 403, 407, 261, 378], 8); // it runs
    expect(ids).toHaveLength(8);
  } finally {
    engine.dispose();
  }
  return { dir, q: manifest.quantization as Int8Quantization, tensors: readTensors(dir) };
}

describe('int8 build options', () => {
  test('--keep-precision lm_head,layers.0.mlp.*: those layers stay float, the rest int8', async () => {
    const { q, tensors } = await build({ keepPrecision: 'lm_head, layers.0.mlp.*' });
    const kept = [
      'model.layers.0.mlp.gate_proj',
      'model.layers.0.mlp.up_proj',
      'model.layers.0.mlp.down_proj',
      'lm_head',
    ];
    expect(q.keptInFloat).toEqual(kept.map((name) => ({ name, why: '--keep-precision' })));
    for (const l of q.layers) expect(l.int8, l.name).toBe(!kept.includes(l.name));
    // A tied float head is the embedding itself: nothing written for it.
    expect(tensors.has('lm_head.weight')).toBe(false);
    expect(tensors.get('model.layers.0.mlp.down_proj.weight')!.dtype).toBe('F32');
    expect(tensors.has('model.layers.0.mlp.down_proj.act_smooth')).toBe(false);
    expect(tensors.get('model.layers.1.mlp.down_proj.weight')!.dtype).toBe('I8');
    // The layer-0 MLP group is all float: unsmoothed, its norm as it was.
    for (const l of q.layers.filter((x) => kept.includes(x.name))) expect(l.smoothing).toBe('none');
  });

  test("--keep-precision down_proj names every layer's", async () => {
    const { q } = await build({ keepPrecision: 'down_proj' });
    expect(q.keptInFloat.map((k) => k.name)).toEqual([0, 1, 2, 3, 4].map((l) => `model.layers.${l}.mlp.down_proj`));
  });

  test('a tight error bound sends the layers above it back to float, each with its error', async () => {
    const { q, tensors } = await build({ maxLayerError: 0.008 });
    const fell = q.layers.filter((l) => !l.int8);
    expect(fell.length).toBeGreaterThan(0);
    expect(fell.length).toBeLessThan(q.layers.length);
    for (const l of q.layers) {
      expect(l.int8, l.name).toBe(l.error <= 0.008);
      const t = tensors.get(`${l.name}.weight`);
      if (l.name !== 'lm_head' || l.int8) expect(t!.dtype, l.name).toBe(l.int8 ? 'I8' : 'F32');
    }
    for (const k of q.keptInFloat) expect(k.why).toMatch(/^output error 0\.0\d+ > bound 0\.008$/);
  });

  test('a fixed α and observer are the only ones searched', async () => {
    const { q } = await build({ alpha: '0.5', observer: 'absmax' });
    expect(q.smoothquant.alphaGrid).toEqual([0.5]);
    expect(q.smoothquant.tryUnsmoothed).toBe(false);
    expect(q.observer.searched).toEqual(['absmax']);
    for (const l of q.layers) expect(l, l.name).toMatchObject({ alpha: 0.5, observer: 'absmax' });
  });
});

describe('dummy weights (--load-format dummy), for benchmarks', () => {
  test("an engine of a config's random weights computes what loading them directly does; int8 of them runs", async () => {
    const config = join(storiesDir, 'config.json');
    const out = join(tempDir(), 'engine');
    const m = await buildEngineFolder({ ...buildOptions(config, out), dummy: { seed: 7 } });
    expect(m.source.files.map((f) => f.path)).toEqual(['config.json']);
    expect(m.rebuild).toEqual(expect.arrayContaining(['--load-format', 'dummy', '--dummy-seed', '7']));
    const direct = await native.loadEngine(nativeOptions({ model: config, dummyWeights: true, seed: 7 }));
    const built = await native.loadEngine(nativeOptions({ engine: out }));
    try {
      const a = await greedyRun(direct, [1, 5, 9], 6);
      const b = await greedyRun(built, [1, 5, 9], 6);
      expect(b.ids).toEqual(a.ids);
      expect(
        Buffer.concat(b.logits.map((l) => Buffer.from(l.buffer))).equals(
          Buffer.concat(a.logits.map((l) => Buffer.from(l.buffer))),
        ),
      ).toBe(true);
    } finally {
      direct.dispose();
      built.dispose();
    }
    const q = await buildEngineFolder({
      ...buildOptions(config, join(tempDir(), 'engine')),
      dummy: { seed: 7 },
      quantization: 'int8',
    });
    expect(q.quantization.method).toBe('int8');
  });
});
