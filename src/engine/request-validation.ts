// Rejects, before it is queued, a request that could never run: one that is malformed, longer than the
// context, or needing more KV blocks than the whole pool (it would wait forever, or be preempted forever).
import { EngineError, type EngineRequest } from './types.js';

export interface Limits {
  maxModelLen: number;
  blockSize: number;
  numBlocks: number;
  vocabSize: number;
}

export function validateRequest(r: EngineRequest, limits: Limits): void {
  const bad = (msg: string): never => {
    throw new EngineError(`request ${r.id}: ${msg}`, 'invalid_request');
  };
  const p = r.promptTokenIds;
  const sp = r.sampling;
  if (p.length === 0) bad('the prompt is empty');
  for (let i = 0; i < p.length; i++) {
    const t = p[i]!;
    if (!Number.isInteger(t) || t < 0 || t >= limits.vocabSize) bad(`prompt token ${i} is ${t}, outside the vocabulary [0, ${limits.vocabSize})`);
  }
  if (!Number.isInteger(sp.maxTokens) || sp.maxTokens < 1) bad(`max_tokens must be an integer >= 1, got ${sp.maxTokens}`);
  if (!Number.isInteger(sp.minTokens) || sp.minTokens < 0) bad(`min_tokens must be an integer >= 0, got ${sp.minTokens}`);
  if (!(sp.temperature >= 0)) bad(`temperature must be >= 0, got ${sp.temperature}`);
  if (!(sp.topP > 0 && sp.topP <= 1)) bad(`top_p must be in (0, 1], got ${sp.topP}`);
  if (!(sp.minP >= 0 && sp.minP <= 1)) bad(`min_p must be in [0, 1], got ${sp.minP}`);
  if (!Number.isInteger(sp.topK)) bad(`top_k must be an integer, got ${sp.topK}`);
  if (!(sp.repetitionPenalty > 0)) bad(`repetition_penalty must be > 0, got ${sp.repetitionPenalty}`);
  if (!Number.isFinite(sp.presencePenalty) || !Number.isFinite(sp.frequencyPenalty)) bad('penalties must be finite');
  if (sp.seed !== undefined && !(Number.isInteger(sp.seed) && sp.seed >= 0 && sp.seed <= 0xffffffff)) bad(`seed must be a uint32, got ${sp.seed}`);
  if (sp.logprobs !== null && !(Number.isInteger(sp.logprobs) && sp.logprobs >= 0)) bad(`logprobs must be an integer >= 0, got ${sp.logprobs}`);
  for (const t of sp.stopTokenIds) {
    if (!Number.isInteger(t) || t < 0 || t >= limits.vocabSize) bad(`stop token id ${t} is outside the vocabulary`);
  }
  for (const [t, v] of Object.entries(sp.logitBias ?? {})) {
    const id = Number(t);
    if (!Number.isInteger(id) || id < 0 || id >= limits.vocabSize) bad(`logit_bias token ${t} is outside the vocabulary`);
    if (typeof v !== 'number' || Number.isNaN(v)) bad(`logit_bias value for ${t} is not a number`);
  }
  if (p.length + 1 > limits.maxModelLen) {
    throw new EngineError(
      `request ${r.id}: the prompt has ${p.length} tokens; with at least one generated token that exceeds the ` +
        `model's context length of ${limits.maxModelLen} tokens`,
      'context_length_exceeded',
    );
  }
  // The longest the request can get: it stops at max_tokens or at the context length.
  const maxLen = Math.min(p.length + sp.maxTokens, limits.maxModelLen);
  const capacity = limits.numBlocks * limits.blockSize;
  if (Math.ceil(maxLen / limits.blockSize) > limits.numBlocks) {
    bad(
      `needs KV cache for ${maxLen} tokens (prompt ${p.length} + max_tokens ${sp.maxTokens}), but the whole ` +
        `KV cache holds ${capacity} tokens; lower max_tokens or give the cache more memory (--num-kv-blocks, --kv-cache-memory)`,
    );
  }
}
