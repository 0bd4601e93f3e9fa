// Greedy sampling parameters for the engine tests: temperature 0, every filter and penalty off, EOS ignored.
import type { SamplingParams } from '../../src/engine/types.js';

export function greedy(maxTokens: number, over: Partial<SamplingParams> = {}): SamplingParams {
  return {
    temperature: 0,
    topP: 1,
    topK: 0,
    minP: 0,
    presencePenalty: 0,
    frequencyPenalty: 0,
    repetitionPenalty: 1,
    maxTokens,
    minTokens: 0,
    stopTokenIds: [],
    ignoreEos: true,
    logprobs: null,
    ...over,
  };
}
