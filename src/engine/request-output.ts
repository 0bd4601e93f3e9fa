// RequestOutput objects from the scheduler's view of a request and a step's result. An EOS that ends a
// request is reported as stopTokenId, not in newTokenIds (its text is never shown); a stop_token_ids
// token stays in newTokenIds, as in vLLM. numOutputTokens counts every sampled token, the EOS included.
import type { StepResult } from '../runner/binding.js';
import type { Request } from '../scheduler/request.js';
import type { FinishReason, RequestOutput, TokenLogprob } from './types.js';

function base(req: Request, newTokenIds: number[]): RequestOutput {
  const out: RequestOutput = {
    id: req.id,
    newTokenIds,
    finished: false,
    numPromptTokens: req.numPromptTokens,
    numCachedPromptTokens: Math.max(0, req.numCachedPromptTokens),
    numOutputTokens: req.numOutputTokens,
  };
  return out;
}

/** The output of a request that sampled `row` of `result` this step (its last token). */
export function tokenOutput(req: Request, result: StepResult, row: number): RequestOutput {
  const token = result.tokens[row]!;
  const hideEos = req.finishReason === 'stop' && req.eosIds.has(token);
  const out = base(req, hideEos ? [] : [token]);
  if (req.numOutputTokens === 1) out.queueTimeMs = req.firstScheduledTime - req.arrivalTime;
  if (req.sampling.logprobs !== null && !hideEos) out.logprobs = [logprobOf(req, result, row, token)];
  if (req.finishReason) {
    out.finished = true;
    out.finishReason = req.finishReason;
    if (req.stopTokenId !== undefined) out.stopTokenId = req.stopTokenId;
  }
  return out;
}

/** The last output of a request ended without a token (abort, error). */
export function endOutput(req: Request, reason: FinishReason, error?: string): RequestOutput {
  const out = base(req, []);
  out.finished = true;
  out.finishReason = reason;
  if (error !== undefined) out.error = error;
  return out;
}

function logprobOf(req: Request, result: StepResult, row: number, token: number): TokenLogprob {
  const k = Math.min(req.sampling.logprobs ?? 0, result.topLogprobs);
  const top: Array<[number, number]> = [];
  const at = row * result.topLogprobs;
  for (let i = 0; i < k; i++) {
    const id = result.topIds[at + i]!;
    if (id < 0) break;
    top.push([id, result.topValues[at + i]!]);
  }
  return { tokenId: token, logprob: result.logprobs[row]!, top };
}
