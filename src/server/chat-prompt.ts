// Chat messages → prompt token ids: flatten content parts, refuse what cannot fit, then render the chat
// template and tokenize the result without adding special tokens (the template already wrote them, as
// transformers does) — both on the tokenizer pool's threads, off the event loop.
import { ChatTemplateError, type TemplateMessage } from '../tokenizer/chat-template.js';
import { type JobOptions, RenderedTooLong } from '../tokenizer/tokenizer-pool.js';
import { ApiError, unsupported } from './errors.js';
import type { LoadedModel } from './model-slot.js';
import { checkMessages, promptTooLong } from './prompt-size.js';
import type { ChatMessage } from './schemas/chat.js';
import type { ChatTools } from './tools/chat-tools.js';

export interface ChatPromptOptions {
  add_generation_prompt?: boolean | null;
  continue_final_message?: boolean | null;
  chat_template_kwargs?: Record<string, unknown> | null;
}

const missing = (param: string, message: string) => new ApiError('missing_required_parameter', message, param);

/** What OpenAI requires of each role: content, except for an assistant turn that carries tool calls, and
 *  the id of the call a tool message answers. */
function checkMessage(m: ChatMessage, i: number): void {
  const hasContent = m.content !== undefined && m.content !== null;
  if (m.role === 'assistant') {
    const calls = Array.isArray(m.tool_calls) && m.tool_calls.length > 0;
    if (!hasContent && !calls)
      throw missing(`messages[${i}].content`, `messages[${i}]: an assistant message needs content or tool_calls`);
    return;
  }
  if (!hasContent) throw missing(`messages[${i}].content`, `messages[${i}]: a ${m.role} message needs content`);
  if (m.role === 'tool' && !m.tool_call_id) {
    throw missing(`messages[${i}].tool_call_id`, `messages[${i}]: a tool message needs the tool_call_id it answers`);
  }
}

/** Text parts are joined with newlines (as vLLM does); any other part type is a clear 400. */
function flatten(messages: ChatMessage[]): TemplateMessage[] {
  return messages.map((m, i) => {
    checkMessage(m, i);
    let content: string | null;
    if (Array.isArray(m.content)) {
      content = m.content
        .map((part, j) => {
          if (part.type !== 'text')
            throw unsupported(`messages[${i}].content[${j}].type`, `content parts of type "${part.type}"`);
          if (typeof part.text !== 'string') {
            throw new ApiError(
              'missing_required_parameter',
              `messages[${i}].content[${j}] needs a "text" string`,
              `messages[${i}].content[${j}].text`,
            );
          }
          return part.text;
        })
        .join('\n');
    } else {
      content = m.content ?? null;
    }
    // Templates written before OpenAI's "developer" role know it as "system".
    const out: TemplateMessage = { role: m.role === 'developer' ? 'system' : m.role, content };
    if (m.name) out.name = m.name;
    if (m.tool_calls !== undefined && m.tool_calls !== null) out.tool_calls = m.tool_calls;
    if (m.tool_call_id) out.tool_call_id = m.tool_call_id;
    return out;
  });
}

/** The checks that need no rendering (message shapes, count and bytes): cheap, run before admission. */
export function checkChatMessages(model: LoadedModel, messages: ChatMessage[]): void {
  checkMessages(model, flatten(messages));
}

export async function renderChatPrompt(
  model: LoadedModel,
  messages: ChatMessage[],
  opts: ChatPromptOptions,
  tools?: ChatTools,
  job: JobOptions = {},
): Promise<{ text: string; ids: number[] }> {
  if (!model.chatTemplate) {
    throw new ApiError(
      'chat_template_missing',
      'this model has no chat template: start the server with --chat-template FILE, or use /v1/completions',
      'messages',
    );
  }
  const flat = flatten(messages);
  checkMessages(model, flat);
  // Tools, earlier calls and their results as the template takes them (or kvserve's fallback: tool-prompt.ts).
  const withTools = tools ? tools.prompt(flat) : { messages: flat, extra: {} };
  const continueFinal = opts.continue_final_message ?? false;
  const options = {
    addGenerationPrompt: opts.add_generation_prompt ?? !continueFinal,
    continueFinalMessage: continueFinal,
    extra: { ...withTools.extra, ...(opts.chat_template_kwargs ?? {}) },
  };
  try {
    return await model.prompts.renderChat(withTools.messages, options, model.maxPromptBytes, job);
  } catch (e) {
    if (e instanceof ChatTemplateError) throw new ApiError('chat_template_error', e.message, 'messages');
    if (e instanceof RenderedTooLong) throw promptTooLong(model, e.bytes, 'messages');
    throw e;
  }
}
