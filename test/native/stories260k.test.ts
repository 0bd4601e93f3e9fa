// The CPU engine against Hugging Face transformers' float32 output for stories260K (expected.json).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative, type NativeEngine } from '../../src/runner/binding.js';
import { blockSize, buildBatch, engineOptions, generate, loadExpected } from './harness.js';

const expected = loadExpected();
const maxBlocks = 32; // 512 tokens

describe('stories260K on the CPU engine', () => {
  let engine: NativeEngine;
  beforeAll(async () => {
    engine = await loadNative().loadEngine(engineOptions());
  });
  afterAll(() => engine?.dispose());

  it('reports the model', () => {
    const info = engine.info();
    expect(info).toMatchObject({
      architecture: 'LlamaForCausalLM',
      modelType: 'llama',
      hiddenSize: 64,
      numLayers: 5,
      numHeads: 8,
      numKvHeads: 4,
      headDim: 8,
      vocabSize: 512,
      maxModelLen: 512,
      bosTokenId: 1,
      eosTokenIds: [2],
      device: 'cpu',
      dtype: 'float32',
      blockSize,
    });
    expect(info.numKvBlocks).toBeGreaterThan(0);
  });

  for (const e of expected) {
    it(`greedy 80 tokens match transformers: "${e.prompt}"`, async () => {
      const [out] = await generate(engine, [e.prompt_ids], { maxTokens: 80, blockSize, maxBlocks });
      expect(out).toEqual(e.greedy_ids);
    });

    it(`top-5 logits after the prompt match transformers: "${e.prompt}"`, async () => {
      const all = e.prompt_ids;
      const batch = buildBatch(
        [{ slot: 0, all, promptLen: all.length, start: 0, count: all.length, sample: true }],
        blockSize,
        maxBlocks,
        true,
      );
      const result = await engine.step(batch);
      const logits = result.logits!;
      expect(logits.length).toBe(512);
      const top = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]! || a - b).slice(0, 5);
      expect(top).toEqual(e.top5_ids);
      for (let i = 0; i < 5; i++) expect(Math.abs(logits[top[i]!]! - e.top5_logits[i]!)).toBeLessThan(1e-3);
    });
  }
});
