// Prompts that cannot fit the context are refused by their size before any tokenizing or template
// rendering (the bound, and why it is sound, is in src/tokenizer/prompt-bound.ts).
import type { TemplateMessage } from '../tokenizer/chat-template.js';
import { ApiError } from './errors.js';
import type { LoadedModel } from './model-slot.js';

export function promptTooLong(model: LoadedModel, bytes: number, param: string): ApiError {
  return new ApiError(
    'context_length_exceeded',
    `This model's maximum context length is ${model.maxModelLen} tokens. However, the prompt has ${bytes} bytes of text, ` +
      `more than the ${model.maxPromptBytes} bytes that can fit it (--max-prompt-bytes). Please reduce the length of the prompt.`,
    param,
  );
}

/** A prompt string longer than the byte bound: a 400 naming `param`, before it is tokenized. */
export function checkPromptBytes(model: LoadedModel, text: string, param: string): void {
  // Cheap first: a UTF-8 byte is at least a third of a UTF-16 code unit's worth of text.
  if (text.length * 3 <= model.maxPromptBytes) return;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > model.maxPromptBytes) throw promptTooLong(model, bytes, param);
}

/**
 * Chat messages that cannot fit: more messages than the context has tokens (every chat template writes at
 * least a separator or role marker per message), or more message text than a prompt may have (the template
 * writes every message's text). Refused before the template is rendered.
 */
export function checkMessages(model: LoadedModel, messages: TemplateMessage[]): void {
  if (messages.length > model.maxModelLen) {
    throw new ApiError(
      'context_length_exceeded',
      `This model's maximum context length is ${model.maxModelLen} tokens, fewer than the ${messages.length} messages given. Please send fewer messages.`,
      'messages',
    );
  }
  let bytes = 0;
  for (const m of messages)
    bytes += Buffer.byteLength(m.content ?? '', 'utf8') + Buffer.byteLength(m.name ?? '', 'utf8');
  if (bytes > model.maxPromptBytes) throw promptTooLong(model, bytes, 'messages');
}
