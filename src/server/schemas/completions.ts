// POST /v1/completions: the request body. A field no schema names is a 400 (unrecognized).
import { Type, type Static } from 'typebox';
import { Nullable, samplingFields, structuredFields, TokenId, ignoredFields } from './sampling.js';
import { refusedFields } from './refused-fields.js';

const TokenIds = Type.Array(TokenId, { minItems: 1 });

export const CompletionRequest = Type.Object(
  {
    ...samplingFields,
    ...refusedFields,
    ...ignoredFields,
    ...structuredFields,
    /** A string, a batch of strings, one token-id prompt, or a batch of token-id prompts. */
    prompt: Type.Union([
      Type.String(),
      Type.Array(Type.String(), { minItems: 1 }),
      TokenIds,
      Type.Array(TokenIds, { minItems: 1 }),
    ]),
    logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 20 })),
    echo: Nullable(Type.Boolean()),
    add_special_tokens: Nullable(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type CompletionRequest = Static<typeof CompletionRequest>;
