// The engine's own check of what it is handed (the server checks first, but `kvserve generate` and any other
// EngineClient user rely on this one): values are judged as the Int32Array / Float32Array of the step will
// hold them, so nothing changes meaning on the way to the native side.
import { describe, expect, it } from 'vitest';
import { validateRequest } from '../../src/engine/request-validation.js';
import type { EngineRequest, SamplingParams } from '../../src/engine/types.js';

const limits = { maxModelLen: 512, blockSize: 16, numBlocks: 64, vocabSize: 512 };

function req(sampling: Partial<SamplingParams> = {}, extra: Partial<EngineRequest> = {}): EngineRequest {
  return {
    id: 'r',
    promptTokenIds: [1, 5, 9],
    sampling: {
      temperature: 1,
      topP: 1,
      topK: 0,
      minP: 0,
      presencePenalty: 0,
      frequencyPenalty: 0,
      repetitionPenalty: 1,
      maxTokens: 8,
      minTokens: 0,
      stopTokenIds: [],
      ignoreEos: false,
      logprobs: null,
      ...sampling,
    },
    ...extra,
  };
}

const check = (r: EngineRequest) => () => validateRequest(r, limits);

describe('validateRequest', () => {
  it('refuses floats that leave their range as float32', () => {
    expect(check(req({ topP: 1e-320 }))).toThrow(/top_p must be in \(0, 1\] as a 32-bit float.*0 as float32/);
    expect(check(req({ topP: 1e-46 }))).toThrow(/top_p/);
    expect(check(req({ repetitionPenalty: 1e-46 }))).toThrow(/repetition_penalty/);
    expect(check(req({ repetitionPenalty: 1e39 }))).toThrow(/repetition_penalty/); // Infinity as float32
    expect(check(req({ presencePenalty: 1e39 }))).toThrow(/penalties/);
    expect(check(req({ temperature: 1e39 }))).toThrow(/temperature/);
    expect(check(req({ logitBias: { 5: 1e39 } }))).toThrow(/logit_bias/);
  });

  it('refuses integers that would wrap in an Int32Array', () => {
    expect(check(req({ topK: 2 ** 32 + 1 }))).toThrow(/top_k/);
    expect(check(req({ maxTokens: 2 ** 31 }))).toThrow(/max_tokens/);
    expect(check(req({ minTokens: 2 ** 31 }))).toThrow(/min_tokens/);
    expect(check(req({ logprobs: 513 }))).toThrow(/logprobs/);
    expect(check(req({}, { priority: 2 ** 31 }))).toThrow(/priority/);
    expect(check(req({}, { promptTokenIds: [1, 2 ** 32 + 5] }))).toThrow(/vocabulary/);
  });

  it('accepts the edges of every range', () => {
    for (const r of [
      req({ topP: 2 ** -149, repetitionPenalty: 2 ** -149, topK: 2 ** 31 - 1, temperature: 0, minP: 1, logprobs: 512 }),
      req(
        { topK: -(2 ** 31), maxTokens: 2 ** 31 - 1, minTokens: 2 ** 31 - 1, seed: 0xffffffff },
        { priority: -(2 ** 31) },
      ),
    ]) {
      expect(check(r)).not.toThrow();
    }
  });
});
