// The sampling flags `kvserve generate` and `kvserve chat` share, and the engine's SamplingParams they make.
import type { SamplingParams } from './engine/types.js';

export interface SamplingFlagValues {
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  samplingSeed: number; // -1 = random
}

export const samplingFlags = {
  'max-tokens': {
    key: 'maxTokens',
    kind: 'int',
    min: 1,
    max: 2 ** 31 - 1,
    help: 'tokens to generate at most, clamped to the context left',
  },
  temperature: { key: 'temperature', kind: 'number', min: 0, max: 2, help: '0 = greedy' },
  'top-p': { key: 'topP', kind: 'number', min: 0.000001, max: 1, help: 'nucleus sampling (1 = off)' },
  'top-k': { key: 'topK', kind: 'int', min: -1, max: 2 ** 31 - 1, help: 'top-k sampling (-1 = off)' },
  'min-p': { key: 'minP', kind: 'number', min: 0, max: 1, help: 'min-p sampling (0 = off)' },
  seed: { key: 'samplingSeed', kind: 'int', min: -1, max: 4294967295, help: 'seed of the sampler (-1 = random)' },
} as const;

export function samplingParams(v: SamplingFlagValues, contextLeft: number, ignoreEos = false): SamplingParams {
  return {
    temperature: v.temperature,
    topP: v.topP,
    topK: v.topK,
    minP: v.minP,
    presencePenalty: 0,
    frequencyPenalty: 0,
    repetitionPenalty: 1,
    seed: v.samplingSeed >= 0 ? v.samplingSeed : undefined,
    maxTokens: Math.min(v.maxTokens, contextLeft),
    minTokens: 0,
    stopTokenIds: [],
    ignoreEos,
    logprobs: null,
  };
}
