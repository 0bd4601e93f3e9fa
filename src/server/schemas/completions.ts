// POST /v1/completions: the request body. Unknown fields pass through and are ignored.
import { Type, type Static } from 'typebox';
import { Nullable, samplingFields, TokenId, unsupportedFields } from './sampling.js';

const TokenIds = Type.Array(TokenId, { minItems: 1 });

export const CompletionRequest = Type.Object({
  ...samplingFields,
  ...unsupportedFields,
  /** A string, a batch of strings, one token-id prompt, or a batch of token-id prompts. */
  prompt: Type.Union([
    Type.String(),
    Type.Array(Type.String(), { minItems: 1 }),
    TokenIds,
    Type.Array(TokenIds, { minItems: 1 }),
  ]),
  logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 20 })),
  echo: Nullable(Type.Boolean()),
});
export type CompletionRequest = Static<typeof CompletionRequest>;
