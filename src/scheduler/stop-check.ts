// When a request ends after a sampled token. Order matters and follows vLLM: a stop token first (so a
// stop token that is also the last allowed token reports 'stop'), then max_tokens, then the context.
// EOS ids count unless ignoreEos; stopTokenIds always; neither counts while min_tokens masks them (the
// runner gives them a -inf logit bias then, so they can only appear if every logit is -inf).
import type { Request } from './request.js';

/** Called after `token` was appended to req.tokens. Sets finishReason (and stopTokenId) and returns true
 *  when the request is done. */
export function checkStop(req: Request, token: number, maxModelLen: number): boolean {
  const numOutput = req.numOutputTokens;
  // token was output index numOutput - 1; stops were masked for indices < minTokens.
  if (numOutput - 1 >= req.sampling.minTokens && req.stopIds.has(token)) {
    req.finishReason = 'stop';
    req.stopTokenId = token;
    return true;
  }
  if (numOutput >= req.sampling.maxTokens || req.numTokens >= maxModelLen) {
    req.finishReason = 'length';
    return true;
  }
  return false;
}
