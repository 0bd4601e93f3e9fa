// What `kvserve chat` talks to: the engine in this process (local-chat.ts) or a running server's
// /v1/chat/completions (remote-chat.ts). Both stream the assistant's reply as text pieces.
import type { TemplateMessage } from '../tokenizer/chat-template.js';

export interface ChatMessage extends TemplateMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatBackend {
  /** One line for the banner, e.g. 'stories260K on cpu (float32), context 512 tokens'. */
  readonly description: string;
  /** Tokens the rendered conversation takes and the context length, where the backend can count them. */
  measure?(messages: ChatMessage[]): { promptTokens: number; contextTokens: number };
  /** Streams the reply to `messages`; aborting `signal` ends it early (what came so far stays valid). */
  reply(messages: ChatMessage[], signal: AbortSignal): AsyncIterable<string>;
  close(): Promise<void>;
}

/** A failure to show the user on one line without leaving the chat (a bad reply, a server error). */
export class ChatError extends Error {
  override name = 'ChatError';
}
