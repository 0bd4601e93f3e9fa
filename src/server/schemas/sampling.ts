// Request fields shared by /v1/chat/completions and /v1/completions, with OpenAI's / vLLM's ranges.
// Ajv enforces these ranges before a handler runs; what JSON Schema cannot say (token ids < vocab,
// max_tokens against the context, floats as the engine's float32 holds them) is checked in ../sampling.ts.
// Every integer has a maximum: the engine holds counts in Int32Array, where 4294967297 would silently
// become 1, and a double beyond 2^53 is no longer the integer the client wrote.
import { Type, type Static, type TSchema } from 'typebox';
import { refusedFields, unknownFields } from './refused-fields.js';

/** OpenAI's SDKs send `null` for unset fields; null always means "use the default". */
export const Nullable = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));

export const INT32_MAX = 2 ** 31 - 1;
/** A count or id the engine holds as an int32. */
export const Int32 = (opts: { minimum: number; maximum?: number }) => Type.Integer({ maximum: INT32_MAX, ...opts });
/** A token id: 0 up to int32; the vocabulary bound is checked where the vocabulary is known. */
export const TokenId = Int32({ minimum: 0 });

export const samplingFields = {
  model: Nullable(Type.String()),
  max_tokens: Nullable(Int32({ minimum: 1 })),
  temperature: Nullable(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
  n: Nullable(Type.Integer({ minimum: 1, maximum: 128 })),
  best_of: Nullable(Int32({ minimum: 1 })),
  stop: Nullable(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 })])),
  seed: Nullable(Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER })),
  presence_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
  frequency_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
  logit_bias: Nullable(Type.Record(Type.String(), Type.Number({ minimum: -100, maximum: 100 }))),
  stream: Nullable(Type.Boolean()),
  stream_options: Nullable(
    Type.Object(
      {
        include_usage: Nullable(Type.Boolean()),
        continuous_usage_stats: Nullable(Type.Boolean()),
        include_obfuscation: Nullable(Type.Boolean()),
      },
      { additionalProperties: false },
    ),
  ),
  user: Nullable(Type.String()),
  // vLLM's extensions.
  top_k: Nullable(Int32({ minimum: -1 })),
  min_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
  repetition_penalty: Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 2 })),
  ignore_eos: Nullable(Type.Boolean()),
  min_tokens: Nullable(Int32({ minimum: 0 })),
  stop_token_ids: Nullable(Type.Array(TokenId)),
  skip_special_tokens: Nullable(Type.Boolean()),
  include_stop_str_in_output: Nullable(Type.Boolean()),
  priority: Nullable(Int32({ minimum: -INT32_MAX })),
  allowed_token_ids: Nullable(Type.Array(TokenId, { minItems: 1 })),
  bad_words: Nullable(Type.Array(Type.String())),
  truncate_prompt_tokens: Nullable(Int32({ minimum: -1 })),
  return_tokens_as_token_ids: Nullable(Type.Boolean()),
  request_id: Nullable(Type.String({ maxLength: 256 })),
};

/** Structured outputs (OpenAI's and vLLM's fields): checked in detail by ../structured-outputs.ts. */
export const structuredFields = unknownFields([
  'response_format',
  'structured_outputs',
  'guided_json',
  'guided_regex',
  'guided_choice',
  'guided_grammar',
  'guided_decoding_backend',
  'guided_whitespace_pattern',
  'structural_tag',
] as const);

/** What SDKs send that changes nothing in what is generated here: accepted, and ignored. */
export const ignoredFields = unknownFields([
  'metadata',
  'service_tier',
  'prompt_cache_key',
  'safety_identifier',
  'parallel_tool_calls',
] as const);

const SamplingBody = Type.Object({ ...samplingFields, ...refusedFields, ...ignoredFields, ...structuredFields });
/** The fields both completion endpoints share, as handlers see them after validation. */
export type SamplingBody = Static<typeof SamplingBody>;
