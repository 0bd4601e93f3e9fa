// Request fields OpenAI or vLLM define for features kvserve does not implement. Each is accepted at the value
// that means "off" (what SDKs send when the feature is unused) and refused by name otherwise, so that a
// client never gets a silently different answer. A field in no schema at all is "unrecognized" (a 400 too).
import { Type, type TOptional, type TUnknown } from 'typebox';

const never = () => false;
const emptyList = (v: unknown) => Array.isArray(v) && v.length === 0;
const oneOf =
  (...ok: unknown[]) =>
  (v: unknown) =>
    ok.includes(v);

interface Refusal {
  what: string; // "<what> is not supported by kvserve yet"
  off: (v: unknown) => boolean; // true for the values that ask for nothing (null is always off)
}

export const REFUSED = {
  // OpenAI's.
  functions: { what: 'function calling (functions)', off: emptyList },
  function_call: { what: 'function_call', off: oneOf('none', 'auto') },
  suffix: { what: 'suffix (insertion)', off: oneOf('') },
  audio: { what: 'audio output', off: never },
  prediction: { what: 'predicted outputs (prediction)', off: never },
  modalities: { what: 'modalities other than text', off: (v) => Array.isArray(v) && v.every((m) => m === 'text') },
  reasoning_effort: { what: 'reasoning_effort', off: never },
  web_search_options: { what: 'web search (web_search_options)', off: never },
  verbosity: { what: 'verbosity', off: never },
  store: { what: 'storing completions (store: true)', off: oneOf(false) },
  // vLLM's.
  use_beam_search: { what: 'beam search (use_beam_search)', off: oneOf(false) },
  length_penalty: { what: 'length_penalty (beam search)', off: oneOf(1) },
  prompt_logprobs: { what: 'prompt_logprobs', off: never },
  logits_processors: { what: 'custom logits processors (logits_processors)', off: never },
  prompt_embeds: { what: 'prompt embeddings (prompt_embeds)', off: never },
  spaces_between_special_tokens: { what: 'spaces_between_special_tokens: false', off: oneOf(true) },
  documents: { what: 'documents (RAG templates)', off: never },
  chat_template: { what: 'a per-request chat_template (start the server with --chat-template)', off: never },
  mm_processor_kwargs: { what: 'multimodal inputs (mm_processor_kwargs)', off: never },
  cache_salt: { what: 'cache_salt (prefix-cache isolation)', off: never },
  kv_transfer_params: { what: 'KV transfer (kv_transfer_params)', off: never },
  vllm_xargs: { what: 'vllm_xargs', off: never },
  return_token_ids: { what: 'return_token_ids', off: oneOf(false) },
} satisfies Record<string, Refusal>;

export type RefusedField = keyof typeof REFUSED;

/** Schema entries for `keys`: any JSON, checked by rejectRefused (../sampling.ts) after validation. */
export const unknownFields = <K extends string>(keys: readonly K[]) =>
  Object.fromEntries(keys.map((k) => [k, Type.Optional(Type.Unknown())])) as { [P in K]: TOptional<TUnknown> };

export const refusedFields = unknownFields(Object.keys(REFUSED) as RefusedField[]);
