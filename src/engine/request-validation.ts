// Rejects, before it is queued, a request that could never run: one that is malformed, longer than the
// context, or needing more KV blocks than the whole pool (it would wait forever, or be preempted forever).
import { EngineError, type EngineRequest } from './types.js';

const INT32_MAX = 2 ** 31 - 1;

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
    if (!Number.isInteger(t) || t < 0 || t >= limits.vocabSize)
      bad(`prompt token ${i} is ${t}, outside the vocabulary [0, ${limits.vocabSize})`);
  }
  // Counts and ids travel in Int32Array and floats in Float32Array: each is checked as it will be held there
  // (4294967297 would become 1; top_p 1e-320 would become 0 and make the native side refuse the whole batch).
  const int32 = (v: number, lo: number) => Number.isInteger(v) && v >= lo && v <= INT32_MAX;
  const f32 = Math.fround;
  if (!int32(sp.maxTokens, 1)) bad(`max_tokens must be an integer in [1, ${INT32_MAX}], got ${sp.maxTokens}`);
  if (!int32(sp.minTokens, 0)) bad(`min_tokens must be an integer in [0, ${INT32_MAX}], got ${sp.minTokens}`);
  if (!(f32(sp.temperature) >= 0 && Number.isFinite(f32(sp.temperature))))
    bad(`temperature must be a finite number >= 0 as a 32-bit float, got ${sp.temperature}`);
  if (!(f32(sp.topP) > 0 && f32(sp.topP) <= 1))
    bad(`top_p must be in (0, 1] as a 32-bit float, got ${sp.topP} (${f32(sp.topP)} as float32)`);
  if (!(f32(sp.minP) >= 0 && f32(sp.minP) <= 1)) bad(`min_p must be in [0, 1] as a 32-bit float, got ${sp.minP}`);
  if (!int32(sp.topK, -INT32_MAX - 1)) bad(`top_k must be an integer in the int32 range, got ${sp.topK}`);
  const rep = f32(sp.repetitionPenalty);
  if (!(rep > 0 && Number.isFinite(rep)))
    bad(`repetition_penalty must be > 0 and finite as a 32-bit float, got ${sp.repetitionPenalty} (${rep} as float32)`);
  if (!Number.isFinite(f32(sp.presencePenalty)) || !Number.isFinite(f32(sp.frequencyPenalty)))
    bad('penalties must be finite as 32-bit floats');
  if (sp.seed !== undefined && !(Number.isInteger(sp.seed) && sp.seed >= 0 && sp.seed <= 0xffffffff))
    bad(`seed must be a uint32, got ${sp.seed}`);
  if (sp.logprobs !== null && !(Number.isInteger(sp.logprobs) && sp.logprobs >= 0 && sp.logprobs <= limits.vocabSize)) {
    bad(`logprobs must be an integer in [0, ${limits.vocabSize}], got ${sp.logprobs}`);
  }
  if (r.priority !== undefined && !int32(r.priority, -INT32_MAX - 1))
    bad(`priority must be an integer in the int32 range, got ${r.priority}`);
  for (const t of sp.stopTokenIds) {
    if (!Number.isInteger(t) || t < 0 || t >= limits.vocabSize) bad(`stop token id ${t} is outside the vocabulary`);
  }
  const inVocab = (t: number) => Number.isInteger(t) && t >= 0 && t < limits.vocabSize;
  if (sp.allowedTokenIds && (sp.allowedTokenIds.length === 0 || !sp.allowedTokenIds.every(inVocab))) {
    bad('allowed_token_ids must be a non-empty list of token ids inside the vocabulary');
  }
  if (sp.badWords && !sp.badWords.every((w) => w.length > 0 && w.every(inVocab)))
    bad('bad words must be non-empty token sequences inside the vocabulary');
  for (const [t, v] of Object.entries(sp.logitBias ?? {})) {
    const id = Number(t);
    if (!Number.isInteger(id) || id < 0 || id >= limits.vocabSize)
      bad(`logit_bias token ${t} is outside the vocabulary`);
    if (typeof v !== 'number' || !Number.isFinite(f32(v)))
      bad(`logit_bias value for ${t} is not a finite number as a 32-bit float`);
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
