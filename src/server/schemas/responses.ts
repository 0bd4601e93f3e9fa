// POST /v1/responses: the request body (text in, text out). Fields of features kvserve does not implement
// are listed so that a non-default value gets a 400 naming them (routes/v1/responses.ts), never silence.
import { Type, type Static } from 'typebox';
import { Int32, Nullable } from './sampling.js';

/** Parts are checked in the route: input_text / output_text are text, any other type gets a clear 400. */
const InputPart = Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) });

/** An input item. Only messages are supported; the route names any other item type in its 400. */
export const InputItem = Type.Object({
  type: Type.Optional(Type.String()),
  id: Type.Optional(Type.String()),
  status: Type.Optional(Type.String()),
  role: Type.Optional(
    Type.Union([Type.Literal('user'), Type.Literal('system'), Type.Literal('developer'), Type.Literal('assistant')]),
  ),
  content: Type.Optional(Type.Union([Type.String(), Type.Array(InputPart)])),
});
export type InputItem = Static<typeof InputItem>;

export const ResponsesRequest = Type.Object(
  {
    model: Nullable(Type.String()),
    input: Type.Union([Type.String(), Type.Array(InputItem, { minItems: 1 })]),
    instructions: Nullable(Type.String()),
    max_output_tokens: Nullable(Int32({ minimum: 1 })),
    temperature: Nullable(Type.Number({ minimum: 0, maximum: 2 })),
    top_p: Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    stream: Nullable(Type.Boolean()),
    store: Nullable(Type.Boolean()),
    previous_response_id: Nullable(Type.String()),
    metadata: Nullable(Type.Record(Type.String(), Type.String())),
    user: Nullable(Type.String()),
    safety_identifier: Nullable(Type.String()),
    prompt_cache_key: Nullable(Type.String()),
    service_tier: Nullable(Type.String()),
    parallel_tool_calls: Nullable(Type.Boolean()),
    truncation: Nullable(Type.String()),
    // Accepted at their defaults only.
    text: Type.Optional(Type.Unknown()),
    tools: Type.Optional(Type.Unknown()),
    tool_choice: Type.Optional(Type.Unknown()),
    reasoning: Type.Optional(Type.Unknown()),
    include: Nullable(Type.Array(Type.String())),
    background: Type.Optional(Type.Unknown()),
    conversation: Type.Optional(Type.Unknown()),
    prompt: Type.Optional(Type.Unknown()),
    top_logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 20 })),
    max_tool_calls: Type.Optional(Type.Unknown()),
    stream_options: Type.Optional(Type.Unknown()),
    // vLLM's extensions, as on the completion endpoints.
    seed: Nullable(Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER })),
    top_k: Nullable(Int32({ minimum: -1 })),
    min_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
    repetition_penalty: Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 2 })),
    request_id: Nullable(Type.String()),
  },
  { additionalProperties: false },
);
export type ResponsesRequest = Static<typeof ResponsesRequest>;
