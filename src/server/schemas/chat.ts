// POST /v1/chat/completions: the request body. A field no schema names is a 400 (unrecognized).
import { Type, type Static } from 'typebox';
import { Int32, Nullable, samplingFields, structuredFields, ignoredFields } from './sampling.js';
import { refusedFields } from './refused-fields.js';

/** Content parts are checked in the route: only `text` parts are supported, others get a clear 400. */
const ContentPart = Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) });

export const ChatMessage = Type.Object({
  role: Type.Union(['system', 'developer', 'user', 'assistant', 'tool'].map((r) => Type.Literal(r))),
  content: Nullable(Type.Union([Type.String(), Type.Array(ContentPart)])),
  name: Nullable(Type.String()),
  tool_calls: Type.Optional(Type.Unknown()),
  tool_call_id: Nullable(Type.String()),
});
export type ChatMessage = Static<typeof ChatMessage>;

export const ChatCompletionRequest = Type.Object(
  {
    ...samplingFields,
    ...refusedFields,
    ...ignoredFields,
    ...structuredFields,
    // Tool calling: checked in ../tools/tool-request.ts.
    tools: Type.Optional(Type.Unknown()),
    tool_choice: Type.Optional(Type.Unknown()),
    messages: Type.Array(ChatMessage, { minItems: 1 }),
    max_completion_tokens: Nullable(Int32({ minimum: 1 })),
    logprobs: Nullable(Type.Boolean()),
    top_logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 20 })),
    // vLLM's extensions for templates.
    add_generation_prompt: Nullable(Type.Boolean()),
    continue_final_message: Nullable(Type.Boolean()),
    chat_template_kwargs: Nullable(Type.Record(Type.String(), Type.Unknown())),
    // Off only (false): vLLM's echo of the last message, and BOS added again after the template's.
    echo: Nullable(Type.Boolean()),
    add_special_tokens: Nullable(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type ChatCompletionRequest = Static<typeof ChatCompletionRequest>;
