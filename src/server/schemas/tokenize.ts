// POST /tokenize and POST /detokenize (vLLM's shapes).
import { Type, type Static } from 'typebox';
import { ChatMessage } from './chat.js';
import { Nullable, TokenId } from './sampling.js';

export const TokenizeRequest = Type.Object({
  model: Nullable(Type.String()),
  prompt: Type.Optional(Type.String()),
  messages: Type.Optional(Type.Array(ChatMessage, { minItems: 1 })),
  add_special_tokens: Nullable(Type.Boolean()),
  add_generation_prompt: Nullable(Type.Boolean()),
  continue_final_message: Nullable(Type.Boolean()),
  chat_template_kwargs: Nullable(Type.Record(Type.String(), Type.Unknown())),
});
export type TokenizeRequest = Static<typeof TokenizeRequest>;

export const DetokenizeRequest = Type.Object({
  model: Nullable(Type.String()),
  tokens: Type.Array(TokenId, { minItems: 1 }),
});
export type DetokenizeRequest = Static<typeof DetokenizeRequest>;

/** What /tokenize answers. */
export interface TokenizeResponse {
  count: number;
  max_model_len: number;
  tokens: number[];
}

/** What /detokenize answers. */
export interface DetokenizeResponse {
  prompt: string;
}
