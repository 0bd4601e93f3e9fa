// The fp8 KV cache's calibration flow (src/build/kv-calibration.ts) on the CPU, where the observer reads the
// float32 cache: stories260K prefills calibration samples and the per-layer abs-max of K (after RoPE) and V
// that the native observer reports is the one a float64 Llama forward pass written from transformers
// (llama-reference.ts) finds over the same tokens; only the slots a step wrote count; the scales are
// abs-max / 448 in float32. The fp8 cache itself runs on the GPU: test/gpu/engine-kv-calibration.test.ts.
import { describe, expect, test } from 'vitest';
import { defaultCalibData, defaultEvalData } from '../../src/build/calibration-data.js';
import { calibrateKvCache, kvScale, observeKvAbsMax, planKvCache } from '../../src/build/kv-calibration.js';
import { prefillBatch } from '../../src/build/quality.js';
import { loadNative, type NativeEngine } from '../../src/runner/binding.js';
import { engineOptions } from '../native/harness.js';
import { storiesDir } from './engine-helpers.js';
import { LlamaReference, layerAbsMax } from './llama-reference.js';

const plan = () =>
  planKvCache(
    { calibData: defaultCalibData, calibSamples: 128, evalData: defaultEvalData },
    { dir: storiesDir, configPath: `${storiesDir}/config.json`, dummy: false, maxModelLen: 0 },
  );

async function withEngine<T>(f: (e: NativeEngine) => Promise<T>): Promise<T> {
  const engine = await loadNative().loadEngine(
    engineOptions({ numKvBlocks: 32, maxNumBatchedTokens: 512, maxNumSeqs: 1, numThreads: 2 }),
  );
  try {
    return await f(engine);
  } finally {
    engine.dispose();
  }
}

describe('the KV observer on the CPU cache', () => {
  test('per layer, the abs-max of K after RoPE and of V of a float64 forward pass over the same tokens', async () => {
    const { samples, maxLen } = await plan();
    const some = samples.slice(0, 6);
    const observed = await calibrateKvCache({
      engine: { model: storiesDir },
      samples: some,
      maxLen,
      threads: 2,
      device: 'cpu',
    });
    const ref = new LlamaReference(storiesDir);
    const caches = some.map((ids) => ref.kvCache(ids));
    const overSamples = (per: number[][]) => per[0]!.map((_, l) => Math.max(...per.map((s) => s[l]!)));
    const k = overSamples(caches.map((c) => layerAbsMax(c.k)));
    const v = overSamples(caches.map((c) => layerAbsMax(c.v)));
    expect(observed.k).toHaveLength(5);
    for (let l = 0; l < ref.numLayers; l++) {
      expect(Math.abs(observed.k[l]! - k[l]!) / k[l]!, `layer ${l} K: ${observed.k[l]} vs ${k[l]}`).toBeLessThan(1e-4);
      expect(Math.abs(observed.v[l]! - v[l]!) / v[l]!, `layer ${l} V: ${observed.v[l]} vs ${v[l]}`).toBeLessThan(1e-4);
    }
  }, 120_000);

  test('only the slots the step wrote count, not what earlier samples left in the pool', async () => {
    const { samples } = await plan();
    // short is long's first 40 tokens: its rows are the same (causal), and what long wrote beyond them stays
    // in the pool when short is prefilled over it.
    const long = samples.reduce((a, b) => (b.length > a.length ? b : a));
    const short = long.slice(0, 40);
    const alone = await withEngine((e) => observeKvAbsMax(e, [short]));
    const afterLong = await withEngine(async (e) => {
      const first = await observeKvAbsMax(e, [long]);
      return { first, short: await observeKvAbsMax(e, [short]) };
    });
    expect(afterLong.short).toEqual(alone);
    expect(afterLong.first).not.toEqual(alone); // some layer's maximum lies in the stale rows
  });

  test('a step returns kvAbsMax only when asked: [numLayers * 2], K then V of each layer', async () => {
    const { samples } = await plan();
    await withEngine(async (e) => {
      expect((await e.step(prefillBatch(samples[0]!, false))).kvAbsMax).toBeUndefined();
      const r = await e.step({ ...prefillBatch(samples[0]!, false), observeKvAbsMax: true });
      expect(r.kvAbsMax).toBeInstanceOf(Float32Array);
      expect(r.kvAbsMax).toHaveLength(10);
      const again = await observeKvAbsMax(e, [samples[0]!]);
      expect(Array.from(r.kvAbsMax!)).toEqual(again.k.flatMap((k, l) => [k, again.v[l]!]));
    });
  });
});

describe('kvScale', () => {
  test('abs-max / 448 in float32; 1.0 for a layer of zeros; never below FLT_MIN', () => {
    expect(kvScale(448)).toBe(1);
    expect(kvScale(23.888830184936523)).toBe(Math.fround(23.888830184936523 / 448));
    expect(Math.fround(kvScale(3.7))).toBe(kvScale(3.7));
    expect(kvScale(0)).toBe(1);
    expect(kvScale(1e-40)).toBe(2 ** -126);
  });
});
